#include "model/nn/pointcloud_inference.h"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "model/common/status.h"
#include "model/nn/nn_kernels.h"
#include "model/nn/pointcloud_net.h"
#include "tests/model/nn/perturb.h"
#include "tests/testing/status.h"

namespace wfm::model::nn {
namespace {

PointCloudNetConfig Config(ConditionKind kind, int64_t width, int64_t heads, int64_t mlp) {
  return ::wfm::testing::TwoLayerCloudNet(kind, width, heads, mlp, /*dropout=*/0.1);
}

// A network in eval mode with ordinary values in every parameter.
absl::StatusOr<PointCloudVelocityNet> MakeNet(const PointCloudNetConfig& c, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  WFM_ASSIGN_OR_RETURN(PointCloudVelocityNet net, MakePointCloudVelocityNet(c, gen));
  ::wfm::testing::Perturb(*net, seed + 1);
  net->eval();
  return net;
}

at::Tensor Condition(const PointCloudNetConfig& c, int64_t batch) {
  switch (c.condition) {
    case ConditionKind::kDiscrete: {
      at::Tensor labels = at::randint(c.num_classes, {batch}, at::kLong);
      labels[0] = -1;  // the null label
      return labels;
    }
    case ConditionKind::kContinuous:
      return at::randn({batch, c.cond_dim});
    case ConditionKind::kNone:
      break;
  }
  return at::Tensor();
}

// Every kernel table this CPU runs (the float32 ones, and amx where the
// CPU has AMX tiles).
std::vector<const kernel::FloatKernels*> Tables() {
  std::vector<const kernel::FloatKernels*> out;
  for (const char* isa : {"generic", "avx2", "avx512f", "amx"}) {
    if (const kernel::FloatKernels* k = kernel::FloatKernelsFor(isa)) out.push_back(k);
  }
  return out;
}

using Shape = std::tuple<ConditionKind, int64_t /*width*/, int64_t /*heads*/, int64_t /*mlp*/,
                         int64_t /*batch*/, int64_t /*points*/>;

class PointCloudInferenceTest : public ::testing::TestWithParam<Shape> {};

TEST_P(PointCloudInferenceTest, MatchesTheNetworkForward) {
  const auto [kind, width, heads, mlp, batch, points] = GetParam();
  const PointCloudNetConfig c = Config(kind, width, heads, mlp);
  at::manual_seed(21);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 22));
  const at::Tensor x = at::randn({batch, points, 3});
  const at::Tensor t = at::rand({batch});
  const at::Tensor cond = Condition(c, batch);
  c10::InferenceMode guard;
  const at::Tensor expected = net->forward(x, at::Tensor(), t, cond);
  EXPECT_GT(expected.abs().max().item<double>(), 1e-2);  // not a trivial comparison
  for (const kernel::FloatKernels* k : Tables()) {
    const PointCloudInference inference(*net, *k);
    const at::Tensor got = inference.Velocity(x, t, cond);
    ASSERT_EQ(got.sizes(), expected.sizes());
    // The float32 tables differ from forward() by summation order only. The
    // amx table's wide layers make each product to about 2^-16 of its size
    // (nn_kernels.h), which shows as differences up to ~2^-17 of the
    // velocity's scale: allowed 2^-15 of it more.
    double atol = 1e-5;
    if (std::string(k->isa) == "amx") atol += std::ldexp(expected.abs().max().item<double>(), -15);
    EXPECT_TRUE(at::allclose(got, expected, 1e-4, atol))
        << k->isa << ": max |diff| " << (got - expected).abs().max().item<double>();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PointCloudInferenceTest,
    ::testing::Values(Shape{ConditionKind::kNone, 16, 2, 24, 3, 1},
                      Shape{ConditionKind::kNone, 16, 2, 32, 5, 7},
                      Shape{ConditionKind::kDiscrete, 24, 4, 40, 4, 13},
                      Shape{ConditionKind::kContinuous, 32, 4, 48, 2, 70},
                      Shape{ConditionKind::kDiscrete, 40, 5, 33, 9, 9},
                      Shape{ConditionKind::kNone, 64, 4, 128, 2, 130}));

void ExpectTheSameBitsInAnyBatchAndThreadCount(const PointCloudInference& inference,
                                              const PointCloudNetConfig& c) {
  // Items hold whole clouds, at least 128 rows and 16 MFLOP of this small
  // network each (56 clouds of 9 points): this batch is three items.
  const int64_t batch = 150, points = 9;
  const at::Tensor x = at::randn({batch, points, 3});
  const at::Tensor t = at::rand({batch});
  const at::Tensor labels = Condition(c, batch);
  c10::InferenceMode guard;
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = inference.Velocity(x, t, labels);
  at::set_num_threads(3);
  const at::Tensor three_threads = inference.Velocity(x, t, labels);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one_thread, three_threads));
  for (int64_t b = 0; b < batch; b += 7) {
    const at::Tensor alone = inference.Velocity(x.narrow(0, b, 1), t.narrow(0, b, 1),
                                                labels.narrow(0, b, 1));
    EXPECT_TRUE(at::equal(alone[0], one_thread[b])) << "cloud " << b;
  }
  // The same clouds at other positions of another batch.
  const at::Tensor order = at::tensor({140, 3, 3, 0, 77, 56, 57}, at::kLong);
  const at::Tensor mixed = inference.Velocity(x.index_select(0, order), t.index_select(0, order),
                                              labels.index_select(0, order));
  EXPECT_TRUE(at::equal(mixed, one_thread.index_select(0, order)));
}

TEST(PointCloudInferenceTest, EachCloudGetsTheSameBitsInAnyBatchAndThreadCount) {
  const PointCloudNetConfig c = Config(ConditionKind::kDiscrete, 32, 4, 48);
  at::manual_seed(23);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 24));
  for (const kernel::FloatKernels* k : Tables()) {
    SCOPED_TRACE(k->isa);
    ExpectTheSameBitsInAnyBatchAndThreadCount(PointCloudInference(*net, *k), c);
  }
}

TEST(PointCloudInferenceTest, LaterChangesToTheNetworkAreNotSeen) {
  const PointCloudNetConfig c = Config(ConditionKind::kNone, 16, 2, 24);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 25));
  const PointCloudInference inference(*net);
  const at::Tensor x = at::randn({2, 5, 3});
  const at::Tensor t = at::rand({2});
  c10::InferenceMode guard;
  const at::Tensor before = inference.Velocity(x, t, at::Tensor());
  net->final->bias.add_(1.0);
  EXPECT_TRUE(at::equal(inference.Velocity(x, t, at::Tensor()), before));
  EXPECT_FALSE(at::allclose(net->forward(x, at::Tensor(), t), before));
}

TEST(PointCloudInferenceTest, RejectsMisshapenInputs) {
  const PointCloudNetConfig c = Config(ConditionKind::kContinuous, 16, 2, 24);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 26));
  const PointCloudInference inference(*net);
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({2, 5, 3});
  const at::Tensor t = at::rand({2});
  EXPECT_THROW(inference.Velocity(at::randn({2, 5, 2}), t, at::randn({2, 2})), c10::Error);
  EXPECT_THROW(inference.Velocity(x, at::rand({3}), at::randn({2, 2})), c10::Error);
  EXPECT_THROW(inference.Velocity(x, t, at::Tensor()), c10::Error);
  EXPECT_THROW(inference.Velocity(x, t, at::randn({2, 3})), c10::Error);
  EXPECT_EQ(inference.Velocity(at::randn({0, 5, 3}), at::rand({0}), at::randn({0, 2})).numel(), 0);
}

}  // namespace
}  // namespace wfm::model::nn
