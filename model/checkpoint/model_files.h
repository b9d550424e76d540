// Helpers shared by the models' checkpoint readers and writers: the metadata
// format check and typed access to named checkpoint tensors.
#ifndef WFM_MODEL_CHECKPOINT_MODEL_FILES_H_
#define WFM_MODEL_CHECKPOINT_MODEL_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/checkpoint/checkpoint.h"

namespace wfm::model {

// metadata["format"] == format and metadata["version"] <= version (newer
// versions: kUnimplemented; another format: INVALID_ARGUMENT naming both).
absl::Status CheckModelFormat(const nlohmann::json& metadata, absl::string_view format,
                              int version);

// The tensor named `name`, or nullptr.
const at::Tensor* FindTensor(const checkpoint::Checkpoint& ckpt, absl::string_view name);

// The values of tensor `name` (any integer dtype / any float dtype), flat.
// DATA_LOSS when it is missing or of another kind.
absl::StatusOr<std::vector<int64_t>> TensorToInt64(const checkpoint::Checkpoint& ckpt,
                                                   absl::string_view name);
absl::StatusOr<std::vector<float>> TensorToFloat(const checkpoint::Checkpoint& ckpt,
                                                 absl::string_view name);

// offsets start at 0, increase strictly, and end at values / dim.
absl::Status CheckOffsets(const std::vector<int64_t>& offsets, size_t values, int64_t dim,
                          absl::string_view name);

// Tensors from vectors (copies): int64 [n], float32 of `shape`.
at::Tensor Int64Tensor(const std::vector<int64_t>& values);
at::Tensor FloatTensor(const std::vector<float>& values, std::vector<int64_t> shape);

}  // namespace wfm::model

#endif  // WFM_MODEL_CHECKPOINT_MODEL_FILES_H_
