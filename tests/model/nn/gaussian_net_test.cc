#include "model/nn/gaussian_net.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "tests/testing/status.h"

namespace wfm::model::nn {
namespace {

at::Generator Gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// labels > 0: discrete labels; < 0: continuous condition vectors of -labels values.
GaussianNetConfig SmallConfig(GaussianArchitecture arch, int64_t labels = 0) {
  GaussianNetConfig c;
  c.space_dim = 3;
  c.width = 8;
  c.layers = 2;
  c.mlp_hidden = 16;
  c.architecture = arch;
  c.num_labels = labels > 0 ? labels : 0;
  c.condition_dim = labels < 0 ? -labels : 0;
  return c;
}

absl::StatusOr<GaussianVelocityNet> MakeNet(const GaussianNetConfig& c, uint64_t seed) {
  at::Generator gen = Gen(seed);
  return MakeGaussianVelocityNet(c, gen);
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// The reference BuresWassersteinNN (anchors/refwfm/bures.py) in float64.
std::pair<at::Tensor, at::Tensor> Reference(const GaussianNetConfig& c, GaussianVelocityNet& net,
                                            const at::Tensor& mean, const at::Tensor& tril,
                                            const at::Tensor& t, const at::Tensor& labels) {
  std::map<std::string, at::Tensor> p;
  for (const auto& kv : net->named_parameters()) p[kv.key()] = kv.value().detach().to(at::kDouble);
  const auto lin = [&](const at::Tensor& x, const std::string& name) {
    return at::linear(x, p.at(name + ".weight"), p.at(name + ".bias"));
  };
  const auto tower = [&](const std::string& pre) {
    const at::Tensor phase =
        at::arange(c.width / 2, at::kDouble).unsqueeze(0) * t.to(at::kDouble).unsqueeze(1);
    std::vector<at::Tensor> parts = {
        lin(mean.to(at::kDouble), pre + ".mean_embed"),
        lin(tril.to(at::kDouble), pre + ".cov_embed"),
        lin(at::cat({phase.cos(), phase.sin()}, -1), pre + ".time_embed")};
    if (c.num_labels > 0) {
      parts.push_back(lin(at::one_hot(labels.clamp_min(0), c.num_labels).to(at::kDouble) *
                              labels.ge(0).unsqueeze(-1),
                          pre + ".label_embed"));
    }
    if (c.condition_dim > 0) {
      parts.push_back(lin(labels.to(at::kDouble), pre + ".condition_embed"));
    }
    at::Tensor x = at::cat(parts, -1);
    const int64_t w = x.size(1);
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string b = pre + ".blocks." + std::to_string(i);
      x = at::layer_norm(lin(at::silu(lin(x, b + ".fc1")), b + ".fc2") + x, {w},
                         p.at(b + ".norm.weight"), p.at(b + ".norm.bias"), 1e-6);
    }
    return x;
  };
  if (c.architecture == GaussianArchitecture::kSeparate) {
    return {lin(tower("mean_tower"), "mean_head"), lin(tower("cov_tower"), "cov_head")};
  }
  const at::Tensor h = at::silu(lin(tower("tower"), "mix"));
  return {lin(h, "mean_head"), lin(h, "cov_head")};
}

void Perturb(GaussianVelocityNet& net, uint64_t seed) {
  at::Generator gen = Gen(seed);
  at::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) {
    if (p.key().find("head.weight") != std::string::npos) {
      p.value().normal_(0.0, 0.3, gen);
    } else if (p.key().find("norm.weight") != std::string::npos) {
      p.value().uniform_(0.5, 1.5, gen);
    } else if (p.key().find(".bias") != std::string::npos) {
      p.value().normal_(0.0, 0.1, gen);
    }
  }
}

TEST(GaussianNetConfigTest, InvalidFieldsAreNamed) {
  const std::vector<std::pair<std::function<void(GaussianNetConfig&)>, std::string>> cases = {
      {[](auto& c) { c.space_dim = 0; }, "space_dim (0) must be positive"},
      {[](auto& c) { c.width = 1; }, "width (1) must be at least 2"},
      {[](auto& c) { c.width = -4; }, "width (-4) must be positive"},
      {[](auto& c) { c.layers = 0; }, "layers (0) must be positive"},
      {[](auto& c) { c.mlp_hidden = 0; }, "mlp_hidden (0) must be positive"},
      {[](auto& c) { c.num_labels = -1; }, "num_labels (-1) must be >= 0"},
      {[](auto& c) { c.condition_dim = -2; }, "condition_dim (-2) must be >= 0"},
      {[](auto& c) {
         c.num_labels = 2;
         c.condition_dim = 3;
       },
       "condition_dim: a network takes discrete labels or condition vectors, not both"},
  };
  for (const auto& [edit, message] : cases) {
    GaussianNetConfig c = SmallConfig(GaussianArchitecture::kSeparate);
    edit(c);
    const absl::Status s = ValidateGaussianNetConfig(c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(s.message()).find(message), std::string::npos) << s.message();
    at::Generator gen = Gen(1);
    EXPECT_EQ(MakeGaussianVelocityNet(c, gen).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(GaussianVelocityNetTest, ParameterCountOfTheAnchorDefaults) {
  // bench_anchor.py train --gaussian: d 3, width 128, 3 layers, mlp 256.
  GaussianNetConfig c;
  c.space_dim = 3;
  c.width = 128;
  c.layers = 3;
  c.mlp_hidden = 256;
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(c, 1));
  int64_t count = 0;
  for (const auto& p : net->parameters()) count += p.numel();
  EXPECT_EQ(count, 1227401);
}

TEST(GaussianVelocityNetTest, CheckpointKeys) {
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet sep, MakeNet(SmallConfig(GaussianArchitecture::kSeparate, 3), 1));
  std::set<std::string> keys;
  for (const auto& p : sep->named_parameters()) keys.insert(p.key());
  std::set<std::string> expected;
  auto add = [&](const std::string& m) {
    expected.insert(m + ".weight");
    expected.insert(m + ".bias");
  };
  for (const std::string tower : {"mean_tower", "cov_tower"}) {
    for (const std::string m : {"mean_embed", "cov_embed", "time_embed", "label_embed"}) {
      add(tower + "." + m);
    }
    for (int i = 0; i < 2; ++i) {
      for (const std::string m : {"fc1", "fc2", "norm"}) {
        add(tower + ".blocks." + std::to_string(i) + "." + m);
      }
    }
  }
  add("mean_head");
  add("cov_head");
  EXPECT_EQ(keys, expected);

  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet joint, MakeNet(SmallConfig(GaussianArchitecture::kJoint), 1));
  const auto p = joint->named_parameters();
  EXPECT_TRUE(p.contains("tower.mean_embed.weight"));
  EXPECT_FALSE(p.contains("tower.label_embed.weight"));
  EXPECT_EQ(p["mix.weight"].sizes(), (at::IntArrayRef{16, 24}));
  EXPECT_EQ(p["mean_head.weight"].sizes(), (at::IntArrayRef{3, 16}));
  EXPECT_EQ(p["cov_head.weight"].sizes(), (at::IntArrayRef{6, 16}));
  EXPECT_EQ(p["tower.blocks.1.fc1.weight"].sizes(), (at::IntArrayRef{16, 24}));
  EXPECT_EQ(p["tower.time_embed.weight"].sizes(), (at::IntArrayRef{8, 8}));
  EXPECT_TRUE(joint->named_buffers().is_empty());
}

TEST(GaussianVelocityNetTest, HeadInitialisation) {
  GaussianNetConfig c = SmallConfig(GaussianArchitecture::kSeparate);
  c.width = 256;  // tower width 768
  c.space_dim = 20;
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet sep, MakeNet(c, 2));
  const double fan_in = 768;
  EXPECT_NEAR(sep->cov_head->weight.std().item<double>(), std::sqrt(1e-3 / fan_in),
              0.05 * std::sqrt(1e-3 / fan_in));
  EXPECT_NEAR(sep->mean_tower->time_embed->weight.std().item<double>(), std::sqrt(1.0 / 256),
              0.02 * std::sqrt(1.0 / 256));
  c.architecture = GaussianArchitecture::kJoint;
  c.mlp_hidden = 512;
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet joint, MakeNet(c, 2));
  EXPECT_NEAR(joint->cov_head->weight.std().item<double>(), std::sqrt(1.0 / 512),
              0.05 * std::sqrt(1.0 / 512));
  EXPECT_EQ(joint->cov_head->bias.abs().max().item<float>(), 0.0f);
}

class GaussianReferenceTest
    : public ::testing::TestWithParam<std::pair<GaussianArchitecture, int64_t>> {};

TEST_P(GaussianReferenceTest, MatchesTheReferenceNetwork) {
  const GaussianNetConfig c = SmallConfig(GetParam().first, GetParam().second);
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(c, 3));
  Perturb(net, 4);
  at::manual_seed(5);
  const at::Tensor mean = at::randn({5, 3});
  const at::Tensor tril = at::randn({5, 6});
  const at::Tensor t = at::rand({5});
  at::Tensor labels;
  if (c.num_labels > 0) labels = at::tensor({0, 2, -1, 1, 0}, at::kLong);
  if (c.condition_dim > 0) {
    labels = at::randn({5, c.condition_dim});
    labels[2].zero_();  // the null condition
  }
  ASSERT_TRUE(net->ValidateInputs(mean, tril, t, labels).ok());
  const GaussianVelocity v = net->forward(mean, tril, t, labels);
  ASSERT_EQ(v.mean.sizes(), (at::IntArrayRef{5, 3}));
  ASSERT_EQ(v.cov_tril.sizes(), (at::IntArrayRef{5, 6}));
  const auto [ref_mean, ref_cov] = Reference(c, net, mean, tril, t, labels);
  EXPECT_LT(MaxAbsDiff(v.mean, ref_mean), 1e-5);
  EXPECT_LT(MaxAbsDiff(v.cov_tril, ref_cov), 1e-5);
  EXPECT_GT(ref_cov.abs().max().item<double>(), 0.1);
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, GaussianReferenceTest,
    ::testing::Values(std::make_pair(GaussianArchitecture::kSeparate, int64_t{0}),
                      std::make_pair(GaussianArchitecture::kSeparate, int64_t{3}),
                      std::make_pair(GaussianArchitecture::kJoint, int64_t{0}),
                      std::make_pair(GaussianArchitecture::kJoint, int64_t{3}),
                      std::make_pair(GaussianArchitecture::kSeparate, int64_t{-2}),
                      std::make_pair(GaussianArchitecture::kJoint, int64_t{-2})),
    [](const ::testing::TestParamInfo<std::pair<GaussianArchitecture, int64_t>>& info) {
      return std::string(info.param.first == GaussianArchitecture::kJoint ? "Joint" : "Separate") +
             (info.param.second > 0   ? "Labelled"
              : info.param.second < 0 ? "Continuous"
                                      : "Unlabelled");
    });

TEST_P(GaussianReferenceTest, InferencePathMatchesTheAutogradPath) {
  const GaussianNetConfig c = SmallConfig(GetParam().first, GetParam().second);
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(c, 13));
  Perturb(net, 14);
  for (int64_t batch : {1, 5, 16, 17, 40}) {
    SCOPED_TRACE(batch);
    const at::Tensor mean = at::randn({batch, 3});
    const at::Tensor tril = at::randn({batch, 6});
    const at::Tensor t = at::rand({batch});
    at::Tensor labels;
    if (c.num_labels > 0) labels = at::randint(-1, c.num_labels, {batch}, at::kLong);
    if (c.condition_dim > 0) labels = at::randn({batch, c.condition_dim});
    const GaussianVelocity graph = net->forward(mean, tril, t, labels);  // grad mode on
    ASSERT_TRUE(graph.cov_tril.requires_grad());
    c10::InferenceMode guard;
    const GaussianVelocity fast = net->forward(mean, tril, t, labels);
    ASSERT_EQ(fast.mean.sizes(), graph.mean.sizes());
    ASSERT_EQ(fast.cov_tril.sizes(), graph.cov_tril.sizes());
    EXPECT_LT(MaxAbsDiff(fast.mean, graph.mean.detach()), 1e-5);
    EXPECT_LT(MaxAbsDiff(fast.cov_tril, graph.cov_tril.detach()), 1e-5);
  }
}

TEST(GaussianVelocityNetTest, GradientsReachEveryParameter) {
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(SmallConfig(GaussianArchitecture::kSeparate, 2), 6));
  const GaussianVelocity v = net->forward(at::randn({4, 3}), at::randn({4, 6}), at::rand({4}),
                                          at::tensor({0, 1, -1, 1}, at::kLong));
  (v.mean.sum() + v.cov_tril.pow(2).sum()).backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
  }
}

TEST(GaussianVelocityNetTest, NullLabelEmbedsTheZeroOneHot) {
  const GaussianNetConfig c = SmallConfig(GaussianArchitecture::kJoint, 3);
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(c, 7));
  Perturb(net, 8);
  const at::Tensor mean = at::randn({2, 3}), tril = at::randn({2, 6}), t = at::rand({2});
  const GaussianVelocity null = net->forward(mean, tril, t, at::full({2}, -1, at::kLong));
  auto zeroed = std::dynamic_pointer_cast<GaussianVelocityNetImpl>(net->clone());
  {
    at::NoGradGuard no_grad;
    zeroed->tower->label_embed->weight.zero_();
  }
  const GaussianVelocity z = zeroed->forward(mean, tril, t, at::tensor({1, 2}, at::kLong));
  EXPECT_LT(MaxAbsDiff(null.mean, z.mean), 1e-6);
  EXPECT_LT(MaxAbsDiff(null.cov_tril, z.cov_tril), 1e-6);
  const GaussianVelocity real = net->forward(mean, tril, t, at::tensor({1, 2}, at::kLong));
  EXPECT_GT(MaxAbsDiff(null.cov_tril, real.cov_tril), 1e-4);
}

TEST(GaussianVelocityNetTest, SeedsAndClone) {
  const GaussianNetConfig c = SmallConfig(GaussianArchitecture::kSeparate);
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet a, MakeNet(c, 9));
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet b, MakeNet(c, 9));
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet d, MakeNet(c, 10));
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pd = d->named_parameters();
  for (const auto& p : pa) {
    EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  }
  EXPECT_FALSE(at::equal(pa["cov_tower.blocks.0.fc1.weight"], pd["cov_tower.blocks.0.fc1.weight"]));
  // The two towers draw different weights.
  EXPECT_FALSE(
      at::equal(pa["mean_tower.blocks.0.fc1.weight"], pa["cov_tower.blocks.0.fc1.weight"]));

  Perturb(a, 11);
  auto copy = std::dynamic_pointer_cast<GaussianVelocityNetImpl>(a->clone());
  ASSERT_NE(copy, nullptr);
  const at::Tensor mean = at::randn({3, 3}), tril = at::randn({3, 6}), t = at::rand({3});
  const GaussianVelocity va = a->forward(mean, tril, t);
  const GaussianVelocity vc = copy->forward(mean, tril, t);
  EXPECT_TRUE(at::equal(va.mean, vc.mean));
  EXPECT_TRUE(at::equal(va.cov_tril, vc.cov_tril));
  {
    at::NoGradGuard no_grad;
    for (auto& p : copy->parameters()) p.mul_(1.5);
  }
  EXPECT_TRUE(at::equal(a->forward(mean, tril, t).cov_tril, va.cov_tril));
  EXPECT_GT(MaxAbsDiff(copy->forward(mean, tril, t).cov_tril, va.cov_tril), 1e-4);
}

TEST(GaussianVelocityNetTest, ValidateInputsNamesTheArgument) {
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(SmallConfig(GaussianArchitecture::kSeparate, 3), 12));
  const at::Tensor mean = at::randn({2, 3}), tril = at::randn({2, 6}), t = at::rand({2});
  const at::Tensor labels = at::tensor({0, 2}, at::kLong);
  EXPECT_TRUE(net->ValidateInputs(mean, tril, t, labels).ok());
  auto expect_bad = [](const absl::Status& s, const std::string& name) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(std::string(s.message()).rfind(name, 0), 0u) << s.message();
  };
  expect_bad(net->ValidateInputs(at::randn({2, 2}), tril, t, labels), "mean");
  expect_bad(net->ValidateInputs(mean, at::randn({2, 5}), t, labels), "cov_tril");
  expect_bad(net->ValidateInputs(mean, tril, at::rand({1}), labels), "t");
  expect_bad(net->ValidateInputs(mean, tril, t, at::tensor({0, 3}, at::kLong)), "labels");
  expect_bad(net->ValidateInputs(mean, tril, t, at::Tensor()), "labels");
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet plain, MakeNet(SmallConfig(GaussianArchitecture::kJoint), 13));
  expect_bad(plain->ValidateInputs(mean, tril, t, labels), "labels");
  EXPECT_THROW(plain->forward(mean, tril, t, labels), c10::Error);
  EXPECT_THROW(net->forward(mean, tril, t), c10::Error);
}

TEST(GaussianVelocityNetTest, ContinuousConditionsEmbedByTheirOwnDense) {
  const GaussianNetConfig c = SmallConfig(GaussianArchitecture::kJoint, -2);
  WFM_ASSERT_OK_AND_ASSIGN(GaussianVelocityNet net, MakeNet(c, 15));
  const auto params = net->named_parameters();
  ASSERT_TRUE(params.contains("tower.condition_embed.weight"));
  EXPECT_EQ(params["tower.condition_embed.weight"].sizes(), (at::IntArrayRef{8, 2}));
  EXPECT_FALSE(params.contains("tower.label_embed.weight"));
  EXPECT_EQ(net->tower->output_width(), 4 * 8);
  Perturb(net, 16);
  const at::Tensor mean = at::randn({2, 3}), tril = at::randn({2, 6}), t = at::rand({2});
  const at::Tensor cond = at::tensor({1.0f, -1.0f, 0.5f, 2.0f}).view({2, 2});
  // The zero vector is the null condition: the embedding adds its bias only.
  const GaussianVelocity null = net->forward(mean, tril, t, at::zeros({2, 2}));
  auto zeroed = std::dynamic_pointer_cast<GaussianVelocityNetImpl>(net->clone());
  {
    at::NoGradGuard no_grad;
    zeroed->tower->condition_embed->weight.zero_();
  }
  const GaussianVelocity z = zeroed->forward(mean, tril, t, cond);
  EXPECT_LT(MaxAbsDiff(null.mean, z.mean), 1e-6);
  const GaussianVelocity real = net->forward(mean, tril, t, cond);
  EXPECT_GT(MaxAbsDiff(null.mean, real.mean), 1e-4);
  // Gradients reach the condition embedding.
  (real.mean.sum() + real.cov_tril.pow(2).sum()).backward();
  EXPECT_GT(net->tower->condition_embed->weight.grad().abs().max().item<float>(), 0.0f);
  // Misuse is named.
  EXPECT_TRUE(net->ValidateInputs(mean, tril, t, cond).ok());
  for (const at::Tensor& bad : {at::randn({2, 3}), at::randn({1, 2}), at::tensor({0, 1}, at::kLong),
                                at::Tensor(), at::full({2, 2}, NAN)}) {
    const absl::Status s = net->ValidateInputs(mean, tril, t, bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(s.message()).rfind("condition", 0), 0u) << s.message();
  }
  EXPECT_THROW(net->forward(mean, tril, t, at::tensor({0, 1}, at::kLong)), c10::Error);
  EXPECT_THROW(net->forward(mean, tril, t), c10::Error);
}

}  // namespace
}  // namespace wfm::model::nn
