// Batched log-domain Sinkhorn between weighted point clouds (entropic OT).
//
// Problem b of a batch: source points x[b] (N × d) with weights a[b] (N), target
// points y[b] (M × d) with weights b[b] (M), cost C_ij = |x_i - y_j|^2. A zero
// weight marks a padding point: it carries no mass and has no influence at all
// on the result (its potential is -inf, its plan row/column exactly 0, and it
// is left out of the maximum cost). Weights need not be normalised, but the two
// sides of a problem must carry the same total mass.
//
// Semantics follow OTT-JAX as the reference uses it:
//   * ε relative: the cost is divided by its maximum (over real points) and ε
//     applies to that scaled cost (OTT's scale_cost='max_cost'); ε absolute:
//     the cost is used as it is.
//   * sequential updates, g (columns) first, then f (rows); potentials start
//     at 0 on the support:  v_j = log b_j - LSE_i(u_i - C_ij/ε),
//                            u_i = log a_i - LSE_j(v_j - C_ij/ε),
//     f = ε u, g = ε v; plan P_ij = exp((f_i + g_j - C_ij) / ε).
//   * a fixed number of iterations, or tolerance mode: every `check_every`
//     iterations the L1 column-marginal error is measured and a problem stops
//     once it is below `tolerance` (at most `iterations` in all).
// Non-convergence is a flag in the output, never an error.
//
// Speed: the same iterates are computed with Schmitzer's stabilised scaling.
// The potentials (u, v) are absorbed into a Gibbs kernel
// K_ij = exp(u_i + v_j - C_ij/ε), and the next half-iterations multiply
// scaling vectors (t = b / Kᵀs, s = a / K t: two fused multiply-add passes, no
// exponentials) until a scaling factor leaves [e^-τ/2, e^τ/2], when they are
// absorbed again. A step whose factors leave [e^-τ, e^τ] (or hit 0 or inf, as
// in the first iterations, whose potentials move by hundreds) is recomputed
// exactly with the fused log-sum-exp kernel. Entries of K below e^-86 are
// flushed to 0; τ = 20 (float32) bounds their relative weight in any sum by
// N² e^(2τ-86) < 1e-15, so the iterates equal the log-domain ones to rounding.
#ifndef WFM_MODEL_OT_SINKHORN_H_
#define WFM_MODEL_OT_SINKHORN_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::ot {

enum class EpsilonScale {
  kRelativeToMaxCost,  // ε × (max cost over real points) — the reference default
  kAbsolute,           // ε in the cost's own units
};

struct SinkhornOptions {
  double epsilon = 0.002;  // > 0
  EpsilonScale epsilon_scale = EpsilonScale::kRelativeToMaxCost;
  // Fixed mode: exactly this many iterations. Tolerance mode: the cap.
  int iterations = 200;
  // Tolerance mode: stop a problem once its L1 column-marginal error is below
  // `tolerance`, measured every `check_every` iterations.
  bool until_converged = false;
  // Also the threshold of SinkhornSolution::converged() in fixed mode.
  double tolerance = 1e-3;
  int check_every = 10;
  // true: the iterates are computed with absorbed scaling (below); false:
  // every half-iteration is a log-sum-exp (slower; kept for comparison).
  bool stabilized_scaling = true;
};

// Checks ranges (ε > 0 and finite, iterations >= 1, tolerance > 0,
// check_every >= 1); the message names the field.
absl::Status ValidateSinkhornOptions(const SinkhornOptions& options);

// The immutable result of a batch of B problems (N sources, M targets each).
// All tensors are CPU tensors of the input's floating dtype unless noted.
class SinkhornSolution {
 public:
  SinkhornSolution(at::Tensor f, at::Tensor g, at::Tensor scaled_cost,
                   at::Tensor cost_scale, double epsilon, at::Tensor iterations,
                   at::Tensor marginal_error, at::Tensor converged);

  // Dual potentials of the scaled problem: f [B,N], g [B,M]; -inf on padding.
  const at::Tensor& f() const { return f_; }
  const at::Tensor& g() const { return g_; }
  // The cost the solver saw, C / cost_scale: [B,N,M].
  const at::Tensor& scaled_cost() const { return scaled_cost_; }
  // Per-problem divisor applied to the cost (max cost, or 1 for absolute ε): [B].
  const at::Tensor& cost_scale() const { return cost_scale_; }
  // ε of the scaled problem.
  double epsilon() const { return epsilon_; }
  // Iterations run per problem: int64 [B].
  const at::Tensor& iterations() const { return iterations_; }
  // L1 column-marginal error |P^T 1 - b|_1 at the end (rows are exact): [B].
  const at::Tensor& marginal_error() const { return marginal_error_; }
  // marginal_error < tolerance: bool [B].
  const at::Tensor& converged() const { return converged_; }

  int64_t batch() const { return f_.size(0); }

  // The transport plan P [B,N,M]; padding rows and columns are exactly 0.
  at::Tensor Plan() const;
  // Barycentric projection of the plan onto target points y [B,M,D]:
  // T(x_i) = sum_j P_ij y_j / sum_j P_ij, [B,N,D]; padding rows give 0.
  at::Tensor BarycentricMap(const at::Tensor& y) const;
  // Transport cost <P, C> in the original cost units: [B].
  at::Tensor TransportCost() const;
  // OTT's reg_ot_cost of the balanced problem, in the original cost units:
  //   sum_i a_i (f_i - ε log a_i) + sum_j b_j (g_j - ε log b_j)
  //   + ε (sum a · sum b - sum P), times cost_scale. [B].
  at::Tensor RegularizedCost(const at::Tensor& a, const at::Tensor& b) const;

 private:
  at::Tensor f_, g_, scaled_cost_, cost_scale_;
  double epsilon_;
  at::Tensor iterations_, marginal_error_, converged_;
};

// Squared-Euclidean cost |x_i - y_j|^2 between x [B,N,D] and y [B,M,D]
// (computed from differences, so never negative): [B,N,M], x's dtype.
absl::StatusOr<at::Tensor> SquaredEuclideanCost(const at::Tensor& x,
                                                const at::Tensor& y);

// Solves B problems given by a cost [B,N,M] and weights a [B,N], b [B,M].
// float32 (default) or float64; every input must share the dtype. Threads over
// the batch with LibTorch's intra-op pool (torch::set_num_threads).
// INVALID_ARGUMENT names the field when a shape, dtype, weight (negative,
// non-finite, all zero, unequal totals) or cost entry (non-finite) is bad.
absl::StatusOr<SinkhornSolution> SolveSinkhornCost(const at::Tensor& cost,
                                                   const at::Tensor& a,
                                                   const at::Tensor& b,
                                                   const SinkhornOptions& options);

// Point-cloud form: SquaredEuclideanCost(x, y), then SolveSinkhornCost.
absl::StatusOr<SinkhornSolution> SolveSinkhorn(const at::Tensor& x,
                                               const at::Tensor& a,
                                               const at::Tensor& y,
                                               const at::Tensor& b,
                                               const SinkhornOptions& options);

}  // namespace wfm::model::ot

#endif  // WFM_MODEL_OT_SINKHORN_H_
