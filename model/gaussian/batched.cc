#include "model/gaussian/batched.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/gaussian/spd.h"

namespace wfm::model::gaussian::internal {

void SqrtEigenvalues(const double* w, int d, double* f) {
  for (int k = 0; k < d; ++k) f[k] = w[k] > 0.0 ? std::sqrt(w[k]) : 0.0;
}

void InvSqrtEigenvalues(const double* w, int d, double* f) {
  double top = w[0];
  for (int k = 1; k < d; ++k) top = std::max(top, w[k]);
  if (!(top > 0.0)) {
    for (int k = 0; k < d; ++k) f[k] = 0.0;
    return;
  }
  const double floor = kInvSqrtRelativeFloor * top;
  for (int k = 0; k < d; ++k) f[k] = 1.0 / std::sqrt(std::max(w[k], floor));
}

at::Tensor SymmetricDouble(const at::Tensor& s) {
  const at::Tensor sd = s.to(at::kDouble);
  return (0.5 * (sd + sd.transpose(-1, -2))).contiguous();
}

at::Tensor SqrtEigenvaluesTensor(const at::Tensor& w) { return w.clamp_min(0.0).sqrt(); }

at::Tensor InvSqrtEigenvaluesTensor(const at::Tensor& w) {
  const at::Tensor top = std::get<0>(w.max(-1, /*keepdim=*/true));
  const at::Tensor f = w.maximum(kInvSqrtRelativeFloor * top).rsqrt();
  return at::where(top > 0.0, f, at::zeros_like(f));
}

absl::Status CheckMatrices(const at::Tensor& t, absl::string_view name) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(t, name, 3));
  if (t.size(1) != t.size(2) || t.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": shape must be [B, d, d] with d >= 1, got ", ShapeString(t.sizes())));
  }
  return absl::OkStatus();
}

absl::Status CheckVectors(const at::Tensor& t, absl::string_view name, int64_t batch, int64_t d,
                          const at::Tensor& ref, absl::string_view ref_name) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(t, name, 2));
  WFM_RETURN_IF_ERROR(CheckShape(t, name, {batch, d}));
  return CheckSameDtype(t, name, ref, ref_name);
}

absl::Status CheckMatricesLike(const at::Tensor& t, absl::string_view name, int64_t batch,
                               int64_t d, const at::Tensor& ref, absl::string_view ref_name) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(t, name, 3));
  WFM_RETURN_IF_ERROR(CheckShape(t, name, {batch, d, d}));
  return CheckSameDtype(t, name, ref, ref_name);
}

namespace {

template <typename T>
int64_t FirstNonFiniteItem(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const T* p = c.data_ptr<T>();
  const int64_t n = c.numel();
  const int64_t per_item = t.dim() > 0 && t.size(0) > 0 ? n / t.size(0) : 1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) return i / per_item;
  }
  return -1;
}

}  // namespace

absl::Status CheckFiniteItems(const at::Tensor& t, absl::string_view name) {
  if (t.numel() == 0) return absl::OkStatus();
  const int64_t bad = t.scalar_type() == at::kDouble ? FirstNonFiniteItem<double>(t)
                                                     : FirstNonFiniteItem<float>(t);
  if (bad < 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, "[", bad, "]: values must be finite (found NaN or inf)"));
}

absl::Status CheckPathParameter(const at::Tensor& s, absl::string_view name, int64_t batch) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(s, name, 1));
  WFM_RETURN_IF_ERROR(CheckShape(s, name, {batch}));
  const at::Tensor sd = s.to(at::kDouble).contiguous();
  const double* p = sd.data_ptr<double>();
  for (int64_t i = 0; i < batch; ++i) {
    if (!(p[i] >= 0.0 && p[i] <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "]: must be within [0, 1], got ", p[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace wfm::model::gaussian::internal
