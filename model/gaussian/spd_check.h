// The one rule for "a covariance wfm accepts": every place that takes a
// covariance in — uploads (server upload validation), .npz files
// (io::ValidateGaussianSet), checkpoints (GaussianModel loading its source
// Gaussians) — and the sampler's final safeguard on its outputs use it, so
// what one accepts the others accept too. No LibTorch (the file readers and
// the server's validation use it without tensors).
//
// A d×d matrix S (row-major, float64) is accepted when
//   * every entry is finite;
//   * it is symmetric: |S_ij - S_ji| <= kSpdSymmetryTolerance · max |S|;
//   * it is positive definite with a margin float64 resolves: the Cholesky
//     factorisation of its lower triangle has every pivot (squared diagonal
//     of L) > kSpdPivotTolerance · max_i S_ii. This rejects singular and
//     numerically singular matrices (condition number beyond ~1e12); add a
//     ridge to such covariances.
//
// (The tensor checks of spd.h, ValidateCovariances/IsSpd, are the
// preconditions of the float32 Bures–Wasserstein kernels — condition number
// up to 1e6 — not an acceptance rule for data.)
#ifndef WFM_MODEL_GAUSSIAN_SPD_CHECK_H_
#define WFM_MODEL_GAUSSIAN_SPD_CHECK_H_

#include <cstdint>

namespace wfm::model::gaussian {

inline constexpr double kSpdSymmetryTolerance = 1e-6;
inline constexpr double kSpdPivotTolerance = 1e-12;

struct SpdVerdict {
  enum class Kind { kSpd, kNotFinite, kNotSymmetric, kNotPositiveDefinite };
  Kind kind = Kind::kSpd;
  // kNotFinite: the first non-finite entry (row, col); kNotSymmetric: the
  // first pair (row < col) whose entries differ.
  int64_t row = 0;
  int64_t col = 0;

  bool ok() const { return kind == Kind::kSpd; }
};

// The rule above for the d×d matrix at `s`.
SpdVerdict CheckSpd(const double* s, int64_t d);

}  // namespace wfm::model::gaussian

#endif  // WFM_MODEL_GAUSSIAN_SPD_CHECK_H_
