// What the point-cloud and Gaussian velocity networks share: the check of
// their size fields and their LayerNorm.
#ifndef WFM_MODEL_NN_NET_COMMON_H_
#define WFM_MODEL_NN_NET_COMMON_H_

#include <cstdint>
#include <initializer_list>
#include <utility>

#include <torch/nn/modules/normalization.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/nn/pointcloud_net.h"

namespace wfm::model::nn {

// Every {field name, value} in `sizes` positive and `width` at least 2 (the
// two time features); INVALID_ARGUMENT naming the field otherwise.
inline absl::Status ValidateNetSizes(
    std::initializer_list<std::pair<const char*, int64_t>> sizes, int64_t width) {
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, " (", value, ") must be positive"));
    }
  }
  if (width < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("width (", width, ") must be at least 2 (time features)"));
  }
  return absl::OkStatus();
}

// LayerNorm over the last `width` features with kLayerNormEps.
inline torch::nn::LayerNorm MakeLayerNorm(int64_t width) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(kLayerNormEps));
}

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_NET_COMMON_H_
