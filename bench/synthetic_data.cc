#include "bench/synthetic_data.h"

#include <cmath>
#include <random>
#include <vector>

namespace wfm::bench {
namespace {

// A random rotation, row-major d×d with rows q_i: Gram-Schmidt on a Gaussian
// matrix drawn with z (the caller's, so that its stream goes on unbroken).
std::vector<double> RandomRotation(int64_t d, std::mt19937_64& rng,
                                   std::normal_distribution<double>& z) {
  std::vector<double> q(d * d);
  for (double& v : q) v = z(rng);
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += q[i * d + k] * q[j * d + k];
      for (int64_t k = 0; k < d; ++k) q[i * d + k] -= dot * q[j * d + k];
    }
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += q[i * d + k] * q[i * d + k];
    for (int64_t k = 0; k < d; ++k) q[i * d + k] /= std::sqrt(norm);
  }
  return q;
}

}  // namespace

model::io::PointCloudSet SyntheticClouds(int64_t count, int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), s(0.2, 1.0);
  std::normal_distribution<double> z(0.0, 1.0);
  model::io::PointCloudSet set;
  set.dim = d;
  set.offsets.push_back(0);
  for (int64_t c = 0; c < count; ++c) {
    const std::vector<double> q = RandomRotation(d, rng, z);
    std::vector<double> mean(d), scale(d);
    for (double& v : mean) v = u(rng);
    for (double& v : scale) v = s(rng);
    for (int64_t p = 0; p < n; ++p) {
      std::vector<double> e(d);
      for (double& v : e) v = z(rng);
      for (int64_t k = 0; k < d; ++k) {
        double x = mean[k];
        for (int64_t j = 0; j < d; ++j) x += q[j * d + k] * scale[j] * e[j];
        set.points.push_back(static_cast<float>(x));
      }
    }
    set.offsets.push_back(set.offsets.back() + n);
  }
  return set;
}

model::io::GaussianSet SyntheticGaussians(int64_t count, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), s(0.2, 1.0);
  std::normal_distribution<double> z(0.0, 1.0);
  model::io::GaussianSet set;
  set.dim = d;
  for (int64_t c = 0; c < count; ++c) {
    for (int64_t k = 0; k < d; ++k) set.means.push_back(u(rng));
    const std::vector<double> q = RandomRotation(d, rng, z);
    std::vector<double> scale(d);
    for (double& v : scale) v = s(rng);
    // cov = Σ_j s_j² q_j q_jᵀ.
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t b = 0; b < d; ++b) {
        double v = 0;
        for (int64_t j = 0; j < d; ++j) v += scale[j] * scale[j] * q[j * d + a] * q[j * d + b];
        set.covs.push_back(v);
      }
    }
  }
  return set;
}

}  // namespace wfm::bench
