// The networks against the anchor's own PyTorch modules: parameters, inputs and
// outputs exported by tests/fixtures/nn/make_fixtures.py (refwfm AttentionNN and
// BuresWassersteinNN in eval mode) are loaded here under our checkpoint names.
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/nn/gaussian_net.h"
#include "model/nn/pointcloud_net.h"

namespace wfm::model::nn {
namespace {

using nlohmann::json;

json LoadFixture() {
  const std::string path = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/nn/networks.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

at::Tensor FloatTensor(const json& j) {
  const std::vector<int64_t> shape = j.at("shape").get<std::vector<int64_t>>();
  const std::vector<float> data = j.at("data").get<std::vector<float>>();
  return at::tensor(data, at::kFloat).reshape(shape);
}

at::Tensor LongTensor(const json& j) {
  const std::vector<int64_t> shape = j.at("shape").get<std::vector<int64_t>>();
  const std::vector<int64_t> data = j.at("data").get<std::vector<int64_t>>();
  return at::tensor(data, at::kLong).reshape(shape);
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ".") + p;
  return out;
}

// Anchor name -> our checkpoint key.
std::string PointCloudKey(const std::string& anchor) {
  static const std::map<std::string, std::string> kSegment = {
      {"t_dense", "time_embed"}, {"l_dense", "cond_embed"}, {"ln1", "norm1"},
      {"ln2", "norm2"},          {"attn", "attention"},     {"ff", "feed_forward"}};
  std::vector<std::string> parts = Split(anchor);
  if (parts[0] == "norm") parts[0] = "final_norm";
  for (std::string& p : parts) {
    if (auto it = kSegment.find(p); it != kSegment.end()) p = it->second;
  }
  return Join(parts);
}

std::string GaussianKey(const std::string& anchor) {
  static const std::map<std::string, std::string> kSegment = {{"mean_dense", "mean_embed"},
                                                              {"cov_dense", "cov_embed"},
                                                              {"t_dense", "time_embed"},
                                                              {"l_dense", "label_embed"},
                                                              {"layers", "blocks"}};
  std::vector<std::string> parts = Split(anchor);
  if (parts[0] == "mix" && parts[1] == "fc1") parts.erase(parts.begin() + 1);
  for (std::string& p : parts) {
    if (auto it = kSegment.find(p); it != kSegment.end()) p = it->second;
  }
  return Join(parts);
}

// Copies every fixture parameter into `module`, and checks that the two sets
// of names correspond one to one. Returns anchor name -> our key.
template <typename Module, typename KeyFn>
std::map<std::string, std::string> LoadParameters(Module& module, const json& params, KeyFn key) {
  std::map<std::string, std::string> names;
  auto ours = module->named_parameters();
  std::set<std::string> unused;
  for (const auto& p : ours) unused.insert(p.key());
  at::NoGradGuard no_grad;
  for (const auto& [anchor_name, value] : params.items()) {
    const std::string k = key(anchor_name);
    EXPECT_TRUE(ours.contains(k)) << anchor_name << " -> " << k;
    if (!ours.contains(k)) continue;
    const at::Tensor t = FloatTensor(value);
    EXPECT_EQ(ours[k].sizes(), t.sizes()) << k;
    ours[k].copy_(t);
    unused.erase(k);
    names[anchor_name] = k;
  }
  EXPECT_TRUE(unused.empty()) << "parameters without a fixture value: " << *unused.begin();
  return names;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(ReferenceFixtureTest, PointCloudNetworksReproduceTheAnchor) {
  const json fixture = LoadFixture();
  ASSERT_EQ(fixture.at("pointcloud").size(), 3u);
  for (const json& c : fixture.at("pointcloud")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    PointCloudNetConfig config;
    config.space_dim = c.at("space_dim");
    config.width = c.at("width");
    config.heads = c.at("heads");
    config.layers = c.at("layers");
    config.mlp_hidden = c.at("mlp_hidden");
    config.dropout = 0.1;
    at::Tensor condition;
    const std::string kind = c.at("condition");
    if (kind == "discrete") {
      config.condition = ConditionKind::kDiscrete;
      config.num_classes = c.at("num_classes");
      condition = LongTensor(c.at("labels"));
    } else if (kind == "continuous") {
      config.condition = ConditionKind::kContinuous;
      config.cond_dim = c.at("cond_dim");
      condition = FloatTensor(c.at("condition_vectors"));
    }
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
    auto made = MakePointCloudVelocityNet(config, gen);
    ASSERT_TRUE(made.ok()) << made.status();
    PointCloudVelocityNet net = *made;
    const auto names = LoadParameters(net, c.at("params"), PointCloudKey);
    net->eval();  // the anchor ran in eval mode: no dropout

    const at::Tensor points = FloatTensor(c.at("points"));
    const at::Tensor mask = LongTensor(c.at("mask")).to(at::kBool);
    const at::Tensor t = FloatTensor(c.at("t"));
    ASSERT_TRUE(net->ValidateInputs(points, mask, t, condition).ok());
    const at::Tensor expected = FloatTensor(c.at("velocity"));
    {
      c10::InferenceMode guard;  // the sampling path
      EXPECT_LT(MaxAbsDiff(net->forward(points, mask, t, condition), expected), 1e-5);
    }
    const at::Tensor v = net->forward(points, mask, t, condition);
    EXPECT_LT(MaxAbsDiff(v, expected), 1e-5);
    EXPECT_GT(expected.abs().max().item<double>(), 0.1);

    // Gradients of sum(velocity * probe) with respect to every parameter.
    (v * FloatTensor(c.at("probe"))).sum().backward();
    const auto ours = net->named_parameters();
    for (const auto& [anchor_name, g] : c.at("grads").items()) {
      const at::Tensor expected_grad = FloatTensor(g);
      const at::Tensor grad = ours[names.at(anchor_name)].grad();
      ASSERT_TRUE(grad.defined()) << anchor_name;
      const double scale = std::max(1.0, expected_grad.abs().max().item<double>());
      EXPECT_LT(MaxAbsDiff(grad, expected_grad), 1e-5 * scale) << anchor_name;
    }
  }
}

TEST(ReferenceFixtureTest, GaussianNetworksReproduceTheAnchor) {
  const json fixture = LoadFixture();
  ASSERT_EQ(fixture.at("gaussian").size(), 4u);
  for (const json& c : fixture.at("gaussian")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    GaussianNetConfig config;
    config.space_dim = c.at("space_dim");
    config.width = c.at("width");
    config.layers = c.at("layers");
    config.mlp_hidden = c.at("mlp_hidden");
    config.num_labels = c.at("num_labels");
    config.architecture = c.at("architecture") == "joint" ? GaussianArchitecture::kJoint
                                                          : GaussianArchitecture::kSeparate;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
    auto made = MakeGaussianVelocityNet(config, gen);
    ASSERT_TRUE(made.ok()) << made.status();
    GaussianVelocityNet net = *made;
    LoadParameters(net, c.at("params"), GaussianKey);
    const at::Tensor labels = config.num_labels > 0 ? LongTensor(c.at("labels")) : at::Tensor();
    const at::Tensor mean = FloatTensor(c.at("mean"));
    const at::Tensor tril = FloatTensor(c.at("cov_tril"));
    const at::Tensor t = FloatTensor(c.at("t"));
    ASSERT_TRUE(net->ValidateInputs(mean, tril, t, labels).ok());
    const at::Tensor expected_mean = FloatTensor(c.at("mean_velocity"));
    const at::Tensor expected_cov = FloatTensor(c.at("cov_velocity"));
    EXPECT_GT(expected_cov.abs().max().item<double>(), 0.1);
    for (bool inference : {false, true}) {
      SCOPED_TRACE(inference ? "inference path" : "autograd path");
      at::AutoGradMode grad_mode(!inference);
      const GaussianVelocity v = net->forward(mean, tril, t, labels);
      EXPECT_EQ(v.cov_tril.requires_grad(), !inference);
      EXPECT_LT(MaxAbsDiff(v.mean, expected_mean), 1e-5);
      EXPECT_LT(MaxAbsDiff(v.cov_tril, expected_cov), 1e-5);
    }
  }
}

}  // namespace
}  // namespace wfm::model::nn
