#include "model/nn/pointcloud_net.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "tests/model/nn/perturb.h"
#include "tests/testing/status.h"

namespace wfm::model::nn {
namespace {

at::Generator Gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

PointCloudNetConfig SmallConfig(ConditionKind kind = ConditionKind::kNone) {
  return ::wfm::testing::TwoLayerCloudNet(kind, 16, 2, 32, /*dropout=*/0.2);
}

absl::StatusOr<PointCloudVelocityNet> MakeNet(const PointCloudNetConfig& c, uint64_t seed) {
  at::Generator gen = Gen(seed);
  return MakePointCloudVelocityNet(c, gen);
}

// Gives the near-zero final layer and the LayerNorms ordinary values, so that
// outputs depend visibly on every parameter.
void Perturb(PointCloudVelocityNet& net, uint64_t seed) { ::wfm::testing::Perturb(*net, seed); }

at::Tensor Condition(const PointCloudNetConfig& c, int64_t batch) {
  switch (c.condition) {
    case ConditionKind::kDiscrete:
      return at::arange(batch, at::kLong).remainder(c.num_classes + 1) - 1;  // includes -1
    case ConditionKind::kContinuous:
      return at::randn({batch, c.cond_dim});
    case ConditionKind::kNone:
      break;
  }
  return at::Tensor();
}

// --------------------------------------------------------- reference forward

// The reference network (anchors/refwfm/pointcloud.py AttentionNN) in float64
// over `params` (the network's parameters as float64 leaves). `streams`: the
// dropout streams of a training call (two per block), or null.
at::Tensor ReferenceForward(const PointCloudNetConfig& c, std::map<std::string, at::Tensor>& p,
                            const at::Tensor& points, const at::Tensor& mask, const at::Tensor& t,
                            const at::Tensor& condition,
                            const std::vector<kernel::DropoutStream>* streams) {
  const int64_t e = c.width, half = e / 2, b = points.size(0), n = points.size(1);
  const auto lin = [&](const at::Tensor& x, const std::string& name) {
    return at::linear(x, p.at(name + ".weight"), p.at(name + ".bias"));
  };
  const auto norm = [&](const at::Tensor& x, const std::string& name) {
    return at::layer_norm(x, {e}, p.at(name + ".weight"), p.at(name + ".bias"), 1e-6);
  };
  at::Tensor x = lin(points.to(at::kDouble), "embed");
  const at::Tensor freqs =
      at::arange(half, at::kFloat).mul(2.0 * M_PI / static_cast<double>(e)).to(at::kDouble);
  const at::Tensor phase = freqs.unsqueeze(0) * t.to(at::kDouble).unsqueeze(1);
  at::Tensor cond = lin(at::cat({phase.cos(), phase.sin()}, -1), "time_embed");
  if (c.condition == ConditionKind::kDiscrete) {
    cond = cond + lin(at::one_hot(condition.clamp_min(0), c.num_classes).to(at::kDouble) *
                          condition.ge(0).unsqueeze(-1),
                      "cond_embed");
  } else if (c.condition == ConditionKind::kContinuous) {
    cond = cond + lin(condition.to(at::kDouble), "cond_embed");
  }
  const bool padded = mask.defined() && !mask.all().item<bool>();
  const int64_t hd = e / c.heads;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string pre = "blocks." + std::to_string(i) + ".";
    const at::Tensor h = norm(x + cond.unsqueeze(1), pre + "norm1");
    const at::Tensor qkv =
        lin(h, pre + "attention.qkv").view({b, n, 3, c.heads, hd}).permute({2, 0, 3, 1, 4});
    at::Tensor logits =
        at::matmul(qkv[0] / std::sqrt(static_cast<double>(hd)), qkv[1].transpose(-1, -2));
    if (padded) {
      logits = logits.masked_fill(mask.logical_not().unsqueeze(1).unsqueeze(1),
                                  std::numeric_limits<double>::lowest());
    }
    at::Tensor w = at::softmax(logits, -1);
    if (streams != nullptr) {
      const kernel::DropoutStream& s = (*streams)[2 * i];
      at::Tensor d = at::empty({n, n}, at::kDouble);
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t k = 0; k < n; ++k) {
          d[r][k] = kernel::DropoutKeep(s, static_cast<uint32_t>(r * n + k)) ? s.scale : 0.0f;
        }
      }
      w = w * d;
    }
    const at::Tensor o = at::matmul(w, qkv[2]).transpose(1, 2).reshape({b, n, e});
    x = x + lin(o, pre + "attention.out");
    at::Tensor f = lin(norm(x, pre + "norm2"), pre + "feed_forward.fc1");
    if (streams != nullptr) {
      const kernel::DropoutStream& s = (*streams)[2 * i + 1];
      at::Tensor d = at::empty({f.numel()}, at::kDouble);
      auto da = d.accessor<double, 1>();
      for (int64_t k = 0; k < f.numel(); ++k) {
        da[k] = kernel::DropoutKeep(s, static_cast<uint32_t>(k)) ? s.scale : 0.0f;
      }
      f = f * d.view(f.sizes());
    }
    x = x + lin(at::leaky_relu(f, 0.01), pre + "feed_forward.fc2");
  }
  return lin(norm(x, "final_norm"), "final");
}

std::map<std::string, at::Tensor> DoubleLeaves(PointCloudVelocityNet& net) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : net->named_parameters()) {
    out[p.key()] = p.value().detach().to(at::kDouble).requires_grad_(true);
  }
  return out;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// ------------------------------------------------------------------- config

TEST(PointCloudNetConfigTest, InvalidFieldsAreNamed) {
  struct Bad {
    PointCloudNetConfig config;
    std::string message;
  };
  std::vector<Bad> cases;
  auto add = [&](auto edit, const std::string& message) {
    PointCloudNetConfig c = SmallConfig();
    edit(c);
    cases.push_back({c, message});
  };
  add(
      [](auto& c) {
        c.width = 130;
        c.heads = 4;
      },
      "width (130) must be divisible by heads (4)");
  add([](auto& c) { c.space_dim = 0; }, "space_dim (0) must be positive");
  add([](auto& c) { c.width = -8; }, "width (-8) must be positive");
  add([](auto& c) { c.heads = 0; }, "heads (0) must be positive");
  add([](auto& c) { c.layers = 0; }, "layers (0) must be positive");
  add([](auto& c) { c.mlp_hidden = -1; }, "mlp_hidden (-1) must be positive");
  add(
      [](auto& c) {
        c.width = 1;
        c.heads = 1;
      },
      "width (1) must be at least 2");
  add([](auto& c) { c.dropout = 1.0; }, "dropout (1) must be in [0, 1)");
  add([](auto& c) { c.dropout = -0.1; }, "dropout (-0.1) must be in [0, 1)");
  add([](auto& c) { c.dropout = std::nan(""); }, "dropout (nan) must be in [0, 1)");
  add(
      [](auto& c) {
        c.condition = ConditionKind::kDiscrete;
        c.num_classes = 0;
      },
      "num_classes (0) must be positive");
  add(
      [](auto& c) {
        c.condition = ConditionKind::kContinuous;
        c.cond_dim = 0;
      },
      "cond_dim (0) must be positive");
  for (const Bad& bad : cases) {
    const absl::Status s = ValidatePointCloudNetConfig(bad.config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.message;
    EXPECT_NE(std::string(s.message()).find(bad.message), std::string::npos)
        << s.message() << " vs " << bad.message;
    at::Generator gen = Gen(1);
    EXPECT_EQ(MakePointCloudVelocityNet(bad.config, gen).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(ValidatePointCloudNetConfig(SmallConfig()).ok());
  PointCloudNetConfig zero_dropout = SmallConfig();
  zero_dropout.dropout = 0.0;
  EXPECT_TRUE(ValidatePointCloudNetConfig(zero_dropout).ok());
}

// ---------------------------------------------------------- shapes and init

TEST(PointCloudVelocityNetTest, OutputShapeAndNearZeroInitialVelocity) {
  PointCloudNetConfig c = SmallConfig();
  c.width = 64;
  c.heads = 4;
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 3));
  net->eval();
  const at::Tensor x = at::randn({4, 50, 3});
  const at::Tensor v = net->forward(x, at::Tensor(), at::rand({4}));
  ASSERT_EQ(v.sizes(), (at::IntArrayRef{4, 50, 3}));
  // The last layer has variance scale 1e-5 over unit-variance LayerNorm
  // outputs: velocity entries have a standard deviation near sqrt(1e-5).
  const double sd = v.std().item<double>();
  EXPECT_GT(sd, 0.3 * std::sqrt(1e-5));
  EXPECT_LT(sd, 3.0 * std::sqrt(1e-5));
  EXPECT_LT(v.abs().max().item<double>(), 0.05);
}

TEST(PointCloudVelocityNetTest, CheckpointKeys) {
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(SmallConfig(ConditionKind::kDiscrete), 1));
  std::set<std::string> keys;
  for (const auto& p : net->named_parameters()) keys.insert(p.key());
  std::set<std::string> expected;
  for (const std::string m : {"embed", "time_embed", "cond_embed", "final_norm", "final"}) {
    expected.insert(m + ".weight");
    expected.insert(m + ".bias");
  }
  for (int i = 0; i < 2; ++i) {
    for (const std::string m : {"norm1", "attention.qkv", "attention.out", "norm2",
                                "feed_forward.fc1", "feed_forward.fc2"}) {
      expected.insert("blocks." + std::to_string(i) + "." + m + ".weight");
      expected.insert("blocks." + std::to_string(i) + "." + m + ".bias");
    }
  }
  EXPECT_EQ(keys, expected);
  EXPECT_TRUE(net->named_buffers().is_empty());
  const auto params = net->named_parameters();
  EXPECT_EQ(params["cond_embed.weight"].sizes(), (at::IntArrayRef{16, 4}));
  EXPECT_EQ(params["time_embed.weight"].sizes(), (at::IntArrayRef{16, 16}));
  EXPECT_EQ(params["blocks.1.attention.qkv.weight"].sizes(), (at::IntArrayRef{48, 16}));
  EXPECT_EQ(params["blocks.0.feed_forward.fc1.weight"].sizes(), (at::IntArrayRef{32, 16}));
  EXPECT_EQ(params["final.weight"].sizes(), (at::IntArrayRef{3, 16}));
  // Unconditional networks have no condition embedding.
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet unconditioned, MakeNet(SmallConfig(), 1));
  EXPECT_FALSE(unconditioned->named_parameters().contains("cond_embed.weight"));
}

TEST(PointCloudVelocityNetTest, InitialiserStatistics) {
  PointCloudNetConfig c = SmallConfig();
  c.width = 256;
  c.heads = 4;
  c.mlp_hidden = 512;
  c.layers = 1;
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 9));
  const auto params = net->named_parameters();
  // Dense kernels: truncated lecun normal, std sqrt(1/fan_in); biases zero;
  // LayerNorm scale 1, offset 0.
  for (const auto& [name, fan_in] :
       std::vector<std::pair<std::string, int64_t>>{{"blocks.0.attention.qkv.weight", 256},
                                                    {"blocks.0.feed_forward.fc1.weight", 256},
                                                    {"blocks.0.feed_forward.fc2.weight", 512},
                                                    {"time_embed.weight", 256}}) {
    const double target = std::sqrt(1.0 / static_cast<double>(fan_in));
    EXPECT_NEAR(params[name].std().item<double>(), target, 0.03 * target) << name;
  }
  EXPECT_NEAR(params["final.weight"].std().item<double>(), std::sqrt(1e-5 / 256), 2e-5);
  for (const auto& p : params) {
    if (p.key().find(".bias") != std::string::npos) {
      EXPECT_EQ(p.value().abs().max().item<float>(), 0.0f) << p.key();
    }
  }
  EXPECT_TRUE(at::equal(params["blocks.0.norm1.weight"], at::ones({256})));
}

TEST(PointCloudVelocityNetTest, SameSeedSameParametersDifferentSeedDifferent) {
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet a, MakeNet(SmallConfig(ConditionKind::kContinuous), 42));
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet b, MakeNet(SmallConfig(ConditionKind::kContinuous), 42));
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet c, MakeNet(SmallConfig(ConditionKind::kContinuous), 43));
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  bool any_different = false;
  for (const auto& p : pa) {
    EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
    if (p.key().find(".weight") != std::string::npos && p.key().find("norm") == std::string::npos) {
      EXPECT_FALSE(at::equal(p.value(), pc[p.key()])) << p.key();
      any_different = true;
    }
  }
  EXPECT_TRUE(any_different);
}

// ---------------------------------------------------- reference equivalence

class ReferenceTest : public ::testing::TestWithParam<ConditionKind> {};

TEST_P(ReferenceTest, EvalForwardMatchesTheReferenceNetwork) {
  const PointCloudNetConfig c = SmallConfig(GetParam());
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 5));
  Perturb(net, 6);
  net->eval();
  at::manual_seed(7);
  const int64_t b = 3, n = 9;
  const at::Tensor x = at::randn({b, n, 3});
  at::Tensor mask = at::ones({b, n}, at::kBool);
  mask[1].narrow(0, 6, 3).fill_(false);
  const at::Tensor t = at::rand({b});
  const at::Tensor cond = Condition(c, b);
  auto params = DoubleLeaves(net);
  for (const at::Tensor& m : {at::Tensor(), mask}) {
    const at::Tensor ref = ReferenceForward(c, params, x, m, t, cond, nullptr);
    const at::Tensor v = net->forward(x, m, t, cond);
    EXPECT_LT(MaxAbsDiff(v, ref), 2e-5) << "padded " << m.defined();
    EXPECT_GT(ref.abs().max().item<double>(), 0.1);  // not a trivial comparison
  }
}

TEST_P(ReferenceTest, TrainForwardAndGradientsMatchTheReferenceWithTheSameMasks) {
  const PointCloudNetConfig c = SmallConfig(GetParam());
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 8));
  Perturb(net, 9);
  net->train();
  at::manual_seed(10);
  const int64_t b = 3, n = 11;
  const at::Tensor x = at::randn({b, n, 3});
  at::Tensor mask = at::ones({b, n}, at::kBool);
  mask[0].narrow(0, 8, 3).fill_(false);
  mask[2][4] = false;
  const at::Tensor t = at::rand({b});
  const at::Tensor cond = Condition(c, b);

  // The network draws two seeds per block from its generator, in order.
  at::Generator gen = Gen(77);
  std::vector<kernel::DropoutStream> streams;
  {
    at::Generator replay = Gen(77);
    auto* impl = at::check_generator<at::CPUGeneratorImpl>(replay);
    for (int64_t i = 0; i < 2 * c.layers; ++i) {
      streams.push_back(kernel::MakeDropoutStream(c.dropout, impl->random64()));
    }
  }
  const at::Tensor v = net->forward(x, mask, t, cond, gen);
  auto params = DoubleLeaves(net);
  const at::Tensor ref = ReferenceForward(c, params, x, mask, t, cond, &streams);
  EXPECT_LT(MaxAbsDiff(v, ref), 2e-5);

  const at::Tensor probe = at::randn(v.sizes());
  (v * probe).sum().backward();
  (ref * probe.to(at::kDouble)).sum().backward();
  for (const auto& p : net->named_parameters()) {
    const at::Tensor g_ref = params.at(p.key()).grad();
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    const double scale = std::max(1.0, g_ref.abs().max().item<double>());
    EXPECT_LT(MaxAbsDiff(p.value().grad(), g_ref), 1e-4 * scale) << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Conditions, ReferenceTest,
                         ::testing::Values(ConditionKind::kNone, ConditionKind::kDiscrete,
                                           ConditionKind::kContinuous),
                         [](const ::testing::TestParamInfo<ConditionKind>& info) {
                           switch (info.param) {
                             case ConditionKind::kDiscrete:
                               return std::string("Discrete");
                             case ConditionKind::kContinuous:
                               return std::string("Continuous");
                             case ConditionKind::kNone:
                               break;
                           }
                           return std::string("Unconditional");
                         });

// ------------------------------------------------- equivariance and padding

TEST(PointCloudVelocityNetTest, PermutationEquivariantWithoutPadding) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kDiscrete);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 11));
  Perturb(net, 12);
  net->eval();
  const at::Tensor x = at::randn({2, 13, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor labels = at::tensor({1, 3}, at::kLong);
  const at::Tensor perm = at::randperm(13, at::kLong);
  const at::Tensor v = net->forward(x, at::Tensor(), t, labels);
  const at::Tensor vp = net->forward(x.index_select(1, perm), at::Tensor(), t, labels);
  EXPECT_LT(MaxAbsDiff(vp, v.index_select(1, perm)), 1e-5);
  // A non-trivial check: the velocity is not constant over points.
  EXPECT_GT((v - v.mean(1, true)).abs().max().item<double>(), 1e-2);
}

TEST(PointCloudVelocityNetTest, PermutationEquivariantWithPadding) {
  const PointCloudNetConfig c = SmallConfig();
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 13));
  Perturb(net, 14);
  net->eval();
  const at::Tensor x = at::randn({2, 10, 3});
  at::Tensor mask = at::ones({2, 10}, at::kBool);
  mask[0].narrow(0, 7, 3).fill_(false);
  mask[1][0] = false;
  const at::Tensor t = at::rand({2});
  const at::Tensor perm = at::randperm(10, at::kLong);
  const at::Tensor v = net->forward(x, mask, t);
  const at::Tensor vp = net->forward(x.index_select(1, perm), mask.index_select(1, perm), t);
  EXPECT_LT(MaxAbsDiff(vp, v.index_select(1, perm)), 1e-5);
}

TEST(PointCloudVelocityNetTest, PaddedPointsDoNotChangeRealPoints) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kContinuous);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 15));
  Perturb(net, 16);
  net->eval();
  const std::vector<int64_t> sizes = {12, 5, 9};
  const int64_t b = 3, n = 12;
  at::Tensor x = at::randn({b, n, 3}) * 50.0;  // padding content far from the data
  at::Tensor mask = at::zeros({b, n}, at::kBool);
  for (int64_t i = 0; i < b; ++i) {
    x[i].narrow(0, 0, sizes[i]).normal_();
    mask[i].narrow(0, 0, sizes[i]).fill_(true);
  }
  const at::Tensor t = at::rand({b});
  const at::Tensor cond = at::randn({b, 2});
  const at::Tensor v = net->forward(x, mask, t, cond);
  EXPECT_TRUE(at::isfinite(v).all().item<bool>());  // padded rows too
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor alone = net->forward(x[i].narrow(0, 0, sizes[i]).unsqueeze(0), at::Tensor(),
                                          t.narrow(0, i, 1), cond.narrow(0, i, 1));
    EXPECT_LT(MaxAbsDiff(v[i].narrow(0, 0, sizes[i]), alone[0]), 1e-5) << "cloud " << i;
  }
  // Changing the padding content changes nothing real.
  at::Tensor x2 = x.clone();
  x2.masked_fill_(mask.logical_not().unsqueeze(-1), -3.0);
  const at::Tensor v2 = net->forward(x2, mask, t, cond);
  EXPECT_LT(MaxAbsDiff(v2.masked_select(mask.unsqueeze(-1)), v.masked_select(mask.unsqueeze(-1))),
            1e-6);
}

// ---------------------------------------------------------------- dropout

TEST(PointCloudVelocityNetTest, TrainModeDropoutFollowsTheGenerator) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kDiscrete);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 17));
  Perturb(net, 18);
  const at::Tensor x = at::randn({2, 8, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor labels = at::tensor({0, 2}, at::kLong);
  net->train();
  at::Generator g1 = Gen(100), g2 = Gen(100), g3 = Gen(101);
  const at::Tensor a = net->forward(x, at::Tensor(), t, labels, g1);
  const at::Tensor b = net->forward(x, at::Tensor(), t, labels, g2);
  const at::Tensor c3 = net->forward(x, at::Tensor(), t, labels, g3);
  EXPECT_TRUE(at::equal(a, b));        // same generator state, same masks
  EXPECT_GT(MaxAbsDiff(a, c3), 1e-3);  // other masks
  const at::Tensor a_next = net->forward(x, at::Tensor(), t, labels, g1);
  EXPECT_GT(MaxAbsDiff(a, a_next), 1e-3);                              // the generator advanced
  EXPECT_THROW(net->forward(x, at::Tensor(), t, labels), c10::Error);  // no generator

  net->eval();  // no dropout: deterministic, generator ignored and untouched
  const at::Tensor e1 = net->forward(x, at::Tensor(), t, labels, g3);
  const at::Tensor e2 = net->forward(x, at::Tensor(), t, labels);
  EXPECT_TRUE(at::equal(e1, e2));
  EXPECT_GT(MaxAbsDiff(a, e1), 1e-3);
}

TEST(PointCloudVelocityNetTest, ZeroDropoutTrainingEqualsEval) {
  PointCloudNetConfig c = SmallConfig();
  c.dropout = 0.0;
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 19));
  Perturb(net, 20);
  const at::Tensor x = at::randn({2, 8, 3});
  const at::Tensor t = at::rand({2});
  net->train();
  const at::Tensor a = net->forward(x, at::Tensor(), t);  // no generator needed
  net->eval();
  EXPECT_LT(MaxAbsDiff(a, net->forward(x, at::Tensor(), t)), 1e-7);
}

// --------------------------------------------------------------- guidance

TEST(GuidedVelocityTest, MatchesSeparateForwardsForDiscreteLabels) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kDiscrete);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 21));
  Perturb(net, 22);
  net->eval();
  const at::Tensor x = at::randn({3, 7, 3});
  at::Tensor mask = at::ones({3, 7}, at::kBool);
  mask[2].narrow(0, 5, 2).fill_(false);
  const at::Tensor t = at::full({3}, 0.4f);
  const at::Tensor labels = at::tensor({0, 3, 1}, at::kLong);
  const at::Tensor null = net->NullCondition(3);
  ASSERT_TRUE(at::equal(null, at::full({3}, -1, at::kLong)));
  const at::Tensor vc = net->forward(x, mask, t, labels);
  const at::Tensor vu = net->forward(x, mask, t, null);
  ASSERT_GT(MaxAbsDiff(vc, vu), 1e-3);  // the label matters
  c10::InferenceMode guard;
  for (double gamma : {1.5, 2.0, -0.5, 0.3}) {
    auto g = GuidedVelocity(net, x, mask, t, labels, null, gamma);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_LT(MaxAbsDiff(*g, vu + gamma * (vc - vu)), 1e-5) << gamma;
  }
  auto one = GuidedVelocity(net, x, mask, t, labels, null, 1.0);
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(at::equal(*one, vc));  // γ = 1: the conditional forward only
  auto zero = GuidedVelocity(net, x, mask, t, labels, null, 0.0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(at::equal(*zero, vu));
  auto no_cond = GuidedVelocity(net, x, mask, t, at::Tensor(), null, 1.5);
  ASSERT_TRUE(no_cond.ok());
  EXPECT_TRUE(at::equal(*no_cond, vu));  // no condition: unconditional
}

TEST(GuidedVelocityTest, ContinuousConditionAndUnconditionalNetwork) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kContinuous);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 23));
  Perturb(net, 24);
  net->eval();
  const at::Tensor x = at::randn({2, 6, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor cond = at::randn({2, 2});
  const at::Tensor null = net->NullCondition(2);
  ASSERT_TRUE(at::equal(null, at::zeros({2, 2})));
  const at::Tensor vc = net->forward(x, at::Tensor(), t, cond);
  const at::Tensor vu = net->forward(x, at::Tensor(), t, null);
  auto g = GuidedVelocity(net, x, at::Tensor(), t, cond, null, 1.7);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_LT(MaxAbsDiff(*g, vu + 1.7 * (vc - vu)), 1e-5);

  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet plain, MakeNet(SmallConfig(), 25));
  Perturb(plain, 26);
  plain->eval();
  EXPECT_FALSE(plain->NullCondition(2).defined());
  auto u = GuidedVelocity(plain, x, at::Tensor(), t, at::Tensor(), at::Tensor(), 2.0);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(at::equal(*u, plain->forward(x, at::Tensor(), t)));
}

TEST(GuidedVelocityTest, Errors) {
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(SmallConfig(ConditionKind::kDiscrete), 27));
  const at::Tensor x = at::randn({2, 6, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor labels = at::tensor({0, 1}, at::kLong);
  net->train();
  EXPECT_EQ(
      GuidedVelocity(net, x, at::Tensor(), t, labels, net->NullCondition(2), 2.0).status().code(),
      absl::StatusCode::kFailedPrecondition);
  net->eval();
  EXPECT_EQ(GuidedVelocity(net, x, at::Tensor(), t, labels, net->NullCondition(2),
                           std::numeric_limits<double>::infinity())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status bad_label =
      GuidedVelocity(net, x, at::Tensor(), t, at::tensor({0, 4}, at::kLong), net->NullCondition(2),
                     2.0)
          .status();
  EXPECT_EQ(bad_label.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad_label.message()).find("condition"), std::string::npos);
  // A conditional network needs a null condition for its unconditional half.
  EXPECT_EQ(GuidedVelocity(net, x, at::Tensor(), t, labels, at::Tensor(), 2.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PointCloudVelocityNetTest, NullLabelEmbedsTheZeroOneHot) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kDiscrete);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 28));
  Perturb(net, 29);
  net->eval();
  const at::Tensor x = at::randn({2, 6, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor v_null = net->forward(x, at::Tensor(), t, at::full({2}, -1, at::kLong));
  // With the label embedding's kernel zeroed, every label embeds as its bias,
  // which is what the zero one-hot vector gives.
  auto zeroed = std::dynamic_pointer_cast<PointCloudVelocityNetImpl>(net->clone());
  {
    at::NoGradGuard no_grad;
    zeroed->cond_embed->weight.zero_();
  }
  const at::Tensor v_zero = zeroed->forward(x, at::Tensor(), t, at::tensor({0, 3}, at::kLong));
  EXPECT_LT(MaxAbsDiff(v_null, v_zero), 1e-6);
  // ... and differs from every real label.
  for (int64_t label = 0; label < c.num_classes; ++label) {
    EXPECT_GT(MaxAbsDiff(v_null, net->forward(x, at::Tensor(), t, at::full({2}, label, at::kLong))),
              1e-3);
  }
}

// ------------------------------------------------------------------- clone

TEST(PointCloudVelocityNetTest, CloneIsAnIndependentDeepCopy) {
  const PointCloudNetConfig c = SmallConfig(ConditionKind::kDiscrete);
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(c, 30));
  Perturb(net, 31);
  net->eval();
  auto copy = std::dynamic_pointer_cast<PointCloudVelocityNetImpl>(net->clone());
  ASSERT_NE(copy, nullptr);
  const at::Tensor x = at::randn({2, 7, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor labels = at::tensor({1, -1}, at::kLong);
  const at::Tensor v = net->forward(x, at::Tensor(), t, labels);
  EXPECT_TRUE(at::equal(copy->forward(x, at::Tensor(), t, labels), v));
  const auto original = net->named_parameters();
  const auto cloned = copy->named_parameters();
  ASSERT_EQ(original.size(), cloned.size());
  for (const auto& p : original) {
    ASSERT_TRUE(cloned.contains(p.key())) << p.key();
    EXPECT_NE(cloned[p.key()].data_ptr(), p.value().data_ptr()) << p.key();
  }
  // The clone's typed members point at its own registered parameters.
  {
    at::NoGradGuard no_grad;
    for (auto& p : copy->parameters()) p.add_(0.25);
  }
  EXPECT_TRUE(at::equal(net->forward(x, at::Tensor(), t, labels), v));
  EXPECT_GT(MaxAbsDiff(copy->forward(x, at::Tensor(), t, labels), v), 1e-3);
  EXPECT_EQ(copy->config().num_classes, c.num_classes);
}

// ------------------------------------------------------------ input checks

TEST(PointCloudVelocityNetTest, ValidateInputsNamesTheArgument) {
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet net, MakeNet(SmallConfig(ConditionKind::kDiscrete), 32));
  const at::Tensor x = at::randn({2, 5, 3});
  const at::Tensor t = at::rand({2});
  const at::Tensor labels = at::tensor({0, 1}, at::kLong);
  EXPECT_TRUE(net->ValidateInputs(x, at::Tensor(), t, labels).ok());
  auto expect_bad = [&](const absl::Status& s, const std::string& name) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(std::string(s.message()).rfind(name, 0), 0u) << s.message();
  };
  expect_bad(net->ValidateInputs(at::randn({2, 5, 2}), at::Tensor(), t, labels), "points");
  expect_bad(net->ValidateInputs(x.to(at::kDouble), at::Tensor(), t, labels), "points");
  at::Tensor nan_x = x.clone();
  nan_x[0][0][0] = std::nanf("");
  expect_bad(net->ValidateInputs(nan_x, at::Tensor(), t, labels), "points");
  expect_bad(net->ValidateInputs(x, at::ones({2, 4}, at::kBool), t, labels), "mask");
  expect_bad(net->ValidateInputs(x, at::ones({2, 5}), t, labels), "mask");
  at::Tensor empty_cloud = at::ones({2, 5}, at::kBool);
  empty_cloud[1].fill_(false);
  expect_bad(net->ValidateInputs(x, empty_cloud, t, labels), "mask");
  expect_bad(net->ValidateInputs(x, at::Tensor(), at::rand({3}), labels), "t");
  expect_bad(net->ValidateInputs(x, at::Tensor(), t, at::tensor({0, 4}, at::kLong)), "condition");
  expect_bad(net->ValidateInputs(x, at::Tensor(), t, at::tensor({-2, 0}, at::kLong)), "condition");
  expect_bad(net->ValidateInputs(x, at::Tensor(), t, at::Tensor()), "condition");
  expect_bad(net->ValidateInputs(x, at::Tensor(), t, at::rand({2})), "condition");
  WFM_ASSERT_OK_AND_ASSIGN(PointCloudVelocityNet plain, MakeNet(SmallConfig(), 33));
  expect_bad(plain->ValidateInputs(x, at::Tensor(), t, labels), "condition");
  EXPECT_THROW(plain->forward(x, at::Tensor(), t, labels), c10::Error);
}

}  // namespace
}  // namespace wfm::model::nn
