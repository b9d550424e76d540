// Crash consistency of the wfm-server binary: SIGKILL during a data set
// upload, during a checkpoint write, during a model delete and during the
// publishes of model versions (a forked publisher), and a write
// failure (file size limit: write() fails with EFBIG). After each, on restart
// (or at once for the write failure): no partial data set or model is
// visible through the List RPCs or in the data folder (no stray files; the
// hidden staging / temporary names are cleaned up at start-up), what was
// completed before is intact (same counts, same evaluation, identical
// samples for the same seed), and an interrupted job resumes once, from its
// last complete checkpoint. Two servers on one data folder (replicas on a
// shared volume): a job interrupted by a SIGKILL is resumed by exactly one of
// them, and a job whose owner is killed while the other runs is taken over by
// the survivor; either ends SUCCEEDED once, with its requested steps. SIGKILL
// while models go in and out of memory (load on demand) loses no model or
// version, and a publisher of versions killed at any step of a publish
// leaves complete versions numbered without gaps.
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/checkpoint/checkpoint.h"
#include "model/io/atomic_file.h"
#include "repository/fs_util.h"
#include "repository/model_folder.h"
#include "tests/server/client_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/tcp_queues.h"
#include "tests/testing/wait.h"

namespace wfm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::map<std::string, pb::Dataset> Datasets(pb::WfmService::Stub& stub) {
  grpc::ClientContext context;
  pb::ListDatasetsResponse reply;
  EXPECT_TRUE(stub.ListDatasets(&context, pb::ListDatasetsRequest(), &reply).ok());
  std::map<std::string, pb::Dataset> out;
  for (const auto& d : reply.datasets()) out[d.name()] = d;
  return out;
}

std::set<std::string> Models(pb::WfmService::Stub& stub) {
  grpc::ClientContext context;
  pb::ListModelsResponse reply;
  EXPECT_TRUE(stub.ListModels(&context, pb::ListModelsRequest(), &reply).ok());
  std::set<std::string> out;
  for (const auto& m : reply.models()) out.insert(m.name());
  return out;
}

pb::TrainingJob GetJob(pb::WfmService::Stub& stub, const std::string& id) {
  pb::TrainingJob job;
  EXPECT_TRUE(GetTrainingJob(stub, id, &job).ok());
  return job;
}

// The fixed-seed sample of a model: its points (empty on error).
std::vector<float> Fingerprint(pb::WfmService::Stub& stub, const std::string& model) {
  const Niches n = SampleNiches(stub, NicheRequest(model, 3, 10, /*seed=*/77, /*steps=*/8));
  EXPECT_TRUE(n.status.ok()) << n.status.error_message();
  return n.points;
}

// 1-NNA / MMD of a model against a data set with a fixed seed (a string of
// the metrics, empty on error).
std::string Evaluation(pb::WfmService::Stub& stub, const std::string& model,
                       const std::string& dataset) {
  pb::EvaluateRequest request = EvaluationRequest(model, dataset, "", 8);
  request.set_num_samples(8);
  request.set_seed(5);
  request.set_emd(false);
  pb::EvaluateResponse reply;
  const grpc::Status s = Call(stub, &pb::WfmService::Stub::Evaluate, request, &reply);
  EXPECT_TRUE(s.ok()) << s.error_message();
  if (!s.ok()) return "";
  return reply.chamfer().ShortDebugString() + " ref " + std::to_string(reply.reference());
}

// Everything below `data` that is not a complete published entry: hidden
// entries (staging / trash / deleted folders, temporary files) anywhere, a
// data set folder without exactly {data.npz, dataset.json}, a model folder
// without version folders of exactly {model.wfm} (and serving.json), a job
// folder holding anything but checkpoint.wfm, and unknown files (a job's
// record and claim, <id>.json and <id>.lock, are known).
std::vector<std::string> LayoutProblems(const std::string& data) {
  std::vector<std::string> problems;
  auto names = [](const fs::path& folder) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(folder)) out.insert(e.path().filename().string());
    return out;
  };
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (e.path().filename().string().rfind('.', 0) == 0) problems.push_back(e.path().string());
  }
  for (const auto& e : fs::directory_iterator(data + "/datasets")) {
    if (!e.is_directory() ||
        names(e.path()) != std::set<std::string>{"data.npz", "dataset.json"}) {
      problems.push_back(e.path().string());
    }
  }
  // A model folder holds version folders (1, 2, ...) of one model.wfm each,
  // and optionally its serving policy.
  for (const auto& e : fs::directory_iterator(data + "/models")) {
    bool complete = e.is_directory();
    int versions = 0;
    if (complete) {
      for (const auto& v : fs::directory_iterator(e.path())) {
        const std::string name = v.path().filename().string();
        if (name == "serving.json" && v.is_regular_file()) continue;
        ++versions;
        complete = complete && v.is_directory() &&
                   std::regex_match(name, std::regex("[1-9][0-9]*")) &&
                   names(v.path()) == std::set<std::string>{"model.wfm"};
      }
    }
    if (!complete || versions == 0) problems.push_back(e.path().string());
  }
  for (const auto& e : fs::directory_iterator(data + "/jobs")) {
    const std::string name = e.path().filename().string();
    const bool record =
        e.is_regular_file() && std::regex_match(name, std::regex("job-[0-9]+\\.(json|lock)"));
    const bool folder = e.is_directory() && std::regex_match(name, std::regex("job-[0-9]+")) &&
                        names(e.path()) == std::set<std::string>{"checkpoint.wfm"};
    if (!record && !folder) problems.push_back(e.path().string());
  }
  return problems;
}

// Published entries below `root` (data sets or models).
std::set<std::string> Folders(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(root)) out.insert(e.path().filename().string());
  return out;
}

// Clouds of a data set big enough to take a while to send and write: 120
// clouds of 800 points in 2D (~770 KB of payload) in 12 chunks.
std::vector<pb::UploadDatasetRequest> BigChunks() {
  return CloudChunks(Ellipses(120, 9, false, 800, 800), 10);
}

// What a restarted server must still hold: data set "before" (with its
// counts) and model "m0" (with its samples and evaluation).
struct Baseline {
  pb::Dataset before;
  std::vector<float> fingerprint;
  std::string evaluation;
};

Baseline MakeBaseline(pb::WfmService::Stub& stub) {
  Baseline b;
  EXPECT_TRUE(
      Upload(stub, Header("before", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(12, 1), 4), &b.before)
          .ok());
  EXPECT_EQ(Train(stub, "before", "m0", TinyConfig(pb::FAMILY_POINTCLOUD, 4)).state(),
            pb::SUCCEEDED);
  b.fingerprint = Fingerprint(stub, "m0");
  b.evaluation = Evaluation(stub, "m0", "before");
  EXPECT_FALSE(b.fingerprint.empty());
  EXPECT_FALSE(b.evaluation.empty());
  return b;
}

void ExpectBaselineIntact(pb::WfmService::Stub& stub, const Baseline& b) {
  const auto datasets = Datasets(stub);
  ASSERT_EQ(datasets.count("before"), 1u);
  const pb::Dataset& d = datasets.at("before");
  EXPECT_EQ(d.items(), b.before.items());
  EXPECT_EQ(d.points(), b.before.points());
  EXPECT_EQ(d.size_bytes(), b.before.size_bytes());
  EXPECT_EQ(d.created_unix_ms(), b.before.created_unix_ms());
  EXPECT_EQ(Models(stub).count("m0"), 1u);
  EXPECT_EQ(Fingerprint(stub, "m0"), b.fingerprint);
  EXPECT_EQ(Evaluation(stub, "m0", "before"), b.evaluation);
}

// Starts a server on `data` (log file `log`, extra `flags`), records the
// baseline in it and kills it.
void RecordBaselineAndKill(const std::string& data, const std::string& log,
                           const std::vector<std::string>& flags, Baseline* baseline) {
  ChildServer server({data, log, flags, 0});
  ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
  *baseline = MakeBaseline(*server.Stub());
  ASSERT_TRUE(server.Kill());
}

TEST(CrashConsistencyTest, KillDuringUploadsLeavesNoPartialDataset) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  Baseline baseline;
  ASSERT_NO_FATAL_FAILURE(RecordBaselineAndKill(data, dir.path() + "/log0", {}, &baseline));
  const std::vector<pb::UploadDatasetRequest> chunks = BigChunks();
  // Round r: kill after r + 2 chunks without WritesDone (the upload can
  // never complete), or, in the last rounds, right after WritesDone with a
  // small delay (the server may be writing or publishing it: all or nothing).
  for (int round = 0; round < 5; ++round) {
    const bool after_done = round >= 3;
    const std::string log = dir.path() + "/log" + std::to_string(round + 1);
    bool acknowledged = false;
    {
      ChildServer server({data, log, {}, 0});
      ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
      auto stub = server.Stub();
      grpc::ClientContext context;
      pb::Dataset reply;
      auto writer = stub->UploadDataset(&context, &reply);
      pb::UploadDatasetRequest first;
      *first.mutable_header() = Header("partial", pb::POINT_CLOUDS, 2);
      ASSERT_TRUE(writer->Write(first));
      const size_t sent = after_done ? chunks.size() : static_cast<size_t>(round + 2);
      for (size_t c = 0; c < sent; ++c) ASSERT_TRUE(writer->Write(chunks[c]));
      if (after_done) {
        writer->WritesDone();
        // Where the kill lands: at once, or 5 ms into the server's write and
        // publish (fault injection, not a wait for anything).
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * (round - 3)));
      } else {
        // The server has taken the chunks (not only the socket buffers): the
        // connection's queues are empty.
        const int port = std::stoi(server.address().substr(server.address().rfind(':') + 1));
        EXPECT_TRUE(WaitUntil([&] { return TcpQueuesEmpty(port); }, absl::Seconds(30),
                              absl::Milliseconds(1)))
            << "round " << round;
      }
      ASSERT_TRUE(server.Kill());
      const grpc::Status s = writer->Finish();
      acknowledged = s.ok();
      EXPECT_TRUE(after_done || !s.ok());
    }
    ChildServer again({data, log + "-restart", {}, 0});
    ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
    auto stub = again.Stub();
    const auto datasets = Datasets(*stub);
    // Never without all its chunks; after WritesDone without an
    // acknowledgement it may have been published just before the kill, but
    // then completely.
    if (!after_done) {
      EXPECT_EQ(datasets.count("partial"), 0u) << "round " << round;
    }
    if (datasets.count("partial") > 0) {
      EXPECT_EQ(datasets.at("partial").items(), 120);
      EXPECT_EQ(datasets.at("partial").points(), 120 * 800);
      EXPECT_TRUE(DeleteDataset(*stub, "partial").ok());
    } else {
      EXPECT_FALSE(acknowledged) << "an acknowledged upload was lost, round " << round;
    }
    EXPECT_EQ(Folders(data + "/datasets"), (std::set<std::string>{"before"}))
        << "round " << round;
    EXPECT_THAT(LayoutProblems(data), IsEmpty()) << "round " << round;
    ExpectBaselineIntact(*stub, baseline);
    if (::testing::Test::HasFailure()) return;
    ASSERT_TRUE(again.Kill());
  }
}

TEST(CrashConsistencyTest, KillDuringCheckpointWritesResumesFromTheLastCompleteOne) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> flags = {"--checkpoint-every", "1"};
  Baseline baseline;
  ASSERT_NO_FATAL_FAILURE(RecordBaselineAndKill(data, dir.path() + "/log0", flags, &baseline));
  // A model whose resumable checkpoint (parameters and Adam moments) is tens
  // of MB, so that a good part of each step is spent writing it.
  pb::TrainingConfig config = TinyConfig(pb::FAMILY_POINTCLOUD, 1000000);
  config.mutable_network()->set_width(256);
  config.mutable_network()->set_heads(4);
  config.mutable_network()->set_layers(3);
  config.mutable_network()->set_mlp_hidden(1024);
  std::mt19937 rng(std::random_device{}());
  std::vector<std::string> interrupted;
  int killed_mid_write = 0;
  for (int round = 0; round < 4; ++round) {
    const std::string log = dir.path() + "/log" + std::to_string(round + 1);
    std::string id;
    int64_t step_seen = 0;
    {
      ChildServer server({data, log, flags, 0});
      ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
      auto stub = server.Stub();
      grpc::ClientContext context;
      pb::StartTrainingRequest start;
      start.set_dataset("before");
      start.set_model("big" + std::to_string(round));
      *start.mutable_config() = config;
      pb::TrainingJob job;
      ASSERT_TRUE(stub->StartTraining(&context, start, &job).ok());
      id = job.id();
      WaitUntil(
          [&] {
            job = GetJob(*stub, id);
            return job.step() >= 2;
          },
          absl::Seconds(60), absl::Milliseconds(50));
      ASSERT_GE(job.step(), 2) << server.Log();
      step_seen = job.step();
      const std::string folder = data + "/jobs/" + id;
      if (round % 2 == 0) {
        // Kill while a checkpoint's temporary file exists (mid-write).
        const bool seen = WaitUntil(
            [&] {
              std::error_code ec;
              for (const auto& e : fs::directory_iterator(folder, ec)) {
                if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
              }
              return false;
            },
            absl::Seconds(10), absl::Microseconds(500));
        ASSERT_TRUE(server.Kill());
        killed_mid_write += seen ? 1 : 0;
      } else {
        // At a random moment of the next steps (fault injection).
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng)));
        ASSERT_TRUE(server.Kill());
      }
    }
    interrupted.push_back(id);
    ChildServer again({data, log + "-restart", flags, 0});
    ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
    auto stub = again.Stub();
    // The job resumes from its last complete checkpoint (with one at every
    // step, at least the step before the last one seen) and trains on; it
    // is then cancelled, so the next rounds' restarts leave it alone.
    pb::TrainingJob resumed;
    const bool continued = WaitUntil(
        [&] {
          resumed = GetJob(*stub, id);
          return resumed.state() == pb::RUNNING && resumed.resumes() == 1 &&
                 resumed.resumed_from_step() > 0 && resumed.step() > resumed.resumed_from_step();
        },
        absl::Seconds(60), absl::Milliseconds(50));
    ASSERT_TRUE(continued) << resumed.DebugString() << again.Log();
    EXPECT_GE(resumed.resumed_from_step(), step_seen - 1);
    EXPECT_THAT(again.Log(), HasSubstr("job " + id + " (model 'big" + std::to_string(round) +
                                       "') resumes after a server restart"));
    ASSERT_TRUE(CancelTrainingJob(*stub, id, &resumed).ok());
    EXPECT_EQ(resumed.state(), pb::CANCELLED);
    for (size_t j = 0; j < interrupted.size(); ++j) {
      // Each job was resumed once, by the restart after its own kill.
      const pb::TrainingJob job = GetJob(*stub, interrupted[j]);
      EXPECT_EQ(job.state(), pb::CANCELLED) << job.id();
      EXPECT_EQ(job.resumes(), 1) << job.id();
      // The last complete checkpoint is kept and reads back.
      const std::string checkpoint = data + "/jobs/" + interrupted[j] + "/checkpoint.wfm";
      ASSERT_TRUE(fs::exists(checkpoint)) << checkpoint;
      absl::StatusOr<model::checkpoint::Checkpoint> ckpt = model::checkpoint::Read(checkpoint);
      EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    }
    // No cancelled model was published.
    EXPECT_EQ(Models(*stub), (std::set<std::string>{"m0"}));
    EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"m0"}));
    EXPECT_THAT(LayoutProblems(data), IsEmpty()) << "round " << round;
    ExpectBaselineIntact(*stub, baseline);
    if (::testing::Test::HasFailure()) return;
    ASSERT_TRUE(again.Kill());
  }
  // The kills while a temporary file existed did hit a write in progress
  // (its file was there when the signal was sent).
  EXPECT_GE(killed_mid_write, 1);
  std::cout << "checkpoint: " << killed_mid_write << " of 2 kills during a write\n";
}

// Flags of the servers sharing a data folder: a periodic checkpoint every 10
// steps, and jobs of a server that stopped taken over within a second.
const std::vector<std::string> kSharedFolderFlags = {"--checkpoint-every", "10",
                                                     "--model-rescan-seconds", "1"};
// Long enough that a kill after its first checkpoint lands mid-training.
constexpr int64_t kSharedJobSteps = 400;

// Whether `job` ended as one interrupted once and resumed would: SUCCEEDED
// with its requested steps, resumed once from a checkpoint.
void ExpectResumedOnceToTheEnd(const pb::TrainingJob& job) {
  EXPECT_EQ(job.state(), pb::SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.step(), kSharedJobSteps);
  EXPECT_EQ(job.total_steps(), kSharedJobSteps);
  EXPECT_EQ(job.resumes(), 1) << "resumed more than once, or never interrupted";
  EXPECT_GT(job.resumed_from_step(), 0);
}

// Uploads data set "d" through `stub` (unless `upload` is false) and starts
// a job of kSharedJobSteps training model `model` on it; the job.
pb::TrainingJob StartSharedJob(pb::WfmService::Stub& stub, const std::string& model,
                               bool upload = true) {
  if (upload) {
    EXPECT_TRUE(
        Upload(stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(12, 1), 4)).ok());
  }
  pb::TrainingJob job;
  const grpc::Status s =
      StartTraining(stub, "d", model, TinyConfig(pb::FAMILY_POINTCLOUD, kSharedJobSteps), &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

// Asks `stub` about job `id` until it names a periodic checkpoint; whether
// it did (within a minute). The job as last seen in *job.
bool WaitForCheckpoint(pb::WfmService::Stub& stub, const std::string& id, pb::TrainingJob* job) {
  return WaitUntil(
      [&] {
        *job = GetJob(stub, id);
        return job->checkpoint_step() > 0;
      },
      absl::Seconds(60));
}

// Two servers started at once on one data folder (logs log-a and log-b).
struct SharedFolderServers {
  SharedFolderServers(const TempDir& dir, const std::string& data)
      : a({data, dir.path() + "/log-a", kSharedFolderFlags, 0}),
        b({data, dir.path() + "/log-b", kSharedFolderFlags, 0}) {}
  // Waits until both are ready; whether they are (the stubs are set then).
  bool Ready() {
    if (a.WaitReady().empty() || b.WaitReady().empty()) return false;
    stub_a = a.Stub();
    stub_b = b.Stub();
    return true;
  }
  ChildServer a, b;
  std::unique_ptr<pb::WfmService::Stub> stub_a, stub_b;
};

// Asks `stub` about job `id` until it shows state `state`; the job then
// (the last one seen after 30 s). A job's owner records its end before it
// shows it, so another server may show it first.
pb::TrainingJob WaitForState(pb::WfmService::Stub& stub, const std::string& id,
                             pb::JobState state) {
  pb::TrainingJob job;
  WaitUntil(
      [&] {
        job = GetJob(stub, id);
        return job.state() == state;
      },
      absl::Seconds(30));
  return job;
}

// Waits until both servers list model `name`; whether they do.
bool BothList(pb::WfmService::Stub& a, pb::WfmService::Stub& b, const std::string& name) {
  return WaitUntil([&] { return Models(a).count(name) > 0 && Models(b).count(name) > 0; },
                   absl::Seconds(30), absl::Milliseconds(50));
}

TEST(CrashConsistencyTest, TwoServersOnOneFolderResumeAnInterruptedJobOnce) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::string id;
  {
    ChildServer first({data, dir.path() + "/log0", kSharedFolderFlags, 0});
    ASSERT_FALSE(first.WaitReady().empty()) << first.Log();
    auto stub = first.Stub();
    pb::TrainingJob job = StartSharedJob(*stub, "shared");
    id = job.id();
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(WaitForCheckpoint(*stub, id, &job)) << first.Log();
    ASSERT_TRUE(first.Kill());
  }
  // Two servers start on the folder at once; one claims the job.
  SharedFolderServers servers(dir, data);
  ASSERT_TRUE(servers.Ready()) << servers.a.Log() << servers.b.Log();
  // Watched through either server, owner or not, to its end.
  grpc::Status watched;
  const std::vector<pb::TrainingJob> updates = Watch(*servers.stub_b, id, &watched);
  EXPECT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(updates.empty());
  ExpectResumedOnceToTheEnd(updates.back());
  ExpectResumedOnceToTheEnd(WaitForState(*servers.stub_a, id, pb::SUCCEEDED));
  // One of them resumed it and published its model, once.
  const std::string resumes = "job " + id + " (model 'shared') resumes after a server restart";
  const std::string succeeded = "job " + id + " succeeded";
  std::string logs[2];
  int resumed = 0, published = 0;
  WaitUntil(
      [&] {
        logs[0] = servers.a.Log();
        logs[1] = servers.b.Log();
        resumed = published = 0;
        for (const std::string& log : logs) {
          resumed += log.find(resumes) != std::string::npos ? 1 : 0;
          published += log.find(succeeded) != std::string::npos ? 1 : 0;
        }
        return published > 0;
      },
      absl::Seconds(30));
  EXPECT_EQ(resumed, 1) << logs[0] << logs[1];
  EXPECT_EQ(published, 1) << logs[0] << logs[1];
  // One model, served by both.
  EXPECT_TRUE(BothList(*servers.stub_a, *servers.stub_b, "shared"));
  EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"shared"}));
  // Published once: a second publish would have added version 2.
  EXPECT_EQ(Folders(data + "/models/shared"), (std::set<std::string>{"1"}));
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
}

TEST(CrashConsistencyTest, TwoServersOnOneFolderTheSurvivorTakesOverAKilledOwnersJob) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  SharedFolderServers servers(dir, data);
  ASSERT_TRUE(servers.Ready()) << servers.a.Log() << servers.b.Log();
  // The data set is uploaded through a after b started: b finds it by name.
  ASSERT_TRUE(Upload(*servers.stub_a, Header("d", pb::POINT_CLOUDS, 2),
                     CloudChunks(Ellipses(12, 1), 4))
                  .ok());
  pb::TrainingJob other;
  ASSERT_TRUE(StartTraining(*servers.stub_b, "d", "other",
                            TinyConfig(pb::FAMILY_POINTCLOUD, 1000000), &other)
                  .ok());
  // A cancel through the server that does not own the job: its owner
  // honours the request, and both show the job CANCELLED.
  pb::TrainingJob cancelled;
  ASSERT_TRUE(CancelTrainingJob(*servers.stub_a, other.id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), pb::CANCELLED) << cancelled.DebugString() << servers.b.Log();
  EXPECT_THAT(cancelled.error(), HasSubstr("cancelled by request"));
  EXPECT_EQ(WaitForState(*servers.stub_b, other.id(), pb::CANCELLED).state(), pb::CANCELLED);
  EXPECT_TRUE(WaitUntil([&] { return !fs::exists(data + "/jobs/" + other.id() + ".cancel"); },
                        absl::Seconds(30)));
  // One model, one job, across the servers; their ids never collide.
  pb::TrainingJob job = StartSharedJob(*servers.stub_a, "taken", /*upload=*/false);
  const std::string id = job.id();
  ASSERT_FALSE(id.empty());
  EXPECT_NE(other.id(), id);
  pb::TrainingJob refused;
  const grpc::Status twice = StartTraining(*servers.stub_b, "d", "taken",
                                           TinyConfig(pb::FAMILY_POINTCLOUD, 10), &refused);
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << twice.error_message();
  EXPECT_THAT(twice.error_message(), HasSubstr("is being trained by " + id));
  // b follows a's job in the shared record; a dies after its first
  // checkpoint, and b takes the job over.
  ASSERT_TRUE(WaitForCheckpoint(*servers.stub_b, id, &job)) << servers.a.Log();
  EXPECT_EQ(job.state(), pb::RUNNING);
  ASSERT_TRUE(servers.a.Kill());
  grpc::Status watched;
  const std::vector<pb::TrainingJob> updates = Watch(*servers.stub_b, id, &watched);
  EXPECT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(updates.empty());
  ExpectResumedOnceToTheEnd(updates.back());
  EXPECT_THAT(servers.b.Log(),
              HasSubstr("job " + id + " (model 'taken') resumes here: the server that owned it ("));
  EXPECT_EQ(Models(*servers.stub_b).count("taken"), 1u);
  EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"taken"}));
  // Published once: a second publish would have added version 2.
  EXPECT_EQ(Folders(data + "/models/taken"), (std::set<std::string>{"1"}));
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
}

TEST(CrashConsistencyTest, KillDuringModelDeleteLeavesItWholeOrGone) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  Baseline baseline;
  ASSERT_NO_FATAL_FAILURE(RecordBaselineAndKill(data, dir.path() + "/log0", {}, &baseline));
  int gone = 0, whole = 0;
  const int delays_us[] = {0, 0, 200, 1000, 3000, 20000};
  for (int round = 0; round < 6; ++round) {
    const std::string log = dir.path() + "/log" + std::to_string(round + 1);
    std::vector<float> fingerprint;
    {
      ChildServer server({data, log, {}, 0});
      ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
      auto stub = server.Stub();
      if (Models(*stub).count("victim") == 0) {
        ASSERT_EQ(Train(*stub, "before", "victim", TinyConfig(pb::FAMILY_POINTCLOUD, 3, 9)).state(),
                  pb::SUCCEEDED);
      }
      fingerprint = Fingerprint(*stub, "victim");
      ASSERT_FALSE(fingerprint.empty());
      // DeleteModel in flight, then the kill.
      std::thread deleter([&] { (void)DeleteModel(*stub, "victim"); });
      // Where the kill lands in the delete (fault injection).
      std::this_thread::sleep_for(std::chrono::microseconds(delays_us[round]));
      ASSERT_TRUE(server.Kill());
      deleter.join();
    }
    ChildServer again({data, log + "-restart", {}, 0});
    ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
    auto stub = again.Stub();
    const std::set<std::string> models = Models(*stub);
    if (models.count("victim") > 0) {
      ++whole;
      EXPECT_EQ(Fingerprint(*stub, "victim"), fingerprint) << "round " << round;
      EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"m0", "victim"}));
    } else {
      ++gone;
      const Niches n = SampleNiches(*stub, NicheRequest("victim", 1, 4, 1));
      EXPECT_EQ(n.status.error_code(), grpc::StatusCode::NOT_FOUND);
      EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"m0"}));
    }
    EXPECT_THAT(LayoutProblems(data), IsEmpty()) << "round " << round;
    ExpectBaselineIntact(*stub, baseline);
    if (::testing::Test::HasFailure()) return;
    ASSERT_TRUE(again.Kill());
  }
  EXPECT_EQ(gone + whole, 6);
  std::cout << "delete: " << gone << " gone, " << whole << " whole after the kill\n";
}

// The fixed-seed sample of `version` of a model (empty on error, which is
// not a test failure: the churn below runs into the kill).
std::vector<float> TrySample(pb::WfmService::Stub& stub, const std::string& model,
                             int64_t version) {
  pb::SampleNichesRequest request = NicheRequest(model, 3, 10, /*seed=*/77, /*steps=*/8);
  request.set_version(version);
  const Niches n = SampleNiches(stub, request);
  return n.status.ok() ? n.points : std::vector<float>{};
}

// SIGKILL mid-unload: with --max-loaded-models 1, clients of three model
// versions evict one another and UpdateModel unloads and loads them, and
// the server is killed in the middle of it. Residency is never on disk: the
// restarted server (nothing loaded at start) serves every model and version
// with the samples recorded before, its jobs ended once, the folder clean.
TEST(CrashConsistencyTest, KillDuringUnloadsLosesNoModelOrVersion) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  Baseline baseline;
  ASSERT_NO_FATAL_FAILURE(RecordBaselineAndKill(data, dir.path() + "/log0", {}, &baseline));
  const std::vector<std::string> flags = {"--max-loaded-models", "1"};
  const std::vector<std::pair<std::string, int64_t>> served = {{"m0", 1}, {"m1", 1}, {"m1", 2}};
  std::map<std::pair<std::string, int64_t>, std::vector<float>> samples;
  std::vector<pb::TrainingJob> jobs;
  {
    ChildServer server({data, dir.path() + "/log1", flags, 0});
    ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
    auto stub = server.Stub();
    for (uint64_t seed : {3, 4}) {
      jobs.push_back(Train(*stub, "before", "m1", TinyConfig(pb::FAMILY_POINTCLOUD, 3, seed)));
      ASSERT_EQ(jobs.back().state(), pb::SUCCEEDED);
    }
    for (const auto& key : served) {
      samples[key] = TrySample(*stub, key.first, key.second);
      ASSERT_FALSE(samples[key].empty());
    }
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0};
    std::vector<std::thread> churn;
    for (const auto& key : served) {
      churn.emplace_back([&, key] {
        while (!stop.load()) {
          if (TrySample(*stub, key.first, key.second) == samples[key]) ++answered;
        }
      });
    }
    churn.emplace_back([&] {
      for (int i = 0; !stop.load(); ++i) {
        pb::UpdateModelRequest r;
        r.set_name(i % 2 == 0 ? "m0" : "m1");
        r.set_residency(i % 4 < 2 ? pb::MODEL_RESIDENCY_UNLOAD : pb::MODEL_RESIDENCY_LOAD);
        pb::ModelInfo info;
        (void)Call(*stub, &pb::WfmService::Stub::UpdateModel, r, &info);
      }
    });
    // Killed once the churn is under way.
    const bool churning = WaitUntil([&] { return answered.load() >= 12; }, absl::Seconds(60));
    ASSERT_TRUE(server.Kill());
    stop = true;
    for (auto& t : churn) t.join();
    ASSERT_TRUE(churning) << server.Log();
  }
  ChildServer again({data, dir.path() + "/log2", flags, 0});
  ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
  auto stub = again.Stub();
  pb::ModelInfo m1;
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, "m1", &m1).ok());
  ASSERT_EQ(m1.versions_size(), 2);
  EXPECT_FALSE(m1.versions(0).loaded());
  EXPECT_FALSE(m1.versions(1).loaded());
  for (const auto& key : served) {
    EXPECT_EQ(TrySample(*stub, key.first, key.second), samples[key])
        << key.first << " version " << key.second;
  }
  for (const pb::TrainingJob& job : jobs) {
    const pb::TrainingJob now = GetJob(*stub, job.id());
    EXPECT_EQ(now.state(), pb::SUCCEEDED);
    EXPECT_EQ(now.step(), job.step());
    EXPECT_EQ(now.finished_unix_ms(), job.finished_unix_ms());
  }
  EXPECT_EQ(Folders(data + "/models"), (std::set<std::string>{"m0", "m1"}));
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
  ExpectBaselineIntact(*stub, baseline);
  ASSERT_TRUE(again.Kill());
}

// The version folders of `folder` (numbers to the inode of each), and
// whether each is complete: exactly one model.wfm holding `payload`; counts
// the dead publishers' staging folders and lock files.
std::map<int64_t, uint64_t> CompleteVersions(const std::string& folder, const std::string& payload,
                                             std::vector<std::string>* problems,
                                             int* leftovers) {
  std::map<int64_t, uint64_t> out;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    const std::optional<int64_t> version = repository::ParseVersion(name);
    if (!version.has_value()) {
      // Only a dead publisher's staging folders and lock files, besides.
      if (name.rfind(repository::kStagingPrefix, 0) != 0 &&
          name.rfind(repository::kLockPrefix, 0) != 0) {
        problems->push_back(name);
      }
      ++*leftovers;
      continue;
    }
    std::vector<std::string> files;
    for (const auto& f : fs::directory_iterator(e.path())) {
      files.push_back(f.path().filename().string());
    }
    if (files != std::vector<std::string>{"model.wfm"} ||
        ReadFile((e.path() / "model.wfm").string()) != payload) {
      problems->push_back(name + " (partial)");
    }
    struct stat st;
    out[*version] = ::stat(e.path().c_str(), &st) == 0 ? st.st_ino : 0;
  }
  return out;
}

// A publisher of versions killed with SIGKILL at each step of a publish:
// right after it created the lock file, the staging folder, renamed a version
// into place, or removed the lock (inotify events of the model folder, in
// rounds). After every kill, every version folder is complete, numbered
// 1..N without gaps, and the ones seen before are the same folders (no
// number reused); the next start removes the dead publisher's leftovers and
// serves version N. The publisher is a forked child running the function a
// training job publishes with, on the bytes of a model the server trained.
TEST(CrashConsistencyTest, KillDuringVersionPublishesLeavesCompleteVersionsWithoutGaps) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  Baseline baseline;
  ASSERT_NO_FATAL_FAILURE(RecordBaselineAndKill(data, dir.path() + "/log0", {}, &baseline));
  const std::string payload = ReadFile(data + "/models/m0/1/model.wfm");
  ASSERT_FALSE(payload.empty());
  const std::string root = data + "/models";
  const std::string folder = root + "/p";
  ASSERT_TRUE(repository::MakeDirs(folder).ok());
  const int watch = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  ASSERT_GE(watch, 0);
  ASSERT_GE(::inotify_add_watch(watch, folder.c_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE), 0);
  // The step of a publish each round kills at: the event and name prefix.
  const std::vector<std::pair<uint32_t, std::string>> steps = {
      {IN_CREATE, repository::kLockPrefix},
      {IN_CREATE, repository::kStagingPrefix},
      {IN_MOVED_TO, ""},  // a version renamed into place
      {IN_DELETE, repository::kLockPrefix}};
  std::map<int64_t, uint64_t> seen;
  int leftovers = 0;
  for (int round = 0; round < 8; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      while (repository::PublishModelVersion(root, "p", [&](const std::string& path) {
               return model::io::WriteFileAtomically(path, payload);
             }).ok()) {
      }
      ::_exit(1);
    }
    // Killed and reaped however this round ends.
    struct Reaper {
      pid_t pid;
      ~Reaper() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    };
    Reaper reaper{child};
    // Kill at the first or second time the round's step happens.
    const auto& [mask, prefix] = steps[round % steps.size()];
    int hits = 0;
    const int wanted = 1 + round / static_cast<int>(steps.size());
    alignas(struct inotify_event) char buffer[4096];
    while (hits < wanted) {
      struct pollfd ready = {watch, POLLIN, 0};
      ASSERT_EQ(::poll(&ready, 1, 60000), 1) << "round " << round << ": no event";
      const ssize_t n = ::read(watch, buffer, sizeof(buffer));
      ASSERT_GT(n, 0);
      for (ssize_t at = 0; at < n && hits < wanted;) {
        const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
        const std::string name = event->len > 0 ? event->name : "";
        if ((event->mask & mask) != 0 && name.rfind(prefix, 0) == 0) ++hits;
        at += sizeof(struct inotify_event) + event->len;
      }
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    reaper.pid = -1;  // reaped
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the publisher stopped by itself";
    // Events of the killed round are not the next one's.
    while (::read(watch, buffer, sizeof(buffer)) > 0) {
    }
    std::vector<std::string> problems;
    leftovers = 0;
    const std::map<int64_t, uint64_t> now =
        CompleteVersions(folder, payload, &problems, &leftovers);
    EXPECT_THAT(problems, IsEmpty()) << "round " << round;
    if (!now.empty()) {
      EXPECT_EQ(now.rbegin()->first, static_cast<int64_t>(now.size())) << "round " << round;
    }
    for (const auto& [version, inode] : seen) {
      EXPECT_EQ(now.count(version) ? now.at(version) : 0, inode) << "version " << version;
    }
    seen = now;
  }
  ::close(watch);
  ASSERT_FALSE(seen.empty());
  const int64_t latest = seen.rbegin()->first;

  ChildServer again({data, dir.path() + "/log-restart", {}, 0});
  ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
  auto stub = again.Stub();
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
  grpc::ClientContext context;
  pb::ListModelsResponse reply;
  ASSERT_TRUE(stub->ListModels(&context, pb::ListModelsRequest(), &reply).ok());
  const pb::ModelInfo* p = nullptr;
  for (const auto& m : reply.models()) {
    if (m.name() == "p") p = &m;
  }
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->serving_version(), latest);
  EXPECT_EQ(p->versions_size(), latest);
  // The same weights as m0: the same samples for the same seed.
  EXPECT_EQ(Fingerprint(*stub, "p"), baseline.fingerprint);
  ExpectBaselineIntact(*stub, baseline);
  std::cout << "publish: " << latest << " versions in 8 rounds of kills; " << leftovers
            << " staging folders and lock files left for the restart\n";
}

TEST(CrashConsistencyTest, WriteFailureReturnsAnErrorAndCorruptsNothing) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  // 512 KiB per file: the small data set and model fit, the big upload's
  // data.npz (~770 KB) does not. write() then fails with EFBIG.
  ChildServer server({data, dir.path() + "/log", {}, 512 * 1024});
  ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
  auto stub = server.Stub();
  const Baseline baseline = MakeBaseline(*stub);

  pb::Dataset reply;
  const grpc::Status s = Upload(*stub, Header("big", pb::POINT_CLOUDS, 2), BigChunks(), &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("File too large"));
  std::cout << "write failure: " << s.error_message() << "\n";
  // Nothing of it is visible or left on disk, with no restart.
  EXPECT_EQ(Datasets(*stub).count("big"), 0u);
  EXPECT_EQ(Folders(data + "/datasets"), (std::set<std::string>{"before"}));
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
  ExpectBaselineIntact(*stub, baseline);

  // The server keeps serving: a small upload succeeds, and so does a retry
  // of the failed name once it fits.
  EXPECT_TRUE(Upload(*stub, Header("small", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 3), 3)).ok());
  EXPECT_TRUE(Upload(*stub, Header("big", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 4), 3)).ok());
  EXPECT_EQ(Folders(data + "/datasets"), (std::set<std::string>{"before", "big", "small"}));
  EXPECT_EQ(HealthStatus(server.Channel(), "wfm.v1.WfmService"), 1);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(60), 0) << server.Log();
  EXPECT_THAT(LayoutProblems(data), IsEmpty());
}

}  // namespace
}  // namespace wfm::testing
