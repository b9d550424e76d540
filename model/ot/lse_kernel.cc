#include "model/ot/lse_kernel.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace wfm::model::ot::kernel {
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

const FloatKernels& BestFloatKernels() {
  static const FloatKernels& best = ChooseBest();
  return best;
}

const FloatKernels& GenericFloatKernels() { return internal::kGenericKernels; }

const FloatKernels* FloatKernelsFor(const char* isa) {
  if (!CpuHas(isa)) return nullptr;
  if (std::strcmp(isa, "avx512f") == 0) return &internal::kAvx512Kernels;
  if (std::strcmp(isa, "avx2") == 0) return &internal::kAvx2Kernels;
  return &internal::kGenericKernels;
}

void LseRowsDouble(const double* mat, int rows, int stride, const double* w,
                   const double* log_marginal, double* out) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < rows; ++i) {
    const double* row = mat + static_cast<std::ptrdiff_t>(i) * stride;
    double mx = kNegInf;
    for (int j = 0; j < stride; ++j) mx = std::fmax(mx, row[j] + w[j]);
    if (!(mx > kNegInf)) {
      out[i] = std::numeric_limits<double>::infinity();
      continue;
    }
    double s = 0.0;
    for (int j = 0; j < stride; ++j) s += std::exp(row[j] + w[j] - mx);
    out[i] = log_marginal[i] - (mx + std::log(s));
  }
}

void GibbsKernelDouble(const double* logk, int rows, int stride, const double* u,
                       const double* v, double* out) {
  for (int i = 0; i < rows; ++i) {
    const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(i) * stride;
    for (int j = 0; j < stride; ++j) {
      const double z = logk[o + j] + u[i] + v[j];
      out[o + j] = z < -700.0 ? 0.0 : std::exp(z);
    }
  }
}

void ColumnSumsDouble(const double* mat, int rows, int stride, const double* s, double* out) {
  for (int j = 0; j < stride; ++j) out[j] = 0.0;
  for (int i = 0; i < rows; ++i) {
    const double* row = mat + static_cast<std::ptrdiff_t>(i) * stride;
    for (int j = 0; j < stride; ++j) out[j] += row[j] * s[i];
  }
}

void RowDotsDouble(const double* mat, int rows, int stride, const double* t, double* out) {
  for (int i = 0; i < rows; ++i) {
    const double* row = mat + static_cast<std::ptrdiff_t>(i) * stride;
    double acc = 0.0;
    for (int j = 0; j < stride; ++j) acc += row[j] * t[j];
    out[i] = acc;
  }
}

}  // namespace wfm::model::ot::kernel
