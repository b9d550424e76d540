#include "server/job_manager.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "repository/training_data.h"
#include "server/metrics.h"
#include "tests/server/store_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using repository::HoldoutIndices;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class JobManagerTest : public JobsTest {};

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
  ASSERT_TRUE(job.ok()) << job.status();
  // The job's status names the checkpoint once it is written.
  int64_t version = -1;
  for (int i = 0; i < 600; ++i) {
    auto s = jobs_->WaitForUpdate(job->id, version, absl::Milliseconds(100));
    ASSERT_TRUE(s.ok()) << s.status();
    if (s->checkpoint_step >= 3) break;
    version = s->version;
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
