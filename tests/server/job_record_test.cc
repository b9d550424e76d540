// server/job_record: a job's record as <data-dir>/jobs/<id>.json, its states
// and ids, and the clean-up of writes a crash interrupted.
#include "server/job_record.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "repository/fs_util.h"
#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

JobStatus SampleStatus() {
  JobStatus s;
  s.id = "job-12";
  s.request.dataset = "cells";
  s.request.model = "niches";
  s.request.overwrite = true;
  s.request.config.family = model::Family::kGaussian;
  s.request.config.gaussian = testing::TinyGaussianConfig(40, 9);
  s.request.config.source_dataset = "noise";
  s.request.config.niche_size = 6;
  s.request.config.holdout_fraction = 0.25;
  s.state = JobState::kRunning;
  s.step = 17;
  s.total_steps = 40;
  s.loss = 0.5;
  s.steps_per_second = 12.5;
  s.eta_seconds = 1.75;
  s.created_unix_ms = 1700000000001;
  s.started_unix_ms = 1700000000002;
  s.checkpoint_step = 10;
  s.version = 99;  // not stored: versions count within one process
  return s;
}

TEST(JobRecordTest, StatesAndIds) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                     JobState::kFailed, JobState::kCancelled}) {
    absl::StatusOr<JobState> back = ParseJobState(JobStateName(s));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, s);
    EXPECT_EQ(IsTerminal(s), s != JobState::kQueued && s != JobState::kRunning);
  }
  EXPECT_EQ(JobStateName(JobState::kCancelled), "CANCELLED");
  EXPECT_EQ(ParseJobState("DONE").status().message(), "unknown job state 'DONE'");
  EXPECT_EQ(JobNumber("job-12"), 12);
  EXPECT_EQ(JobNumber("job-x"), 0);
  EXPECT_EQ(JobNumber("12"), 0);
  EXPECT_TRUE(IsJobRecordFile("job-3.json"));
  EXPECT_FALSE(IsJobRecordFile("job-3"));  // a job's checkpoint folder
  EXPECT_FALSE(IsJobRecordFile(".job-3.json.tmp-1-2-ab"));
}

TEST(JobRecordTest, JsonKeepsTheRequestAndTheProgress) {
  const JobStatus s = SampleStatus();
  const nlohmann::json j = JobRecordToJson(s);
  EXPECT_EQ(j["format"], "wfm.job");
  EXPECT_EQ(j["request"]["family"], "gaussian");
  EXPECT_EQ(j["state"], "RUNNING");
  absl::StatusOr<JobStatus> back = JobRecordFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, s.id);
  EXPECT_EQ(back->request.dataset, "cells");
  EXPECT_EQ(back->request.model, "niches");
  EXPECT_TRUE(back->request.overwrite);
  const model::TrainingConfig& c = back->request.config;
  EXPECT_EQ(c.family, model::Family::kGaussian);
  EXPECT_EQ(c.source_dataset, "noise");
  EXPECT_EQ(c.niche_size, 6);
  EXPECT_EQ(c.holdout_fraction, 0.25);
  EXPECT_EQ(model::ToJson(c.gaussian), model::ToJson(s.request.config.gaussian));
  EXPECT_EQ(c.steps(), 40);
  EXPECT_EQ(c.seed(), 9u);
  EXPECT_EQ(back->state, JobState::kRunning);
  EXPECT_EQ(back->step, 17);
  EXPECT_EQ(back->total_steps, 40);
  EXPECT_EQ(back->loss, 0.5);
  EXPECT_EQ(back->steps_per_second, 12.5);
  EXPECT_EQ(back->eta_seconds, 1.75);
  EXPECT_EQ(back->created_unix_ms, 1700000000001);
  EXPECT_EQ(back->started_unix_ms, 1700000000002);
  EXPECT_EQ(back->checkpoint_step, 10);
  EXPECT_EQ(back->version, 0);
  EXPECT_EQ(back->request.init_from_model, "");
  EXPECT_EQ(back->resumes, 0);
  EXPECT_EQ(back->interrupted, "");

  // A resumed fine-tuning job keeps its base model and its resumptions.
  JobStatus tuned = s;
  tuned.request.init_from_model = "base";
  tuned.request.init_from_version = 1;
  tuned.request.init_from_created_unix_ms = 1700000000000;
  tuned.resumes = 2;
  tuned.resumed_from_step = 10;
  tuned.interrupted = "by server shutdown at step 12";
  absl::StatusOr<JobStatus> tuned_back =
      JobRecordFromJson(nlohmann::json::parse(JobRecordToJson(tuned).dump()));
  ASSERT_TRUE(tuned_back.ok()) << tuned_back.status();
  EXPECT_EQ(tuned_back->request.init_from_model, "base");
  EXPECT_EQ(tuned_back->request.init_from_version, 1);
  EXPECT_EQ(tuned_back->request.init_from_created_unix_ms, 1700000000000);
  EXPECT_EQ(tuned_back->resumes, 2);
  EXPECT_EQ(tuned_back->resumed_from_step, 10);
  EXPECT_EQ(tuned_back->interrupted, "by server shutdown at step 12");

  // A diverged loss is stored as null and read back as 0.
  JobStatus diverged = s;
  diverged.loss = std::numeric_limits<double>::quiet_NaN();
  const nlohmann::json dj = JobRecordToJson(diverged);
  EXPECT_TRUE(nlohmann::json::parse(dj.dump())["loss"].is_null());
  absl::StatusOr<JobStatus> read = JobRecordFromJson(nlohmann::json::parse(dj.dump()));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->loss, 0.0);

  nlohmann::json other = j;
  other["format"] = "wfm.dataset";
  EXPECT_TRUE(absl::IsDataLoss(JobRecordFromJson(other).status()));
  nlohmann::json no_state = j;
  no_state.erase("state");
  EXPECT_TRUE(absl::IsDataLoss(JobRecordFromJson(no_state).status()));
}

TEST(JobRecordTest, WrittenAtomicallyAndReadBack) {
  testing::TempDir dir;
  const JobStatus s = SampleStatus();
  ASSERT_TRUE(WriteJobRecord(dir.path(), s).ok());
  const std::string path = dir.path() + "/job-12.json";
  absl::StatusOr<JobStatus> read = ReadJobRecord(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->step, 17);
  EXPECT_EQ(std::vector<std::string>{"job-12.json"}, *repository::ListDir(dir.path()));
  std::ofstream(path, std::ios::trunc) << "{broken";
  EXPECT_EQ(ReadJobRecord(path).status().message(), "not valid JSON");
  // A record nested a million levels deep is refused before parsing, which
  // would otherwise recurse that deep.
  std::ofstream(path, std::ios::trunc) << std::string(1000000, '[') << std::string(1000000, ']');
  EXPECT_EQ(ReadJobRecord(path).status().message(), "JSON nested too deeply");
  EXPECT_TRUE(absl::IsNotFound(ReadJobRecord(dir.path() + "/job-13.json").status()));
  const absl::Status unwritable = WriteJobRecord(dir.path() + "/missing", s);
  EXPECT_FALSE(unwritable.ok());
}

TEST(JobRecordTest, LeftoverTemporaryFilesAreRemoved) {
  testing::TempDir dir;
  const std::string root = dir.path();
  ASSERT_TRUE(WriteJobRecord(root, SampleStatus()).ok());
  fs::create_directories(root + "/job-12");
  std::ofstream(root + "/job-12/checkpoint.wfm") << "kept";
  std::ofstream(root + "/job-12/.checkpoint.wfm.tmp-7-1-abcd") << "partial";
  std::ofstream(root + "/.job-12.json.tmp-7-2-abcd") << "partial";
  // Another job's (which another server may be writing now) are kept.
  std::ofstream(root + "/.job-1.json.tmp-7-3-abcd") << "partial";
  fs::create_directories(root + "/job-1");
  std::ofstream(root + "/job-1/.checkpoint.wfm.tmp-7-4-abcd") << "partial";
  RemoveLeftoverTemps(root, "job-12");
  EXPECT_EQ(*repository::ListDir(root), (std::vector<std::string>{".job-1.json.tmp-7-3-abcd",
                                                                  "job-1", "job-12", "job-12.json"}));
  EXPECT_EQ(*repository::ListDir(root + "/job-12"), std::vector<std::string>{"checkpoint.wfm"});
  EXPECT_EQ(*repository::ListDir(root + "/job-1"),
            std::vector<std::string>{".checkpoint.wfm.tmp-7-4-abcd"});
}

}  // namespace
}  // namespace wfm::server
