// Lower-triangle encoding of d×d matrices, the covariance input and output
// format of the Gaussian velocity network.
//
// Order: the lower triangle row by row — rows 0..d-1, in row r columns 0..r —
// so entry (r, c), c <= r, sits at position r(r+1)/2 + c of a vector of
// length n = d(d+1)/2 (the anchor's fill_triangular / tril_indices order;
// for a 3×3 matrix holding 0..8 row-major, the encoding is [0,3,4,6,7,8]).
//
// Shapes: matrices [B,d,d], encodings [B,n]. CPU tensors, float32 or float64.
// All three functions are differentiable LibTorch operations (index_select /
// index_copy), so autograd flows through them. The index tables are built
// once per d and cached (thread-safe).
#ifndef WFM_MODEL_GAUSSIAN_TRIANGLE_H_
#define WFM_MODEL_GAUSSIAN_TRIANGLE_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::gaussian {

// n = d(d+1)/2.
constexpr int64_t TriangleSize(int64_t d) { return d * (d + 1) / 2; }

// S [B,d,d] -> its lower triangle [B,n] (the upper triangle is ignored).
absl::StatusOr<at::Tensor> LowerTriangleEncode(const at::Tensor& s);

// v [B,n] -> the lower-triangular L [B,d,d] holding v, zeros above the
// diagonal. INVALID_ARGUMENT unless n = d(d+1)/2, d >= 1.
absl::StatusOr<at::Tensor> LowerTriangleDecode(const at::Tensor& v, int64_t d);

// v [B,n] -> L + Lᵀ [B,d,d] with L = LowerTriangleDecode(v, d): a symmetric
// matrix whose off-diagonal entries are v's and whose diagonal is 2·v's
// (how the anchor's trainer turns the network's triangle into a velocity).
absl::StatusOr<at::Tensor> SymmetricFromLowerTriangle(const at::Tensor& v, int64_t d);

// The same without argument checks (shape mismatches throw c10::Error).
namespace unchecked {
at::Tensor LowerTriangleEncode(const at::Tensor& s);
at::Tensor LowerTriangleDecode(const at::Tensor& v, int64_t d);
at::Tensor SymmetricFromLowerTriangle(const at::Tensor& v, int64_t d);
}  // namespace unchecked

}  // namespace wfm::model::gaussian

#endif  // WFM_MODEL_GAUSSIAN_TRIANGLE_H_
