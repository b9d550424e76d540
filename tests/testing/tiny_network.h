// The network size that tests train with: one layer of width 16 (two heads),
// MLP 32; small enough that a few steps take milliseconds, large enough to
// exercise every layer.
#ifndef WFM_TESTS_TESTING_TINY_NETWORK_H_
#define WFM_TESTS_TESTING_TINY_NETWORK_H_

#include "model/config/config.h"

namespace wfm::testing {

inline model::NetworkConfig TinyNetwork() {
  model::NetworkConfig n;
  n.width = 16;
  n.heads = 2;
  n.layers = 1;
  n.mlp_hidden = 32;
  return n;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_TINY_NETWORK_H_
