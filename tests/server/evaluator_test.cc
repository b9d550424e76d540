// server/evaluator: Evaluate of a served model against a stored data set.
// The metrics are those of model/eval on the model's own samples for the
// request (same steps and seed) and on the reference items EvaluateModel
// picks: all of them, a seeded subset, the held-out ones, or niches of
// spatial cells; the Gaussian mean error is also checked by hand. Bad
// options and mismatched data sets are refused with their rule.
#include "server/evaluator.h"

#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "repository/training_data.h"
#include "server/model_registry.h"
#include "tests/server/servable_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status.h"

namespace wfm::server {
namespace {

using repository::DrawSubset;
using repository::NicheClouds;
using repository::TakeClouds;

using ::testing::HasSubstr;

constexpr int64_t kItems = 10;
constexpr int64_t kCreated = 1700000000000;

// A stored data set `name` of `items` items holding `set`.
template <typename Set>
DatasetData Stored(const std::string& name, DatasetKind kind, int64_t items, const Set& set) {
  DatasetData d;
  d.info.name = name;
  d.info.kind = kind;
  d.info.dim = set.dim;
  d.info.items = items;
  d.info.created_unix_ms = kCreated;
  d.data = set;
  return d;
}

DatasetData CloudData(const std::string& name, const model::io::PointCloudSet& clouds) {
  return Stored(name, DatasetKind::kPointClouds, clouds.num_clouds(), clouds);
}

DatasetData GaussianData(const std::string& name, const model::io::GaussianSet& gaussians) {
  return Stored(name, DatasetKind::kGaussians, gaussians.num_gaussians(), gaussians);
}

EvaluateOptions Options(int64_t num_samples, uint64_t seed = 5) {
  EvaluateOptions o;
  o.num_samples = num_samples;
  o.steps = 4;
  o.seed = seed;
  return o;
}

void ExpectSameMetrics(const model::eval::DistributionMetrics& a,
                       const model::eval::DistributionMetrics& b) {
  EXPECT_EQ(a.one_nna, b.one_nna);
  EXPECT_EQ(a.mmd, b.mmd);
  EXPECT_EQ(a.cov, b.cov);
}

class EvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Trained on "clouds", holding out items 1 and 4.
    TrainingOrigin origin;
    origin.dataset = "clouds";
    origin.dataset_kind = "POINT_CLOUDS";
    origin.dataset_created_unix_ms = kCreated;
    origin.dataset_items = kItems;
    origin.holdout_fraction = 0.2;
    origin.heldout = {1, 4};
    origin.niche_size = 3;
    WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint clouds,
                             testing::TrainedPointCloudCheckpoint(clouds_, 3, 1, origin));
    WFM_ASSERT_OK_AND_ASSIGN(clouds_model_, MakeServable("clouds-model", clouds, 0));
    WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint gaussians,
                             testing::TrainedGaussianCheckpoint(gaussians_));
    WFM_ASSERT_OK_AND_ASSIGN(gaussian_model_, MakeServable("gaussian-model", gaussians, 0));
  }

  // What EvaluateModel must report for the point-cloud model against
  // `reference`: model/eval's metrics on the model's own samples.
  void ExpectCloudMetrics(const EvaluationResult& got, const EvaluateOptions& options,
                          int64_t num_samples, const model::io::PointCloudSet& reference) {
    model::CloudSampleRequest request;
    request.num_samples = num_samples;
    request.steps = options.steps;
    request.seed = options.seed;
    WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedClouds> generated,
                             clouds_model_->pointcloud->Sample({request}));
    model::io::PointCloudSet samples;
    samples.dim = generated[0].dim;
    samples.points = generated[0].points;
    samples.offsets = generated[0].offsets;
    WFM_ASSERT_OK_AND_ASSIGN(const model::eval::PointCloudEvaluation want,
                             model::eval::EvaluatePointClouds(samples, reference, options.emd));
    EXPECT_EQ(got.family, model::Family::kPointCloud);
    EXPECT_EQ(got.generated, num_samples);
    EXPECT_EQ(got.reference, reference.num_clouds());
    ExpectSameMetrics(got.chamfer, want.chamfer);
    EXPECT_EQ(got.has_emd, options.emd);
    ExpectSameMetrics(got.emd, want.emd);
    EXPECT_GE(got.seconds, 0.0);
  }

  const model::io::PointCloudSet clouds_ = testing::Ellipses(kItems, 1, false, 6, 9);
  const model::io::GaussianSet gaussians_ = testing::RandomGaussians(kItems, 2, 3);
  std::shared_ptr<const Servable> clouds_model_;
  std::shared_ptr<const Servable> gaussian_model_;
  const model::SampleLimits limits_{};
};

TEST_F(EvaluatorTest, AllItemsAgainstTheModelsOwnSamples) {
  const EvaluateOptions options = Options(6);
  WFM_ASSERT_OK_AND_ASSIGN(
      const EvaluationResult result,
      EvaluateModel(*clouds_model_, CloudData("clouds", clouds_), options, limits_, nullptr));
  ExpectCloudMetrics(result, options, 6, clouds_);
  // 1-NNA is a fraction of the 16 items, COV of the 10 references.
  EXPECT_DOUBLE_EQ(result.chamfer.one_nna * 16, std::round(result.chamfer.one_nna * 16));
  EXPECT_DOUBLE_EQ(result.chamfer.cov * 10, std::round(result.chamfer.cov * 10));
}

TEST_F(EvaluatorTest, WithoutEmdAndAsManySamplesAsReferences) {
  EvaluateOptions options = Options(0);
  options.emd = false;
  WFM_ASSERT_OK_AND_ASSIGN(
      const EvaluationResult result,
      EvaluateModel(*clouds_model_, CloudData("clouds", clouds_), options, limits_, nullptr));
  ExpectCloudMetrics(result, options, kItems, clouds_);
  EXPECT_FALSE(result.has_emd);
}

TEST_F(EvaluatorTest, AtMostMaxReferenceItemsDrawnWithTheSeed) {
  EvaluateOptions options = Options(4, /*seed=*/11);
  options.max_reference = 3;
  WFM_ASSERT_OK_AND_ASSIGN(
      const EvaluationResult result,
      EvaluateModel(*clouds_model_, CloudData("clouds", clouds_), options, limits_, nullptr));
  std::vector<int64_t> all(kItems);
  std::iota(all.begin(), all.end(), 0);
  const std::vector<int64_t> drawn = DrawSubset(all, 3, 11 ^ 0xE7A1ULL);
  ASSERT_EQ(drawn.size(), 3u);
  ExpectCloudMetrics(result, options, 4, TakeClouds(clouds_, drawn));
}

TEST_F(EvaluatorTest, HeldOutItemsOfTheTrainingDataSet) {
  EvaluateOptions options = Options(3);
  options.split = "heldout";
  WFM_ASSERT_OK_AND_ASSIGN(
      const EvaluationResult result,
      EvaluateModel(*clouds_model_, CloudData("clouds", clouds_), options, limits_, nullptr));
  ExpectCloudMetrics(result, options, 3, TakeClouds(clouds_, {1, 4}));
}

TEST_F(EvaluatorTest, NichesOfSpatialCellsWithTheModelsNicheSize) {
  const testing::Cells cells = testing::RandomCells(2, 12, 2, 7);
  CellSet set;
  set.dim = 2;
  set.features = cells.features;
  set.coords = cells.coords;
  set.sample_ids = cells.sample_ids;
  const DatasetData data = Stored("cells", DatasetKind::kSpatialCells, cells.size(), set);
  const EvaluateOptions options = Options(5);
  WFM_ASSERT_OK_AND_ASSIGN(const EvaluationResult result,
                           EvaluateModel(*clouds_model_, data, options, limits_, nullptr));
  std::vector<int64_t> all(cells.size());
  std::iota(all.begin(), all.end(), 0);
  WFM_ASSERT_OK_AND_ASSIGN(const model::io::PointCloudSet niches,
                           NicheClouds(set, /*k=*/3, all));
  EXPECT_EQ(niches.num_clouds(), 24);
  EXPECT_EQ(niches.cloud_size(0), 3);
  ExpectCloudMetrics(result, options, 5, niches);
}

TEST_F(EvaluatorTest, GaussianMetricsAndTheMeanErrorByHand) {
  const EvaluateOptions options = Options(6);
  WFM_ASSERT_OK_AND_ASSIGN(const EvaluationResult result,
                           EvaluateModel(*gaussian_model_, GaussianData("g", gaussians_), options,
                                         limits_, nullptr));
  model::GaussianSampleRequest request;
  request.num_samples = 6;
  request.steps = options.steps;
  request.seed = options.seed;
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedGaussians> generated,
                           gaussian_model_->gaussian->Sample({request}));
  model::io::GaussianSet samples;
  samples.dim = 2;
  samples.means = generated[0].means;
  samples.covs = generated[0].covs;
  WFM_ASSERT_OK_AND_ASSIGN(const model::eval::GaussianEvaluation want,
                           model::eval::EvaluateGaussians(samples, gaussians_));
  EXPECT_EQ(result.family, model::Family::kGaussian);
  EXPECT_EQ(result.generated, 6);
  EXPECT_EQ(result.reference, kItems);
  ExpectSameMetrics(result.bures, want.bures);
  EXPECT_EQ(result.covariance_error, want.covariance_error);
  // |mean of the generated means - mean of the reference means|.
  double dx = 0, dy = 0;
  for (int i = 0; i < 6; ++i) {
    dx += samples.means[2 * i] / 6;
    dy += samples.means[2 * i + 1] / 6;
  }
  for (int i = 0; i < kItems; ++i) {
    dx -= gaussians_.means[2 * i] / kItems;
    dy -= gaussians_.means[2 * i + 1] / kItems;
  }
  EXPECT_NEAR(result.mean_error, std::hypot(dx, dy), 1e-9);
}

TEST_F(EvaluatorTest, DataSetsOfAnotherFamilyOrDimensionAreRefused) {
  const absl::Status family = EvaluateModel(*clouds_model_, GaussianData("g", gaussians_),
                                            Options(4), limits_, nullptr)
                                  .status();
  EXPECT_TRUE(absl::IsInvalidArgument(family)) << family;
  EXPECT_EQ(family.message(),
            "dataset: 'g' holds GAUSSIANS, which a pointcloud model cannot be compared with");
  // A gaussian model is compared with the Gaussians of a point-cloud data
  // set's clouds (repository::CloudGaussians), as it trains on them.
  const absl::StatusOr<EvaluationResult> of_clouds = EvaluateModel(
      *gaussian_model_, CloudData("clouds", clouds_), Options(4), limits_, nullptr);
  ASSERT_TRUE(of_clouds.ok()) << of_clouds.status();
  EXPECT_EQ(of_clouds->family, model::Family::kGaussian);
  EXPECT_GT(of_clouds->reference, 0);
  model::io::PointCloudSet flat = clouds_;
  flat.dim = 1;  // the same numbers as twice the points in 1D
  const absl::Status dim =
      EvaluateModel(*clouds_model_, CloudData("flat", flat), Options(4), limits_, nullptr).status();
  EXPECT_TRUE(absl::IsInvalidArgument(dim)) << dim;
  EXPECT_EQ(dim.message(), "dataset: 'flat' has dim 1, model 'clouds-model' has dim 2");
}

TEST_F(EvaluatorTest, BadOptionsAreRefusedWithTheirRule) {
  const DatasetData data = CloudData("clouds", clouds_);
  const auto evaluate = [&](const EvaluateOptions& o) {
    return EvaluateModel(*clouds_model_, data, o, limits_, nullptr).status();
  };
  EvaluateOptions o = Options(-1);
  EXPECT_EQ(evaluate(o), absl::InvalidArgumentError("num_samples and max_reference: must be >= 0"));
  o = Options(4);
  o.max_reference = -2;
  EXPECT_EQ(evaluate(o), absl::InvalidArgumentError("num_samples and max_reference: must be >= 0"));
  o = Options(kMaxEvaluateItems + 1);
  EXPECT_EQ(evaluate(o), absl::ResourceExhaustedError(
                             "num_samples / max_reference: at most 4096 items per evaluation"));
  o = Options(4);
  o.split = "test";
  EXPECT_EQ(evaluate(o), absl::InvalidArgumentError("split: must be 'all' or 'heldout', got 'test'"));
  // 1-NNA needs three items: one reference and one sample are too few.
  o = Options(1);
  o.max_reference = 1;
  EXPECT_EQ(evaluate(o), absl::InvalidArgumentError(
                             "num_samples: 1-NNA needs at least 3 items in all (generated + reference)"));
  // Beyond the sampling limits.
  model::SampleLimits small;
  small.max_samples = 3;
  const absl::Status limited =
      EvaluateModel(*clouds_model_, data, Options(4), small, nullptr).status();
  EXPECT_TRUE(absl::IsResourceExhausted(limited)) << limited;
  EXPECT_EQ(limited.message(), "num_samples: 4 exceeds the limit of 3");
}

TEST_F(EvaluatorTest, HeldOutNeedsTheTrainingDataSetAsItWas) {
  EvaluateOptions o = Options(3);
  o.split = "heldout";
  const absl::Status other =
      EvaluateModel(*clouds_model_, CloudData("other", clouds_), o, limits_, nullptr).status();
  EXPECT_EQ(other, absl::FailedPreconditionError(
                       "split: 'heldout' needs the data set the model was trained on ('clouds'), "
                       "not 'other'"));
  DatasetData replaced = CloudData("clouds", clouds_);
  replaced.info.created_unix_ms = kCreated + 1;
  EXPECT_EQ(EvaluateModel(*clouds_model_, replaced, o, limits_, nullptr).status(),
            absl::FailedPreconditionError("split: data set 'clouds' was replaced after the model "
                                          "was trained; its held-out items are gone"));
  // A model that held nothing out.
  const absl::Status none = EvaluateModel(*gaussian_model_, GaussianData("g", gaussians_), o,
                                          limits_, nullptr)
                                .status();
  EXPECT_TRUE(absl::IsFailedPrecondition(none)) << none;
  EXPECT_THAT(std::string(none.message()), HasSubstr("needs the data set the model was trained on"));
}

TEST_F(EvaluatorTest, CancellationStopsTheSampling) {
  EvaluateOptions o = Options(8);
  o.steps = 10000;
  int polls = 0;
  const absl::Status s = EvaluateModel(*clouds_model_, CloudData("clouds", clouds_), o, limits_,
                                       [&] { return ++polls > 2; })
                             .status();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_GT(polls, 2);
}

}  // namespace
}  // namespace wfm::server
