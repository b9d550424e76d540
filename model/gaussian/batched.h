// Internal helpers of model/gaussian shared by its .cc files: the per-item
// parallel driver, the LAPACK (large-d) spectral path and argument checks.
// Not part of the public API.
#ifndef WFM_MODEL_GAUSSIAN_BATCHED_H_
#define WFM_MODEL_GAUSSIAN_BATCHED_H_

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "model/gaussian/small_matrix.h"

namespace wfm::model::gaussian::internal {

// Runs fn(i, scratch) for i in [0, n) on LibTorch's intra-op pool. Items are
// grouped so that one task holds about kTaskWork units of `cost_per_item`
// (roughly flops), which keeps tiny batches (e.g. 16 3×3 matrices) on the
// calling thread, where they take microseconds. `scratch` holds
// `scratch_doubles` doubles, reused by every item of a task.
inline constexpr int64_t kTaskWork = 200000;

template <typename F>
void ForEachItem(int64_t n, int64_t cost_per_item, int64_t scratch_doubles, const F& fn) {
  if (n <= 0) return;
  const int64_t grain = std::max<int64_t>(1, kTaskWork / std::max<int64_t>(1, cost_per_item));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<double> scratch(static_cast<size_t>(std::max<int64_t>(1, scratch_doubles)));
    for (int64_t i = begin; i < end; ++i) fn(i, scratch.data());
  });
}

// Cost units of one d×d eigendecomposition plus a few products.
inline int64_t CubicCost(int64_t d) { return 8 * d * d * d + 64; }

// True when the per-matrix kernels (small_matrix.h) handle dimension d.
inline bool UsePerMatrix(int64_t d) { return d <= PerMatrixMaxDim(); }

// Matrix function on one symmetric matrix through its eigensystem
// (SmallEigen): out = V diag(map(w)) Vᵀ. `work` holds MatrixFunctionWork(d)
// doubles; `s` may alias out.
inline int64_t MatrixFunctionWork(int64_t d) { return 2 * d * d + 4 * d; }
template <typename Map>
void MatrixFunction(const double* s, int d, const Map& map, double* out, double* work) {
  double* a = work;
  double* v = a + d * d;
  double* w = v + d * d;
  double* f = w + d;
  std::copy(s, s + d * d, a);
  SmallEigen(a, d, w, v, f + d);
  map(w, d, f);
  SpectralCompose(v, f, d, out);
}

// The eigenvalue maps of SqrtSpd and InvSqrtSpd (see spd.h for the rules).
void SqrtEigenvalues(const double* w, int d, double* f);
void InvSqrtEigenvalues(const double* w, int d, double* f);

// (S + Sᵀ)/2 in float64, contiguous: the input of the LAPACK path.
at::Tensor SymmetricDouble(const at::Tensor& s);

// LAPACK path: V diag(map(w)) Vᵀ for a batch of symmetric float64 matrices
// [B,d,d], symmetrised; map takes and returns the eigenvalue tensor [B,d].
template <typename Map>
at::Tensor LapackMatrixFunction(const at::Tensor& s_double, const Map& map) {
  auto [w, v] = at::linalg_eigh(s_double);
  const at::Tensor f = map(w);
  const at::Tensor out = at::matmul(v * f.unsqueeze(-2), v.transpose(-1, -2));
  return 0.5 * (out + out.transpose(-1, -2));
}

// Tensor versions of the two eigenvalue maps, for the LAPACK path.
at::Tensor SqrtEigenvaluesTensor(const at::Tensor& w);
at::Tensor InvSqrtEigenvaluesTensor(const at::Tensor& w);

// --------------------------------------------------------------- argument checks

// Float32/float64 CPU tensor of shape [B,d,d] with d >= 1.
absl::Status CheckMatrices(const at::Tensor& t, absl::string_view name);
// Float32/float64 CPU tensor [B,d] with the given B, d and dtype of `ref`.
absl::Status CheckVectors(const at::Tensor& t, absl::string_view name, int64_t batch,
                          int64_t d, const at::Tensor& ref, absl::string_view ref_name);
// Float CPU tensor [B,d,d] with the given B, d and dtype of `ref`.
absl::Status CheckMatricesLike(const at::Tensor& t, absl::string_view name, int64_t batch,
                               int64_t d, const at::Tensor& ref, absl::string_view ref_name);
// Every entry finite; the message names the first bad batch item, "name[i]".
absl::Status CheckFiniteItems(const at::Tensor& t, absl::string_view name);
// Path parameters s [B] (float32 or float64), finite and within [0, 1].
absl::Status CheckPathParameter(const at::Tensor& s, absl::string_view name, int64_t batch);

}  // namespace wfm::model::gaussian::internal

#endif  // WFM_MODEL_GAUSSIAN_BATCHED_H_
