// Costs between whole clouds, and the minibatch pairing built on them: which
// noise cloud each data cloud of a training batch is paired with.
#ifndef WFM_MODEL_OT_CLOUD_COSTS_H_
#define WFM_MODEL_OT_CLOUD_COSTS_H_

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/ot/sinkhorn.h"

namespace wfm::model::ot {

enum class CloudCostKind {
  // sum_j b_j min_i |x_i - y_j|^2 + sum_i a_i min_j |x_i - y_j|^2 over real
  // points only (weights normalised per cloud).
  kChamfer,
  // OTT's regularised OT cost (SinkhornSolution::RegularizedCost) with
  // absolute ε = CloudCostOptions::entropic_epsilon.
  kEntropic,
  // Index-wise: sum_i a_i |x_i - y_i|^2 (a normalised; needs N == M).
  kEuclidean,
  // Squared Bures–Wasserstein distance between the clouds' weighted means and
  // covariances (+ covariance_ridge · I).
  kFrechet,
};

// "chamfer", "entropic", "euclidean", "frechet".
absl::StatusOr<CloudCostKind> ParseCloudCostKind(absl::string_view name);
std::string CloudCostKindName(CloudCostKind kind);

struct CloudCostOptions {
  double entropic_epsilon = 0.01;  // absolute, in squared distance units
  int entropic_iterations = 200;
  double covariance_ridge = 1e-6;
};

// All-pairs costs between clouds x [P,N,d] (weights a [P,N]) and y [Q,M,d]
// (weights b [Q,M]) -> [P,Q] in x's dtype. Zero weights mark padding.
absl::StatusOr<at::Tensor> PairwiseCloudCost(CloudCostKind kind, const at::Tensor& x,
                                             const at::Tensor& a, const at::Tensor& y,
                                             const at::Tensor& b,
                                             const CloudCostOptions& options = {});

// Chamfer distance of matched pairs x[k] ~ y[k] -> [B].
absl::StatusOr<at::Tensor> ChamferDistance(const at::Tensor& x, const at::Tensor& a,
                                           const at::Tensor& y, const at::Tensor& b);

// Minibatch pairing: entropic OT between B data and B noise clouds on the
// cost matrix [B,B] (uniform marginals, `options`; the reference uses ε 0.002
// relative), then rounded matching. Returns int64 [B]: the noise cloud paired
// with each data cloud, a permutation.
absl::StatusOr<at::Tensor> MinibatchPairing(const at::Tensor& cost, const SinkhornOptions& options);

}  // namespace wfm::model::ot

#endif  // WFM_MODEL_OT_CLOUD_COSTS_H_
