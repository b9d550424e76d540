#include "model/nn/dense.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace wfm::model::nn {
namespace {

at::Generator Gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TEST(DenseTest, LecunTruncatedNormalStatistics) {
  at::Generator gen = Gen(1);
  Dense dense(1024, 512);
  dense->Initialize(gen);
  const at::Tensor w = dense->weight.detach().to(at::kDouble);
  const double target = std::sqrt(1.0 / 1024.0);
  // 512k draws: the sample std is within ~0.2% of the truncated law's.
  EXPECT_NEAR(w.std().item<double>(), target, 0.01 * target);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.01 * target);
  // Truncated at two standard deviations of the underlying normal.
  const double bound = 2.0 * target / kTruncatedNormalStd;
  EXPECT_LE(w.abs().max().item<double>(), bound * (1 + 1e-6));
  EXPECT_GT(w.abs().max().item<double>(), 0.98 * bound);
  // Mass beyond one underlying std: P(|z| > 1 | |z| < 2) = 0.27181 / 0.95450.
  const double beyond =
      (w.abs() > target / kTruncatedNormalStd).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(beyond, 0.27181 / 0.95450, 0.003);
  EXPECT_EQ(dense->bias.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(dense->weight.sizes(), (at::IntArrayRef{512, 1024}));
}

TEST(DenseTest, InitScaleMultipliesTheVariance) {
  at::Generator gen = Gen(2);
  Dense dense(256, 1024, 1e-5);
  dense->Initialize(gen);
  const double target = std::sqrt(1e-5 / 256.0);
  EXPECT_NEAR(dense->weight.detach().to(at::kDouble).std().item<double>(), target, 0.01 * target);
}

TEST(DenseTest, SameSeedSameWeightsDifferentSeedDifferent) {
  at::Generator g1 = Gen(5), g2 = Gen(5), g3 = Gen(6);
  Dense a(16, 8), b(16, 8), c(16, 8);
  a->Initialize(g1);
  b->Initialize(g2);
  c->Initialize(g3);
  EXPECT_TRUE(at::equal(a->weight, b->weight));
  EXPECT_FALSE(at::equal(a->weight, c->weight));
}

TEST(DenseTest, ForwardIsAffine) {
  at::Generator gen = Gen(3);
  Dense dense(4, 3);
  dense->Initialize(gen);
  {
    at::NoGradGuard no_grad;
    dense->bias.copy_(at::tensor({1.0f, -2.0f, 0.5f}));
  }
  const at::Tensor x = at::randn({5, 4});
  const at::Tensor expected = at::matmul(x, dense->weight.t()) + dense->bias;
  EXPECT_TRUE(at::allclose(dense(x), expected, 1e-6, 1e-6));
}

TEST(DenseTest, CloneIsADeepCopy) {
  at::Generator gen = Gen(4);
  Dense dense(6, 5);
  dense->Initialize(gen);
  auto copy = std::dynamic_pointer_cast<DenseImpl>(dense->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(at::equal(copy->weight, dense->weight));
  {
    at::NoGradGuard no_grad;
    copy->weight.add_(1.0);
  }
  EXPECT_FALSE(at::equal(copy->weight, dense->weight));
  EXPECT_EQ(copy->named_parameters().size(), 2u);
  EXPECT_TRUE(copy->named_parameters().contains("weight"));
  EXPECT_TRUE(copy->named_parameters().contains("bias"));
}

// Without autograd each row's output is bitwise independent of the batch it
// is computed with (the BLAS would otherwise pick kernels by the row count),
// and equal to the autograd path up to rounding.
TEST(DenseTest, InferenceRowsDoNotDependOnTheBatch) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  Dense dense(48, 96);
  dense->Initialize(gen);
  const at::Tensor x = at::randn({300, 48}, gen);
  const at::Tensor with_grad = dense->forward(x);
  at::NoGradGuard no_grad;
  const at::Tensor all = dense->forward(x);
  for (int64_t m : {1, 3, 20, 63, 64, 65, 100, 160}) {
    for (int64_t start : {int64_t{0}, int64_t{7}, 300 - m}) {
      EXPECT_TRUE(at::equal(dense->forward(x.narrow(0, start, m)), all.narrow(0, start, m)))
          << m << " rows from " << start;
    }
  }
  EXPECT_TRUE(at::allclose(all, with_grad.detach(), 1e-5, 1e-5));
  // Leading dimensions are kept.
  EXPECT_EQ(dense->forward(x.view({3, 100, 48})).sizes(), (at::IntArrayRef{3, 100, 96}));
}

}  // namespace
}  // namespace wfm::model::nn
