// Test helpers of the velocity networks: the point-cloud network the tests
// build, and Perturb, which gives a freshly initialised network ordinary
// values where its initialisation is special (the near-zero final layer, unit
// LayerNorm scales, zero biases), so that outputs depend visibly on every
// parameter and comparisons between two implementations are not trivial.
#ifndef WFM_TESTS_MODEL_NN_PERTURB_H_
#define WFM_TESTS_MODEL_NN_PERTURB_H_

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>

#include "model/nn/pointcloud_net.h"

namespace wfm::testing {

// A two-layer point-cloud network in R^3 of the given width, heads, MLP
// hidden width and dropout, conditioned as `kind` (4 classes, or condition
// vectors of 2 values).
inline model::nn::PointCloudNetConfig TwoLayerCloudNet(model::nn::ConditionKind kind,
                                                       int64_t width, int64_t heads, int64_t mlp,
                                                       double dropout) {
  model::nn::PointCloudNetConfig c;
  c.space_dim = 3;
  c.width = width;
  c.heads = heads;
  c.layers = 2;
  c.mlp_hidden = mlp;
  c.dropout = dropout;
  c.condition = kind;
  c.num_classes = 4;
  c.cond_dim = 2;
  return c;
}

// final.* ~ N(0, 0.3²), LayerNorm weights ~ U(0.5, 1.5), biases ~ N(0, 0.1²),
// drawn from a generator seeded with `seed`.
inline void Perturb(torch::nn::Module& net, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (auto& p : net.named_parameters()) {
    const std::string& key = p.key();
    if (key.rfind("final.", 0) == 0) {
      p.value().normal_(0.0, 0.3, gen);
    } else if (key.find("norm") != std::string::npos && key.find(".weight") != std::string::npos) {
      p.value().uniform_(0.5, 1.5, gen);
    } else if (key.find(".bias") != std::string::npos) {
      p.value().normal_(0.0, 0.1, gen);
    }
  }
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_MODEL_NN_PERTURB_H_
