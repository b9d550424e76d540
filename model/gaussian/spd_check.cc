#include "model/gaussian/spd_check.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace wfm::model::gaussian {

SpdVerdict CheckSpd(const double* s, int64_t d) {
  using Kind = SpdVerdict::Kind;
  double scale = 0.0;
  double largest_diagonal = 0.0;
  for (int64_t i = 0; i < d * d; ++i) {
    if (!std::isfinite(s[i])) return {Kind::kNotFinite, i / d, i % d};
    scale = std::max(scale, std::abs(s[i]));
  }
  for (int64_t i = 0; i < d; ++i) {
    largest_diagonal = std::max(largest_diagonal, s[i * d + i]);
    for (int64_t j = i + 1; j < d; ++j) {
      if (std::abs(s[i * d + j] - s[j * d + i]) > kSpdSymmetryTolerance * scale) {
        return {Kind::kNotSymmetric, i, j};
      }
    }
  }
  if (!(largest_diagonal > 0.0)) return {Kind::kNotPositiveDefinite, 0, 0};
  const double floor = kSpdPivotTolerance * largest_diagonal;
  // Cholesky S = L L^T on the lower triangle.
  std::vector<double> l(static_cast<size_t>(d * d), 0.0);
  for (int64_t j = 0; j < d; ++j) {
    double pivot = s[j * d + j];
    for (int64_t k = 0; k < j; ++k) pivot -= l[j * d + k] * l[j * d + k];
    if (!(pivot > floor)) return {Kind::kNotPositiveDefinite, j, j};
    const double ljj = std::sqrt(pivot);
    l[j * d + j] = ljj;
    for (int64_t i = j + 1; i < d; ++i) {
      double v = s[i * d + j];
      for (int64_t k = 0; k < j; ++k) v -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = v / ljj;
    }
  }
  return {};
}

}  // namespace wfm::model::gaussian
