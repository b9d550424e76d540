// The small network and helpers of the module-state and Adam-state suites.
#ifndef WFM_TESTS_MODEL_CHECKPOINT_SMALL_NET_H_
#define WFM_TESTS_MODEL_CHECKPOINT_SMALL_NET_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/checkpoint/checkpoint.h"

namespace wfm::model::checkpoint::testing {

// Every parameter drawn from U(-1, 1) and every floating buffer from
// U(0.5, 1.5) with `seed`.
inline void Randomize(torch::nn::Module& module, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.uniform_(-1.0, 1.0, gen);
  for (auto& b : module.buffers()) {
    if (b.is_floating_point()) b.uniform_(0.5, 1.5, gen);
  }
}

// Linear(3, hidden) - tanh - Linear(hidden, 2).
inline torch::nn::Sequential MakeNet(int64_t hidden = 8) {
  return torch::nn::Sequential(torch::nn::Linear(3, hidden), torch::nn::Tanh(),
                               torch::nn::Linear(hidden, 2));
}

// The tensors' names in order.
inline std::vector<std::string> Names(const NamedTensors& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  return names;
}

}  // namespace wfm::model::checkpoint::testing

#endif  // WFM_TESTS_MODEL_CHECKPOINT_SMALL_NET_H_
