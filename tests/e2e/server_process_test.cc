// End-to-end tests of the wfm-server binary as a process: the ready line,
// graceful shutdown on SIGTERM / SIGINT (jobs recorded as cancelled, no
// partial files), and a SIGKILL during training reported as an interrupted
// job after the restart.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/server/client_util.h"
#include "tests/testing/connected.h"

extern char** environ;

namespace wfm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::MatchesRegex;

// One wfm-server process with its stderr in a file.
class ServerProcess {
 public:
  ServerProcess(const std::string& data_dir, const std::string& log) : log_(log) {
    const std::string binary = std::string(WFM_BINARY_DIR) + "/server/wfm-server";
    std::vector<std::string> args = {binary,          "--listen",       "127.0.0.1:0",
                                     "--metrics-listen", "127.0.0.1:0",  "--data-dir",
                                     data_dir,        "--threads",      "1",
                                     "--checkpoint-every", "5",         "--grace-period-seconds",
                                     "20"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Waits for the ready line (at most 60 s); empty when it never came.
  std::string WaitReady() {
    for (int i = 0; i < 600; ++i) {
      const std::string log = Log();
      const size_t at = log.find("wfm-server ready: ");
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        ready_ = log.substr(at, log.find('\n', at) - at);
        std::smatch m;
        if (std::regex_search(ready_, m, std::regex("grpc ([0-9.]+:[0-9]+)"))) address_ = m[1];
        return ready_;
      }
      if (Exited()) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "";
  }

  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::unique_ptr<pb::WfmService::Stub> Stub() const {
    return pb::WfmService::NewStub(wfm::testing::Connected(Channel()));
  }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  void Signal(int sig) { kill(pid_, sig); }
  // The exit status after the signal (-1: still running after `seconds`).
  int Wait(int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (Exited()) return status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

 private:
  bool Exited() {
    if (exited_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exited_;
  }

  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string ready_;
  std::string address_;
};

// Starts a long training job and waits until it has checkpointed.
pb::TrainingJob StartLongJob(pb::WfmService::Stub& stub) {
  EXPECT_TRUE(Upload(stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(8, 1), 4)).ok());
  pb::StartTrainingRequest start;
  start.set_dataset("d");
  start.set_model("long");
  *start.mutable_config() = TinyConfig(pb::FAMILY_POINTCLOUD, 10000000);
  pb::TrainingJob job;
  grpc::ClientContext context;
  EXPECT_TRUE(stub.StartTraining(&context, start, &job).ok());
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext c;
    pb::GetTrainingJobRequest get;
    get.set_id(job.id());
    EXPECT_TRUE(stub.GetTrainingJob(&c, get, &job).ok());
    if (job.step() >= 12) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return job;
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

TEST(ServerProcessTest, SigtermDrainsCancelsJobsAndLeavesNoPartialFiles) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::string job_id;
  {
    ServerProcess server(data, dir.path() + "/log1");
    const std::string ready = server.WaitReady();
    ASSERT_THAT(ready, MatchesRegex("wfm-server ready: grpc 127\\.0\\.0\\.1:[0-9]+, metrics "
                                    "127\\.0\\.0\\.1:[0-9]+, data .*, 0 models, 0 data sets"))
        << server.Log();
    EXPECT_EQ(HealthStatus(server.Channel(), "wfm.v1.WfmService"), 1);
    auto stub = server.Stub();
    const pb::TrainingJob job = StartLongJob(*stub);
    ASSERT_EQ(job.state(), pb::RUNNING);
    job_id = job.id();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(60), 0) << server.Log();
    EXPECT_NE(server.Log().find("draining"), std::string::npos);
    EXPECT_NE(server.Log().find("wfm-server stopped"), std::string::npos);
  }
  std::ifstream in(data + "/jobs/" + job_id + ".json");
  const nlohmann::json record = nlohmann::json::parse(in);
  EXPECT_EQ(record["state"], "CANCELLED");
  EXPECT_THAT(record["error"].get<std::string>(),
              MatchesRegex("cancelled by server shutdown at step [0-9]+"));
  EXPECT_TRUE(fs::exists(data + "/jobs/" + job_id + "/checkpoint.wfm"));
  EXPECT_THAT(PartialFiles(data), ::testing::IsEmpty());

  // The restarted server knows the data set and the cancelled job; SIGINT
  // stops it as well.
  ServerProcess again(data, dir.path() + "/log2");
  ASSERT_THAT(again.WaitReady(), ::testing::HasSubstr("0 models, 1 data sets")) << again.Log();
  auto stub = again.Stub();
  grpc::ClientContext context;
  pb::GetTrainingJobRequest get;
  get.set_id(job_id);
  pb::TrainingJob job;
  ASSERT_TRUE(stub->GetTrainingJob(&context, get, &job).ok());
  EXPECT_EQ(job.state(), pb::CANCELLED);
  again.Signal(SIGINT);
  EXPECT_EQ(again.Wait(60), 0) << again.Log();
}

TEST(ServerProcessTest, AJobKilledWithTheServerIsReportedInterrupted) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::string job_id;
  int64_t step_before = 0;
  {
    ServerProcess server(data, dir.path() + "/log1");
    ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
    auto stub = server.Stub();
    const pb::TrainingJob job = StartLongJob(*stub);
    ASSERT_EQ(job.state(), pb::RUNNING);
    job_id = job.id();
    step_before = job.step();
    server.Signal(SIGKILL);
    EXPECT_EQ(server.Wait(30), 128 + SIGKILL);
  }
  ServerProcess again(data, dir.path() + "/log2");
  ASSERT_FALSE(again.WaitReady().empty()) << again.Log();
  auto stub = again.Stub();
  grpc::ClientContext context;
  pb::GetTrainingJobRequest get;
  get.set_id(job_id);
  pb::TrainingJob job;
  ASSERT_TRUE(stub->GetTrainingJob(&context, get, &job).ok());
  EXPECT_EQ(job.state(), pb::FAILED);
  std::smatch m;
  const std::string error = job.error();
  ASSERT_TRUE(std::regex_match(error, m, std::regex("interrupted by a server restart at step ([0-9]+)")))
      << error;
  // The record is rewritten at every checkpoint (every 5 steps): the job was
  // past step 12 when it was killed, so at least step 10 was recorded.
  EXPECT_GE(step_before, 12);
  EXPECT_GE(std::stoll(m[1]), 10);
  // The server is healthy and trains again.
  EXPECT_EQ(Train(*stub, "d", "after", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
  again.Signal(SIGTERM);
  EXPECT_EQ(again.Wait(60), 0) << again.Log();
}

}  // namespace
}  // namespace wfm::testing
