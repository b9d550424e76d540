// Argument checks for tensors crossing a model/ API: each returns
// INVALID_ARGUMENT with a message naming the argument and the rule it breaks.
#ifndef WFM_MODEL_COMMON_TENSOR_CHECKS_H_
#define WFM_MODEL_COMMON_TENSOR_CHECKS_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace wfm::model {

// "[2, 3, 4]".
std::string ShapeString(at::IntArrayRef shape);

// Defined, on the CPU, float32 or float64, with `dims` dimensions.
absl::Status CheckFloatTensor(const at::Tensor& t, absl::string_view name, int64_t dims);

// Exact shape; an entry of -1 matches any size.
absl::Status CheckShape(const at::Tensor& t, absl::string_view name,
                        std::initializer_list<int64_t> shape);

// Same dtype as `ref` (named `ref_name`).
absl::Status CheckSameDtype(const at::Tensor& t, absl::string_view name,
                            const at::Tensor& ref, absl::string_view ref_name);

// Every entry finite (no NaN, no ±inf).
absl::Status CheckFinite(const at::Tensor& t, absl::string_view name);

// Weights [B, N]: finite, >= 0, and a positive total in every row.
absl::Status CheckWeights(const at::Tensor& w, absl::string_view name);

}  // namespace wfm::model

#endif  // WFM_MODEL_COMMON_TENSOR_CHECKS_H_
