// Spatial niches against a brute-force k-nearest-neighbour search, tie
// handling, small samples, and the gathered clouds and Gaussian states.
#include "model/data/niches.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace wfm::model::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The reference: every other cell of the same sample sorted by (squared
// distance in double precision, index), the first k kept.
std::vector<std::vector<int64_t>> BruteForce(const std::vector<float>& coords, int dim,
                                             const std::vector<std::string>& samples, int64_t k) {
  const int64_t n = static_cast<int64_t>(coords.size()) / dim;
  std::vector<std::vector<int64_t>> out(n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::pair<double, int64_t>> candidates;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i || (!samples.empty() && samples[j] != samples[i])) continue;
      double d2 = 0;
      for (int d = 0; d < dim; ++d) {
        const double diff = static_cast<double>(coords[i * dim + d]) - coords[j * dim + d];
        d2 += diff * diff;
      }
      candidates.emplace_back(d2, j);
    }
    std::sort(candidates.begin(), candidates.end());
    for (int64_t r = 0; r < std::min<int64_t>(k, candidates.size()); ++r) {
      out[i].push_back(candidates[r].second);
    }
  }
  return out;
}

void ExpectEqualsBruteForce(const Niches& niches, const std::vector<float>& coords, int dim,
                            const std::vector<std::string>& samples, int64_t k) {
  const auto want = BruteForce(coords, dim, samples, k);
  ASSERT_EQ(niches.num_cells(), static_cast<int64_t>(want.size()));
  for (int64_t i = 0; i < niches.num_cells(); ++i) {
    const absl::Span<const int64_t> got = niches.of(i);
    ASSERT_EQ(std::vector<int64_t>(got.begin(), got.end()), want[i]) << "cell " << i;
  }
}

TEST(BuildNichesTest, MatchesBruteForceWithinEachSample) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uniform(0.0f, 100.0f);
  const int64_t n = 1500;
  std::vector<float> coords(2 * n);
  std::vector<std::string> samples(n);
  for (int64_t i = 0; i < n; ++i) {
    coords[2 * i] = uniform(rng);
    coords[2 * i + 1] = uniform(rng);
    // Interleaved samples on the same coordinate range: a search that
    // ignored samples would pick cross-sample neighbours.
    samples[i] = (rng() % 3 == 0) ? "section_b" : "section_a";
  }
  for (const int threads : {1, 2}) {
    NicheOptions options;
    options.k = 12;
    options.num_threads = threads;
    auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, samples, options);
    ASSERT_TRUE(niches.ok()) << niches.status();
    EXPECT_EQ(niches->k, 12);
    ExpectEqualsBruteForce(*niches, coords, 2, samples, 12);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(niches->of(i).size(), 12u);
      for (int64_t j : niches->of(i)) {
        ASSERT_NE(j, i) << "the centre is not part of its niche";
        ASSERT_EQ(samples[j], samples[i]) << "cross-sample neighbour of cell " << i;
      }
    }
  }
}

TEST(BuildNichesTest, ThreeDimensionalCoordinatesAndIntegerSamples) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 400;
  std::vector<float> coords(3 * n);
  for (float& c : coords) c = normal(rng);
  std::vector<int64_t> ids(n);
  std::vector<std::string> names(n);
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = (i % 2 == 0) ? 7 : -3;
    names[i] = std::to_string(ids[i]);
  }
  NicheOptions options;
  options.k = 5;
  auto niches = BuildNiches(absl::MakeConstSpan(coords), 3, absl::MakeConstSpan(ids), options);
  ASSERT_TRUE(niches.ok()) << niches.status();
  ExpectEqualsBruteForce(*niches, coords, 3, names, 5);
}

TEST(BuildNichesTest, TiesGoToTheSmallerIndex) {
  // A centre with four neighbours at distance 1 and one at distance 2.
  const std::vector<float> coords = {0, 0, 0, 1, 1, 0, -1, 0, 0, -1, 2, 0};
  NicheOptions options;
  options.k = 2;
  auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  ASSERT_TRUE(niches.ok()) << niches.status();
  EXPECT_THAT(niches->of(0), ElementsAre(1, 2));
  options.k = 5;
  niches = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  ASSERT_TRUE(niches.ok());
  EXPECT_THAT(niches->of(0), ElementsAre(1, 2, 3, 4, 5));
  // Cell 5 at (2, 0): cell 2 at distance 1, then cell 0 at 2, then the
  // cells at sqrt(5) (1 and 4) before cell 3 at distance 3.
  EXPECT_THAT(niches->of(5), ElementsAre(2, 0, 1, 4, 3));
}

TEST(BuildNichesTest, IntegerGridWithManyTiesMatchesBruteForce) {
  std::vector<float> coords;
  for (int x = 0; x < 15; ++x) {
    for (int y = 0; y < 12; ++y) {
      coords.push_back(static_cast<float>(x));
      coords.push_back(static_cast<float>(y));
    }
  }
  // Duplicated points: distance 0 ties, including with the centre itself.
  for (int r = 0; r < 4; ++r) {
    coords.push_back(3.0f);
    coords.push_back(4.0f);
  }
  for (const int64_t k : {1, 4, 7, 13}) {
    NicheOptions options;
    options.k = k;
    auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
    ASSERT_TRUE(niches.ok()) << niches.status();
    ExpectEqualsBruteForce(*niches, coords, 2, {}, k);
  }
}

TEST(BuildNichesTest, SmallSamplesShrinkAsTheReferenceDoes) {
  // Sample "big" has 6 cells, "small" 3, "alone" 1.
  const std::vector<float> coords = {0, 0, 1,  0,  2,  0,  3,  0,  4,  0,
                                     5, 0, 10, 10, 11, 10, 12, 10, 50, 50};
  const std::vector<std::string> samples = {"big", "big",   "big",   "big",   "big",
                                            "big", "small", "small", "small", "alone"};
  NicheOptions options;
  options.k = 4;
  auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, samples, options);
  ASSERT_TRUE(niches.ok()) << niches.status();
  EXPECT_EQ(niches->of(0).size(), 4u);
  EXPECT_THAT(niches->of(6), ElementsAre(7, 8));
  EXPECT_THAT(niches->of(8), ElementsAre(7, 6));
  EXPECT_THAT(niches->of(9), IsEmpty());
  ExpectEqualsBruteForce(*niches, coords, 2, samples, 4);

  options.small_samples = SmallSamplePolicy::kError;
  auto strict = BuildNiches(absl::MakeConstSpan(coords), 2, samples, options);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(strict.status().message(), HasSubstr("has 1 cells"));
  EXPECT_THAT(strict.status().message(), HasSubstr("k + 1 = 5"));
}

TEST(BuildNichesTest, RejectsBadInput) {
  const std::vector<float> coords = {0, 0, 1, std::numeric_limits<float>::quiet_NaN(), 2, 2};
  NicheOptions options;
  options.k = 1;
  auto nan = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  EXPECT_THAT(nan.status().message(), HasSubstr("coords[1, 1] = nan"));
  const std::vector<float> fine = {0, 0, 1, 1, 2, 2};
  options.k = 0;
  EXPECT_THAT(BuildNiches(absl::MakeConstSpan(fine), 2, std::vector<std::string>(), options)
                  .status()
                  .message(),
              HasSubstr("k = 0"));
  options.k = 1;
  EXPECT_THAT(BuildNiches(absl::MakeConstSpan(fine), 2, std::vector<std::string>{"a", "b"}, options)
                  .status()
                  .message(),
              HasSubstr("sample_ids: 2 ids for 3 cells"));
}

// Cells on a line; features = (index, index^2); labels = "L<index % 2>".
struct LineData {
  std::vector<float> coords;
  std::vector<std::string> samples;
  std::vector<float> features;
  io::Labels labels;
};

LineData Line() {
  LineData d;
  std::vector<std::string> labels;
  for (int i = 0; i < 7; ++i) {
    d.coords.push_back(static_cast<float>(i * i));  // spacing grows: neighbours are unambiguous
    d.coords.push_back(0.0f);
    d.samples.push_back(i < 6 ? "s1" : "s2");  // cell 6 is alone in s2
    d.features.push_back(static_cast<float>(i));
    d.features.push_back(static_cast<float>(i * i));
    labels.push_back(i % 2 ? "odd" : "even");
  }
  d.labels = io::Labels::FromStrings(labels);
  return d;
}

TEST(GatherNicheCloudsTest, NeighbourFeaturesAndCentreLabels) {
  const LineData d = Line();
  NicheOptions options;
  options.k = 2;
  auto niches = BuildNiches(absl::MakeConstSpan(d.coords), 2, d.samples, options);
  ASSERT_TRUE(niches.ok());
  EXPECT_THAT(niches->of(0), ElementsAre(1, 2));
  EXPECT_THAT(niches->of(3), ElementsAre(2, 4));

  auto gathered = GatherNicheClouds(*niches, absl::MakeConstSpan(d.features), 2, d.labels);
  ASSERT_TRUE(gathered.ok()) << gathered.status();
  // Cell 6 (alone in its sample) has no niche and is skipped.
  EXPECT_THAT(gathered->centers, ElementsAre(0, 1, 2, 3, 4, 5));
  const io::PointCloudSet& clouds = gathered->clouds;
  EXPECT_EQ(clouds.dim, 2);
  EXPECT_THAT(clouds.offsets, ElementsAre(0, 2, 4, 6, 8, 10, 12));
  // Niche of cell 3 = cells 2 and 4: features (2, 4) and (4, 16).
  EXPECT_THAT(std::vector<float>(clouds.points.begin() + 12, clouds.points.begin() + 16),
              ElementsAre(2, 4, 4, 16));
  EXPECT_THAT(clouds.labels.strings, ElementsAre("even", "odd", "even", "odd", "even", "odd"));
  EXPECT_TRUE(io::ValidatePointCloudSet(clouds, "niches").ok());

  auto chosen = GatherNicheClouds(*niches, absl::MakeConstSpan(d.features), 2, d.labels,
                                  std::vector<int64_t>{5, 0});
  ASSERT_TRUE(chosen.ok());
  EXPECT_THAT(chosen->clouds.points, ElementsAre(4, 16, 3, 9, 1, 1, 2, 4));
  EXPECT_THAT(chosen->clouds.labels.strings, ElementsAre("odd", "even"));

  auto alone = GatherNicheClouds(*niches, absl::MakeConstSpan(d.features), 2, d.labels,
                                 std::vector<int64_t>{6});
  EXPECT_THAT(alone.status().message(), HasSubstr("cell 6 has an empty niche"));
  auto short_labels = GatherNicheClouds(*niches, absl::MakeConstSpan(d.features), 2,
                                        io::Labels::FromIntegers({1, 2}));
  EXPECT_THAT(short_labels.status().message(), HasSubstr("2 labels for 7 cells"));
  auto short_features = GatherNicheClouds(*niches, absl::MakeConstSpan(d.features).subspan(2), 2);
  EXPECT_THAT(short_features.status().message(), HasSubstr("features: 12 values"));
}

TEST(ComputeNicheGaussiansTest, SampleMeanAndCovariance) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 300, f = 3;
  std::vector<float> coords(2 * n), features(n * f);
  for (float& c : coords) c = normal(rng);
  for (float& x : features) x = normal(rng) * 2.0f + 1.0f;
  NicheOptions options;
  options.k = 9;
  auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  ASSERT_TRUE(niches.ok());
  auto states = ComputeNicheGaussians(*niches, absl::MakeConstSpan(features), f);
  ASSERT_TRUE(states.ok()) << states.status();
  const io::GaussianSet& g = states->gaussians;
  ASSERT_EQ(g.num_gaussians(), n);
  for (int64_t j = 0; j < n; ++j) {
    // Independent formula: (sum x x^T - k m m^T) / (k - 1) in long double.
    const auto members = niches->of(states->centers[j]);
    const long double k = members.size();
    for (int64_t a = 0; a < f; ++a) {
      long double sum_a = 0;
      for (int64_t c : members) sum_a += features[c * f + a];
      ASSERT_NEAR(g.means[j * f + a], static_cast<double>(sum_a / k), 1e-12);
      for (int64_t b = 0; b < f; ++b) {
        long double sum_b = 0, sum_ab = 0;
        for (int64_t c : members) {
          sum_b += features[c * f + b];
          sum_ab += static_cast<long double>(features[c * f + a]) * features[c * f + b];
        }
        const long double cov = (sum_ab - sum_a * sum_b / k) / (k - 1);
        ASSERT_NEAR(g.covs[(j * f + a) * f + b], static_cast<double>(cov), 1e-11);
      }
    }
  }
  EXPECT_TRUE(io::ValidateGaussianSet(g, "states").ok());
}

TEST(ComputeNicheGaussiansTest, DdofRidgeAndSmallNiches) {
  // One niche of the two points (0, 0) and (2, 0) (plus the centre).
  const std::vector<float> coords = {0, 0, 1, 0, 3, 0};
  const std::vector<float> features = {0, 0, 7, 7, 2, 0};
  NicheOptions options;
  options.k = 2;
  auto niches = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  ASSERT_TRUE(niches.ok());
  ASSERT_THAT(niches->of(1), ElementsAre(0, 2));
  NicheGaussianOptions gaussian;
  gaussian.ridge = 0.5;
  auto sample = ComputeNicheGaussians(*niches, absl::MakeConstSpan(features), 2, {},
                                      std::vector<int64_t>{1}, gaussian);
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_THAT(sample->gaussians.means, ElementsAre(1.0, 0.0));
  // Variance of {0, 2} with ddof 1 is 2; of {0, 0} is 0; plus the ridge.
  EXPECT_THAT(sample->gaussians.covs, ElementsAre(2.5, 0.0, 0.0, 0.5));
  gaussian.ddof = 0;
  auto population = ComputeNicheGaussians(*niches, absl::MakeConstSpan(features), 2, {},
                                          std::vector<int64_t>{1}, gaussian);
  ASSERT_TRUE(population.ok());
  EXPECT_THAT(population->gaussians.covs, ElementsAre(1.5, 0.0, 0.0, 0.5));

  options.k = 1;
  auto single = BuildNiches(absl::MakeConstSpan(coords), 2, std::vector<std::string>(), options);
  ASSERT_TRUE(single.ok());
  auto too_small = ComputeNicheGaussians(*single, absl::MakeConstSpan(features), 2);
  EXPECT_EQ(too_small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_small.status().message(), HasSubstr("a niche of 1 cells"));
}

}  // namespace
}  // namespace wfm::model::data
