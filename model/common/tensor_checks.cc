#include "model/common/tensor_checks.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wfm::model {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.vec(), ", "), "]");
}

absl::Status CheckFloatTensor(const at::Tensor& t, absl::string_view name, int64_t dims) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(name, ": missing"));
  if (!t.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must be a CPU tensor"));
  }
  if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": must be float32 or float64, got ", c10::toString(t.scalar_type())));
  }
  if (t.dim() != dims) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must have ", dims,
                                                   " dimensions, got shape ",
                                                   ShapeString(t.sizes())));
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const at::Tensor& t, absl::string_view name,
                        std::initializer_list<int64_t> shape) {
  bool ok = t.dim() == static_cast<int64_t>(shape.size());
  int64_t k = 0;
  for (int64_t s : shape) {
    if (!ok) break;
    ok = s < 0 || t.size(k) == s;
    ++k;
  }
  if (ok) return absl::OkStatus();
  std::string want;
  for (int64_t s : shape) absl::StrAppend(&want, want.empty() ? "" : ", ", s < 0 ? "*" : absl::StrCat(s));
  return absl::InvalidArgumentError(absl::StrCat(name, ": shape must be [", want, "], got ",
                                                 ShapeString(t.sizes())));
}

absl::Status CheckSameDtype(const at::Tensor& t, absl::string_view name, const at::Tensor& ref,
                            absl::string_view ref_name) {
  if (t.scalar_type() == ref.scalar_type()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, ": dtype ", c10::toString(t.scalar_type()),
                                                 " differs from ", ref_name, "'s ",
                                                 c10::toString(ref.scalar_type())));
}

absl::Status CheckFinite(const at::Tensor& t, absl::string_view name) {
  if (t.numel() == 0 || at::isfinite(t).all().item<bool>()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, ": values must be finite (found NaN or inf)"));
}

absl::Status CheckWeights(const at::Tensor& w, absl::string_view name) {
  if (absl::Status s = CheckFinite(w, name); !s.ok()) return s;
  if (w.numel() > 0 && (w < 0).any().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": weights must be >= 0"));
  }
  if (w.dim() == 2 && w.size(0) > 0) {
    const at::Tensor total = w.sum(1);
    if ((total <= 0).any().item<bool>()) {
      const int64_t row = (total <= 0).nonzero()[0][0].item<int64_t>();
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": row ", row, " has no positive weight (an empty cloud)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace wfm::model
