// Synthetic Gaussian families for the Gaussian trainer and sampler tests.
#ifndef WFM_TESTS_MODEL_TRAIN_GAUSSIAN_FAMILY_H_
#define WFM_TESTS_MODEL_TRAIN_GAUSSIAN_FAMILY_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/io/point_sets.h"

namespace wfm::testing {

// `count` Gaussians in R^d indexed by an angle θ ~ U(lo, hi): the mean lies
// on a circle of radius 2 in the first coordinate plane, (2cos θ, 2sin θ,
// 0, ...), and the covariance rotates and stretches with θ:
//   S(θ) = Q(θ) diag(λ(θ)) Q(θ)ᵀ,
// where Q(θ) rotates every coordinate plane (0,1), (2,3), ... by θ and
//   λ_0 = 0.30 + 0.20 cos θ, λ_1 = 0.04, λ_k = 0.02 + 0.02 (1 + sin(θ + k)) (k >= 2).
// For d = 2 the covariance's long axis turns with the mean's angle and
// stretches from 0.1 to 0.5. A little jitter on θ per coordinate keeps the
// family from being exactly one-dimensional. Labelled: label "left" for
// θ in the left half (cos θ < 0), "right" otherwise.
inline model::io::GaussianSet CircleFamily(int64_t count, int64_t d, uint64_t seed,
                                           double lo = 0.0, double hi = 2.0 * M_PI,
                                           bool labelled = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> angle(lo, hi);
  std::normal_distribution<double> jitter(0.0, 0.02);
  model::io::GaussianSet set;
  set.dim = d;
  std::vector<std::string> labels;
  for (int64_t c = 0; c < count; ++c) {
    const double th = angle(rng);
    std::vector<double> mean(d, 0.0);
    mean[0] = 2.0 * std::cos(th) + jitter(rng);
    if (d > 1) mean[1] = 2.0 * std::sin(th) + jitter(rng);
    std::vector<double> lambda(d);
    for (int64_t k = 0; k < d; ++k) {
      lambda[k] = k == 0 ? 0.30 + 0.20 * std::cos(th)
                         : (k == 1 ? 0.04 : 0.02 + 0.02 * (1.0 + std::sin(th + k)));
    }
    // Q: block-diagonal rotations by θ (the last coordinate of odd d stays).
    std::vector<double> q(d * d, 0.0);
    for (int64_t k = 0; k < d; ++k) q[k * d + k] = 1.0;
    for (int64_t k = 0; k + 1 < d; k += 2) {
      q[k * d + k] = std::cos(th);
      q[k * d + k + 1] = -std::sin(th);
      q[(k + 1) * d + k] = std::sin(th);
      q[(k + 1) * d + k + 1] = std::cos(th);
    }
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t b = 0; b < d; ++b) {
        double v = 0.0;
        for (int64_t k = 0; k < d; ++k) v += q[a * d + k] * lambda[k] * q[b * d + k];
        set.covs.push_back(v);
      }
    }
    set.means.insert(set.means.end(), mean.begin(), mean.end());
    labels.push_back(std::cos(th) < 0 ? "left" : "right");
  }
  if (labelled) set.labels = model::io::Labels::FromStrings(labels);
  return set;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_MODEL_TRAIN_GAUSSIAN_FAMILY_H_
