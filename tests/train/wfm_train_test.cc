// wfm-train as processes on loopback: two ranks train for a few steps with
// parameters identical on both after every step and equal (within float
// tolerance) to one process trained on the union of their batches; a rank
// that is killed or stalls makes the other exit non-zero with a clear
// message within the timeout; rank 0 publishes versions into a repository
// and --resume continues a run exactly.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/checkpoint/checkpoint.h"
#include "model/io/point_sets.h"
#include "model/sample/pointcloud_model.h"
#include "tests/testing/free_port.h"

extern char** environ;

namespace wfm::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One wfm-train process; stdout and stderr go to <log>.
class TrainProcess {
 public:
  TrainProcess(std::vector<std::string> args, const std::string& log) : log_(log) {
    args.insert(args.begin(), WFM_TRAIN_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (posix_spawn(&pid_, WFM_TRAIN_BINARY, &actions, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~TrainProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  TrainProcess(const TrainProcess&) = delete;
  TrainProcess& operator=(const TrainProcess&) = delete;

  // The exit code (128 + signal when killed), or -1 when still running
  // after `seconds`.
  int Wait(double seconds) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (!Exited()) {
      if (Clock::now() > until) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status_;
  }
  void Signal(int sig) { kill(pid_, sig); }
  std::string Log() const { return ReadFile(log_); }

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
};

std::vector<nlohmann::json> ReadTrace(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

// The network's parameters of a checkpoint, flattened in file order.
at::Tensor ModelParameters(const std::string& path) {
  auto ckpt = model::checkpoint::Read(path);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<at::Tensor> parts;
  if (!ckpt.ok()) return at::zeros({0});
  for (const auto& [name, tensor] : ckpt->tensors) {
    if (name.rfind("model.", 0) == 0) parts.push_back(tensor.to(at::kDouble).reshape({-1}));
  }
  return at::cat(parts);
}

class WfmTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wfm_train_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // 24 clouds of 5..9 points in 2D (varying sizes: the batch is padded).
    model::io::PointCloudSet set;
    set.dim = 2;
    set.offsets.push_back(0);
    std::mt19937 rng(11);
    std::normal_distribution<float> z(0.0f, 1.0f);
    for (int c = 0; c < 24; ++c) {
      const int n = 5 + c % 5;
      const float cx = static_cast<float>(c % 4) - 1.5f, cy = static_cast<float>(c / 8) - 1.0f;
      for (int p = 0; p < n; ++p) {
        set.points.push_back(cx + 0.3f * z(rng));
        set.points.push_back(cy + 0.2f * z(rng));
      }
      set.offsets.push_back(set.offsets.back() + n);
    }
    data_ = (dir_ / "clouds.npz").string();
    ASSERT_TRUE(model::io::WritePointCloudsNpz(data_, set).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Flags of a tiny deterministic run: minibatch OT off and the entropic
  // (barycentric) Monge map, no dropout, one thread.
  std::vector<std::string> Flags(int steps) const {
    return {"--data",        data_,     "--steps",     std::to_string(steps),
            "--batch",       "8",       "--emb",       "16",
            "--layers",      "1",       "--heads",     "2",
            "--mlp",         "32",      "--dropout",   "0",
            "--minibatch-ot", "off",    "--monge-map", "entropic",
            "--sinkhorn-iters", "50",   "--lr",        "0.001",
            "--seed",        "3",       "--threads",   "1",
            "--check-sync-every", "1",  "--log-every", "1"};
  }
  static std::vector<std::string> Rank(std::vector<std::string> flags, int rank, int world,
                                       int port, double timeout, const std::string& trace) {
    for (const std::string& f :
         {std::string("--world-size"), std::to_string(world), std::string("--rank"),
          std::to_string(rank), std::string("--master-addr"), std::string("127.0.0.1"),
          std::string("--master-port"), std::to_string(port), std::string("--timeout-seconds"),
          std::to_string(timeout), std::string("--trace"), trace}) {
      flags.push_back(f);
    }
    return flags;
  }
  static std::vector<std::string> With(std::vector<std::string> flags,
                                       std::initializer_list<std::string> more) {
    flags.insert(flags.end(), more.begin(), more.end());
    return flags;
  }

  // Runs world_size ranks to the end; returns their exit codes.
  std::vector<int> RunRanks(const std::vector<std::string>& flags, int world,
                            const std::string& tag, double timeout = 60) {
    const int port = wfm::testing::FreePort();
    std::vector<std::unique_ptr<TrainProcess>> ranks;
    for (int r = 0; r < world; ++r) {
      ranks.push_back(std::make_unique<TrainProcess>(
          Rank(flags, r, world, port, timeout, Path(tag + "_trace" + std::to_string(r) + ".jsonl")),
          Path(tag + "_log" + std::to_string(r) + ".txt")));
    }
    std::vector<int> codes;
    for (int r = 0; r < world; ++r) {
      codes.push_back(ranks[r]->Wait(300));
      if (codes.back() != 0) ADD_FAILURE() << tag << " rank " << r << ":\n" << ranks[r]->Log();
    }
    return codes;
  }

  // Starts two long-running ranks and waits until both have done a step.
  void StartLongRun(double timeout, std::unique_ptr<TrainProcess>* r0,
                    std::unique_ptr<TrainProcess>* r1) {
    const int port = wfm::testing::FreePort();
    // Traces of an earlier run would make the wait below end at once.
    fs::remove(Path("t0.jsonl"));
    fs::remove(Path("t1.jsonl"));
    const auto flags = With(Flags(1000000), {"--out", Path("long.wfm"), "--checkpoint-every", "0"});
    *r0 = std::make_unique<TrainProcess>(Rank(flags, 0, 2, port, timeout, Path("t0.jsonl")),
                                         Path("log0.txt"));
    *r1 = std::make_unique<TrainProcess>(Rank(flags, 1, 2, port, timeout, Path("t1.jsonl")),
                                         Path("log1.txt"));
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (ReadTrace(Path("t0.jsonl")).size() < 2 || ReadTrace(Path("t1.jsonl")).size() < 2) {
      ASSERT_LT(Clock::now(), until) << (*r0)->Log() << (*r1)->Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  fs::path dir_;
  std::string data_;
};

TEST_F(WfmTrainTest, TwoRanksStayIdenticalAndMatchOneProcessOnTheUnionBatch) {
  constexpr int kSteps = 5;
  ASSERT_EQ(RunRanks(With(Flags(kSteps), {"--out", Path("dist.wfm")}), 2, "dist"),
            (std::vector<int>{0, 0}));
  ASSERT_EQ(RunRanks(With(Flags(kSteps), {"--out", Path("single.wfm")}), 1, "single"),
            (std::vector<int>{0}));
  ASSERT_EQ(RunRanks(With(Flags(1), {"--out", Path("first.wfm")}), 1, "first"),
            (std::vector<int>{0}));

  const auto t0 = ReadTrace(Path("dist_trace0.jsonl"));
  const auto t1 = ReadTrace(Path("dist_trace1.jsonl"));
  const auto ts = ReadTrace(Path("single_trace0.jsonl"));
  ASSERT_EQ(t0.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(t1.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(ts.size(), static_cast<size_t>(kSteps));
  for (int s = 0; s < kSteps; ++s) {
    SCOPED_TRACE(::testing::Message() << "step " << s + 1);
    EXPECT_EQ(t0[s]["step"], s + 1);
    // Bit-identical parameters on both ranks after every step.
    EXPECT_EQ(t0[s]["digest"], t1[s]["digest"]);
    EXPECT_EQ(t0[s]["loss"].get<double>(), t1[s]["loss"].get<double>());
    // Each rank saw its own half of the batch...
    EXPECT_NE(t0[s]["local_loss"].get<double>(), t1[s]["local_loss"].get<double>());
    // ...and the mean over the ranks is the union batch's loss.
    const double single = ts[s]["loss"].get<double>();
    EXPECT_NEAR(t0[s]["loss"].get<double>(), single, 1e-5 * std::max(1.0, std::abs(single)));
    EXPECT_NEAR(t0[s]["param_sum"].get<double>(), ts[s]["param_sum"].get<double>(),
                1e-3 * std::max(1.0, std::abs(ts[s]["param_sum"].get<double>())));
  }
  // The final parameters: their distance from the single process's is a
  // tiny fraction of how far four more steps moved them.
  const at::Tensor dist = ModelParameters(Path("dist.wfm"));
  const at::Tensor single = ModelParameters(Path("single.wfm"));
  const at::Tensor first = ModelParameters(Path("first.wfm"));
  ASSERT_EQ(dist.numel(), single.numel());
  ASSERT_GT(dist.numel(), 100);
  const double moved = (single - first).norm().item<double>();
  const double apart = (dist - single).norm().item<double>();
  ASSERT_GT(moved, 1e-3);
  EXPECT_LT(apart, 1e-3 * moved) << "apart " << apart << ", moved " << moved;

  // The checkpoint loads as a model and records the run's world size.
  auto ckpt = model::checkpoint::Read(Path("dist.wfm"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->metadata["summary"]["world_size"], 2);
  EXPECT_EQ(ckpt->metadata["summary"]["steps"], kSteps);
  EXPECT_DOUBLE_EQ(ckpt->metadata["summary"]["final_loss"].get<double>(),
                   t0.back()["loss"].get<double>());
  auto loaded = model::PointCloudModel::FromCheckpoint(*ckpt);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
}

TEST_F(WfmTrainTest, KillingOneRankMakesTheOtherExitWithAClearError) {
  for (int victim : {1, 0}) {
    SCOPED_TRACE(::testing::Message() << "killing rank " << victim);
    std::unique_ptr<TrainProcess> r0, r1;
    constexpr double kTimeout = 30;
    StartLongRun(kTimeout, &r0, &r1);
    TrainProcess& dead = victim == 0 ? *r0 : *r1;
    TrainProcess& survivor = victim == 0 ? *r1 : *r0;
    dead.Signal(SIGKILL);
    EXPECT_EQ(dead.Wait(10), 128 + SIGKILL);
    const auto start = Clock::now();
    const int code = survivor.Wait(kTimeout + 30);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(code, 1) << survivor.Log();
    EXPECT_LT(seconds, kTimeout + 30);
    const std::string log = survivor.Log();
    EXPECT_NE(log.find("wfm-train: rank " + std::to_string(1 - victim) + ": distributed:"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("another rank died or did not respond within the 30 s timeout"),
              std::string::npos)
        << log;
  }
}

TEST_F(WfmTrainTest, AStalledRankMakesTheOtherExitAfterTheTimeout) {
  std::unique_ptr<TrainProcess> r0, r1;
  constexpr double kTimeout = 3;
  StartLongRun(kTimeout, &r0, &r1);
  r1->Signal(SIGSTOP);
  const auto start = Clock::now();
  const int code = r0->Wait(60);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r1->Signal(SIGKILL);
  EXPECT_EQ(code, 1) << r0->Log();
  EXPECT_LT(seconds, 60);
  EXPECT_NE(r0->Log().find("within the 3 s timeout"), std::string::npos) << r0->Log();
}

TEST_F(WfmTrainTest, ARankThatCannotReadItsDataStopsEveryRank) {
  const int port = wfm::testing::FreePort();
  auto flags = With(Flags(3), {"--out", Path("m.wfm")});
  TrainProcess r0(Rank(flags, 0, 2, port, 30, Path("a.jsonl")), Path("log0.txt"));
  auto bad = Rank(flags, 1, 2, port, 30, Path("b.jsonl"));
  bad[1] = Path("missing.npz");  // the value of --data
  TrainProcess r1(bad, Path("log1.txt"));
  EXPECT_EQ(r0.Wait(120), 1);
  EXPECT_EQ(r1.Wait(120), 1);
  // Rank 0 names rank 1 and its reason.
  EXPECT_NE(r0.Log().find("wfm-train: rank 0: rank 1: "), std::string::npos) << r0.Log();
  EXPECT_NE(r0.Log().find("missing.npz"), std::string::npos) << r0.Log();
  EXPECT_FALSE(fs::exists(Path("m.wfm")));
}

// A model folder of the first layout (<name>/model.wfm, as earlier
// wfm-train wrote it): the run adds version 2 next to it and leaves it be.
TEST_F(WfmTrainTest, AModelOfTheFirstLayoutGetsTheNextVersion) {
  const std::string repo = Path("first_layout");
  fs::create_directories(repo + "/models/shapes");
  std::ofstream(repo + "/models/shapes/model.wfm") << "version 1";
  ASSERT_EQ(RunRanks(With(Flags(1), {"--data-dir", repo, "--model", "shapes"}), 1, "v"),
            (std::vector<int>{0}));
  EXPECT_EQ(ReadFile(repo + "/models/shapes/model.wfm"), "version 1");
  EXPECT_TRUE(model::checkpoint::Read(repo + "/models/shapes/2/model.wfm").ok());
  EXPECT_NE(ReadFile(Path("v_log0.txt")).find("published model 'shapes' version 2"),
            std::string::npos)
      << ReadFile(Path("v_log0.txt"));
}

// The entries of a folder, sorted.
std::vector<std::string> Entries(const std::string& folder) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(WfmTrainTest, RankZeroPublishesVersionsIntoTheRepositoryAndResumeContinuesExactly) {
  const std::string repo = Path("repo");
  const auto repo_flags = [&](int steps) {
    return With(Flags(steps), {"--data-dir", repo, "--model", "shapes", "--checkpoint-every", "2"});
  };
  ASSERT_EQ(RunRanks(repo_flags(3), 2, "first"), (std::vector<int>{0, 0}));
  // Version 1, and nothing else: no staging leftovers, and the run's
  // working checkpoint (train/shapes.wfm) removed once it published.
  EXPECT_EQ(Entries(repo + "/models"), std::vector<std::string>{"shapes"});
  EXPECT_EQ(Entries(repo + "/models/shapes"), std::vector<std::string>{"1"});
  EXPECT_EQ(Entries(repo + "/train"), std::vector<std::string>{});
  const std::string v1 = repo + "/models/shapes/1/model.wfm";
  auto ckpt = model::checkpoint::Read(v1);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->metadata["summary"]["steps"], 3);
  EXPECT_EQ(ckpt->metadata["server"]["dataset"], data_);
  EXPECT_EQ(ckpt->metadata["server"]["dataset_items"], 24);

  // Resuming the finished run 3 -> 6 (from its version) publishes version 2,
  // equal to a straight 6-step run bit for bit.
  ASSERT_EQ(RunRanks(With(repo_flags(6), {"--resume"}), 2, "resumed"), (std::vector<int>{0, 0}));
  ASSERT_EQ(RunRanks(With(Flags(6), {"--out", Path("straight.wfm")}), 2, "straight"),
            (std::vector<int>{0, 0}));
  const auto resumed = ReadTrace(Path("resumed_trace0.jsonl"));
  const auto straight = ReadTrace(Path("straight_trace0.jsonl"));
  ASSERT_EQ(resumed.size(), 3u);
  ASSERT_EQ(straight.size(), 6u);
  EXPECT_EQ(resumed.front()["step"], 4);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(resumed[s]["digest"], straight[s + 3]["digest"]) << "step " << s + 4;
    EXPECT_EQ(resumed[s]["loss"], straight[s + 3]["loss"]) << "step " << s + 4;
  }
  EXPECT_EQ(Entries(repo + "/models/shapes"), (std::vector<std::string>{"1", "2"}));
  EXPECT_TRUE(at::equal(ModelParameters(repo + "/models/shapes/2/model.wfm"),
                        ModelParameters(Path("straight.wfm"))));
  // Resumed again with no step left (a retried job): nothing is published.
  ASSERT_EQ(RunRanks(With(repo_flags(6), {"--resume"}), 1, "again"), (std::vector<int>{0}));
  EXPECT_EQ(Entries(repo + "/models/shapes"), (std::vector<std::string>{"1", "2"}));

  // An interrupted run's working checkpoint (here: of a 1-step run) is what
  // --resume continues, before the model's versions.
  ASSERT_EQ(RunRanks(With(Flags(1), {"--out", repo + "/train/shapes.wfm"}), 1, "cut"),
            (std::vector<int>{0}));
  ASSERT_EQ(RunRanks(With(repo_flags(2), {"--resume"}), 1, "continued"), (std::vector<int>{0}));
  const auto continued = ReadTrace(Path("continued_trace0.jsonl"));
  ASSERT_EQ(continued.size(), 1u);
  EXPECT_EQ(continued.front()["step"], 2);
  EXPECT_EQ(Entries(repo + "/models/shapes"), (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(Entries(repo + "/train"), std::vector<std::string>{});

  // --overwrite: every version replaced by the new model, version 1.
  ASSERT_EQ(RunRanks(With(repo_flags(1), {"--overwrite"}), 1, "over"), (std::vector<int>{0}));
  EXPECT_EQ(Entries(repo + "/models/shapes"), std::vector<std::string>{"1"});
  ckpt = model::checkpoint::Read(v1);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->metadata["summary"]["steps"], 1);
}

}  // namespace
}  // namespace wfm::testing
