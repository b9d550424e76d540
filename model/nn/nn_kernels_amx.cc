// The amx table's packed products (nn_kernels.h): dense layers on the AMX
// tile unit, each float32 operand split into two bfloat16 parts and three
// bfloat16 products per term, accumulated in float32.
//
// Layout of the packed weights (floats; two bfloat16 per float past the
// biases), with n32 = n rounded up to 32, kc = ceil(k / 32):
//   n32 biases (zeros past n), then for each column tile t < n32 / 16, each
//   chunk c < kc of 32 inputs and each part (high, low): one 1 KiB tile,
//   row i (of 16) holding for the tile's 16 columns the pair of weights of
//   inputs 32c + 2i and 32c + 2i + 1 (the VNNI order TDPBF16PS reads).
// Inputs past k and columns past n are zeros.
//
// The product of a block of 32 rows × 32 columns keeps its four 16 × 16
// accumulators in tiles 0–3 over every chunk; tiles 4–7 hold the operands,
// each loaded once per chunk: x_hi·w_lo, x_hi·w_hi, then x_lo·w_hi. A row's
// outputs depend on its own inputs alone (padded rows are zeros), so the
// result does not depend on the rows computed with it.
//
// model/nn/CMakeLists.txt gives this file the AMX and AVX-512 flags; only
// the amx table (chosen when cpu::CpuSupports(Isa::kAmx)) reaches it.

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "model/nn/nn_kernels.h"

namespace wfm::model::nn::kernel::internal {
namespace {

constexpr int kTileRows = 16;
constexpr int kChunk = 32;                        // inputs per tile (bf16 pairs × 16)
constexpr int kTileHalves = kTileRows * kChunk;   // bf16 values per tile
constexpr int kBlock = 2 * kTileRows;             // rows and columns per block

int RoundUp(int v, int m) { return (v + m - 1) / m * m; }

// Float → bfloat16, rounded to nearest even (as VCVTNEPS2BF16, which also
// flushes denormals; the weights' parts are computed with the same rule).
std::uint16_t ToBf16(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7F800000u) == 0) return static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) {
    return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  }
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

float FromBf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f = 0.0f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The tile configuration: palette 1, tiles 0–7 of 16 rows × 64 bytes.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

TileConfig MakeTileConfig() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.bytes_per_row[t] = 64;
    c.rows[t] = kTileRows;
  }
  return c;
}

// The inputs' parts, tile by tile: [row tile][chunk][high, low][16 × 32].
// Rows past `rows` and inputs past k are zeros.
void SplitInputs(const float* x, int ldx, int rows, int k, int row_tiles, int kc,
                 std::uint16_t* parts) {
  for (int r = 0; r < row_tiles * kTileRows; ++r) {
    const bool real = r < rows;
    const float* xr = real ? x + static_cast<std::ptrdiff_t>(r) * ldx : x;
    for (int c = 0; c < kc; ++c) {
      std::uint16_t* hi = parts +
                          (static_cast<std::ptrdiff_t>(r / kTileRows) * kc + c) * 2 * kTileHalves +
                          (r % kTileRows) * kChunk;
      std::uint16_t* lo = hi + kTileHalves;
      for (int half = 0; half < 2; ++half) {
        const int first = c * kChunk + half * 16;
        int count = real ? k - first : 0;
        count = count < 0 ? 0 : (count > 16 ? 16 : count);
        const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(mask, count > 0 ? xr + first : x);
        const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
        // The high part back in float32 (the maskz forms: GCC 12 warns on
        // the unmasked ones' undefined pass-through operand).
        const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, h);
        const __m512 back = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
        const __m256i l = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + half * 16), h);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + half * 16), l);
      }
    }
  }
}

// Bias, activation and residual for one block's valid rows and columns,
// from its accumulators `acc` (32 × 32, row stride 32).
void Finish(const float* acc, int rows, int cols, const float* bias, GemmEpilogue epilogue,
            const float* residual, int ldr, float* y, int ldy) {
  for (int half = 0; half * 16 < cols; ++half) {
    const int count = cols - half * 16 < 16 ? cols - half * 16 : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1u);
    const __m512 b = _mm512_maskz_loadu_ps(mask, bias + half * 16);
    for (int r = 0; r < rows; ++r) {
      __m512 v = _mm512_add_ps(_mm512_loadu_ps(acc + r * kBlock + half * 16), b);
      if (epilogue == GemmEpilogue::kLeakyRelu) {
        const __mmask16 negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ);
        v = _mm512_mask_mul_ps(v, negative, v, _mm512_set1_ps(kLeakySlope));
      } else if (epilogue == GemmEpilogue::kAddResidual) {
        v = _mm512_add_ps(
            v, _mm512_maskz_loadu_ps(mask, residual + static_cast<std::ptrdiff_t>(r) * ldr +
                                               half * 16));
      }
      _mm512_mask_storeu_ps(y + static_cast<std::ptrdiff_t>(r) * ldy + half * 16, mask, v);
    }
  }
}

// The block's accumulators (tiles 0–3: rows 0–15 and 16–31 × columns 0–15
// and 16–31) += the input tiles 4 (rows 0–15) and 5 (rows 16–31) × the
// weight tiles 6 (columns 0–15) and 7 (columns 16–31).
inline void MultiplyBlock() {
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
}

}  // namespace

int64_t AmxPackedGemmFloats(int n, int k) {
  const int64_t n32 = RoundUp(n, kBlock);
  const int64_t kc = (k + kChunk - 1) / kChunk;
  return n32 + n32 / kTileRows * kc * 2 * kTileHalves / 2;
}

void AmxPackGemm(const float* w, int ld, bool transposed, int n, int k, const float* bias,
                 float scale, float* packed) {
  const int n32 = RoundUp(n, kBlock);
  const int kc = (k + kChunk - 1) / kChunk;
  for (int c = 0; c < n32; ++c) packed[c] = c < n && bias != nullptr ? bias[c] : 0.0f;
  // The tiles are built as bfloat16 values and copied into the float buffer
  // (only the tile loads read them back, as bytes).
  std::vector<std::uint16_t> tiles(static_cast<std::size_t>(n32 / kTileRows) * kc * 2 * kTileHalves,
                                   0);
  for (int c = 0; c < n; ++c) {
    for (int kk = 0; kk < k; ++kk) {
      const float v = (transposed ? w[static_cast<std::ptrdiff_t>(kk) * ld + c]
                                  : w[static_cast<std::ptrdiff_t>(c) * ld + kk]) *
                      scale;
      const std::uint16_t hi = ToBf16(v);
      const std::uint16_t lo = ToBf16(v - FromBf16(hi));
      std::uint16_t* tile = tiles.data() + (static_cast<std::ptrdiff_t>(c / kTileRows) * kc +
                                            kk / kChunk) *
                                               2 * kTileHalves;
      const int at = (kk % kChunk) / 2 * kChunk + (c % kTileRows) * 2 + kk % 2;
      tile[at] = hi;
      tile[kTileHalves + at] = lo;
    }
  }
  std::memcpy(packed + n32, tiles.data(), tiles.size() * sizeof(std::uint16_t));
}

void AmxPackedGemm(const float* x, int ldx, int rows, int k, const float* packed, int n,
                   GemmEpilogue epilogue, const float* residual, int ldr, float* y, int ldy) {
  if (rows <= 0 || n <= 0) return;
  const int n32 = RoundUp(n, kBlock);
  const int kc = (k + kChunk - 1) / kChunk;
  const int row_tiles = RoundUp(rows, kBlock) / kTileRows;
  const float* bias = packed;
  const auto* w = reinterpret_cast<const std::uint16_t*>(packed + n32);
  // Per thread: the inputs' parts and one block's accumulators.
  thread_local std::vector<std::uint16_t> parts;
  const std::size_t need = static_cast<std::size_t>(row_tiles) * kc * 2 * kTileHalves;
  if (parts.size() < need) parts.resize(need);
  SplitInputs(x, ldx, rows, k, row_tiles, kc, parts.data());
  alignas(64) float acc[kBlock * kBlock];

  static const TileConfig config = MakeTileConfig();
  _tile_loadconfig(&config);
  const auto tile_x = [&](int t, int c, int part) {
    return parts.data() + (static_cast<std::ptrdiff_t>(t) * kc + c) * 2 * kTileHalves +
           part * kTileHalves;
  };
  const auto tile_w = [&](int t, int c, int part) {
    return w + (static_cast<std::ptrdiff_t>(t) * kc + c) * 2 * kTileHalves + part * kTileHalves;
  };
  constexpr int kStride = 64;  // bytes per tile row
  for (int j = 0; j < n32 / kTileRows; j += 2) {
    for (int i = 0; i < row_tiles; i += 2) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int c = 0; c < kc; ++c) {
        _tile_loadd(4, tile_x(i, c, 0), kStride);
        _tile_loadd(5, tile_x(i + 1, c, 0), kStride);
        _tile_loadd(6, tile_w(j, c, 1), kStride);
        _tile_loadd(7, tile_w(j + 1, c, 1), kStride);
        MultiplyBlock();
        _tile_loadd(6, tile_w(j, c, 0), kStride);
        _tile_loadd(7, tile_w(j + 1, c, 0), kStride);
        MultiplyBlock();
        _tile_loadd(4, tile_x(i, c, 1), kStride);
        _tile_loadd(5, tile_x(i + 1, c, 1), kStride);
        MultiplyBlock();
      }
      constexpr int kAccStride = kBlock * sizeof(float);
      _tile_stored(0, acc, kAccStride);
      _tile_stored(1, acc + kTileRows, kAccStride);
      _tile_stored(2, acc + kTileRows * kBlock, kAccStride);
      _tile_stored(3, acc + kTileRows * kBlock + kTileRows, kAccStride);
      const int r0 = i * kTileRows, c0 = j * kTileRows;
      // r0 < rows: the row tiles end within the last block of real rows.
      const int block_rows = rows - r0 < kBlock ? rows - r0 : kBlock;
      Finish(acc, block_rows, n - c0 < kBlock ? n - c0 : kBlock, bias + c0, epilogue,
             residual == nullptr ? nullptr : residual + static_cast<std::ptrdiff_t>(r0) * ldr + c0,
             ldr, y + static_cast<std::ptrdiff_t>(r0) * ldy + c0, ldy);
    }
  }
  _tile_release();
}

}  // namespace wfm::model::nn::kernel::internal
