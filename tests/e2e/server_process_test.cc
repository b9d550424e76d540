// End-to-end tests of the wfm-server binary as a process: the ready line,
// graceful shutdown on SIGTERM / SIGINT (running jobs checkpointed at the
// step reached and resumed by the next start; cancelled with
// --resume-interrupted-jobs=false; no partial files), and a job killed with
// the server (SIGKILL) resuming from its checkpoint after a restart, or
// reported interrupted with --resume-interrupted-jobs=false.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/server/client_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/wait.h"

namespace wfm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// One wfm-server process on the test's data folder, checkpointing every 5
// steps, with a 20 s grace period.
ServerProcessOptions ServerOn(const std::string& data_dir, const std::string& log) {
  return {data_dir, log, {"--checkpoint-every", "5", "--grace-period-seconds", "20"}, 0};
}

// Starts a training job of model `model` on data set "d" and waits until it
// is at step `step` or later.
pb::TrainingJob StartJobAndWait(pb::WfmService::Stub& stub, const std::string& model,
                                int64_t steps, int64_t step) {
  pb::TrainingJob job;
  EXPECT_TRUE(StartTraining(stub, "d", model, TinyConfig(pb::FAMILY_POINTCLOUD, steps), &job).ok());
  const bool reached = WaitUntil(
      [&] {
        EXPECT_TRUE(GetTrainingJob(stub, job.id(), &job).ok());
        return job.step() >= step;
      },
      absl::Seconds(30), absl::Milliseconds(50));
  EXPECT_TRUE(reached) << "the job is at step " << job.step() << " after 30 s";
  return job;
}

// Uploads "d", starts a job of model "long" for `steps` steps and waits until
// it has checkpointed (step 12 or later: two checkpoints written).
pb::TrainingJob StartLongJob(pb::WfmService::Stub& stub, int64_t steps = 10000000) {
  EXPECT_TRUE(Upload(stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(8, 1), 4)).ok());
  return StartJobAndWait(stub, "long", steps, 12);
}

// Files below `root` whose names mark unfinished writes.
std::vector<std::string> PartialFiles(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos || name.rfind(".~", 0) == 0) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

// A rolling update: SIGTERM checkpoints the running job at the step it
// reached; the next server resumes it there and it ends with its steps.
TEST(ServerProcessTest, SigtermLeavesJobsToResumeAndNoPartialFiles) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::string job_id;
  constexpr int64_t kSteps = 300;
  {
    ChildServer server(ServerOn(data, dir.path() + "/log1"));
    const std::string ready = server.WaitReady();
    ASSERT_THAT(ready, MatchesRegex("wfm-server ready: grpc 127\\.0\\.0\\.1:[0-9]+, metrics "
                                    "127\\.0\\.0\\.1:[0-9]+, data .*, 0 models, 0 data sets"))
        << server.Log();
    EXPECT_EQ(HealthStatus(server.Channel(), "wfm.v1.WfmService"), 1);
    auto stub = server.Stub();
    const pb::TrainingJob job = StartLongJob(*stub, kSteps);
    ASSERT_EQ(job.state(), pb::RUNNING);
    job_id = job.id();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(60), 0) << server.Log();
    EXPECT_NE(server.Log().find("draining"), std::string::npos);
    EXPECT_NE(server.Log().find("wfm-server stopped"), std::string::npos);
  }
  // Left queued, checkpointed at the step it reached (checkpoints every 5
  // steps otherwise).
  std::ifstream in(data + "/jobs/" + job_id + ".json");
  const nlohmann::json record = nlohmann::json::parse(in);
  EXPECT_EQ(record["state"], "QUEUED");
  const int64_t stopped_at = record["step"].get<int64_t>();
  EXPECT_GE(stopped_at, 12);
  EXPECT_LT(stopped_at, kSteps);
  EXPECT_EQ(record["checkpoint_step"], stopped_at);
  EXPECT_EQ(record["interrupted"], "by server shutdown at step " + std::to_string(stopped_at));
  EXPECT_TRUE(fs::exists(data + "/jobs/" + job_id + "/checkpoint.wfm"));
  EXPECT_THAT(PartialFiles(data), ::testing::IsEmpty());

  // The restarted server knows the data set and resumes the job where it
  // stopped; SIGINT stops it as well.
  ChildServer again(ServerOn(data, dir.path() + "/log2"));
  ASSERT_THAT(again.WaitReady(), ::testing::HasSubstr("0 models, 1 data sets")) << again.Log();
  auto stub = again.Stub();
  pb::TrainingJob job;
  const bool ended = WaitUntil(
      [&] {
        EXPECT_TRUE(GetTrainingJob(*stub, job_id, &job).ok());
        return job.state() != pb::QUEUED && job.state() != pb::RUNNING;
      },
      absl::Seconds(60), absl::Milliseconds(50));
  ASSERT_TRUE(ended) << job.DebugString() << again.Log();
  EXPECT_EQ(job.state(), pb::SUCCEEDED) << job.error();
  EXPECT_EQ(job.resumes(), 1);
  EXPECT_EQ(job.resumed_from_step(), stopped_at);
  EXPECT_EQ(job.step(), kSteps);
  pb::ModelInfo model;
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, std::string("long"), &model).ok());
  EXPECT_EQ(model.summary().steps(), kSteps);
  again.Signal(SIGINT);
  EXPECT_EQ(again.Wait(60), 0) << again.Log();
}

TEST(ServerProcessTest, JobsKilledWithTheServerResumeAfterARestart) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::string long_id, short_id;
  int64_t step_before = 0;
  {
    ChildServer server(ServerOn(data, dir.path() + "/log1"));
    ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
    auto stub = server.Stub();
    const pb::TrainingJob job = StartLongJob(*stub);
    ASSERT_EQ(job.state(), pb::RUNNING);
    long_id = job.id();
    step_before = job.step();
    pb::TrainingJob queued;
    ASSERT_TRUE(
        StartTraining(*stub, "d", "short", TinyConfig(pb::FAMILY_POINTCLOUD, 30), &queued).ok());
    ASSERT_EQ(queued.state(), pb::QUEUED);
    short_id = queued.id();
    server.Signal(SIGKILL);
    EXPECT_EQ(server.Wait(30), 128 + SIGKILL);
  }
  // The restarted server continues the running job from its last checkpoint
  // (every 5 steps: the job was past step 12, so at least step 10), then
  // runs the queued one to its end.
  std::string killed_id;
  {
    ChildServer again(ServerOn(data, dir.path() + "/log2"));
    ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
    auto stub = again.Stub();
    pb::TrainingJob job;
    const bool continued = WaitUntil(
        [&] {
          EXPECT_TRUE(GetTrainingJob(*stub, long_id, &job).ok());
          return job.state() == pb::RUNNING && job.resumes() == 1 &&
                 job.resumed_from_step() > 0 && job.step() > job.resumed_from_step();
        },
        absl::Seconds(30), absl::Milliseconds(50));
    ASSERT_TRUE(continued) << job.DebugString() << again.Log();
    EXPECT_GE(step_before, 12);
    EXPECT_GE(job.resumed_from_step(), 10);
    EXPECT_LE(job.resumed_from_step(), step_before + 5);
    EXPECT_THAT(again.Log(),
                HasSubstr("job " + long_id + " (model 'long') resumes after a server restart"));
    ASSERT_TRUE(CancelTrainingJob(*stub, long_id, &job).ok());
    EXPECT_EQ(job.state(), pb::CANCELLED);
    const bool finished = WaitUntil(
        [&] {
          EXPECT_TRUE(GetTrainingJob(*stub, short_id, &job).ok());
          return job.state() != pb::QUEUED && job.state() != pb::RUNNING;
        },
        absl::Seconds(60), absl::Milliseconds(50));
    ASSERT_TRUE(finished) << job.DebugString();
    EXPECT_EQ(job.state(), pb::SUCCEEDED) << job.error();
    EXPECT_EQ(job.resumes(), 1);
    EXPECT_EQ(job.resumed_from_step(), 0);  // it had not started: from the start
    EXPECT_EQ(job.step(), 30);
    pb::ModelInfo model;
    ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, std::string("short"), &model).ok());
    EXPECT_EQ(model.summary().steps(), 30);
    // Another job, killed with this server.
    pb::TrainingJob next;
    ASSERT_TRUE(
        StartTraining(*stub, "d", "next", TinyConfig(pb::FAMILY_POINTCLOUD, 10000000), &next).ok());
    killed_id = next.id();
    ASSERT_TRUE(WaitUntil(
        [&] {
          EXPECT_TRUE(GetTrainingJob(*stub, killed_id, &next).ok());
          return next.checkpoint_step() >= 5;
        },
        absl::Seconds(30), absl::Milliseconds(50)))
        << next.DebugString();
    again.Signal(SIGKILL);
    EXPECT_EQ(again.Wait(30), 128 + SIGKILL);
  }
  // With --resume-interrupted-jobs=false it is reported interrupted, and
  // nothing that had ended runs again.
  ServerProcessOptions off = ServerOn(data, dir.path() + "/log3");
  off.extra_flags.push_back("--resume-interrupted-jobs=false");
  ChildServer third(off);
  ASSERT_FALSE(third.WaitReady().empty()) << third.Log();
  auto stub = third.Stub();
  pb::TrainingJob job;
  ASSERT_TRUE(GetTrainingJob(*stub, killed_id, &job).ok());
  EXPECT_EQ(job.state(), pb::FAILED);
  EXPECT_EQ(job.resumes(), 0);
  std::smatch m;
  const std::string error = job.error();
  ASSERT_TRUE(std::regex_match(error, m, std::regex("interrupted by a server restart at step ([0-9]+)")))
      << error;
  EXPECT_GE(std::stoll(m[1]), 5);
  ASSERT_TRUE(GetTrainingJob(*stub, long_id, &job).ok());
  EXPECT_EQ(job.state(), pb::CANCELLED);
  ASSERT_TRUE(GetTrainingJob(*stub, short_id, &job).ok());
  EXPECT_EQ(job.state(), pb::SUCCEEDED);
  EXPECT_EQ(job.resumes(), 1);
  // The server is healthy and trains again.
  EXPECT_EQ(Train(*stub, "d", "after", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
  // Without resumption SIGTERM cancels the running job, leaving no partial
  // files.
  const pb::TrainingJob running = StartJobAndWait(*stub, "cancelled", 10000000, 1);
  ASSERT_EQ(running.state(), pb::RUNNING);
  third.Signal(SIGTERM);
  EXPECT_EQ(third.Wait(60), 0) << third.Log();
  std::ifstream in(data + "/jobs/" + running.id() + ".json");
  const nlohmann::json record = nlohmann::json::parse(in);
  EXPECT_EQ(record["state"], "CANCELLED");
  EXPECT_THAT(record["error"].get<std::string>(),
              MatchesRegex("cancelled by server shutdown at step [0-9]+"));
  EXPECT_THAT(PartialFiles(data), ::testing::IsEmpty());
}

}  // namespace
}  // namespace wfm::testing
