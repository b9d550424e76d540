// Exact optimal transport (earth mover's distance) between two weighted
// clouds of possibly different sizes, by LEMON's network simplex. Used for
// evaluation (EMD-based 1-NNA, MMD, COV), not in training.
#ifndef WFM_MODEL_OT_EMD_H_
#define WFM_MODEL_OT_EMD_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::ot {

struct EmdResult {
  // sum_ij P_ij |x_i - y_j|^2: the squared 2-Wasserstein distance.
  double cost = 0.0;
  // The optimal plan [N,M] (float64), only when requested.
  at::Tensor plan;
};

// x [N,d] with weights a [N], y [M,d] with weights b [M] (float32 or float64).
// Each side's weights are normalised to total 1; zero weights are left out.
// Masses are quantised to 2^-40 and costs to 2^-40 of the largest cost for the
// integer network simplex; the reported cost uses the exact float64 costs, so
// it is within ~1e-10 relative of the real-valued optimum.
absl::StatusOr<EmdResult> ExactEmd(const at::Tensor& x, const at::Tensor& a,
                                   const at::Tensor& y, const at::Tensor& b,
                                   bool with_plan = false);

}  // namespace wfm::model::ot

#endif  // WFM_MODEL_OT_EMD_H_
