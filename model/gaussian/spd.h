// Batched spectral functions of symmetric (positive definite) matrices: the
// eigendecomposition, square root, inverse square root, projection onto the
// SPD cone and the covariance validator of model/gaussian.
//
// Shapes: S is [B,d,d] (a batch of B symmetric d×d matrices, B >= 0, d >= 1),
// eigenvalues [B,d], eigenvectors [B,d,d]. Every tensor is a CPU tensor,
// float32 or float64; results have the input's dtype. Only the symmetric part
// (S + Sᵀ)/2 of an input is used.
//
// Precision: whatever the input dtype, the arithmetic is float64 and results
// are rounded to the input dtype once, at the end.
//
// Eigensolver (EigenSolver::kAuto, used by every function of model/gaussian):
// hand-written per-matrix kernels (small_matrix.h) run over LibTorch's
// intra-op thread pool for d <= 64 — cyclic Jacobi for d <= 3, Householder
// tridiagonalisation + implicit QL for 4 <= d <= 64 — and LAPACK through
// at::linalg_eigh on the whole batch above. LAPACK's per-matrix overhead
// dominates small matrices: measured on the 2-core build machine (one
// thread, float64, B = 16, eigenvectors included), d = 3: 6 µs per-matrix vs
// 19 µs at::linalg_eigh; d = 16: 0.17 ms vs 0.47 ms; d = 32: 1.0 ms vs 1.7 ms;
// d = 48: 2.6 ms vs 3.4 ms; d = 64: break-even; d = 128: 117 ms vs 21 ms.
// (Cyclic Jacobi costs ~10d³ per sweep and loses to QL from d ≈ 4: 0.64 ms
// at d = 16.) Eigenvalues are accurate to ~d·eps·max|λ| (Jacobi: to high
// relative accuracy); eigenvector signs and bases of repeated eigenvalues
// may differ between solvers.
//
// These functions carry no autograd history (outputs never require grad).
#ifndef WFM_MODEL_GAUSSIAN_SPD_H_
#define WFM_MODEL_GAUSSIAN_SPD_H_

#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::model::gaussian {

enum class EigenSolver {
  kAuto,           // per-matrix kernels for d <= 64, LAPACK above (see above)
  kJacobi,         // cyclic Jacobi for every d (slow for large d)
  kTridiagonalQl,  // per-matrix Householder + implicit QL for every d
  kLapack,         // at::linalg_eigh on the batch for every d
};

// Eigendecomposition of the symmetric part of S [B,d,d]:
// (eigenvalues [B,d] in ascending order, eigenvectors [B,d,d] whose column k
// is the unit eigenvector of eigenvalue k), so S = V diag(λ) Vᵀ.
// INVALID_ARGUMENT for a bad shape/dtype or a non-finite entry.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> SymmetricEig(
    const at::Tensor& s, EigenSolver solver = EigenSolver::kAuto);

// Eigenvalues only, ascending: [B,d].
absl::StatusOr<at::Tensor> SymmetricEigenvalues(const at::Tensor& s,
                                                EigenSolver solver = EigenSolver::kAuto);

// Principal square root S^{1/2} = V diag(sqrt(max(λ, 0))) Vᵀ, [B,d,d]:
// negative eigenvalues (indefinite input, or rounding on singular input) are
// clamped to 0, so the result is the root of S's projection onto the PSD
// cone and is always symmetric positive semidefinite.
absl::StatusOr<at::Tensor> SqrtSpd(const at::Tensor& s);

// Relative floor of InvSqrtSpd (see there).
inline constexpr double kInvSqrtRelativeFloor = 1e-12;

// Inverse square root S^{-1/2} = V diag(max(λ, f)^{-1/2}) Vᵀ, [B,d,d], with
// the floor f = kInvSqrtRelativeFloor · λ_max per matrix: an eigenvalue that
// is tiny, zero or negative is treated as f, so the result never exceeds
// 1e6 / sqrt(λ_max) in norm. A matrix with no positive eigenvalue
// (λ_max <= 0, e.g. the zero matrix) has nothing to invert and maps to the
// zero matrix (the pseudo-inverse convention).
absl::StatusOr<at::Tensor> InvSqrtSpd(const at::Tensor& s);

// Eigenvalue floor of ProjectSpd: λ ← max(λ, relative · mean_k |λ_k|,
// absolute). The defaults are the anchor's project_to_psd (1e-4 · mean |λ|).
// A zero matrix stays zero unless `absolute` > 0.
struct EigenvalueFloor {
  double relative = 1e-4;  // >= 0, finite
  double absolute = 0.0;   // >= 0, finite
};

// Symmetrises S [B,d,d] and raises its eigenvalues to the floor:
// V diag(max(λ, floor)) Vᵀ, [B,d,d]. With a positive floor the result is
// symmetric positive definite. INVALID_ARGUMENT for bad input or floor.
absl::StatusOr<at::Tensor> ProjectSpd(const at::Tensor& s, const EigenvalueFloor& floor = {});

// s ← (s + sᵀ) / 2 for one d×d row-major matrix of doubles (made exactly
// symmetric in place, e.g. before CheckSpd).
void SymmetrizeInPlace(double* s, int64_t d);

// What ValidateCovariances and IsSpd accept. Matrix i passes when
//   * every entry is finite;
//   * max_jk |S_jk - S_kj| <= symmetry · max_jk |S_jk|;
//   * its smallest eigenvalue (of the symmetric part, computed in float64)
//     is > min_eigenvalue_ratio · its largest, and the largest is > 0.
// The default ratio 1e-6 rejects singular (rank-deficient) covariances and
// those whose condition number exceeds 1e6, which float32 cannot resolve;
// add a ridge to such covariances.
struct CovarianceTolerance {
  double symmetry = 1e-5;              // >= 0
  double min_eigenvalue_ratio = 1e-6;  // in [0, 1)
};

// OK when every covariance S[i] of S [B,d,d] passes (B = 0 passes); else
// INVALID_ARGUMENT naming the first bad item:
//   "covs[7]: not symmetric (max |S - S^T| 0.5 > 1e-05 x max |S| 2)",
//   "covs[7]: not positive definite (smallest eigenvalue -0.3, largest 2)",
//   "covs[7]: values must be finite (found NaN or inf)".
// Shape/dtype errors name `name` too.
absl::Status ValidateCovariances(const at::Tensor& s, absl::string_view name,
                                 const CovarianceTolerance& tolerance = {});

// The same rule per item: bool [B], true where S[i] passes.
absl::StatusOr<at::Tensor> IsSpd(const at::Tensor& s, const CovarianceTolerance& tolerance = {});

}  // namespace wfm::model::gaussian

#endif  // WFM_MODEL_GAUSSIAN_SPD_H_
