// Internal kernels of model/gaussian: dense linear algebra on one small
// symmetric matrix at a time, in float64, with no allocation and no LibTorch.
// The batched public functions (spd.h, bures.h) run these per batch item
// inside at::parallel_for. Not part of the public API.
//
// Every matrix is a d×d row-major array of doubles; "symmetric" inputs must
// hold both triangles.
#ifndef WFM_MODEL_GAUSSIAN_SMALL_MATRIX_H_
#define WFM_MODEL_GAUSSIAN_SMALL_MATRIX_H_

#include <cstdint>

namespace wfm::model::gaussian::internal {

// Largest dimension handled by the per-matrix kernels (SmallEigen below);
// larger matrices go to LAPACK through batched LibTorch calls (see spd.h for
// the measured crossover).
inline constexpr int kDefaultPerMatrixMaxDim = 64;

// The threshold currently in force (kDefaultPerMatrixMaxDim unless a test
// changed it): d <= PerMatrixMaxDim() uses the per-matrix kernels.
int PerMatrixMaxDim();

// For tests: forces the LAPACK path (max_dim = 0) or the per-matrix path for
// every dimension up to max_dim while alive. Construct it only in
// single-threaded test code, never while other threads compute.
class ScopedPerMatrixMaxDim {
 public:
  explicit ScopedPerMatrixMaxDim(int max_dim);
  ~ScopedPerMatrixMaxDim();
  ScopedPerMatrixMaxDim(const ScopedPerMatrixMaxDim&) = delete;
  ScopedPerMatrixMaxDim& operator=(const ScopedPerMatrixMaxDim&) = delete;

 private:
  int previous_;
};

// Cyclic Jacobi eigendecomposition of the symmetric matrix `a` (destroyed).
// Sweeps rotate every off-diagonal pair (p, q) with
// |a_pq| > eps · sqrt(|a_pp| · |a_qq|) (eps = 2^-53) and stop after the first
// sweep that rotates nothing, which gives eigenvalues to high relative
// accuracy for positive definite input (Demmel–Veselić). At most 64 sweeps.
// On return w[k] (d) are the eigenvalues, unsorted, and, when v is not null,
// column k of v (d×d) is the unit eigenvector of w[k].
void JacobiEigen(double* a, int d, double* w, double* v);

// Householder reduction to tridiagonal form followed by the implicit QL
// algorithm with Wilkinson shifts: the same outputs as JacobiEigen (w
// unsorted, eigenvectors in the columns of v when v is not null), with
// eigenvalues accurate to ~d·eps·max|λ| (absolute, as LAPACK's dsyev). About
// (4/3)d³ flops without vectors and ~6d³ with them, against ~10d³ per Jacobi
// sweep (of which it takes 5-10), so it wins from d ≈ 4 (see spd.h). `a` is
// destroyed; `work` holds 2d doubles.
void TridiagonalEigen(double* a, int d, double* w, double* v, double* work);

// The per-matrix solver the batched functions use: Jacobi for d <=
// kJacobiBelowDim (as fast as QL there, and relatively accurate),
// TridiagonalEigen above. Same contract as TridiagonalEigen.
inline constexpr int kJacobiBelowDim = 3;
void SmallEigen(double* a, int d, double* w, double* v, double* work);

// out = V diag(f) Vᵀ (d×d, symmetric by construction).
void SpectralCompose(const double* v, const double* f, int d, double* out);

// c = a · b (d×d). c must not alias a or b.
void MatMul(const double* a, const double* b, int d, double* c);

// c = a · b · a for symmetric a and b; the result is symmetrised.
// tmp is scratch of d×d.
void Sandwich(const double* a, const double* b, int d, double* tmp, double* c);

// a ← (a + aᵀ) / 2.
void Symmetrize(double* a, int d);

// y = a · x (a d×d, x and y of length d, y not aliasing x).
void MatVec(const double* a, const double* x, int d, double* y);

// Loads a d×d matrix of T (row-major, contiguous) into `out`, symmetrised.
template <typename T>
void LoadSymmetric(const T* src, int d, double* out) {
  for (int i = 0; i < d; ++i) {
    out[i * d + i] = static_cast<double>(src[i * d + i]);
    for (int j = 0; j < i; ++j) {
      const double s =
          0.5 * (static_cast<double>(src[i * d + j]) + static_cast<double>(src[j * d + i]));
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
}

template <typename T>
void Load(const T* src, int64_t n, double* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>(src[i]);
}

template <typename T>
void Store(const double* src, int64_t n, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(src[i]);
}

}  // namespace wfm::model::gaussian::internal

#endif  // WFM_MODEL_GAUSSIAN_SMALL_MATRIX_H_
