#include "server/job_manager.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "model/checkpoint/checkpoint.h"
#include "model/train/pointcloud_trainer.h"
#include "repository/file_lock.h"
#include "repository/training_data.h"
#include "server/metrics.h"
#include "tests/server/store_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using repository::HoldoutIndices;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class JobManagerTest : public JobsTest {
 protected:
  // What a server killed during job `id` leaves behind: its record, in state
  // `state` at step `step`, naming the checkpoint of `checkpoint_step`, and
  // that checkpoint unless checkpoint_step is 0 (the run's first steps,
  // saved as the job manager saves them; with `other_data`, as if trained on
  // an earlier version of the data set).
  void LeaveInterruptedJob(const std::string& id, const TrainingRequest& r, int64_t checkpoint_step,
                           int64_t step, bool other_data = false,
                           JobState state = JobState::kRunning) {
    JobStatus s;
    s.id = id;
    s.request = r;
    s.state = state;
    s.step = step;
    s.total_steps = r.config.steps();
    s.checkpoint_step = checkpoint_step;
    s.created_unix_ms = 1;
    ASSERT_TRUE(WriteJobRecord(dir_.path() + "/jobs", s).ok());
    if (checkpoint_step == 0) return;
    auto data = datasets_->Load(r.dataset);
    ASSERT_TRUE(data.ok()) << data.status();
    auto inputs = repository::MakeTrainingInputs(**data, nullptr, r.config);
    ASSERT_TRUE(inputs.ok()) << inputs.status();
    auto trainer = model::PointCloudTrainer::Create(inputs->clouds, r.config.pointcloud, r.dataset);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    for (int64_t k = 0; k < checkpoint_step; ++k) ASSERT_TRUE((*trainer)->Step().ok());
    auto ckpt = (*trainer)->MakeCheckpoint(true);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    if (other_data) --inputs->origin.dataset_created_unix_ms;
    ckpt->metadata["server"] = inputs->origin.ToJson();
    fs::create_directories(dir_.path() + "/jobs/" + id);
    ASSERT_TRUE(model::checkpoint::Write(CheckpointFile(id), *ckpt).ok());
  }

  // Waits (at most a minute) until the job's status names a checkpoint of
  // `step` or later.
  void WaitForCheckpoint(const std::string& id, int64_t step) {
    int64_t version = -1;
    for (int i = 0; i < 600; ++i) {
      auto s = jobs_->WaitForUpdate(id, version, absl::Milliseconds(100));
      ASSERT_TRUE(s.ok()) << s.status();
      if (s->checkpoint_step >= step) return;
      version = s->version;
    }
    FAIL() << "no checkpoint of step " << step << " within a minute";
  }

  std::string CheckpointFile(const std::string& id) const {
    return dir_.path() + "/jobs/" + id + "/checkpoint.wfm";
  }

  // The tensors of a stored model's checkpoint whose names start with `prefix`.
  std::map<std::string, at::Tensor> Tensors(const std::string& model, const std::string& prefix) {
    std::map<std::string, at::Tensor> out;
    auto ckpt = models_->ReadCheckpoint(model);
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    if (!ckpt.ok()) return out;
    for (const auto& [name, tensor] : ckpt->tensors) {
      if (name.rfind(prefix, 0) == 0) out[name] = tensor;
    }
    return out;
  }
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

TEST_F(JobManagerTest, TheDefaultFeatureTransformIsForCountNichesOnly) {
  // Spatial cells with count features, and clouds in integer pixel
  // coordinates: both all non-negative integers.
  testing::Cells cells = testing::RandomCells(2, 15, 3, 4);
  for (float& v : cells.features) v = std::round(5.0f * std::abs(v));
  StoreCells("counts", cells);
  model::io::PointCloudSet pixels = testing::Ellipses(8, 2);
  for (float& v : pixels.points) v = std::round(10.0f * v + 20.0f);
  StoreClouds("pixels", pixels);
  TrainingRequest niches = PointCloudRequest("counts", "niches", 5);
  niches.config.niche_size = 4;
  TrainingRequest shapes = PointCloudRequest("pixels", "shapes", 5);
  ASSERT_EQ(niches.config.pointcloud.feature_transform, "auto");  // the default
  for (const TrainingRequest& r : {niches, shapes}) {
    auto s = jobs_->Start(r);
    ASSERT_TRUE(s.ok()) << s.status();
    const JobStatus done = WaitForEnd(s->id);
    ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  }
  auto niche_ckpt = models_->ReadCheckpoint("niches");
  ASSERT_TRUE(niche_ckpt.ok()) << niche_ckpt.status();
  ASSERT_TRUE(niche_ckpt->metadata.contains("feature_transform"));
  EXPECT_EQ(niche_ckpt->metadata["feature_transform"]["kind"], "log1p_standardize");
  auto shape_ckpt = models_->ReadCheckpoint("shapes");
  ASSERT_TRUE(shape_ckpt.ok()) << shape_ckpt.status();
  EXPECT_FALSE(shape_ckpt->metadata.contains("feature_transform"));
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
  ASSERT_NO_FATAL_FAILURE(WaitForCheckpoint(job->id, 3));
  ASSERT_TRUE(jobs_->Cancel(job->id).ok());
  EXPECT_TRUE(fs::exists(dir_.path() + "/jobs/job-1/checkpoint.wfm"));
  EXPECT_GE(jobs_->Get(job->id)->checkpoint_step, 3);
}

// A shutdown with resume_interrupted on: the running job is checkpointed at
// the step it reached and left QUEUED, as is the queued one; a job the user
// cancelled stays CANCELLED. The next start resumes both and they end as an
// uninterrupted run would.
TEST_F(JobManagerTest, ShutdownLeavesJobsToResumeFromTheStepReached) {
  StoreClouds("shapes", testing::Ellipses(8, 1));
  TrainingRequest r = PointCloudRequest("shapes", "whole", 100);
  r.config.pointcloud.checkpoint_every = 7;
  auto whole = jobs_->Start(r);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(JobStateName(WaitForEnd(whole->id).state), "SUCCEEDED");

  auto cancelled = jobs_->Start(PointCloudRequest("shapes", "cancelled", 1000000));
  r.model = "stopped";
  auto stopped = jobs_->Start(r);
  auto queued = jobs_->Start(PointCloudRequest("shapes", "queued", 5));
  ASSERT_TRUE(cancelled.ok() && stopped.ok() && queued.ok());
  WaitForStep(cancelled->id, 1);
  ASSERT_EQ(JobStateName(jobs_->Cancel(cancelled->id)->state), "CANCELLED");
  // One worker: the last job is still queued. Stopped right after its
  // first periodic checkpoint (watchers see each at once).
  ASSERT_NO_FATAL_FAILURE(WaitForCheckpoint(stopped->id, 7));
  EXPECT_TRUE(jobs_->Shutdown(absl::Now() + absl::Seconds(30)));
  const JobStatus left = *jobs_->Get(stopped->id);
  ASSERT_EQ(JobStateName(left.state), "QUEUED") << left.error;
  EXPECT_GE(left.step, 7);
  EXPECT_LT(left.step, 100);
  EXPECT_EQ(left.checkpoint_step, left.step);
  EXPECT_EQ(left.interrupted, "by server shutdown at step " + std::to_string(left.step));
  EXPECT_EQ(left.error, "");
  EXPECT_EQ(JobStateName(jobs_->Get(queued->id)->state), "QUEUED");
  // A watcher of a job left queued is told to come back later.
  EXPECT_TRUE(absl::IsUnavailable(jobs_->WaitForUpdate(queued->id, left.version + 1000,
                                                       absl::Seconds(10))
                                      .status()));
  std::ifstream in(dir_.path() + "/jobs/" + stopped->id + ".json");
  const nlohmann::json record = nlohmann::json::parse(in);
  EXPECT_EQ(record["state"], "QUEUED");
  EXPECT_EQ(record["checkpoint_step"], left.step);
  EXPECT_TRUE(fs::exists(CheckpointFile(stopped->id)));

  OpenJobs();
  const JobStatus done = WaitForEnd(stopped->id);
  ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  EXPECT_EQ(done.resumes, 1);
  EXPECT_EQ(done.resumed_from_step, left.step);
  EXPECT_EQ(done.step, 100);
  EXPECT_EQ(done.interrupted, "");
  const JobStatus next = WaitForEnd(queued->id);
  EXPECT_EQ(JobStateName(next.state), "SUCCEEDED") << next.error;
  EXPECT_EQ(next.step, 5);
  EXPECT_EQ(JobStateName(jobs_->Get(cancelled->id)->state), "CANCELLED");
  EXPECT_EQ(jobs_->Get(cancelled->id)->resumes, 0);
  EXPECT_FALSE(models_->Contains("cancelled"));
  const std::map<std::string, at::Tensor> expected = Tensors("whole", "");
  const std::map<std::string, at::Tensor> got = Tensors("stopped", "");
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_EQ(got.count(name), 1u) << name;
    EXPECT_TRUE(at::equal(got.at(name), tensor)) << name;
  }
}

// Two managers on one jobs folder (two servers sharing a data folder): each
// job is run by the one that claimed it, the other shows its record, never
// gives out its id, asks its owner to cancel it, and takes it over once its
// owner has let it go (here: a shutdown that left it queued).
TEST_F(JobManagerTest, ManagersSharingAFolderRunEachJobOnceAndTakeOverLeftJobs) {
  StoreClouds("shapes", testing::Ellipses(8, 1));
  TrainingRequest r = PointCloudRequest("shapes", "long", 1000000);
  r.config.pointcloud.checkpoint_every = 3;
  auto mine = jobs_->Start(r);
  ASSERT_TRUE(mine.ok()) << mine.status();
  WaitForStep(mine->id, 1);
  JobManagerOptions options;
  options.root = dir_.path() + "/jobs";
  options.claim_interval = absl::Milliseconds(20);
  options.identity = "the other server";
  auto other = JobManager::Open(options, datasets_.get(), models_.get());
  ASSERT_TRUE(other.ok()) << other.status();
  // The running job is left to its owner, shown as its record says.
  auto seen = (*other)->Get(mine->id);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(JobStateName(seen->state), "RUNNING");
  EXPECT_EQ(seen->resumes, 0);
  auto refused = (*other)->Start(PointCloudRequest("shapes", "long", 5));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  auto theirs = (*other)->Start(PointCloudRequest("shapes", "short", 5));
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  EXPECT_NE(theirs->id, mine->id);
  const std::string claim = dir_.path() + "/jobs/" + theirs->id + ".lock";
  EXPECT_EQ(repository::FileLock::ReadHolder(claim), "the other server");
  // Each finds the other's job by id (no restart).
  auto found = jobs_->Get(theirs->id);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->request.model, "short");
  // A cancel through the manager that does not own the job.
  auto cancelled = (*other)->Cancel(mine->id, absl::Seconds(60));
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(JobStateName(cancelled->state), "CANCELLED");
  EXPECT_THAT(cancelled->error, StartsWith("cancelled by request at step "));
  EXPECT_EQ(JobStateName(jobs_->Get(mine->id)->state), "CANCELLED");
  EXPECT_FALSE(models_->Contains("long"));

  // A job left queued by its owner's shutdown is taken over and resumed.
  r.model = "moved";
  auto moved = jobs_->Start(r);
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_NO_FATAL_FAILURE(WaitForCheckpoint(moved->id, 3));
  jobs_.reset();
  JobStatus taken;
  int64_t version = -1;
  for (int i = 0; i < 600 && taken.resumed_from_step == 0; ++i) {
    auto s = (*other)->WaitForUpdate(moved->id, version, absl::Milliseconds(100));
    ASSERT_TRUE(s.ok()) << s.status();
    taken = *s;
    version = taken.version;
  }
  EXPECT_EQ(JobStateName(taken.state), "RUNNING");
  EXPECT_EQ(taken.resumes, 1);
  EXPECT_GE(taken.resumed_from_step, 3);
  EXPECT_EQ(JobStateName((*other)->Cancel(moved->id)->state), "CANCELLED");
  EXPECT_EQ(JobStateName(WaitForEndOf(**other, theirs->id).state), "SUCCEEDED");
}

// A job whose server died after this one started, cancelled here: claimed
// and recorded CANCELLED at once, never resumed.
TEST_F(JobManagerTest, ACancelOfAJobWhoseServerIsGoneEndsItAtOnce) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  ASSERT_NO_FATAL_FAILURE(
      LeaveInterruptedJob("job-5", PointCloudRequest("shapes", "orphan", 100), 0, 7));
  auto cancelled = jobs_->Cancel("job-5");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(JobStateName(cancelled->state), "CANCELLED");
  EXPECT_EQ(cancelled->error,
            "cancelled by request at step 7 (its server had stopped; it was not resumed)");
  EXPECT_EQ(cancelled->resumes, 0);
  EXPECT_FALSE(fs::exists(dir_.path() + "/jobs/job-5.cancel"));
  auto recorded = ReadJobRecord(dir_.path() + "/jobs/job-5.json");
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(JobStateName(recorded->state), "CANCELLED");
  EXPECT_FALSE(models_->Contains("orphan"));
  // Ended jobs are nobody's: no claim is left held.
  auto free = repository::FileLock::TryAcquire(dir_.path() + "/jobs/job-5.lock", "test");
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_TRUE(free->has_value());
}

// With resume_interrupted off (--resume-interrupted-jobs=false): a shutdown
// cancels its jobs and a restart reports interrupted ones FAILED.
TEST_F(JobManagerTest, ShutdownCancelsJobsAndARestartReportsInterruptedOnes) {
  OpenJobs(1, /*resume_interrupted=*/false);
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
  OpenJobs(1, /*resume_interrupted=*/false);
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

TEST_F(JobManagerTest, AResumedJobEndsWithTheParametersOfAnUninterruptedRun) {
  StoreClouds("shapes", testing::Ellipses(8, 1));
  TrainingRequest r = PointCloudRequest("shapes", "whole", 12);
  r.config.pointcloud.checkpoint_every = 4;
  r.config.pointcloud.optimizer.ema_decay = 0.9;  // the moving average resumes too
  auto whole = jobs_->Start(r);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(JobStateName(WaitForEnd(whole->id).state), "SUCCEEDED");

  // The same run, killed at step 6 after its checkpoint at step 4.
  r.model = "resumed";
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-5", r, 4, 6));
  OpenJobs();
  const JobStatus done = WaitForEnd("job-5");
  ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  EXPECT_EQ(done.resumes, 1);
  EXPECT_EQ(done.resumed_from_step, 4);
  EXPECT_EQ(done.step, 12);
  EXPECT_EQ(done.checkpoint_step, 8);
  EXPECT_FALSE(fs::exists(dir_.path() + "/jobs/job-5"));
  // Same seed, same threads: bit for bit the uninterrupted run's weights,
  // moving average and optimizer state.
  const std::map<std::string, at::Tensor> expected = Tensors("whole", "");
  const std::map<std::string, at::Tensor> got = Tensors("resumed", "");
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_FALSE(expected.empty());
  for (const auto& [name, tensor] : expected) {
    ASSERT_EQ(got.count(name), 1u) << name;
    EXPECT_TRUE(at::equal(got.at(name), tensor)) << name;
  }
  auto resumed = models_->Get("resumed");
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ((*resumed)->info.origin.job, "job-5");
  EXPECT_EQ((*resumed)->info.summary.steps, 12);

  // Killed after publishing, before the final record: a restart does not
  // train it again.
  const int64_t published = (*resumed)->info.created_unix_ms;
  LeaveInterruptedJob("job-5", r, 0, 12);
  OpenJobs();
  auto again = jobs_->Get("job-5");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(JobStateName(again->state), "SUCCEEDED");
  EXPECT_EQ(again->resumes, 0);
  EXPECT_EQ((*models_->Get("resumed"))->info.created_unix_ms, published);
  EXPECT_EQ(jobs_->List().size(), 2u);
}

TEST_F(JobManagerTest, AResumptionFailsClearlyWithoutItsCheckpointOrOnReplacedData) {
  StoreClouds("shapes", testing::Ellipses(8, 1));
  TrainingRequest r = PointCloudRequest("shapes", "a", 12);
  r.config.pointcloud.checkpoint_every = 4;
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-1", r, 4, 5));
  fs::remove(CheckpointFile("job-1"));
  r.model = "b";
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-2", r, 4, 5));
  fs::resize_file(CheckpointFile("job-2"), 100);
  r.model = "c";
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-3", r, 4, 5, /*other_data=*/true));
  // Killed before its first checkpoint, and one that was still queued:
  // both start afresh.
  r.model = "d";
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-4", r, 0, 2));
  r.model = "e";
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-6", r, 0, 0, false, JobState::kQueued));
  OpenJobs();
  const JobStatus missing = WaitForEnd("job-1");
  EXPECT_EQ(JobStateName(missing.state), "FAILED");
  EXPECT_EQ(missing.error, "DATA_LOSS: cannot resume: the checkpoint of step 4 (" +
                               CheckpointFile("job-1") + ") is missing");
  const JobStatus corrupt = WaitForEnd("job-2");
  EXPECT_EQ(JobStateName(corrupt.state), "FAILED");
  EXPECT_THAT(corrupt.error,
              StartsWith("DATA_LOSS: cannot resume: " + CheckpointFile("job-2") + ": "));
  const JobStatus replaced = WaitForEnd("job-3");
  EXPECT_EQ(JobStateName(replaced.state), "FAILED");
  EXPECT_THAT(replaced.error,
              StartsWith("FAILED_PRECONDITION: cannot resume: dataset 'shapes' was replaced"));
  for (const char* id : {"job-4", "job-6"}) {
    const JobStatus afresh = WaitForEnd(id);
    EXPECT_EQ(JobStateName(afresh.state), "SUCCEEDED") << id << ": " << afresh.error;
    EXPECT_EQ(afresh.resumes, 1);
    EXPECT_EQ(afresh.resumed_from_step, 0);
    EXPECT_EQ(afresh.step, 12);
  }
  EXPECT_FALSE(models_->Contains("a"));
  EXPECT_FALSE(models_->Contains("b"));
  EXPECT_FALSE(models_->Contains("c"));
  EXPECT_TRUE(models_->Contains("d"));
  EXPECT_TRUE(models_->Contains("e"));
}

TEST_F(JobManagerTest, FineTuningStartsFromAStoredModelsWeights) {
  StoreClouds("shapes", testing::Ellipses(8, 1));
  StoreClouds("more", testing::Ellipses(6, 2));
  auto base = jobs_->Start(PointCloudRequest("shapes", "base", 10));
  ASSERT_TRUE(base.ok()) << base.status();
  ASSERT_EQ(JobStateName(WaitForEnd(base->id).state), "SUCCEEDED");
  // One step at a vanishing learning rate keeps the starting weights: the
  // base model's with init_from_model, a fresh network's without.
  TrainingRequest t = PointCloudRequest("more", "fresh", 1);
  t.config.pointcloud.optimizer.learning_rate = 1e-20;
  t.config.pointcloud.optimizer.seed = 7;
  auto fresh = jobs_->Start(t);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  t.model = "tuned";
  t.init_from_model = "base";
  auto tuned = jobs_->Start(t);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  ASSERT_EQ(JobStateName(WaitForEnd(fresh->id).state), "SUCCEEDED");
  const JobStatus done = WaitForEnd(tuned->id);
  ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  EXPECT_EQ(done.request.init_from_model, "base");
  const std::map<std::string, at::Tensor> from = Tensors("base", "model.");
  const std::map<std::string, at::Tensor> tuned_weights = Tensors("tuned", "model.");
  const std::map<std::string, at::Tensor> fresh_weights = Tensors("fresh", "model.");
  ASSERT_EQ(tuned_weights.size(), from.size());
  bool fresh_differs = false;
  for (const auto& [name, tensor] : from) {
    EXPECT_TRUE(at::allclose(tuned_weights.at(name), tensor, 0.0, 1e-12)) << name;
    fresh_differs = fresh_differs || !at::allclose(fresh_weights.at(name), tensor, 0.0, 1e-6);
  }
  EXPECT_TRUE(fresh_differs);
  auto info = models_->Get("tuned");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ((*info)->info.origin.init_from_model, "base");
  EXPECT_EQ((*info)->info.origin.dataset, "more");

  // A base model replaced after the job was queued is refused.
  t.model = "late";
  t.init_from_created_unix_ms = (*models_->Get("base"))->info.created_unix_ms - 1;
  ASSERT_NO_FATAL_FAILURE(LeaveInterruptedJob("job-9", t, 0, 0, false, JobState::kQueued));
  OpenJobs();
  const JobStatus late = WaitForEnd("job-9");
  EXPECT_EQ(JobStateName(late.state), "FAILED");
  EXPECT_EQ(late.error,
            "FAILED_PRECONDITION: init_from_model: model 'base' was replaced after the job was "
            "queued; start a new job to fine-tune it");
}

// Training into an existing name publishes the next version; fine-tuning
// takes any stored version, the serving one (resolved when queued) by default.
TEST_F(JobManagerTest, TrainingIntoAnExistingNameAddsAVersion) {
  StoreClouds("shapes", testing::Ellipses(6, 1));
  for (int i = 0; i < 2; ++i) {
    auto job = jobs_->Start(PointCloudRequest("shapes", "m", 2));
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_EQ(JobStateName(WaitForEnd(job->id).state), "SUCCEEDED");
  }
  auto model = models_->Describe("m");
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->versions.size(), 2u);
  EXPECT_EQ(model->serving_version, 2);
  EXPECT_NE(model->versions[0]->info.origin.job, model->versions[1]->info.origin.job);
  TrainingRequest t = PointCloudRequest("shapes", "tuned", 1);
  t.init_from_model = "m";
  auto serving = jobs_->Start(t);
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_EQ(serving->request.init_from_version, 2);
  ASSERT_EQ(JobStateName(WaitForEnd(serving->id).state), "SUCCEEDED");
  t.init_from_version = 1;
  auto first = jobs_->Start(t);
  ASSERT_TRUE(first.ok()) << first.status();
  const JobStatus done = WaitForEnd(first->id);
  ASSERT_EQ(JobStateName(done.state), "SUCCEEDED") << done.error;
  auto tuned = models_->Get("tuned", 2);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_EQ((*tuned)->info.origin.init_from_version, 1);
  EXPECT_EQ((*models_->Get("tuned", 1))->info.origin.init_from_version, 2);
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
