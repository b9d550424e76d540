// Training losses of the Bures–Wasserstein flow-matching model: the distance
// between a predicted and a target velocity of a Gaussian path, per sample.
//
// Shapes: means and mean velocities [B,d]; matrices [B,d,d]; results [B]
// (one loss per batch item; the trainer averages them). CPU tensors, float32
// or float64, every argument of one call in the same dtype.
//
// Both losses are built from differentiable LibTorch operations: gradients
// flow through every argument that requires grad (in training: pred_m and
// pred_V / pred_S). Values are not checked for finiteness; a NaN prediction
// gives a NaN loss.
#ifndef WFM_MODEL_GAUSSIAN_LOSSES_H_
#define WFM_MODEL_GAUSSIAN_LOSSES_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::gaussian {

// Tangent (Riemannian) norm at N(m_t, S_t) of the velocity error:
//   |pred_m - true_m|^2 + tr(S_t ΔV ΔV),  ΔV = pred_V - true_V.
// With symmetric ΔV and positive semidefinite S_t this is >= 0; it is the
// squared Bures–Wasserstein norm of the tangent vector ΔV at S_t (up to the
// metric's constant factor). pred_m, true_m [B,d]; pred_V, true_V, S_t
// [B,d,d]. INVALID_ARGUMENT names the argument with a bad shape/dtype.
absl::StatusOr<at::Tensor> TangentNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_v,
                                           const at::Tensor& true_m, const at::Tensor& true_v,
                                           const at::Tensor& s_t);

// Euclidean norm of the velocity error, as the anchor's euclidean_norm:
//   |pred_m - true_m|^2 + |pred_S - true_S|_F^2 / d.
// pred_m, true_m [B,d]; pred_S, true_S [B,d,d] (dS/ds).
absl::StatusOr<at::Tensor> EuclideanNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_s,
                                             const at::Tensor& true_m, const at::Tensor& true_s);

// The same without argument checks, for trainers whose shapes are fixed by
// construction (a mismatch throws c10::Error).
namespace unchecked {
at::Tensor TangentNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_v,
                           const at::Tensor& true_m, const at::Tensor& true_v,
                           const at::Tensor& s_t);
at::Tensor EuclideanNormLoss(const at::Tensor& pred_m, const at::Tensor& pred_s,
                             const at::Tensor& true_m, const at::Tensor& true_s);
}  // namespace unchecked

}  // namespace wfm::model::gaussian

#endif  // WFM_MODEL_GAUSSIAN_LOSSES_H_
