// Synthetic data families for the trainer tests.
#ifndef WFM_TESTS_MODEL_TRAIN_TRAIN_TEST_UTIL_H_
#define WFM_TESTS_MODEL_TRAIN_TRAIN_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/io/point_sets.h"

namespace wfm::testing {

// `count` 2D ellipses of 24-48 points each: random axes (a in [0.6, 1.4],
// b in [0.2, 0.6]), rotation and a small centre offset; points on the curve
// with a little noise. Labelled families: label 0 ellipses are wide (a in
// [1.2, 1.6]), label 1 round (a = b in [0.4, 0.6]).
inline model::io::PointCloudSet Ellipses(int64_t count, uint64_t seed, bool labelled = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.02);
  model::io::PointCloudSet set;
  set.dim = 2;
  set.offsets.push_back(0);
  std::vector<int64_t> labels;
  for (int64_t c = 0; c < count; ++c) {
    const int64_t n = 24 + static_cast<int64_t>(u(rng) * 25);
    double a = 0.6 + 0.8 * u(rng), b = 0.2 + 0.4 * u(rng);
    const int64_t label = c % 2;
    if (labelled) {
      if (label == 0) {
        a = 1.2 + 0.4 * u(rng);
        b = 0.2 + 0.1 * u(rng);
      } else {
        a = b = 0.4 + 0.2 * u(rng);
      }
    }
    const double rot = 2.0 * M_PI * u(rng);
    const double cx = 0.1 * (u(rng) - 0.5), cy = 0.1 * (u(rng) - 0.5);
    for (int64_t i = 0; i < n; ++i) {
      const double th = 2.0 * M_PI * u(rng);
      const double px = a * std::cos(th) + noise(rng), py = b * std::sin(th) + noise(rng);
      set.points.push_back(static_cast<float>(cx + std::cos(rot) * px - std::sin(rot) * py));
      set.points.push_back(static_cast<float>(cy + std::sin(rot) * px + std::cos(rot) * py));
    }
    set.offsets.push_back(set.offsets.back() + n);
    labels.push_back(label);
  }
  if (labelled) set.labels = model::io::Labels::FromIntegers(labels);
  return set;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_MODEL_TRAIN_TRAIN_TEST_UTIL_H_
