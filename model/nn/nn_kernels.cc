#include "model/nn/nn_kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace wfm::model::nn::kernel {
namespace {

bool CpuHas(const char* isa) {
  __builtin_cpu_init();
  if (std::strcmp(isa, "generic") == 0) return true;
  if (std::strcmp(isa, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  if (std::strcmp(isa, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
  return false;
}

const FloatKernels& ChooseBest() {
  const char* cap = std::getenv("WFM_SIMD");
  const bool allow_avx512 = cap == nullptr || std::strcmp(cap, "avx512f") == 0;
  const bool allow_avx2 = allow_avx512 || std::strcmp(cap, "avx2") == 0;
  if (allow_avx512 && CpuHas("avx512f")) return internal::kAvx512Kernels;
  if (allow_avx2 && CpuHas("avx2")) return internal::kAvx2Kernels;
  return internal::kGenericKernels;
}

}  // namespace

DropoutStream MakeDropoutStream(double rate, std::uint64_t seed) {
  DropoutStream s;
  s.seed_lo = static_cast<std::uint32_t>(seed);
  s.seed_hi = static_cast<std::uint32_t>(seed >> 32);
  const double keep = 1.0 - rate;
  s.threshold = static_cast<std::uint32_t>(std::llround(keep * 16777216.0));
  s.scale = static_cast<float>(1.0 / keep);
  return s;
}

const FloatKernels& BestFloatKernels() {
  static const FloatKernels& best = ChooseBest();
  return best;
}

const FloatKernels* FloatKernelsFor(const char* isa) {
  if (!CpuHas(isa)) return nullptr;
  if (std::strcmp(isa, "avx512f") == 0) return &internal::kAvx512Kernels;
  if (std::strcmp(isa, "avx2") == 0) return &internal::kAvx2Kernels;
  return &internal::kGenericKernels;
}

}  // namespace wfm::model::nn::kernel
