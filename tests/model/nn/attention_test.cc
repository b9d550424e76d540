#include "model/nn/attention.h"

#include <cmath>
#include <limits>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace wfm::model::nn {
namespace {

// The reference's attention core (anchors/refwfm/pointcloud.py) in float64.
at::Tensor ReferenceCore(const at::Tensor& qkv, const at::Tensor& mask, int64_t heads,
                         const at::Tensor& drop) {
  const int64_t b = qkv.size(0), n = qkv.size(1), e = qkv.size(2) / 3, hd = e / heads;
  const at::Tensor parts = qkv.view({b, n, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = parts[0] / std::sqrt(static_cast<double>(hd));
  at::Tensor logits = at::matmul(q, parts[1].transpose(-1, -2));
  if (mask.defined()) {
    logits = logits.masked_fill(mask.logical_not().unsqueeze(1).unsqueeze(1),
                                std::numeric_limits<double>::lowest());
  }
  at::Tensor w = at::softmax(logits, -1);
  if (drop.defined()) w = w * drop;
  return at::matmul(w, parts[2]).transpose(1, 2).reshape({b, n, e});
}

at::Tensor DropFactors(const kernel::DropoutStream& s, int64_t n) {
  at::Tensor d = at::empty({n, n}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      d[i][j] = kernel::DropoutKeep(s, static_cast<uint32_t>(i * n + j)) ? s.scale : 0.0f;
    }
  }
  return d;
}

struct Case {
  int64_t b, n, heads, head_dim;
  bool padded, dropout;
};

class AttentionCoreTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCoreTest, MatchesTheReferenceForwardAndBackward) {
  const Case c = GetParam();
  at::manual_seed(11);
  const int64_t e = c.heads * c.head_dim;
  const at::Tensor qkv = at::randn({c.b, c.n, 3 * e}) * 1.5;
  at::Tensor mask, key_bias;
  if (c.padded) {
    mask = at::ones({c.b, c.n}, at::kBool);
    mask[0].narrow(0, c.n - 3, 3).fill_(false);
    mask[c.b - 1][1] = false;
    key_bias = KeyBiasFromMask(mask);
  }
  const kernel::DropoutStream stream = kernel::MakeDropoutStream(0.3, 4242);
  const kernel::DropoutStream* dropout = c.dropout ? &stream : nullptr;
  const at::Tensor drop = c.dropout ? DropFactors(stream, c.n) : at::Tensor();

  at::Tensor qkv_ref = qkv.to(at::kDouble).requires_grad_(true);
  const at::Tensor out_ref = ReferenceCore(qkv_ref, mask, c.heads, drop);
  const at::Tensor probe = at::randn(out_ref.sizes(), at::kDouble);
  (out_ref * probe).sum().backward();

  at::Tensor qkv_ours = qkv.clone().requires_grad_(true);
  const at::Tensor out = AttentionCore(qkv_ours, key_bias, c.heads, dropout);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{c.b, c.n, e}));
  EXPECT_TRUE(at::allclose(out.to(at::kDouble), out_ref.detach(), 1e-5, 1e-5))
      << (out.to(at::kDouble) - out_ref).abs().max().item<double>();
  (out * probe.to(at::kFloat)).sum().backward();
  EXPECT_TRUE(at::allclose(qkv_ours.grad().to(at::kDouble), qkv_ref.grad(), 1e-4, 1e-5))
      << (qkv_ours.grad().to(at::kDouble) - qkv_ref.grad()).abs().max().item<double>();

  // Without a graph the same values come from the inference path.
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(AttentionCore(qkv, key_bias, c.heads, dropout), out.detach()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCoreTest,
                         ::testing::Values(Case{2, 5, 1, 4, false, false},
                                           Case{3, 37, 2, 8, true, false},
                                           Case{2, 37, 4, 8, false, true},
                                           Case{3, 33, 2, 16, true, true},
                                           Case{2, 128, 4, 32, true, true}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "B" + std::to_string(c.b) + "N" + std::to_string(c.n) + "H" +
                                  std::to_string(c.heads) + "D" + std::to_string(c.head_dim) +
                                  (c.padded ? "Padded" : "") + (c.dropout ? "Dropout" : "");
                         });

TEST(AttentionCoreTest, PaddedKeysDoNotInfluenceRealQueries) {
  at::manual_seed(12);
  const at::Tensor qkv = at::randn({1, 10, 3 * 8});
  at::Tensor mask = at::ones({1, 10}, at::kBool);
  mask[0].narrow(0, 7, 3).fill_(false);
  const at::Tensor bias = KeyBiasFromMask(mask);
  at::Tensor changed = qkv.clone();
  changed[0].narrow(0, 7, 3).normal_(0, 100);
  at::NoGradGuard no_grad;
  const at::Tensor a = AttentionCore(qkv, bias, 2, nullptr);
  const at::Tensor b = AttentionCore(changed, bias, 2, nullptr);
  EXPECT_TRUE(at::allclose(a[0].narrow(0, 0, 7), b[0].narrow(0, 0, 7), 1e-6, 1e-6));
  EXPECT_TRUE(at::isfinite(b).all().item<bool>());
  // ... and equal the unpadded cloud's.
  const at::Tensor alone =
      AttentionCore(qkv.narrow(1, 0, 7).contiguous(), at::Tensor(), 2, nullptr);
  EXPECT_TRUE(at::allclose(a.narrow(1, 0, 7), alone, 1e-6, 1e-6));
}

TEST(AttentionCoreTest, RejectsBadShapes) {
  EXPECT_THROW(AttentionCore(at::randn({2, 3, 10}), at::Tensor(), 2, nullptr), c10::Error);
  EXPECT_THROW(AttentionCore(at::randn({2, 3, 12}).to(at::kDouble), at::Tensor(), 2, nullptr),
               c10::Error);
  EXPECT_THROW(AttentionCore(at::randn({2, 3, 12}), at::zeros({2, 4}), 2, nullptr), c10::Error);
}

TEST(MultiHeadAttentionTest, KeysAndProjections) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  MultiHeadAttention mha(8, 2);
  mha->Initialize(gen);
  const auto params = mha->named_parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params["qkv.weight"].sizes(), (at::IntArrayRef{24, 8}));
  EXPECT_EQ(params["qkv.bias"].sizes(), (at::IntArrayRef{24}));
  EXPECT_EQ(params["out.weight"].sizes(), (at::IntArrayRef{8, 8}));
  EXPECT_EQ(params["out.bias"].sizes(), (at::IntArrayRef{8}));
  const at::Tensor x = at::randn({2, 5, 8});
  const at::Tensor qkv = at::linear(x, mha->qkv->weight, mha->qkv->bias);
  const at::Tensor ref =
      at::linear(ReferenceCore(qkv.to(at::kDouble), at::Tensor(), 2, at::Tensor()).to(at::kFloat),
                 mha->out->weight, mha->out->bias);
  EXPECT_TRUE(at::allclose(mha(x, at::Tensor()), ref, 1e-5, 1e-6));
}

}  // namespace
}  // namespace wfm::model::nn
