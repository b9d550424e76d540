#include "model/nn/nn_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "model/common/cpu_features.h"

namespace wfm::model::nn::kernel {

DropoutStream MakeDropoutStream(double rate, std::uint64_t seed) {
  DropoutStream s;
  s.seed_lo = static_cast<std::uint32_t>(seed);
  s.seed_hi = static_cast<std::uint32_t>(seed >> 32);
  const double keep = 1.0 - rate;
  s.threshold = static_cast<std::uint32_t>(std::llround(keep * 16777216.0));
  s.scale = static_cast<float>(1.0 / keep);
  return s;
}

int64_t PackedGemmSize(int n, int k, int panel) {
  const int64_t panels = (static_cast<int64_t>(n) + panel - 1) / panel;
  return panels * (static_cast<int64_t>(k) + 1) * panel;
}

void PackGemmWeights(const float* w, int ld, bool transposed, int n, int k, const float* bias,
                     float scale, int panel, float* packed) {
  const int panels = (n + panel - 1) / panel;
  for (int p = 0; p < panels; ++p) {
    float* out = packed + static_cast<std::ptrdiff_t>(p) * (k + 1) * panel;
    const int c0 = p * panel;
    const int cols = std::min(panel, n - c0);
    for (int c = 0; c < panel; ++c) out[c] = c < cols && bias != nullptr ? bias[c0 + c] : 0.0f;
    out += panel;
    for (int kk = 0; kk < k; ++kk, out += panel) {
      for (int c = 0; c < panel; ++c) {
        if (c >= cols) {
          out[c] = 0.0f;
        } else if (transposed) {
          out[c] = w[static_cast<std::ptrdiff_t>(kk) * ld + c0 + c] * scale;
        } else {
          out[c] = w[static_cast<std::ptrdiff_t>(c0 + c) * ld + kk] * scale;
        }
      }
    }
  }
}

namespace internal {

const FloatKernels& AmxKernels() {
  static const FloatKernels table = [] {
    FloatKernels t = kAvx512Kernels;
    t.isa = "amx";
    t.packed_gemm_size = &AmxPackedGemmFloats;
    t.pack_gemm = &AmxPackGemm;
    t.packed_gemm = &AmxPackedGemm;
    return t;
  }();
  return table;
}

}  // namespace internal

const FloatKernels& BestFloatKernels() {
  return cpu::SelectKernels(cpu::BestIsa(), internal::kGenericKernels, internal::kAvx2Kernels,
                            internal::kAvx512Kernels, &internal::AmxKernels());
}

const FloatKernels* FloatKernelsFor(const char* isa) {
  return cpu::KernelsNamed(isa, internal::kGenericKernels, internal::kAvx2Kernels,
                           internal::kAvx512Kernels, &internal::AmxKernels());
}

}  // namespace wfm::model::nn::kernel
