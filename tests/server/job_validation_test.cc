// server/job_validation: a training request against the stores, called
// directly and through StartTraining's path (the job manager's Start).
#include "server/job_validation.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/store_test_util.h"

namespace wfm::server {
namespace {

using ::testing::HasSubstr;

class JobValidationTest : public JobsTest {
 protected:
  absl::Status Validate(const TrainingRequest& r) {
    return ValidateTrainingRequest(r, *datasets_, *models_);
  }
  // A tiny Gaussian model of `dataset` in batches of `batch`.
  static TrainingRequest GaussianRequest(const std::string& dataset, const std::string& model,
                                         int64_t batch) {
    TrainingRequest r;
    r.dataset = dataset;
    r.model = model;
    r.config.family = model::Family::kGaussian;
    r.config.gaussian = testing::TinyGaussianConfig(5);
    r.config.gaussian.optimizer.batch_size = batch;
    return r;
  }
};

TEST_F(JobValidationTest, ValidatesRequests) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  StoreGaussians("g", testing::RandomGaussians(4, 2, 1));
  EXPECT_TRUE(absl::IsNotFound(jobs_->Start(PointCloudRequest("missing", "m")).status()));
  absl::Status kind = jobs_->Start(PointCloudRequest("g", "m")).status();
  EXPECT_TRUE(absl::IsInvalidArgument(kind));
  EXPECT_THAT(std::string(kind.message()), HasSubstr("holds GAUSSIANS"));
  TrainingRequest bad = PointCloudRequest("shapes", "m");
  bad.config.pointcloud.network.width = 15;  // not divisible by 2 heads
  EXPECT_TRUE(absl::IsInvalidArgument(jobs_->Start(bad).status()));
  bad = PointCloudRequest("shapes", "m");
  bad.config.holdout_fraction = 1.0;
  EXPECT_THAT(std::string(jobs_->Start(bad).status().message()), HasSubstr("holdout_fraction"));
  bad = PointCloudRequest("shapes", "m");
  bad.config.source_dataset = "g";
  EXPECT_THAT(std::string(jobs_->Start(bad).status().message()), HasSubstr("source_dataset"));
  bad = PointCloudRequest("shapes", "m");
  bad.config.pointcloud.source = model::PointCloudSource::kGivenRandom;
  EXPECT_THAT(std::string(jobs_->Start(bad).status().message()),
              HasSubstr("needs a data set of source items"));
  bad.config.source_dataset = "g";
  EXPECT_THAT(std::string(jobs_->Start(bad).status().message()), HasSubstr("holds GAUSSIANS"));
  EXPECT_TRUE(absl::IsInvalidArgument(jobs_->Start(PointCloudRequest("shapes", "a b")).status()));
  EXPECT_TRUE(jobs_->List().empty());
}

// Gaussian models train on point clouds (each cloud's mean and covariance):
// validated, then trained to the end.
TEST_F(JobValidationTest, GaussianModelsOfPointClouds) {
  StoreClouds("shapes", testing::Ellipses(6, 1, /*labelled=*/true));
  TrainingRequest r = GaussianRequest("shapes", "shape-gaussians", 4);
  EXPECT_TRUE(Validate(r).ok()) << Validate(r);
  absl::StatusOr<JobStatus> job = jobs_->Start(r);
  ASSERT_TRUE(job.ok()) << job.status();
  const JobStatus end = WaitForEnd(job->id);
  EXPECT_EQ(end.state, JobState::kSucceeded) << end.error;
  absl::StatusOr<std::shared_ptr<const Servable>> m = models_->Get("shape-gaussians");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->info.family, model::Family::kGaussian);
  EXPECT_EQ((*m)->info.dim, 2);
  EXPECT_EQ((*m)->info.origin.dataset_kind, "POINT_CLOUDS");

  model::io::PointCloudSet dots;  // a cloud of one point has no covariance
  dots.dim = 2;
  dots.points = {0, 0, 1, 1, 2, 2};
  dots.offsets = {0, 2, 3};
  StoreClouds("dots", dots);
  r.dataset = "dots";
  r.config.gaussian.optimizer.batch_size = 1;
  EXPECT_EQ(Validate(r).message(),
            "config.family: gaussian models of point clouds need clouds of 2 or more points (a "
            "sample covariance); 'dots' has a cloud of 1");
  model::io::PointCloudSet wide;
  wide.dim = kMaxGaussianDim + 1;
  wide.points.assign(4 * wide.dim, 0.5f);
  wide.offsets = {0, 2, 4};
  StoreClouds("wide", wide);
  r.dataset = "wide";
  EXPECT_EQ(Validate(r).message(),
            "config.family: gaussian models of point clouds take dim <= 512 (a dim x dim "
            "covariance per cloud); 'wide' has dim 513");
}

TEST_F(JobValidationTest, BatchNicheSizeSourcesAndExistingModels) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  StoreClouds("wide", testing::Ellipses(6, 2));
  StoreGaussians("g", testing::RandomGaussians(4, 2, 1));
  StoreCells("cells", testing::RandomCells(1, 12, 3, 2));
  TrainingRequest r = PointCloudRequest("shapes", "m");
  EXPECT_TRUE(Validate(r).ok()) << Validate(r);

  // The batch must fit the items left after the holdout: 6 - round(0.5 x 6).
  r.config.pointcloud.optimizer.batch_size = 4;
  r.config.holdout_fraction = 0.5;
  EXPECT_EQ(Validate(r).message(),
            "config.optimizer.batch_size: 4 is larger than the 3 training items of 'shapes'");
  r.config.holdout_fraction = 0.99;
  EXPECT_EQ(Validate(r).message(),
            "config.holdout_fraction: 0.99 of 6 items leaves nothing to train on");

  // Niche sizes count for cells only.
  r = PointCloudRequest("cells", "m");
  r.config.niche_size = 0;
  EXPECT_EQ(Validate(r).message(), "config.niche_size: must be in [1, 1024], got 0");
  r = PointCloudRequest("shapes", "m");
  r.config.niche_size = 0;
  EXPECT_TRUE(Validate(r).ok());

  // Sources of the family's kind and dimension.
  r = PointCloudRequest("shapes", "m");
  r.config.pointcloud.source = model::PointCloudSource::kGivenMatched;
  r.config.source_dataset = "wide";
  EXPECT_TRUE(Validate(r).ok()) << Validate(r);
  r.config.source_dataset = "cells";
  EXPECT_EQ(Validate(r).message(),
            "config.pointcloud.source_dataset: 'cells' holds SPATIAL_CELLS, sources must be "
            "POINT_CLOUDS");
  r.config.source_dataset = "missing";
  EXPECT_TRUE(absl::IsNotFound(Validate(r)));

  // A Gaussian source of another dimension.
  TrainingRequest g = GaussianRequest("g", "gm", 2);
  EXPECT_TRUE(Validate(g).ok()) << Validate(g);
  StoreGaussians("g3", testing::RandomGaussians(4, 3, 1));
  g.config.gaussian.source = model::GaussianSource::kGivenRandom;
  g.config.source_dataset = "g3";
  EXPECT_EQ(Validate(g).message(), "config.gaussian.source_dataset: 'g3' has dim 3, the data set 2");

  // Training into a model that exists adds a version (overwrite replaces
  // them all); fine-tuning names an existing version.
  r = PointCloudRequest("shapes", "m", 3);
  auto job = jobs_->Start(r);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(WaitForEnd(job->id).state, JobState::kSucceeded);
  EXPECT_TRUE(Validate(r).ok()) << Validate(r);
  r.overwrite = true;
  EXPECT_TRUE(Validate(r).ok());
  r.overwrite = false;
  r.init_from_model = "m";
  r.init_from_version = 1;
  EXPECT_TRUE(Validate(r).ok()) << Validate(r);
  r.init_from_version = 2;
  EXPECT_EQ(Validate(r).message(), "init_from_version: model 'm' has no version 2");
}

}  // namespace
}  // namespace wfm::server
