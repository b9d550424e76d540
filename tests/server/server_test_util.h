// Shared pieces of the server suites: small synthetic data sets of each
// kind and tiny training configurations (no gRPC here), with the harness's
// temporary folders and HTTP helpers (tests/testing).
#ifndef WFM_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define WFM_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/point_sets.h"
#include "tests/testing/http.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tiny_network.h"

namespace wfm::testing {

// `count` 2D ellipses of `min_points`..`max_points` points; with labels,
// "wide" (even) and "round" (odd) ellipses.
inline model::io::PointCloudSet Ellipses(int64_t count, uint64_t seed, bool labelled = false,
                                         int64_t min_points = 12, int64_t max_points = 20) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  model::io::PointCloudSet set;
  set.dim = 2;
  set.offsets.push_back(0);
  std::vector<std::string> labels;
  for (int64_t c = 0; c < count; ++c) {
    const int64_t n = std::min(
        max_points,
        min_points + static_cast<int64_t>(u(rng) * static_cast<double>(max_points - min_points + 1)));
    const bool wide = c % 2 == 0;
    const double a = wide ? 1.2 + 0.4 * u(rng) : 0.5, b = wide ? 0.3 : 0.5;
    const double rot = 2.0 * M_PI * u(rng);
    for (int64_t i = 0; i < n; ++i) {
      const double th = 2.0 * M_PI * u(rng);
      const double px = a * std::cos(th), py = b * std::sin(th);
      set.points.push_back(static_cast<float>(std::cos(rot) * px - std::sin(rot) * py));
      set.points.push_back(static_cast<float>(std::sin(rot) * px + std::cos(rot) * py));
    }
    set.offsets.push_back(set.offsets.back() + n);
    labels.push_back(wide ? "wide" : "round");
  }
  if (labelled) set.labels = model::io::Labels::FromStrings(labels);
  return set;
}

// `count` Gaussians in R^dim: means ~ N(0, 1), covariances A Aᵀ + 0.1 I with
// A ~ N(0, 0.3²); labels "a" / "b" alternating.
inline model::io::GaussianSet RandomGaussians(int64_t count, int64_t dim, uint64_t seed,
                                              bool labelled = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  model::io::GaussianSet set;
  set.dim = dim;
  std::vector<std::string> labels;
  for (int64_t g = 0; g < count; ++g) {
    for (int64_t i = 0; i < dim; ++i) set.means.push_back(n01(rng) + (g % 2 == 0 ? 1.0 : -1.0));
    std::vector<double> a(dim * dim);
    for (double& v : a) v = 0.3 * n01(rng);
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        double s = i == j ? 0.1 : 0.0;
        for (int64_t k = 0; k < dim; ++k) s += a[i * dim + k] * a[j * dim + k];
        set.covs.push_back(s);
      }
    }
    labels.push_back(g % 2 == 0 ? "a" : "b");
  }
  if (labelled) set.labels = model::io::Labels::FromStrings(labels);
  return set;
}

// Spatial cells: `per_sample` cells in each of `samples` sections, at random
// coordinates in [0, 10]², features [dim] smooth in the coordinates plus
// noise, labels "left" / "right" by x, sample ids "s0", "s1", ...
struct Cells {
  int64_t dim = 0;
  std::vector<float> features;
  std::vector<float> coords;
  std::vector<std::string> sample_ids;
  std::vector<std::string> labels;
  int64_t size() const { return static_cast<int64_t>(sample_ids.size()); }
};

inline Cells RandomCells(int64_t samples, int64_t per_sample, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  std::normal_distribution<double> noise(0.0, 0.1);
  Cells cells;
  cells.dim = dim;
  for (int64_t s = 0; s < samples; ++s) {
    for (int64_t i = 0; i < per_sample; ++i) {
      const double x = u(rng), y = u(rng);
      cells.coords.push_back(static_cast<float>(x));
      cells.coords.push_back(static_cast<float>(y));
      for (int64_t f = 0; f < dim; ++f) {
        cells.features.push_back(
            static_cast<float>(std::sin(0.3 * x * (f + 1)) + std::cos(0.2 * y) + noise(rng)));
      }
      cells.sample_ids.push_back("s" + std::to_string(s));
      cells.labels.push_back(x < 5.0 ? "left" : "right");
    }
  }
  return cells;
}

// Small, fast training configurations (width 16, one layer).
inline model::PointCloudTrainConfig TinyPointCloudConfig(int64_t steps = 30, uint64_t seed = 1) {
  model::PointCloudTrainConfig c;
  c.network = TinyNetwork();
  c.network.dropout = 0.0;
  c.optimizer.steps = steps;
  c.optimizer.batch_size = 4;
  c.optimizer.learning_rate = 1e-3;
  c.optimizer.seed = seed;
  c.sinkhorn_iterations = 20;
  c.minibatch_ot = false;
  return c;
}

inline model::GaussianTrainConfig TinyGaussianConfig(int64_t steps = 30, uint64_t seed = 1) {
  model::GaussianTrainConfig c;
  c.network = TinyNetwork();
  c.optimizer.steps = steps;
  c.optimizer.batch_size = 8;
  c.optimizer.learning_rate = 1e-3;
  c.optimizer.seed = seed;
  return c;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_SERVER_SERVER_TEST_UTIL_H_
