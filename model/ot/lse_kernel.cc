#include "model/ot/lse_kernel.h"

#include <cmath>
#include <limits>

#include "model/common/cpu_features.h"

namespace wfm::model::ot::kernel {

const FloatKernels& BestFloatKernels() {
  return cpu::SelectKernels(cpu::BestIsa(), internal::kGenericKernels, internal::kAvx2Kernels,
                            internal::kAvx512Kernels);
}

const FloatKernels& GenericFloatKernels() { return internal::kGenericKernels; }

const FloatKernels* FloatKernelsFor(const char* isa) {
  return cpu::KernelsNamed(isa, internal::kGenericKernels, internal::kAvx2Kernels,
                           internal::kAvx512Kernels);
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
