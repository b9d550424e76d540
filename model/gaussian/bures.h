// Bures–Wasserstein geometry of Gaussians N(m, S), batched over a leading
// dimension B: the closed-form Monge map, McCann interpolation (the W2
// geodesic), its Euclidean and Riemannian velocities, the squared
// Bures–Wasserstein (Fréchet) distance, all-pairs distances, and the weighted
// mean/covariance of point clouds.
//
// Shapes and units: means m [B,d], covariances S [B,d,d] (symmetric positive
// (semi)definite), path parameters s [B] in [0, 1]; d >= 1, B >= 0. All
// tensors are CPU tensors, float32 or float64; the Gaussian arguments of one
// call share a dtype and the results have it (s may be either float dtype).
// Distances are in squared units of the means.
//
// The geometry is plain math on (m0, S0) → (m1, S1) with a path parameter s:
// s = 0 is the first Gaussian, s = 1 the second. (The trainers run noise at
// t = 1 and data at t = 0 and call these with m0, S0 = noise, m1, S1 = data,
// s = 1 - t.)
//
// Numerics: only the symmetric part of every covariance (and of A) is used;
// eigenvalues are clamped as SqrtSpd/InvSqrtSpd in spd.h describe, so
// indefinite input does not fail, it is projected (validate user data once
// with ValidateCovariances). The arithmetic is float64 whatever the input
// dtype, with one rounding to the input dtype at the end. d <= 64 runs
// per-item C++ kernels (their own eigensolvers, see spd.h) on LibTorch's
// intra-op pool; larger d runs batched LibTorch/LAPACK operations.
//
// Errors: the checked functions return INVALID_ARGUMENT naming the argument
// for a wrong rank/shape/dtype/device, a non-finite entry ("S0[3]: values must
// be finite ...") or s outside [0, 1]. None of these functions records
// autograd history. The functions in namespace `unchecked` skip every check
// and compute the same values; they are for trainers that build their inputs
// themselves (violating a precondition may throw c10::Error or give garbage).
#ifndef WFM_MODEL_GAUSSIAN_BURES_H_
#define WFM_MODEL_GAUSSIAN_BURES_H_

#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::gaussian {

// The optimal (Monge) map T(x) = A x + b pushing N(m0, S0) to N(m1, S1):
//   A = S1^{1/2} (S1^{1/2} S0 S1^{1/2})^{-1/2} S1^{1/2},   b = m1 - A m0.
// Returns (A [B,d,d], b [B,d]); A is exactly symmetric and positive
// semidefinite (definite when S1 is). When S0 is positive definite,
// A S0 A = S1 and A m0 + b = m1. The inner inverse square root uses the
// clamped floor of InvSqrtSpd, so singular S1 gives a finite, singular A.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> GaussianMongeMap(const at::Tensor& m0,
                                                                   const at::Tensor& s0,
                                                                   const at::Tensor& m1,
                                                                   const at::Tensor& s1);

// McCann interpolation along the map (A, b) from (m0, S0) at path parameters
// s [B]:  M = (1 - s) I + s A,  m_s = (1 - s) m0 + s (A m0 + b),
// S_s = M S0 M.  Returns (m_s [B,d], S_s [B,d,d]); S_s is exactly symmetric.
// m0 [B,d], S0 [B,d,d], A [B,d,d], b [B,d].
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> McCannInterpolate(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s);

// Euclidean velocity of the McCann path, d/ds of McCannInterpolate:
//   dm/ds = A m0 + b - m0,   dS/ds = (A - I) S0 M + M S0 (A - I).
// Returns (dm/ds [B,d], dS/ds [B,d,d]).
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> EuclideanVelocity(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s);

// Riemannian velocity of the McCann path: (dm/ds [B,d], V [B,d,d]) with
//   V = (A - I) M^{-1},  M = (1 - s) I + s A,
// the symmetric matrix for which dS/ds = V S_s + S_s V. Computed from the
// eigensystem of A (A = U diag(a) Uᵀ: V = U diag((a - 1) / (1 - s + s a)) Uᵀ),
// so V is exactly symmetric. M is positive definite for s in [0, 1] when A is;
// a vanishing eigenvalue of M (|μ| <= 1e-12 · max |μ|, only possible at s = 1
// with singular A) contributes 0, as a pseudo-inverse would.
// m0 and S0 are only used for dm/ds (S0 is checked but does not enter V).
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> RiemannianVelocity(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s);

// Squared Bures–Wasserstein distance per pair, [B]:
//   |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2}),
// with tiny negative results (cancellation when the Gaussians coincide)
// clamped to 0. m0, m1 [B,d], S0, S1 [B,d,d].
absl::StatusOr<at::Tensor> BuresWassersteinDistanceSquared(const at::Tensor& m0,
                                                           const at::Tensor& s0,
                                                           const at::Tensor& m1,
                                                           const at::Tensor& s1);

// All-pairs squared Bures–Wasserstein distance between a set A of P Gaussians
// (m_a [P,d], S_a [P,d,d]) and a set B of Q Gaussians (m_b [Q,d],
// S_b [Q,d,d]): [P,Q], entry (p, q) = BuresWassersteinDistanceSquared of
// A_p and B_q. The P square roots S_a^{1/2} are computed once; each pair then
// costs two d×d products and one eigenvalue-only decomposition.
absl::StatusOr<at::Tensor> PairwiseBuresWasserstein(const at::Tensor& m_a,
                                                    const at::Tensor& s_a,
                                                    const at::Tensor& m_b,
                                                    const at::Tensor& s_b);

// Weighted mean and covariance of B point clouds x [B,N,d] with weights
// w [B,N] (finite, >= 0, a positive total per cloud; normalised per cloud):
//   mean = Σ w_i x_i / Σ w_i,  cov = Σ w_i (x_i - mean)(x_i - mean)ᵀ / Σ w_i
//          + ridge · I.
// Returns (mean [B,d], cov [B,d,d]); cov is exactly symmetric. A zero weight
// marks padding, which has no influence at all: padding points are skipped,
// so the result is bitwise that of the cloud without them. (The anchor floors
// weights at 1e-6 instead.) x must be finite everywhere; ridge >= 0.
// Weighted (biased) covariance: numpy's np.cov(x.T, aweights=w, bias=True).
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> WeightedMeanCovariance(const at::Tensor& x,
                                                                         const at::Tensor& w,
                                                                         double ridge = 0.0);

// The same functions without argument checks (see the file comment).
namespace unchecked {
std::pair<at::Tensor, at::Tensor> GaussianMongeMap(const at::Tensor& m0, const at::Tensor& s0,
                                                   const at::Tensor& m1, const at::Tensor& s1);
std::pair<at::Tensor, at::Tensor> McCannInterpolate(const at::Tensor& m0, const at::Tensor& s0,
                                                    const at::Tensor& a, const at::Tensor& b,
                                                    const at::Tensor& s);
std::pair<at::Tensor, at::Tensor> EuclideanVelocity(const at::Tensor& m0, const at::Tensor& s0,
                                                    const at::Tensor& a, const at::Tensor& b,
                                                    const at::Tensor& s);
std::pair<at::Tensor, at::Tensor> RiemannianVelocity(const at::Tensor& m0, const at::Tensor& s0,
                                                     const at::Tensor& a, const at::Tensor& b,
                                                     const at::Tensor& s);
at::Tensor BuresWassersteinDistanceSquared(const at::Tensor& m0, const at::Tensor& s0,
                                           const at::Tensor& m1, const at::Tensor& s1);
at::Tensor PairwiseBuresWasserstein(const at::Tensor& m_a, const at::Tensor& s_a,
                                    const at::Tensor& m_b, const at::Tensor& s_b);
std::pair<at::Tensor, at::Tensor> WeightedMeanCovariance(const at::Tensor& x, const at::Tensor& w,
                                                         double ridge = 0.0);
}  // namespace unchecked

}  // namespace wfm::model::gaussian

#endif  // WFM_MODEL_GAUSSIAN_BURES_H_
