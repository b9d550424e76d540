#include "model/checkpoint/model_files.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace wfm::model {

absl::Status CheckModelFormat(const nlohmann::json& metadata, absl::string_view format,
                              int version) {
  if (!metadata.is_object() || !metadata.contains("format") || !metadata["format"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint: not a wfm model (metadata has no format; expected '", format, "')"));
  }
  const std::string got = metadata["format"].get<std::string>();
  if (got != format) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint: holds a '", got, "', expected a '", format, "'"));
  }
  if (!metadata.contains("version") || !metadata["version"].is_number_integer()) {
    return absl::DataLossError("checkpoint: metadata has no integer version");
  }
  const int v = metadata["version"].get<int>();
  if (v < 1 || v > version) {
    return absl::UnimplementedError(absl::StrCat("checkpoint: ", format, " version ", v,
                                                 " (this build reads versions 1 to ", version, ")"));
  }
  return absl::OkStatus();
}

const at::Tensor* FindTensor(const checkpoint::Checkpoint& ckpt, absl::string_view name) {
  for (const auto& [n, t] : ckpt.tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<std::vector<int64_t>> TensorToInt64(const checkpoint::Checkpoint& ckpt,
                                                   absl::string_view name) {
  const at::Tensor* t = FindTensor(ckpt, name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' missing"));
  if (!at::isIntegralType(t->scalar_type(), /*includeBool=*/false)) {
    return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' is not an integer tensor"));
  }
  const at::Tensor c = t->to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

absl::StatusOr<std::vector<float>> TensorToFloat(const checkpoint::Checkpoint& ckpt,
                                                 absl::string_view name) {
  const at::Tensor* t = FindTensor(ckpt, name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' missing"));
  if (!at::isFloatingType(t->scalar_type())) {
    return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' is not a float tensor"));
  }
  const at::Tensor c = t->to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

absl::Status CheckOffsets(const std::vector<int64_t>& offsets, size_t values, int64_t dim,
                          absl::string_view name) {
  if (offsets.size() < 2 || offsets.front() != 0 || dim < 1 ||
      offsets.back() != static_cast<int64_t>(values) / dim ||
      static_cast<int64_t>(values) % dim != 0) {
    return absl::DataLossError(absl::StrCat("checkpoint: ", name, " do not cover the points"));
  }
  for (size_t i = 1; i < offsets.size(); ++i) {
    if (offsets[i] <= offsets[i - 1]) {
      return absl::DataLossError(absl::StrCat("checkpoint: ", name, " must increase strictly"));
    }
  }
  return absl::OkStatus();
}

at::Tensor Int64Tensor(const std::vector<int64_t>& values) {
  return at::tensor(values, at::kLong);
}

at::Tensor FloatTensor(const std::vector<float>& values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kFloat).view(shape).clone();
}

}  // namespace wfm::model
