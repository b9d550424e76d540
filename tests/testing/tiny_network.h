// The network sizes that tests train with, and a family's training
// configuration built from one: the tiny network (one layer of width 16, two
// heads, MLP 32) is small enough that a few steps take milliseconds, large
// enough to exercise every layer; the learning tests' network (width 64, four
// heads, two layers, MLP 128) learns the synthetic families in a few hundred
// steps.
#ifndef WFM_TESTS_TESTING_TINY_NETWORK_H_
#define WFM_TESTS_TESTING_TINY_NETWORK_H_

#include <cstdint>

#include "model/config/config.h"

namespace wfm::testing {

// Width, heads, layers and MLP hidden width (dropout and architecture at
// their defaults).
inline model::NetworkConfig TinyNetwork() { return {16, 2, 1, 32}; }
inline model::NetworkConfig LearningNetwork() { return {64, 4, 2, 128}; }

// A PointCloudTrainConfig or GaussianTrainConfig: `network` trained `steps`
// steps on batches of `batch_size` at `learning_rate`; every other option at
// its default.
template <typename Config>
Config TrainConfig(const model::NetworkConfig& network, int64_t steps, int64_t batch_size,
                   double learning_rate = model::OptimizerConfig().learning_rate) {
  Config c;
  c.network = network;
  c.optimizer.steps = steps;
  c.optimizer.batch_size = batch_size;
  c.optimizer.learning_rate = learning_rate;
  return c;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_TINY_NETWORK_H_
