// Random symmetric positive definite matrices and error measures shared by the
// model/gaussian tests. Every draw takes an explicit generator.
#ifndef WFM_TESTS_MODEL_GAUSSIAN_GAUSSIAN_TEST_UTIL_H_
#define WFM_TESTS_MODEL_GAUSSIAN_GAUSSIAN_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace wfm::model::gaussian::test_util {

inline at::Generator MakeGenerator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

inline at::TensorOptions F64() { return at::TensorOptions().dtype(at::kDouble); }

// Random rotations [B,d,d] (Q of a QR factorisation of a Gaussian matrix).
inline at::Tensor RandomRotation(int64_t batch, int64_t d, at::Generator& gen) {
  const at::Tensor g = at::randn({batch, d, d}, gen, F64());
  return std::get<0>(at::linalg_qr(g));
}

// Q diag(λ) Qᵀ for eigenvalues λ [B,d] and rotations Q [B,d,d].
inline at::Tensor Compose(const at::Tensor& q, const at::Tensor& lambda) {
  const at::Tensor s = at::matmul(q * lambda.unsqueeze(-2), q.transpose(-1, -2));
  return 0.5 * (s + s.transpose(-1, -2));
}

// SPD matrices [B,d,d] (float64) with eigenvalues log-uniform in
// [1/sqrt(cond), sqrt(cond)] around scale: condition number <= cond.
inline at::Tensor RandomSpd(int64_t batch, int64_t d, at::Generator& gen, double cond = 10.0,
                            double scale = 1.0) {
  const double half = 0.5 * std::log(cond);
  const at::Tensor u = at::rand({batch, d}, gen, F64());
  const at::Tensor lambda = scale * at::exp((2.0 * u - 1.0) * half);
  return Compose(RandomRotation(batch, d, gen), lambda);
}

// Wishart matrices L Lᵀ / k, L ~ N(0,1)^{d×k}, k = 5d: the trainer's noise
// covariances (float64).
inline at::Tensor RandomWishart(int64_t batch, int64_t d, at::Generator& gen) {
  const at::Tensor l = at::randn({batch, d, 5 * d}, gen, F64());
  const at::Tensor s = at::matmul(l, l.transpose(-1, -2)) / (5.0 * d);
  return 0.5 * (s + s.transpose(-1, -2));
}

inline at::Tensor RandomMeans(int64_t batch, int64_t d, at::Generator& gen, double scale = 1.0) {
  return scale * at::randn({batch, d}, gen, F64());
}

inline double MaxAbs(const at::Tensor& t) {
  return t.numel() == 0 ? 0.0 : t.abs().max().item<double>();
}

// max |a - b| / max(max |b|, 1e-300): the error of a relative to reference b.
inline double RelError(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kDouble);
  const at::Tensor bd = b.to(at::kDouble);
  return MaxAbs(ad - bd) / std::max(MaxAbs(bd), 1e-300);
}

// The same, per batch item (leading dimension), worst item.
inline double WorstItemRelError(const at::Tensor& a, const at::Tensor& b) {
  double worst = 0.0;
  for (int64_t i = 0; i < a.size(0); ++i) worst = std::max(worst, RelError(a[i], b[i]));
  return worst;
}

inline at::Tensor Eye(int64_t batch, int64_t d) {
  return at::eye(d, F64()).expand({batch, d, d}).clone();
}

}  // namespace wfm::model::gaussian::test_util

#endif  // WFM_TESTS_MODEL_GAUSSIAN_GAUSSIAN_TEST_UTIL_H_
