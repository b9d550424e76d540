#include "model/config/feature_transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

// Three points of two features, row-major.
const std::vector<float> kCounts = {0, 10, 3, 30, 8, 20};

TEST(FeatureTransformTest, NoneIsTheIdentity) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("none", kCounts, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->identity());
  std::vector<float> x = {-5.5f, 2.25f};
  ASSERT_TRUE(t->Apply(x.data(), 2).ok());
  t->Invert(x.data(), 2);
  EXPECT_EQ(x, (std::vector<float>{-5.5f, 2.25f}));
}

TEST(FeatureTransformTest, Log1pAndItsInverse) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("log1p", kCounts, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<float> x = kCounts;
  ASSERT_TRUE(t->Apply(x.data(), static_cast<int64_t>(x.size())).ok());
  for (size_t k = 0; k < x.size(); ++k) EXPECT_FLOAT_EQ(x[k], std::log1p(kCounts[k]));
  t->Invert(x.data(), static_cast<int64_t>(x.size()));
  for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(x[k], kCounts[k], 1e-4 * (1 + kCounts[k]));
}

TEST(FeatureTransformTest, StandardizeGivesZeroMeanUnitDeviationPerFeature) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("standardize", kCounts, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<float> x = kCounts;
  ASSERT_TRUE(t->Apply(x.data(), 6).ok());
  // Feature 0: 0, 3, 8 (mean 11/3); feature 1: 10, 30, 20 (mean 20).
  const double mean0 = 11.0 / 3, sd0 = std::sqrt(((0 - mean0) * (0 - mean0) +
                                                   (3 - mean0) * (3 - mean0) +
                                                   (8 - mean0) * (8 - mean0)) / 3);
  const double sd1 = std::sqrt(200.0 / 3);
  EXPECT_NEAR(x[0], (0 - mean0) / sd0, 1e-6);
  EXPECT_NEAR(x[2], (3 - mean0) / sd0, 1e-6);
  EXPECT_NEAR(x[1], (10 - 20) / sd1, 1e-6);
  EXPECT_NEAR(x[5], 0.0, 1e-6);
  t->Invert(x.data(), 6);
  for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(x[k], kCounts[k], 1e-5);
}

TEST(FeatureTransformTest, Log1pStandardizeStandardizesTheLogs) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("log1p_standardize", kCounts, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<float> x = kCounts;
  ASSERT_TRUE(t->Apply(x.data(), 6).ok());
  for (int j = 0; j < 2; ++j) {
    double mean = 0, sq = 0;
    for (int i = 0; i < 3; ++i) mean += x[i * 2 + j] / 3.0;
    for (int i = 0; i < 3; ++i) sq += (x[i * 2 + j] - mean) * (x[i * 2 + j] - mean) / 3.0;
    EXPECT_NEAR(mean, 0.0, 1e-6) << j;
    EXPECT_NEAR(sq, 1.0, 1e-5) << j;
  }
  t->Invert(x.data(), 6);
  for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(x[k], kCounts[k], 1e-4 * (1 + kCounts[k]));
}

TEST(FeatureTransformTest, InverseOfLogKindsIsNeverNegative) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("log1p_standardize", kCounts, 2);
  ASSERT_TRUE(t.ok());
  std::vector<float> far_below = {-50.0f, -50.0f};  // below any data, in the trained space
  t->Invert(far_below.data(), 2);
  EXPECT_EQ(far_below, (std::vector<float>{0.0f, 0.0f}));
}

TEST(FeatureTransformTest, AutoPicksLogStandardizeForCountsOnly) {
  absl::StatusOr<FeatureTransform> counts = FeatureTransform::Fit("auto", kCounts, 2);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->kind(), "log1p_standardize");
  absl::StatusOr<FeatureTransform> reals = FeatureTransform::Fit("auto", {0.5f, 1, 2, 3}, 2);
  ASSERT_TRUE(reals.ok());
  EXPECT_TRUE(reals->identity());
  absl::StatusOr<FeatureTransform> negative = FeatureTransform::Fit("auto", {-1, 1, 2, 3}, 2);
  ASSERT_TRUE(negative.ok());
  EXPECT_TRUE(negative->identity());
}

TEST(FeatureTransformTest, ConstantFeatureKeepsScaleOne) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("standardize", {4, 1, 4, 2}, 2);
  ASSERT_TRUE(t.ok());
  std::vector<float> x = {4, 1, 4, 2};
  ASSERT_TRUE(t->Apply(x.data(), 4).ok());
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_TRUE(std::isfinite(x[1]));
}

TEST(FeatureTransformTest, BadInputNamesTheRule) {
  absl::StatusOr<FeatureTransform> negative = FeatureTransform::Fit("log1p", {1, -0.5f, 2, 3}, 2);
  ASSERT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.status().message(),
              HasSubstr("dataset: feature_transform log1p needs non-negative values, got -0.5 "
                        "(point 0, feature 1)"));
  EXPECT_THAT(FeatureTransform::Fit("sqrt", kCounts, 2).status().message(),
              HasSubstr("feature_transform: unknown 'sqrt'"));
  EXPECT_FALSE(FeatureTransform::Fit("none", {}, 2).ok());
  // Applying a fitted log transform to negative values (e.g. given source
  // clouds) names what was transformed.
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("log1p_standardize", kCounts, 2);
  ASSERT_TRUE(t.ok());
  std::vector<float> x = {1, -2};
  EXPECT_THAT(t->Apply(x.data(), 2, "source").message(), HasSubstr("source: feature_transform"));
}

TEST(FeatureTransformTest, JsonRoundTripAndChecks) {
  absl::StatusOr<FeatureTransform> t = FeatureTransform::Fit("log1p_standardize", kCounts, 2);
  ASSERT_TRUE(t.ok());
  absl::StatusOr<FeatureTransform> back = FeatureTransform::FromJson(t->ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind(), "log1p_standardize");
  std::vector<float> a = kCounts, b = kCounts;
  ASSERT_TRUE(t->Apply(a.data(), 6).ok());
  ASSERT_TRUE(back->Apply(b.data(), 6).ok());
  EXPECT_EQ(a, b);

  nlohmann::json bad = t->ToJson();
  bad["scale"][1] = 0.0;
  EXPECT_EQ(FeatureTransform::FromJson(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = t->ToJson();
  bad["kind"] = "auto";  // stored transforms are resolved
  EXPECT_EQ(FeatureTransform::FromJson(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = t->ToJson();
  bad["mean"].erase(0);
  EXPECT_EQ(FeatureTransform::FromJson(bad).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FeatureTransform::FromJson(nlohmann::json::object()).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace wfm::model
