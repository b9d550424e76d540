#include "repository/training_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/server_test_util.h"

namespace wfm::repository {
namespace {

using ::testing::ElementsAre;

TEST(HoldoutTest, IsADeterministicSortedSubsetOfTheRequestedSize) {
  const std::vector<int64_t> a = HoldoutIndices(100, 0.2, 7);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 20u);
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 100);
  EXPECT_EQ(HoldoutIndices(100, 0.2, 7), a);
  EXPECT_NE(HoldoutIndices(100, 0.2, 8), a);
  EXPECT_TRUE(HoldoutIndices(100, 0.0, 7).empty());
  EXPECT_EQ(HoldoutIndices(10, 0.01, 7).size(), 1u);  // at least one
  EXPECT_EQ(HoldoutIndices(10, 0.26, 7).size(), 3u);  // rounded
}

TEST(HoldoutTest, ComplementAndSubsets) {
  EXPECT_THAT(Complement(6, {1, 4}), ElementsAre(0, 2, 3, 5));
  EXPECT_THAT(Complement(3, {}), ElementsAre(0, 1, 2));
  const std::vector<int64_t> items = {3, 5, 8, 13, 21, 34};
  EXPECT_EQ(DrawSubset(items, 0, 1), items);
  EXPECT_EQ(DrawSubset(items, 10, 1), items);
  const std::vector<int64_t> three = DrawSubset(items, 3, 1);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_TRUE(std::is_sorted(three.begin(), three.end()));  // original order kept
  for (int64_t v : three) EXPECT_NE(std::find(items.begin(), items.end(), v), items.end());
  EXPECT_EQ(DrawSubset(items, 3, 1), three);
}

TEST(TakeTest, TakesCloudsAndGaussiansWithTheirLabels) {
  const model::io::PointCloudSet set = testing::Ellipses(5, 3, /*labelled=*/true);
  const model::io::PointCloudSet two = TakeClouds(set, {3, 0});
  ASSERT_EQ(two.num_clouds(), 2);
  EXPECT_EQ(two.cloud_size(0), set.cloud_size(3));
  EXPECT_EQ(two.points[0], set.points[set.offsets[3] * 2]);
  EXPECT_EQ(two.points[two.offsets[1] * 2], set.points[0]);
  EXPECT_THAT(two.labels.strings, ElementsAre("round", "wide"));
  const model::io::GaussianSet g = testing::RandomGaussians(4, 2, 1, true);
  const model::io::GaussianSet one = TakeGaussians(g, {2});
  EXPECT_EQ(one.num_gaussians(), 1);
  EXPECT_EQ(one.means[1], g.means[5]);
  EXPECT_EQ(one.covs[3], g.covs[4 * 2 + 3]);
  EXPECT_THAT(one.labels.strings, ElementsAre("a"));
}

CellSet ToCellSet(const testing::Cells& c) {
  CellSet cells;
  cells.dim = c.dim;
  cells.features = c.features;
  cells.coords = c.coords;
  cells.sample_ids = c.sample_ids;
  cells.labels = model::io::Labels::FromStrings(c.labels);
  return cells;
}

// The k nearest other cells of `center` in its sample, by brute force.
std::vector<int64_t> BruteForceNiche(const testing::Cells& c, int64_t center, int64_t k) {
  std::vector<std::pair<double, int64_t>> d;
  for (int64_t i = 0; i < c.size(); ++i) {
    if (i == center || c.sample_ids[i] != c.sample_ids[center]) continue;
    const double dx = double{c.coords[2 * i]} - c.coords[2 * center];
    const double dy = double{c.coords[2 * i + 1]} - c.coords[2 * center + 1];
    d.emplace_back(dx * dx + dy * dy, i);
  }
  std::sort(d.begin(), d.end());
  std::vector<int64_t> out;
  for (int64_t j = 0; j < k && j < static_cast<int64_t>(d.size()); ++j) out.push_back(d[j].second);
  return out;
}

TEST(NicheTest, CloudsAreTheNearestNeighboursFeaturesWithTheCentresLabel) {
  const testing::Cells c = testing::RandomCells(2, 15, 3, 11);
  const CellSet cells = ToCellSet(c);
  absl::StatusOr<model::io::PointCloudSet> niches = NicheClouds(cells, 4, {0, 17, 29});
  ASSERT_TRUE(niches.ok()) << niches.status();
  ASSERT_EQ(niches->num_clouds(), 3);
  const int64_t centers[] = {0, 17, 29};
  for (int64_t n = 0; n < 3; ++n) {
    const std::vector<int64_t> expected = BruteForceNiche(c, centers[n], 4);
    ASSERT_EQ(niches->cloud_size(n), 4);
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t f = 0; f < 3; ++f) {
        EXPECT_EQ(niches->points[(niches->offsets[n] + j) * 3 + f], c.features[expected[j] * 3 + f]);
      }
    }
    EXPECT_EQ(niches->labels.strings[n], c.labels[centers[n]]);
  }
}

// 3-D tissue: niches are the k nearest cells in all three coordinates,
// exactly as a brute-force search in 3-D (and not as one in the x-y plane).
TEST(NicheTest, ThreeDimensionalCoordinatesMatchABruteForceSearch) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  CellSet cells;
  cells.dim = 1;
  cells.spatial_dim = 3;
  const int64_t n = 60, k = 5;
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) cells.coords.push_back(static_cast<float>(u(rng)));
    cells.features.push_back(static_cast<float>(i));  // the feature names the cell
    cells.sample_ids.push_back(i < 35 ? "a" : "b");
  }
  auto brute = [&](int64_t center, int dims) {
    std::vector<std::pair<double, int64_t>> d;
    for (int64_t i = 0; i < n; ++i) {
      if (i == center || cells.sample_ids[i] != cells.sample_ids[center]) continue;
      double sum = 0.0;
      for (int c = 0; c < dims; ++c) {
        const double diff = double{cells.coords[3 * i + c]} - cells.coords[3 * center + c];
        sum += diff * diff;
      }
      d.emplace_back(sum, i);
    }
    std::sort(d.begin(), d.end());
    std::vector<float> out;
    for (int64_t j = 0; j < k; ++j) out.push_back(static_cast<float>(d[j].second));
    return out;
  };
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  absl::StatusOr<model::io::PointCloudSet> niches = NicheClouds(cells, k, all);
  ASSERT_TRUE(niches.ok()) << niches.status();
  ASSERT_EQ(niches->num_clouds(), n);
  int differs_from_plane = 0;
  for (int64_t c = 0; c < n; ++c) {
    const std::vector<float> got(niches->points.begin() + niches->offsets[c],
                                 niches->points.begin() + niches->offsets[c + 1]);
    EXPECT_EQ(got, brute(c, 3)) << "cell " << c;
    differs_from_plane += got != brute(c, 2);
  }
  EXPECT_GT(differs_from_plane, n / 2);  // the third coordinate matters
  // Coordinates that do not fill [n, spatial_dim] are refused.
  cells.coords.pop_back();
  EXPECT_FALSE(NicheClouds(cells, k, all).ok());
}

TEST(NicheTest, GaussiansAreTheNichesMeanAndRidgedCovariance) {
  const testing::Cells c = testing::RandomCells(1, 12, 2, 4);
  const CellSet cells = ToCellSet(c);
  absl::StatusOr<model::io::GaussianSet> g = NicheGaussians(cells, 5, {3});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->num_gaussians(), 1);
  const std::vector<int64_t> niche = BruteForceNiche(c, 3, 5);
  double mean[2] = {0, 0};
  for (int64_t i : niche) {
    for (int f = 0; f < 2; ++f) mean[f] += c.features[i * 2 + f] / 5.0;
  }
  // Mean per-feature (population) variance of all cells sets the ridge.
  double variance = 0;
  for (int f = 0; f < 2; ++f) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < 12; ++i) m += c.features[i * 2 + f] / 12.0;
    for (int64_t i = 0; i < 12; ++i) s += std::pow(c.features[i * 2 + f] - m, 2) / 12.0;
    variance += s / 2.0;
  }
  for (int a = 0; a < 2; ++a) {
    EXPECT_NEAR(g->means[a], mean[a], 1e-6);
    for (int b = 0; b < 2; ++b) {
      double cov = 0;
      for (int64_t i : niche) {
        cov += (c.features[i * 2 + a] - mean[a]) * (c.features[i * 2 + b] - mean[b]) / 4.0;
      }
      if (a == b) cov += kNicheRidge * variance;
      EXPECT_NEAR(g->covs[a * 2 + b], cov, 1e-6);
    }
  }
  EXPECT_EQ(g->labels.strings[0], c.labels[3]);
}

TEST(NicheTest, RankDeficientNichesBecomePositiveDefinite) {
  // 3 neighbours in 6 dimensions: singular sample covariances without the ridge.
  const testing::Cells c = testing::RandomCells(2, 8, 6, 9);
  absl::StatusOr<model::io::GaussianSet> g = NicheGaussians(ToCellSet(c), 3, Complement(16, {}));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->num_gaussians(), 16);
  EXPECT_TRUE(model::io::ValidateGaussianSet(*g, "niches").ok());
}

TEST(NicheTest, SkipsCellsWithoutNeighbours) {
  testing::Cells c = testing::RandomCells(1, 5, 2, 1);
  c.sample_ids[4] = "alone";
  absl::StatusOr<model::io::PointCloudSet> niches = NicheClouds(ToCellSet(c), 2, Complement(5, {}));
  ASSERT_TRUE(niches.ok()) << niches.status();
  EXPECT_EQ(niches->num_clouds(), 4);
  EXPECT_TRUE(absl::IsInvalidArgument(NicheClouds(ToCellSet(c), 2, {4}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(NicheClouds(ToCellSet(c), 2, {7}).status()));
}

TEST(HoldoutTest, CountIsTheSizeOfTheSplit) {
  for (int64_t items : {0, 1, 7, 10, 100}) {
    for (double fraction : {0.0, 0.01, 0.26, 0.5, 0.99}) {
      EXPECT_EQ(HoldoutCount(items, fraction),
                static_cast<int64_t>(HoldoutIndices(items, fraction, 3).size()))
          << items << " items, fraction " << fraction;
    }
  }
}

DatasetData Stored(const std::string& name, DatasetKind kind, int64_t items,
                   std::variant<model::io::PointCloudSet, model::io::GaussianSet, CellSet> data) {
  DatasetData d;
  d.info.name = name;
  d.info.kind = kind;
  d.info.items = items;
  d.info.created_unix_ms = 1700000000000;
  d.data = std::move(data);
  return d;
}

model::TrainingConfig CloudConfig(double holdout, model::PointCloudSource source) {
  model::TrainingConfig c;
  c.family = model::Family::kPointCloud;
  c.pointcloud = testing::TinyPointCloudConfig(5);
  c.pointcloud.source = source;
  c.holdout_fraction = holdout;
  return c;
}

// Tiny configurations of both families, `family` chosen, training on niches
// of 4 cells.
model::TrainingConfig NicheConfig(model::Family family) {
  model::TrainingConfig c;
  c.family = family;
  c.pointcloud = testing::TinyPointCloudConfig(5);
  c.gaussian = testing::TinyGaussianConfig(5);
  c.niche_size = 4;
  return c;
}

TEST(TrainingInputsTest, HoldsOutTheSplitAndRecordsTheOrigin) {
  const model::io::PointCloudSet set = testing::Ellipses(12, 1, /*labelled=*/true);
  DatasetData data = Stored("shapes", DatasetKind::kPointClouds, 12, set);
  data.info.feature_names = {"x", "y"};
  const model::TrainingConfig config = CloudConfig(0.25, model::PointCloudSource::kUniform);
  absl::StatusOr<TrainingInputs> in = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(in.ok()) << in.status();
  const std::vector<int64_t> heldout = HoldoutIndices(12, 0.25, config.seed());
  EXPECT_EQ(in->origin.heldout, heldout);
  EXPECT_EQ(in->origin.dataset, "shapes");
  EXPECT_EQ(in->origin.dataset_kind, "POINT_CLOUDS");
  EXPECT_EQ(in->origin.dataset_created_unix_ms, 1700000000000);
  EXPECT_EQ(in->origin.dataset_items, 12);
  EXPECT_EQ(in->origin.niche_size, 0);
  EXPECT_EQ(in->origin.holdout_fraction, 0.25);
  // The model keeps the data set's feature names.
  EXPECT_EQ(in->origin.feature_names, (std::vector<std::string>{"x", "y"}));
  const model::io::PointCloudSet kept = TakeClouds(set, Complement(12, heldout));
  EXPECT_EQ(in->clouds.num_clouds(), 9);
  EXPECT_EQ(in->clouds.points, kept.points);
  EXPECT_EQ(in->clouds.labels.strings, kept.labels.strings);
  EXPECT_EQ(in->source_clouds_or_null(), nullptr);
  EXPECT_EQ(in->gaussians.num_gaussians(), 0);

  // Without a holdout every item trains, in order.
  absl::StatusOr<TrainingInputs> whole =
      MakeTrainingInputs(data, nullptr, CloudConfig(0.0, model::PointCloudSource::kUniform));
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(whole->origin.heldout.empty());
  EXPECT_EQ(whole->clouds.points, set.points);
}

TEST(TrainingInputsTest, MatchedSourcesFollowTheItemsThroughTheSplit) {
  const model::io::PointCloudSet set = testing::Ellipses(8, 1);
  const model::io::PointCloudSet noise = testing::Ellipses(8, 2);
  const DatasetData data = Stored("shapes", DatasetKind::kPointClouds, 8, set);
  const DatasetData source = Stored("noise", DatasetKind::kPointClouds, 8, noise);
  const model::TrainingConfig matched = CloudConfig(0.25, model::PointCloudSource::kGivenMatched);
  absl::StatusOr<TrainingInputs> in = MakeTrainingInputs(data, &source, matched);
  ASSERT_TRUE(in.ok()) << in.status();
  const std::vector<int64_t> kept = Complement(8, HoldoutIndices(8, 0.25, matched.seed()));
  ASSERT_NE(in->source_clouds_or_null(), nullptr);
  EXPECT_EQ(in->source_clouds->points, TakeClouds(noise, kept).points);
  // Random sources, and matched ones of another count, are taken whole.
  absl::StatusOr<TrainingInputs> random =
      MakeTrainingInputs(data, &source, CloudConfig(0.25, model::PointCloudSource::kGivenRandom));
  ASSERT_TRUE(random.ok()) << random.status();
  EXPECT_EQ(random->source_clouds->points, noise.points);
  const DatasetData fewer = Stored("few", DatasetKind::kPointClouds, 5, testing::Ellipses(5, 3));
  absl::StatusOr<TrainingInputs> other = MakeTrainingInputs(data, &fewer, matched);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->source_clouds->num_clouds(), 5);
}

// Cells with condition vectors: a niche's condition is its centre cell's
// vector, for niche clouds and Gaussian cell states alike; the training
// inputs record the data set's encoding.
TEST(NicheTest, NichesTakeTheCentreCellsConditionVector) {
  const testing::Cells c = testing::RandomCells(2, 15, 3, 11);
  CellSet cells = ToCellSet(c);
  std::vector<float> conditions;
  for (int64_t i = 0; i < cells.num_cells(); ++i) {
    conditions.insert(conditions.end(), {static_cast<float>(i), static_cast<float>(-2 * i)});
  }
  cells.labels = model::io::Labels::FromContinuous(conditions, 2);
  absl::StatusOr<model::io::PointCloudSet> niches = NicheClouds(cells, 4, {0, 17, 29});
  ASSERT_TRUE(niches.ok()) << niches.status();
  ASSERT_EQ(niches->labels.kind, model::io::Labels::Kind::kContinuous);
  EXPECT_EQ(niches->labels.values, (std::vector<float>{0, 0, 17, -34, 29, -58}));
  absl::StatusOr<model::io::GaussianSet> states = NicheGaussians(cells, 4, {0, 17});
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->labels.kind, model::io::Labels::Kind::kContinuous);
  EXPECT_EQ(states->labels.values, (std::vector<float>{0, 0, 17, -34}));

  DatasetData data = Stored("cells", DatasetKind::kSpatialCells, 30, cells);
  data.info.label_type = LabelType::kContinuous;
  data.info.condition_dim = 2;
  data.info.condition_columns = {{"age", ConditionKind::kNumeric, {}, 1, 0},
                                 {"dose", ConditionKind::kNumeric, {}, 1, 1}};
  model::TrainingConfig config = NicheConfig(model::Family::kPointCloud);
  absl::StatusOr<TrainingInputs> in = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->clouds.labels.width, 2);
  EXPECT_EQ(in->origin.condition_columns, data.info.condition_columns);
  config.family = model::Family::kGaussian;
  absl::StatusOr<TrainingInputs> gaussian_in = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(gaussian_in.ok()) << gaussian_in.status();
  EXPECT_EQ(gaussian_in->gaussians.labels.width, 2);
  EXPECT_EQ(gaussian_in->origin.condition_columns, data.info.condition_columns);
}

TEST(TrainingInputsTest, CellsTrainOnTheirNiches) {
  const testing::Cells c = testing::RandomCells(2, 15, 2, 3);
  const DatasetData data = Stored("cells", DatasetKind::kSpatialCells, 30, ToCellSet(c));
  model::TrainingConfig config = NicheConfig(model::Family::kGaussian);
  absl::StatusOr<TrainingInputs> gaussians = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(gaussians.ok()) << gaussians.status();
  absl::StatusOr<model::io::GaussianSet> expected =
      NicheGaussians(ToCellSet(c), 4, Complement(30, {}));
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(gaussians->gaussians.means, expected->means);
  EXPECT_EQ(gaussians->gaussians.covs, expected->covs);
  EXPECT_EQ(gaussians->origin.niche_size, 4);
  EXPECT_EQ(gaussians->origin.dataset_kind, "SPATIAL_CELLS");

  config.family = model::Family::kPointCloud;
  config.holdout_fraction = 0.2;
  absl::StatusOr<TrainingInputs> clouds = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(clouds.ok()) << clouds.status();
  const std::vector<int64_t> kept = Complement(30, HoldoutIndices(30, 0.2, config.seed()));
  absl::StatusOr<model::io::PointCloudSet> niches = NicheClouds(ToCellSet(c), 4, kept);
  ASSERT_TRUE(niches.ok()) << niches.status();
  EXPECT_EQ(clouds->clouds.points, niches->points);
  EXPECT_EQ(clouds->origin.heldout.size(), 6u);
}

TEST(TrainingInputsTest, RefusesWhatDoesNotFit) {
  const DatasetData gaussians =
      Stored("g", DatasetKind::kGaussians, 4, testing::RandomGaussians(4, 2, 1));
  const DatasetData clouds = Stored("pc", DatasetKind::kPointClouds, 4, testing::Ellipses(4, 1));
  const model::TrainingConfig uniform = CloudConfig(0.0, model::PointCloudSource::kUniform);
  absl::Status kind = MakeTrainingInputs(gaussians, nullptr, uniform).status();
  EXPECT_TRUE(absl::IsInvalidArgument(kind));
  EXPECT_EQ(kind.message(),
            "data set 'g' holds GAUSSIANS; pointcloud models train on POINT_CLOUDS or "
            "SPATIAL_CELLS data");
  const DatasetData one = Stored("one", DatasetKind::kPointClouds, 1, testing::Ellipses(1, 1));
  EXPECT_EQ(MakeTrainingInputs(one, nullptr, CloudConfig(0.5, model::PointCloudSource::kUniform))
                .status()
                .message(),
            "holdout_fraction leaves nothing to train on");
  const model::TrainingConfig given = CloudConfig(0.0, model::PointCloudSource::kGivenRandom);
  EXPECT_THAT(std::string(MakeTrainingInputs(clouds, nullptr, given).status().message()),
              ::testing::HasSubstr("needs a data set of source items"));
  EXPECT_THAT(std::string(MakeTrainingInputs(clouds, &clouds, uniform).status().message()),
              ::testing::HasSubstr("only used with noise given_random or given_matched"));
  EXPECT_EQ(MakeTrainingInputs(clouds, &gaussians, given).status().message(),
            "source g: holds GAUSSIANS, needs POINT_CLOUDS");
}

// Two labelled clouds in R^2 with known means and sample covariances:
// cloud 0 = the corners of the square [0, 2]^2 (mean (1, 1), covariance
// (4/3) I), cloud 1 = (0, 0), (1, 2), (2, 4) (on a line: mean (1, 2),
// covariance [[1, 2], [2, 4]], singular).
model::io::PointCloudSet TwoClouds() {
  model::io::PointCloudSet set;
  set.dim = 2;
  set.points = {0, 0, 2, 0, 0, 2, 2, 2, 0, 0, 1, 2, 2, 4};
  set.offsets = {0, 4, 7};
  set.labels = model::io::Labels::FromStrings({"square", "line"});
  return set;
}

TEST(ConfigForDataTest, AutoFeatureTransformOnlyForNichesOfSpatialCells) {
  model::TrainingConfig config;  // the defaults
  config.family = model::Family::kPointCloud;
  ASSERT_EQ(config.pointcloud.feature_transform, "auto");
  // Niches of spatial cells keep `auto` (log1p_standardize for counts) ...
  EXPECT_EQ(ConfigForData(config, DatasetKind::kSpatialCells).pointcloud.feature_transform, "auto");
  // ... point clouds (coordinates, integer or not) train untransformed.
  EXPECT_EQ(ConfigForData(config, DatasetKind::kPointClouds).pointcloud.feature_transform, "none");
  // An explicit choice is kept on every kind.
  for (const char* kind : {"none", "log1p", "standardize", "log1p_standardize"}) {
    config.pointcloud.feature_transform = kind;
    EXPECT_EQ(ConfigForData(config, DatasetKind::kPointClouds).pointcloud.feature_transform, kind);
    EXPECT_EQ(ConfigForData(config, DatasetKind::kSpatialCells).pointcloud.feature_transform, kind);
  }
  // Nothing else changes.
  config.pointcloud.feature_transform = "auto";
  config.pointcloud.optimizer.steps = 123;
  config.gaussian.degrees_of_freedom_scale = 7.0;
  const model::TrainingConfig resolved = ConfigForData(config, DatasetKind::kPointClouds);
  EXPECT_EQ(resolved.pointcloud.optimizer.steps, 123);
  EXPECT_EQ(resolved.gaussian.degrees_of_freedom_scale, 7.0);
  EXPECT_EQ(resolved.family, model::Family::kPointCloud);
}

TEST(CloudGaussiansTest, MeansAndSampleCovariancesWithTheRidge) {
  const model::io::PointCloudSet set = TwoClouds();
  // The ridge: kNicheRidge x the mean over dimensions of the (population)
  // variance of all 7 points: x = 0 2 0 2 0 1 2 (mean 1, variance 6/7),
  // y = 0 0 2 2 0 2 4 (mean 10/7, variance 96/49).
  const double ridge = kNicheRidge * (6.0 / 7.0 + 96.0 / 49.0) / 2.0;
  absl::StatusOr<model::io::GaussianSet> g = CloudGaussians(set, {0, 1});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->num_gaussians(), 2);
  const std::vector<double> means = {1, 1, 1, 2};
  const std::vector<double> covs = {4.0 / 3 + ridge, 0, 0, 4.0 / 3 + ridge,
                                    1 + ridge,       2, 2, 4 + ridge};
  for (size_t i = 0; i < means.size(); ++i) EXPECT_NEAR(g->means[i], means[i], 1e-12) << i;
  for (size_t i = 0; i < covs.size(); ++i) EXPECT_NEAR(g->covs[i], covs[i], 1e-12) << i;
  EXPECT_THAT(g->labels.strings, ElementsAre("square", "line"));
  // A subset, in the order asked for.
  absl::StatusOr<model::io::GaussianSet> one = CloudGaussians(set, {1});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_NEAR(one->covs[1], 2.0, 1e-12);
  EXPECT_THAT(one->labels.strings, ElementsAre("line"));

  model::io::PointCloudSet lonely = set;
  lonely.points.insert(lonely.points.end(), {5, 5});
  lonely.offsets.push_back(8);
  lonely.labels = model::io::Labels::FromStrings({"square", "line", "dot"});
  EXPECT_EQ(CloudGaussians(lonely, {0, 2}).status().message(),
            "clouds[2]: 1 point; a Gaussian (mean and sample covariance) needs at least 2");
  // Condition vectors are carried over, each cloud's to its Gaussian.
  model::io::PointCloudSet continuous = set;
  continuous.labels = model::io::Labels::FromContinuous({0.5f, 1.5f, -1.0f, 2.0f}, 2);
  absl::StatusOr<model::io::GaussianSet> conditioned = CloudGaussians(continuous, {1, 0});
  ASSERT_TRUE(conditioned.ok()) << conditioned.status();
  EXPECT_EQ(conditioned->labels.kind, model::io::Labels::Kind::kContinuous);
  EXPECT_THAT(conditioned->labels.values, ElementsAre(-1.0f, 2.0f, 0.5f, 1.5f));
}

TEST(CloudGaussiansTest, GaussianModelsTrainOnTheCloudsOfAPointCloudDataSet) {
  const DatasetData data = Stored("pc", DatasetKind::kPointClouds, 2, TwoClouds());
  model::TrainingConfig config;
  config.family = model::Family::kGaussian;
  absl::StatusOr<TrainingInputs> in = MakeTrainingInputs(data, nullptr, config);
  ASSERT_TRUE(in.ok()) << in.status();
  absl::StatusOr<model::io::GaussianSet> expected = CloudGaussians(TwoClouds(), {0, 1});
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(in->gaussians.means, expected->means);
  EXPECT_EQ(in->gaussians.covs, expected->covs);
  EXPECT_EQ(in->origin.dataset_kind, "POINT_CLOUDS");
  EXPECT_EQ(in->clouds.num_clouds(), 0);
  absl::StatusOr<model::io::GaussianSet> items = GaussianItems(data, 0, {1});
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->means, (std::vector<double>{1, 2}));
}

TEST(TrainingInputsTest, KindsAndSourcesOfEachFamily) {
  EXPECT_TRUE(KindFits(model::Family::kPointCloud, DatasetKind::kPointClouds));
  EXPECT_TRUE(KindFits(model::Family::kPointCloud, DatasetKind::kSpatialCells));
  EXPECT_FALSE(KindFits(model::Family::kPointCloud, DatasetKind::kGaussians));
  EXPECT_TRUE(KindFits(model::Family::kGaussian, DatasetKind::kGaussians));
  EXPECT_TRUE(KindFits(model::Family::kGaussian, DatasetKind::kSpatialCells));
  EXPECT_TRUE(KindFits(model::Family::kGaussian, DatasetKind::kPointClouds));
  EXPECT_EQ(FamilyKind(model::Family::kGaussian), DatasetKind::kGaussians);
  model::TrainingConfig c;
  c.family = model::Family::kGaussian;
  c.gaussian.source = model::GaussianSource::kGivenMatched;
  c.pointcloud.source = model::PointCloudSource::kUniform;  // the other family's: not read
  EXPECT_TRUE(UsesGivenSource(c));
  EXPECT_TRUE(UsesMatchedSource(c));
  c.gaussian.source = model::GaussianSource::kGivenRandom;
  EXPECT_TRUE(UsesGivenSource(c));
  EXPECT_FALSE(UsesMatchedSource(c));
  c.family = model::Family::kPointCloud;
  EXPECT_FALSE(UsesGivenSource(c));
}

TEST(TrainingOriginTest, JsonRoundTripAndHeldOutIndicesAreChecked) {
  TrainingOrigin o;
  o.dataset = "cells";
  o.dataset_kind = "SPATIAL_CELLS";
  o.dataset_created_unix_ms = 1700000000000;
  o.dataset_items = 10;
  o.niche_size = 4;
  o.holdout_fraction = 0.3;
  o.heldout = {1, 5, 8};
  o.feature_names = {"Actb", "Gapdh"};
  o.condition_columns = {{"type", ConditionKind::kCategorical, {"T", "B"}, 2, 0},
                         {"pca", ConditionKind::kObsm, {}, 3, 2}};
  absl::StatusOr<TrainingOrigin> back = TrainingOrigin::FromJson(o.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->dataset, "cells");
  EXPECT_EQ(back->dataset_kind, "SPATIAL_CELLS");
  EXPECT_EQ(back->dataset_created_unix_ms, 1700000000000);
  EXPECT_EQ(back->dataset_items, 10);
  EXPECT_EQ(back->niche_size, 4);
  EXPECT_EQ(back->holdout_fraction, 0.3);
  EXPECT_EQ(back->heldout, o.heldout);
  EXPECT_EQ(back->feature_names, o.feature_names);
  EXPECT_EQ(back->condition_columns, o.condition_columns);
  // Absent keys keep their defaults (models published before a key existed).
  absl::StatusOr<TrainingOrigin> empty = TrainingOrigin::FromJson(nlohmann::json::object());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->heldout.empty());
  EXPECT_TRUE(empty->feature_names.empty());
  EXPECT_TRUE(empty->condition_columns.empty());
  for (const std::vector<int64_t>& bad :
       {std::vector<int64_t>{5, 1}, std::vector<int64_t>{1, 1}, std::vector<int64_t>{10}}) {
    TrainingOrigin b = o;
    b.heldout = bad;
    EXPECT_TRUE(absl::IsDataLoss(TrainingOrigin::FromJson(b.ToJson()).status()));
  }
}

}  // namespace
}  // namespace wfm::repository
