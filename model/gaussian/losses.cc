#include "model/gaussian/losses.h"

#include <ATen/ATen.h>

#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/gaussian/batched.h"

namespace wfm::model::gaussian {
namespace {

// pred_m [B,d] defines B, d and the dtype; the rest must match.
absl::Status CheckLossArguments(const at::Tensor& pred_m, const at::Tensor& true_m,
                                std::initializer_list<std::pair<const at::Tensor*, const char*>>
                                    matrices) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(pred_m, "pred_m", 2));
  const int64_t batch = pred_m.size(0);
  const int64_t d = pred_m.size(1);
  if (d < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("pred_m: shape must be [B, d] with d >= 1, got ", ShapeString(pred_m.sizes())));
  }
  WFM_RETURN_IF_ERROR(internal::CheckVectors(true_m, "true_m", batch, d, pred_m, "pred_m"));
  for (const auto& [t, name] : matrices) {
    WFM_RETURN_IF_ERROR(internal::CheckMatricesLike(*t, name, batch, d, pred_m, "pred_m"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace unchecked {

at::Tensor TangentNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_v,
                           const at::Tensor& true_m, const at::Tensor& true_v,
                           const at::Tensor& s_t) {
  const at::Tensor mean_term = (pred_m - true_m).square().sum(-1);
  const at::Tensor dv = pred_v - true_v;
  // tr(S ΔV ΔV) = Σ_jk (S ΔV)_jk ΔV_kj.
  const at::Tensor cov_term = (at::matmul(s_t, dv) * dv.transpose(-1, -2)).sum({-2, -1});
  return mean_term + cov_term;
}

at::Tensor EuclideanNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_s,
                             const at::Tensor& true_m, const at::Tensor& true_s) {
  const at::Tensor mean_term = (pred_m - true_m).square().sum(-1);
  const double d = static_cast<double>(pred_m.size(-1));
  return mean_term + (pred_s - true_s).square().sum({-2, -1}) / d;
}

}  // namespace unchecked

absl::StatusOr<at::Tensor> TangentNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_v,
                                           const at::Tensor& true_m, const at::Tensor& true_v,
                                           const at::Tensor& s_t) {
  WFM_RETURN_IF_ERROR(
      CheckLossArguments(pred_m, true_m, {{&pred_v, "pred_V"}, {&true_v, "true_V"}, {&s_t, "S_t"}}));
  return GuardTorch("TangentNormLoss", [&] {
    return unchecked::TangentNormLoss(pred_m, pred_v, true_m, true_v, s_t);
  });
}

absl::StatusOr<at::Tensor> EuclideanNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_s,
                                             const at::Tensor& true_m, const at::Tensor& true_s) {
  WFM_RETURN_IF_ERROR(
      CheckLossArguments(pred_m, true_m, {{&pred_s, "pred_S"}, {&true_s, "true_S"}}));
  return GuardTorch("EuclideanNormLoss", [&] {
    return unchecked::EuclideanNormLoss(pred_m, pred_s, true_m, true_s);
  });
}

}  // namespace wfm::model::gaussian
