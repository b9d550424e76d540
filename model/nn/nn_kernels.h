// Float kernels of the velocity networks: the attention softmax (forward and
// backward, with key masking and a dropout scale), the feed-forward activation
// (dropout, then leaky ReLU), a fused shift-and-LayerNorm (forward and
// backward), and the batch-in-lanes dense layer and LayerNorm of the Gaussian
// network's inference path.
//
// No torch here: raw float buffers, compiled once per instruction set (generic
// x86-64, AVX2+FMA, AVX-512F, and AVX-512 with AMX tiles for the packed
// products) and chosen at run time by
// model/common/cpu_features.h, as model/ot's log-sum-exp kernels. Buffers need
// no particular alignment.
#ifndef WFM_MODEL_NN_NN_KERNELS_H_
#define WFM_MODEL_NN_NN_KERNELS_H_

#include <cstdint>

namespace wfm::model::nn::kernel {

// Negative slope of the feed-forward leaky ReLU (flax's default 0.01).
inline constexpr float kLeakySlope = 0.01f;

// A counter-based dropout mask: element `index` of a masked array is kept when
// DropoutHash(index, seed) >> 8 (a uniform 24-bit integer) is below
// `threshold` = round(keep_probability · 2^24); kept elements are multiplied
// by `scale` = 1 / keep_probability, dropped ones become 0. The seed comes
// from the caller's generator, so a generator state reproduces the mask, and
// any slice of the array can be masked (or its gradient unmasked) on its own.
// Indices are 32-bit: arrays up to 2^32 elements.
struct DropoutStream {
  std::uint32_t seed_lo = 0;
  std::uint32_t seed_hi = 0;
  std::uint32_t threshold = 1u << 24;
  float scale = 1.0f;
};

// Builds the stream for drop probability `rate` in [0, 1) and a 64-bit seed.
DropoutStream MakeDropoutStream(double rate, std::uint64_t seed);

// Two rounds of a 32-bit avalanche mixer (Wellons' lowbias32), keyed by the
// seed: the scalar definition every kernel reproduces.
inline std::uint32_t DropoutHash(std::uint32_t index, std::uint32_t seed_lo,
                                 std::uint32_t seed_hi) {
  std::uint32_t h = index * 0x9E3779B9u + seed_lo;
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  h ^= seed_hi;
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return h;
}

inline bool DropoutKeep(const DropoutStream& s, std::uint32_t index) {
  return (DropoutHash(index, s.seed_lo, s.seed_hi) >> 8) < s.threshold;
}

// Row-wise softmax, in place, of a rows × cols block of `s` (row stride ld):
//   s_ij ← exp(s_ij + bias_j − max_k(s_ik + bias_k)) / sum_k(...)
// `key_bias` (cols entries, 0 for a real key and −inf for a masked one) may be
// null (no masking). A row whose every key is masked becomes uniform, 1/cols,
// as a softmax over logits all filled with the lowest float would.
// When `drop` (rows × cols, row stride ld: dropout factors) is non-null, the
// same pass also writes weights_ij = s_ij · drop_ij (same layout).
using SoftmaxRows = void (*)(float* s, int rows, int cols, int ld, const float* key_bias,
                             const float* drop, float* weights);

// Softmax backward, in place on the gradient g (rows × cols, row stride ld):
//   e_ij = g_ij · d_ij,  g_ij ← p_ij (e_ij − sum_k e_ik p_ik) · [bias_j == 0]
// where p is the softmax output, d (same layout) the dropout scale applied
// after the softmax (null: 1) and key_bias as above (null: no masking; masked
// logits are constants, so their gradient is 0).
using SoftmaxBackwardRows = void (*)(const float* p, float* g, const float* d, int rows, int cols,
                                     int ld, const float* key_bias);

// y_i = leaky_relu(m_i · f_i) for i < n, with m_i the dropout factor of element
// first + i of `stream` (0 or stream.scale). y may alias f.
using DropoutLeakyRelu = void (*)(const float* f, float* y, std::int64_t n, std::int64_t first,
                                  DropoutStream stream);

// Its gradient: df_i = dy_i · m_i · (y_i > 0 ? 1 : kLeakySlope), from the
// forward output y (y_i > 0 exactly when m_i f_i > 0). df may alias dy.
using DropoutLeakyReluBackward = void (*)(const float* dy, const float* y, float* df,
                                          std::int64_t n, std::int64_t first, DropoutStream stream);

// Layer normalisation of `rows` contiguous rows of `cols` floats, after
// adding `shift` (cols entries, the same for every row; null: none):
//   u = x_i + shift,  mean_i = avg(u),  rstd_i = 1/sqrt(var(u) + eps)
//   y_i = (u - mean_i) · rstd_i · gamma + beta
// (biased variance, two passes over the row). mean and rstd (rows entries)
// may be null. y may alias x.
using LayerNormRows = void (*)(const float* x, const float* shift, int rows, int cols,
                               const float* gamma, const float* beta, float eps, float* y,
                               float* mean, float* rstd);

// Its backward for the same rows, from the upstream gradient dy, the input
// (x, shift) and the saved mean and rstd: with xhat = (u - mean) · rstd and
// g = dy · gamma,
//   dx = rstd · (g − avg(g) − xhat · avg(g · xhat))
// written to dx (may alias dy), and accumulated into dgamma += Σ_rows dy·xhat
// and dbeta += Σ_rows dy (cols entries each).
using LayerNormBackwardRows = void (*)(const float* dy, const float* x, const float* shift,
                                       int rows, int cols, const float* gamma, const float* mean,
                                       const float* rstd, float* dx, float* dgamma, float* dbeta);

// Feature-major ("panel") dense layer for small batches. A batch of B vectors
// of F features is stored as ceil(B / panel) panels of F rows × `panel` lanes
// (lane l of panel p is batch element p·panel + l; unused lanes hold any
// finite value). For every panel p and output row n < out:
//   y[p][n][:] = act(sum_k w[n·in + k] · x[p][k][:] + bias[n] (+ residual[p][n][:]))
// with act the identity (silu = false) or silu(z) = z / (1 + exp(-z)).
// w is row-major [out, in] (PyTorch's Linear layout); x, y and residual are
// addressed with their own panel strides (floats between panels), so a layer
// can read or write a row range of a wider buffer. residual may be null; y
// may alias residual (same stride), not x.
using PanelDense = void (*)(const float* w, const float* bias, const float* x, int x_stride, int in,
                            int out, int panels, bool silu, const float* residual,
                            int residual_stride, float* y, int y_stride);

// Layer normalisation over the F rows of every lane of every panel (layout as
// PanelDense, contiguous panels of F·panel floats), in place:
//   x[p][n][l] = (x[p][n][l] - mean_pl) · rstd_pl · gamma[n] + beta[n].
using PanelLayerNorm = void (*)(float* x, int features, int panels, const float* gamma,
                                const float* beta, float eps);

// Row-major products against pre-packed weights, for inference:
//   y[r][c] = act(bias[c] + sum_kk x[r][kk] · w[c][kk])   r < rows, c < n
// with w a [n, k] matrix (PyTorch's Linear layout) packed by the same
// table's pack_gemm. A row's result is the same bits whatever rows it is
// computed with, in any blocking and on any thread (each output depends on
// its own row of x and the weights alone, in a fixed order).
//
// Arithmetic, per table:
//  * generic, avx2, avx512f: float32. Every output starts from its bias and
//    accumulates kk = 0, 1, .., k-1 in that order (a fused multiply-add each
//    where the instruction set has one).
//  * amx: on the AMX tile unit with three bfloat16 products per term. Each
//    operand is split exactly into a high and a low bfloat16 part
//    (v = hi + lo + r, |r| <= 2^-16 |v|), and x·w is summed as
//    hi_x·hi_w + lo_x·hi_w + hi_x·lo_w (each product exact in float32,
//    accumulated in float32 by the tile unit), then the bias is added. The
//    terms dropped (lo·lo and the residues) are below 2^-14 |x·w|, so an
//    output's error is below about 2^-14 of sum |x·w| plus the float32
//    accumulation's. Measured: on 512-wide layers 2–3× the float32
//    kernels' error against double precision; through a whole network,
//    differences from the float32 forward up to ~1e-5 of the output scale.
//
// act:
enum class GemmEpilogue {
  kNone,        // y = z
  kLeakyRelu,   // y = z > 0 ? z : kLeakySlope · z
  kAddResidual  // y = z + residual[r][c]; residual may alias y (same stride)
};
// x: rows × k with row stride ldx; y: rows × n with row stride ldy (y must not
// overlap x); residual: rows × n with row stride ldr (kAddResidual only).
using PackedGemm = void (*)(const float* x, int ldx, int rows, int k, const float* packed, int n,
                            GemmEpilogue epilogue, const float* residual, int ldr, float* y,
                            int ldy);

// The packed form of a weight matrix for one table's packed_gemm: its size
// in floats, and the packing. `w` is [n, k] with row stride ld (PyTorch's
// Linear weight), or with `transposed` a [k, n] matrix with row stride ld
// holding wᵀ; bias: n entries, or null for zeros; `scale` multiplies the
// weights (not the biases).
using PackedGemmFloats = int64_t (*)(int n, int k);
using PackGemm = void (*)(const float* w, int ld, bool transposed, int n, int k, const float* bias,
                          float scale, float* packed);

struct FloatKernels {
  const char* isa;  // "amx", "avx512f", "avx2", "generic"
  int panel;        // lanes per panel of PanelDense / PanelLayerNorm: 16, 8 or 4
  SoftmaxRows softmax_rows;
  SoftmaxBackwardRows softmax_backward_rows;
  DropoutLeakyRelu dropout_leaky_relu;
  DropoutLeakyReluBackward dropout_leaky_relu_backward;
  LayerNormRows layer_norm_rows;
  LayerNormBackwardRows layer_norm_backward_rows;
  PanelDense panel_dense;
  PanelLayerNorm panel_layer_norm;
  PackedGemmFloats packed_gemm_size;
  PackGemm pack_gemm;
  PackedGemm packed_gemm;
};

// The float32 tables' packed layout (their pack_gemm, with panel = 32, 16
// or 8 output columns for avx512f, avx2, generic): ceil(n / panel) panels, each (k + 1) × panel floats: first
// the panel's biases, then for kk < k the row [w[p·panel + c][kk] · scale
// for c < panel] (zeros past n). Arguments as PackGemm.
int64_t PackedGemmSize(int n, int k, int panel);
void PackGemmWeights(const float* w, int ld, bool transposed, int n, int k, const float* bias,
                     float scale, int panel, float* packed);

// The fastest kernels this CPU supports (cpu::BestIsa(), model/common/
// cpu_features.h: chosen once, thread-safe; WFM_SIMD=generic|avx2|avx512f|amx
// caps the choice).
const FloatKernels& BestFloatKernels();
// Kernels for an ISA by name, or nullptr when the CPU lacks it.
const FloatKernels* FloatKernelsFor(const char* isa);

namespace internal {
extern const FloatKernels kGenericKernels;
extern const FloatKernels kAvx2Kernels;
extern const FloatKernels kAvx512Kernels;
// The avx512f table with the AMX products (nn_kernels_amx.cc).
const FloatKernels& AmxKernels();
int64_t AmxPackedGemmFloats(int n, int k);
void AmxPackGemm(const float* w, int ld, bool transposed, int n, int k, const float* bias,
                 float scale, float* packed);
void AmxPackedGemm(const float* x, int ldx, int rows, int k, const float* packed, int n,
                   GemmEpilogue epilogue, const float* residual, int ldr, float* y, int ldy);
}  // namespace internal

}  // namespace wfm::model::nn::kernel

#endif  // WFM_MODEL_NN_NN_KERNELS_H_
