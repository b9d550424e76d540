// Fused row-wise log-sum-exp: the inner loop of log-domain Sinkhorn.
//
// No torch here: the kernels work on raw, 64-byte aligned float buffers and are
// compiled once per instruction set (generic x86-64, AVX2+FMA, AVX-512F); the
// best one the CPU supports is picked at run time by
// model/common/cpu_features.h (no -march=native build).
#ifndef WFM_MODEL_OT_LSE_KERNEL_H_
#define WFM_MODEL_OT_LSE_KERNEL_H_

#include <cstddef>

namespace wfm::model::ot::kernel {

// Row stride, in elements, that every matrix handed to a kernel must use: rows
// are padded to a multiple of kLanePad with entries equal to -infinity, and the
// vector `w` to the same length with finite values (0).
inline constexpr int kLanePad = 16;
inline constexpr int PaddedStride(int cols) {
  return (cols + kLanePad - 1) / kLanePad * kLanePad;
}

// For every row i < rows of the row-major matrix `mat` (row stride `stride`):
//   out[i] = log_marginal[i] - log(sum_j exp(mat[i*stride + j] + w[j]))
// computed with the row maximum as shift, one pass over the row in L1.
// `mat` and `w` must be 64-byte aligned and `stride` a multiple of kLanePad.
using LseRowsFloat = void (*)(const float* mat, int rows, int stride,
                              const float* w, const float* log_marginal,
                              float* out);

// out[k] = exp(in[k]) for k < n (n a multiple of kLanePad, 64-byte aligned).
// Inputs below -86 give exactly 0 (no denormals). Used to time the exp floor.
using ExpFloat = void (*)(const float* in, float* out, std::size_t n);

// Scaled-kernel passes of the stabilised iteration (see sinkhorn.cc):
//   GibbsKernel: out[i*stride + j] = exp(logk[i*stride + j] + u[i] + v[j]),
//     0 where the exponent is below -86 (padding entries give 0);
//   ColumnSums:  out[j] = sum_i mat[i*stride + j] * s[i]   (j < stride);
//   RowDots:     out[i] = sum_j mat[i*stride + j] * t[j]   (i < rows).
// Same alignment and padding rules as LseRowsFloat.
using GibbsKernelFloat = void (*)(const float* logk, int rows, int stride, const float* u,
                                  const float* v, float* out);
using ColumnSumsFloat = void (*)(const float* mat, int rows, int stride, const float* s,
                                 float* out);
using RowDotsFloat = void (*)(const float* mat, int rows, int stride, const float* t,
                              float* out);

struct FloatKernels {
  const char* isa;  // "avx512f", "avx2", "generic"
  LseRowsFloat lse_rows;
  ExpFloat exp;
  GibbsKernelFloat gibbs_kernel;
  ColumnSumsFloat column_sums;
  RowDotsFloat row_dots;
};

// The fastest kernels this CPU supports (cpu::BestIsa(), model/common/
// cpu_features.h: chosen once, thread-safe; WFM_SIMD=generic|avx2|avx512f
// caps the choice).
const FloatKernels& BestFloatKernels();
// The portable baseline, for tests comparing instruction sets.
const FloatKernels& GenericFloatKernels();
// Kernels for an ISA by name, or nullptr when the CPU lacks it.
const FloatKernels* FloatKernelsFor(const char* isa);

// Double precision (portable loops, scalar std::exp; same contracts).
void LseRowsDouble(const double* mat, int rows, int stride, const double* w,
                   const double* log_marginal, double* out);
void GibbsKernelDouble(const double* logk, int rows, int stride, const double* u,
                       const double* v, double* out);
void ColumnSumsDouble(const double* mat, int rows, int stride, const double* s, double* out);
void RowDotsDouble(const double* mat, int rows, int stride, const double* t, double* out);

namespace internal {
extern const FloatKernels kGenericKernels;
extern const FloatKernels kAvx2Kernels;
extern const FloatKernels kAvx512Kernels;
}  // namespace internal

}  // namespace wfm::model::ot::kernel

#endif  // WFM_MODEL_OT_LSE_KERNEL_H_
