#include "server/job_manager.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "repository/training_data.h"
#include "server/metrics.h"
#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using repository::HoldoutIndices;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatasetStoreOptions store;
    store.root = dir_.path() + "/datasets";
    datasets_ = *DatasetStore::Open(store);
    models_ = *ModelRegistry::Open(dir_.path() + "/models");
    OpenJobs();
  }

  void OpenJobs(int max_jobs = 1) {
    jobs_.reset();
    JobManagerOptions options;
    options.root = dir_.path() + "/jobs";
    options.max_jobs = max_jobs;
    auto jobs = JobManager::Open(options, datasets_.get(), models_.get(), &metrics_);
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    jobs_ = std::move(jobs).value();
  }

  void StoreClouds(const std::string& name, const model::io::PointCloudSet& set) {
    DatasetHeader h;
    h.name = name;
    h.kind = DatasetKind::kPointClouds;
    h.dim = set.dim;
    h.label_type = set.labels.empty() ? LabelType::kNone : LabelType::kDiscrete;
    auto upload = datasets_->BeginUpload(h);
    ASSERT_TRUE(upload.ok()) << upload.status();
    std::vector<int64_t> sizes;
    for (int64_t c = 0; c < set.num_clouds(); ++c) sizes.push_back(set.cloud_size(c));
    ASSERT_TRUE((*upload)->AddClouds(CloudChunkView{sizes, set.points, set.labels.strings, {}}).ok());
    ASSERT_TRUE((*upload)->Finish().ok());
  }

  void StoreGaussians(const std::string& name, const model::io::GaussianSet& set) {
    DatasetHeader h;
    h.name = name;
    h.kind = DatasetKind::kGaussians;
    h.dim = set.dim;
    auto upload = datasets_->BeginUpload(h);
    ASSERT_TRUE((*upload)->AddGaussians(GaussianChunkView{set.means, set.covs, {}}).ok());
    ASSERT_TRUE((*upload)->Finish().ok());
  }

  void StoreCells(const std::string& name, const testing::Cells& cells) {
    DatasetHeader h;
    h.name = name;
    h.kind = DatasetKind::kSpatialCells;
    h.dim = cells.dim;
    h.label_type = LabelType::kDiscrete;
    auto upload = datasets_->BeginUpload(h);
    ASSERT_TRUE((*upload)
                    ->AddCells(CellChunkView{cells.features, cells.coords, cells.sample_ids,
                                             cells.labels})
                    .ok());
    ASSERT_TRUE((*upload)->Finish().ok());
  }

  TrainingRequest PointCloudRequest(const std::string& dataset, const std::string& model,
                                    int64_t steps = 20) {
    TrainingRequest r;
    r.dataset = dataset;
    r.model = model;
    r.config.family = model::Family::kPointCloud;
    r.config.pointcloud = testing::TinyPointCloudConfig(steps);
    return r;
  }

  // Waits for the job to end (at most a minute).
  JobStatus WaitForEnd(const std::string& id) {
    int64_t version = -1;
    for (int i = 0; i < 600; ++i) {
      auto s = jobs_->WaitForUpdate(id, version, absl::Milliseconds(100));
      EXPECT_TRUE(s.ok()) << s.status();
      if (IsTerminal(s->state)) return *s;
      version = s->version;
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return *jobs_->Get(id);
  }

  // Waits until the job has run at least `steps` steps.
  void WaitForStep(const std::string& id, int64_t steps) {
    int64_t version = -1;
    for (int i = 0; i < 600; ++i) {
      auto s = jobs_->WaitForUpdate(id, version, absl::Milliseconds(100));
      if (s->step >= steps || IsTerminal(s->state)) return;
      version = s->version;
    }
  }

  testing::TempDir dir_;
  Metrics metrics_{"test"};
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(JobManagerTest, TrainsAndPublishesAPointCloudModel) {
  StoreClouds("shapes", testing::Ellipses(12, 1, true));
  TrainingRequest r = PointCloudRequest("shapes", "m", 25);
  r.config.holdout_fraction = 0.25;
  r.config.pointcloud.checkpoint_every = 10;
  auto started = jobs_->Start(r);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->id, "job-1");
  EXPECT_EQ(started->total_steps, 25);
  EXPECT_TRUE(started->state == JobState::kQueued);
  EXPECT_TRUE(fs::exists(dir_.path() + "/jobs/job-1.json"));
  const JobStatus done = WaitForEnd(started->id);
  ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  EXPECT_EQ(done.step, 25);
  EXPECT_GT(done.loss, 0.0);
  EXPECT_GT(done.steps_per_second, 0.0);
  EXPECT_GE(done.finished_unix_ms, done.started_unix_ms);
  EXPECT_EQ(done.checkpoint_step, 20);
  // The periodic checkpoint folder is gone once the model is published.
  EXPECT_FALSE(fs::exists(dir_.path() + "/jobs/job-1"));
  auto model = models_->Get("m");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info.summary.steps, 25);
  EXPECT_EQ((*model)->info.summary.items, 9);  // 12 minus 3 held out
  EXPECT_EQ((*model)->info.origin.heldout, HoldoutIndices(12, 0.25, r.config.seed()));
  EXPECT_EQ((*model)->info.origin.dataset, "shapes");
  const std::string text = metrics_.Text();
  EXPECT_EQ(testing::MetricValue(text, "wfm_training_steps_total", {{"model", "m"}}), 25);
  EXPECT_EQ(testing::MetricValue(text, "wfm_training_jobs", {{"state", "SUCCEEDED"}}), 1);
  // The record on disk says the same.
  std::ifstream in(dir_.path() + "/jobs/job-1.json");
  const nlohmann::json record = nlohmann::json::parse(in);
  EXPECT_EQ(record["state"], "SUCCEEDED");
  EXPECT_EQ(record["step"], 25);
}

TEST_F(JobManagerTest, TrainsGaussianModelsFromGaussiansAndFromCells) {
  StoreGaussians("g", testing::RandomGaussians(10, 2, 1));
  StoreCells("cells", testing::RandomCells(2, 15, 2, 3));
  TrainingRequest g;
  g.dataset = "g";
  g.model = "gm";
  g.config.family = model::Family::kGaussian;
  g.config.gaussian = testing::TinyGaussianConfig(10);
  TrainingRequest c = g;
  c.dataset = "cells";
  c.model = "cm";
  c.config.niche_size = 4;
  TrainingRequest p = PointCloudRequest("cells", "pm", 10);
  p.config.niche_size = 4;
  std::vector<std::string> ids;
  for (const TrainingRequest& r : {g, c, p}) {
    auto s = jobs_->Start(r);
    ASSERT_TRUE(s.ok()) << s.status();
    ids.push_back(s->id);
  }
  for (const std::string& id : ids) {
    const JobStatus s = WaitForEnd(id);
    EXPECT_EQ(JobStateName(s.state), "SUCCEEDED") << id << ": " << s.error;
  }
  EXPECT_EQ((*models_->Get("gm"))->info.family, model::Family::kGaussian);
  EXPECT_EQ((*models_->Get("cm"))->info.summary.items, 30);  // one niche Gaussian per cell
  EXPECT_EQ((*models_->Get("cm"))->info.origin.niche_size, 4);
  EXPECT_EQ((*models_->Get("pm"))->info.dim, 2);
}

TEST_F(JobManagerTest, ValidatesRequests) {
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

TEST_F(JobManagerTest, QueuesBeyondThePoolAndCancelsQueuedAndRunningJobs) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  auto running = jobs_->Start(PointCloudRequest("shapes", "long", 1000000));
  ASSERT_TRUE(running.ok());
  auto queued = jobs_->Start(PointCloudRequest("shapes", "next", 5));
  ASSERT_TRUE(queued.ok());
  // Another job for a model being trained is refused.
  absl::Status busy = jobs_->Start(PointCloudRequest("shapes", "long", 5)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(busy)) << busy;
  WaitForStep(running->id, 2);
  EXPECT_EQ(JobStateName(jobs_->Get(queued->id)->state), "QUEUED");
  auto cancelled_queued = jobs_->Cancel(queued->id);
  ASSERT_TRUE(cancelled_queued.ok());
  EXPECT_EQ(JobStateName(cancelled_queued->state), "CANCELLED");
  EXPECT_EQ(cancelled_queued->error, "cancelled by request before it started");
  auto cancelled = jobs_->Cancel(running->id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(JobStateName(cancelled->state), "CANCELLED");
  EXPECT_THAT(cancelled->error, StartsWith("cancelled by request at step "));
  EXPECT_LT(cancelled->step, 1000000);
  EXPECT_FALSE(models_->Contains("long"));
  EXPECT_FALSE(models_->Contains("next"));
  EXPECT_TRUE(absl::IsFailedPrecondition(jobs_->Cancel(running->id).status()));
  EXPECT_TRUE(absl::IsNotFound(jobs_->Cancel("job-99").status()));
  EXPECT_EQ(jobs_->List().size(), 2u);
}

TEST_F(JobManagerTest, AFailedJobCarriesTheErrorText) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  auto blocker = jobs_->Start(PointCloudRequest("shapes", "first", 1000000));
  auto victim = jobs_->Start(PointCloudRequest("shapes", "second", 5));
  ASSERT_TRUE(victim.ok());
  WaitForStep(blocker->id, 1);  // the blocker has its data
  ASSERT_TRUE(datasets_->Delete("shapes").ok());  // gone before the victim runs
  auto blocked = jobs_->Cancel(blocker->id);
  ASSERT_TRUE(blocked.ok());
  EXPECT_EQ(JobStateName(blocked->state), "CANCELLED");
  const JobStatus failed = WaitForEnd(victim->id);
  EXPECT_EQ(JobStateName(failed.state), "FAILED");
  EXPECT_THAT(failed.error, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(failed.error, HasSubstr("shapes"));
}

TEST_F(JobManagerTest, KeepsThePeriodicCheckpointOfACancelledJob) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  TrainingRequest r = PointCloudRequest("shapes", "m", 1000000);
  r.config.pointcloud.checkpoint_every = 3;
  auto job = jobs_->Start(r);
  WaitForStep(job->id, 4);
  for (int i = 0; i < 200 && !fs::exists(dir_.path() + "/jobs/job-1/checkpoint.wfm"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(jobs_->Cancel(job->id).ok());
  EXPECT_TRUE(fs::exists(dir_.path() + "/jobs/job-1/checkpoint.wfm"));
  EXPECT_GE(jobs_->Get(job->id)->checkpoint_step, 3);
}

TEST_F(JobManagerTest, ShutdownCancelsJobsAndARestartReportsInterruptedOnes) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  auto running = jobs_->Start(PointCloudRequest("shapes", "a", 1000000));
  auto queued = jobs_->Start(PointCloudRequest("shapes", "b", 5));
  WaitForStep(running->id, 1);
  EXPECT_TRUE(jobs_->Shutdown(absl::Now() + absl::Seconds(30)));
  EXPECT_THAT(jobs_->Get(running->id)->error, StartsWith("cancelled by server shutdown at step "));
  EXPECT_EQ(jobs_->Get(queued->id)->error, "cancelled by server shutdown before it started");
  EXPECT_TRUE(absl::IsUnavailable(jobs_->Start(PointCloudRequest("shapes", "c")).status()));

  // A server that died mid-run left a RUNNING record behind.
  std::ifstream in(dir_.path() + "/jobs/" + running->id + ".json");
  nlohmann::json record = nlohmann::json::parse(in);
  record["id"] = "job-7";
  record["state"] = "RUNNING";
  record["step"] = 42;
  std::ofstream(dir_.path() + "/jobs/job-7.json") << record.dump();
  std::ofstream(dir_.path() + "/jobs/job-8.json") << "{broken";
  OpenJobs();
  auto interrupted = jobs_->Get("job-7");
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  EXPECT_EQ(JobStateName(interrupted->state), "FAILED");
  EXPECT_EQ(interrupted->error, "interrupted by a server restart at step 42");
  EXPECT_EQ(JobStateName(jobs_->Get(running->id)->state), "CANCELLED");
  EXPECT_TRUE(absl::IsNotFound(jobs_->Get("job-8").status()));
  // New ids continue after the highest one seen.
  auto next = jobs_->Start(PointCloudRequest("shapes", "d", 3));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->id, "job-8");
  // The interrupted state was written back.
  std::ifstream again(dir_.path() + "/jobs/job-7.json");
  EXPECT_EQ(nlohmann::json::parse(again)["state"], "FAILED");
}

TEST_F(JobManagerTest, WatchersSeeProgressAtLeastEverySecond) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  auto job = jobs_->Start(PointCloudRequest("shapes", "m", 60));
  int64_t version = -1, events = 0, last_step = -1;
  bool monotonic = true;
  while (true) {
    auto s = jobs_->WaitForUpdate(job->id, version, absl::Seconds(1));
    ASSERT_TRUE(s.ok());
    if (s->version != version) {
      ++events;
      monotonic = monotonic && s->step >= last_step;
      last_step = s->step;
    }
    version = s->version;
    if (IsTerminal(s->state)) break;
  }
  EXPECT_TRUE(monotonic);
  EXPECT_GE(events, 3);  // queued, running, ..., succeeded
  EXPECT_EQ(last_step, 60);
}

}  // namespace
}  // namespace wfm::server
