// wfm_bench train --world-size N: data-parallel training speed. The same
// global batch is trained first by one process, then by N processes on
// loopback (c10d Gloo, model/distributed), each with --threads threads
// (one by default); all on the synthetic data of train_bench.cc (point
// clouds, or their means and covariances with --gaussian). One JSON line:
//   sec_per_step_1proc        one process, the whole global batch
//   sec_per_step              N processes (rank 0's wall time per step)
//   speedup                   sec_per_step_1proc / sec_per_step
//   allreduce_sec_per_step    time in the gradient all-reduce per step (mean
//                             over the ranks; includes waiting for the
//                             slowest rank), allreduce_share its fraction
//                             of a step, allreduce_bytes the buffer per call
// Every process is forked before any LibTorch thread pool exists and
// reports through a pipe.
#include "bench/distributed_bench.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bench/bench_args.h"
#include "bench/bench_util.h"
#include "bench/synthetic_data.h"
#include "model/common/status.h"
#include "model/distributed/data_parallel.h"
#include "model/train/gaussian_trainer.h"
#include "model/train/pointcloud_trainer.h"

namespace wfm::bench {

namespace {

using model::distributed::DataParallel;
using model::distributed::DistributedOptions;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// 2 warm-up steps, then a.steps timed ones.
template <typename Trainer>
absl::StatusOr<nlohmann::json> TimeSteps(Trainer& trainer, DataParallel& dp,
                                         const TrainBenchArgs& a) {
  std::vector<at::Tensor> params = trainer.network()->parameters();
  WFM_RETURN_IF_ERROR(dp.Broadcast(params));
  model::TrainHooks hooks;
  hooks.reduce_gradients = dp.GradientReducer(params);
  for (int i = 0; i < 2; ++i) WFM_RETURN_IF_ERROR(trainer.Step(hooks).status());
  WFM_RETURN_IF_ERROR(dp.Barrier("warm-up"));
  dp.ResetGradientStats();
  absl::Status failed;
  double loss = 0;
  const double seconds = TimeOnce([&] {
    for (int64_t i = 0; i < a.steps && failed.ok(); ++i) {
      absl::StatusOr<double> l = trainer.Step(hooks);
      if (!l.ok()) failed = l.status();
      else loss = *l;
    }
  });
  WFM_RETURN_IF_ERROR(failed);
  int64_t count = 0;
  for (const at::Tensor& p : params) count += p.numel();
  const auto& g = dp.gradient_stats();
  return nlohmann::json{{"sec_per_step", seconds / a.steps},
                        {"allreduce_sec_per_step", g.seconds / a.steps},
                        {"allreduce_bytes", g.calls > 0 ? g.bytes / g.calls : 0},
                        {"local_loss", loss},
                        {"params", count}};
}

absl::StatusOr<nlohmann::json> RunRank(const TrainBenchArgs& a, int64_t rank, int64_t world,
                                       int port) {
  SetThreads(a.threads);
  DistributedOptions o;
  o.rank = rank;
  o.world_size = world;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout = absl::Seconds(120);
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<DataParallel> dp, DataParallel::Connect(o));
  const model::DistributedRole role{rank, world};
  const model::io::PointCloudSet clouds = SyntheticClouds(a.clouds, a.points, a.dim, a.seed);
  if (a.gaussian) {
    WFM_ASSIGN_OR_RETURN(const model::io::GaussianSet data,
                         model::GaussiansFromPointClouds(clouds, 1, 1e-6));
    const model::GaussianTrainConfig config =
        GaussianBenchConfig(a.net, a.batch, a.lr, a.steps + 2, a.seed);
    WFM_ASSIGN_OR_RETURN(auto trainer,
                         model::GaussianTrainer::Create(data, config, "synthetic", nullptr, role));
    return TimeSteps(*trainer, *dp, a);
  }
  WFM_ASSIGN_OR_RETURN(auto trainer, model::PointCloudTrainer::Create(
                                         clouds, PointCloudBenchConfig(a), "synthetic", nullptr, role));
  return TimeSteps(*trainer, *dp, a);
}

struct Child {
  pid_t pid = -1;
  int fd = -1;
};

// fn in a forked process; its JSON result (or {"error": ...}) comes back
// through a pipe.
Child Spawn(const std::function<absl::StatusOr<nlohmann::json>()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<nlohmann::json> result = fn();
    const std::string text =
        (result.ok() ? *result : nlohmann::json{{"error", std::string(result.status().message())}})
            .dump();
    (void)!write(fds[1], text.data(), text.size());
    close(fds[1]);
    std::fflush(nullptr);
    _exit(result.ok() ? 0 : 1);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

absl::StatusOr<nlohmann::json> Collect(Child child) {
  if (child.pid < 0) return absl::InternalError("fork or pipe failed");
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(child.fd, buffer, sizeof(buffer))) > 0) text.append(buffer, n);
  close(child.fd);
  int status = 0;
  waitpid(child.pid, &status, 0);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat("a benchmark process died (status ", status, ")"));
  }
  if (j.contains("error")) return absl::InternalError(j["error"].get<std::string>());
  return j;
}

}  // namespace

int RunDistributedTrain(const TrainBenchArgs& a) {
  const int64_t world = a.world_size;
  if (world < 2) {
    std::cerr << "wfm_bench: --world-size must be >= 2 for the distributed benchmark\n";
    return 1;
  }
  if (a.batch % world != 0 || a.steps < 1) {
    std::cerr << "wfm_bench: --batch " << a.batch << " must split evenly over " << world
              << " processes, and --steps must be >= 1\n";
    return 1;
  }
  // One process on the whole global batch (the same code path, world 1).
  absl::StatusOr<nlohmann::json> single =
      Collect(Spawn([&] { return RunRank(a, 0, 1, 1); }));
  if (!single.ok()) {
    std::cerr << "wfm_bench: " << single.status().message() << "\n";
    return 1;
  }
  const int port = FreePort();
  std::vector<Child> children;
  for (int64_t r = 0; r < world; ++r) {
    children.push_back(Spawn([&, r] { return RunRank(a, r, world, port); }));
  }
  std::vector<nlohmann::json> ranks;
  absl::Status failed;
  for (Child& c : children) {
    absl::StatusOr<nlohmann::json> j = Collect(c);
    if (!j.ok() && failed.ok()) failed = j.status();
    ranks.push_back(j.ok() ? *j : nlohmann::json());
  }
  if (!failed.ok()) {
    std::cerr << "wfm_bench: " << failed.message() << "\n";
    return 1;
  }
  double reduce = 0, sec = ranks[0]["sec_per_step"].get<double>();
  for (const auto& r : ranks) reduce += r["allreduce_sec_per_step"].get<double>();
  reduce /= static_cast<double>(world);
  const double base = (*single)["sec_per_step"].get<double>();
  nlohmann::json rec = {{"cmd", "train"},
                        {"mode", a.gaussian ? "gaussian" : "pointcloud"},
                        {"world_size", world},
                        {"clouds", a.clouds},
                        {"points", a.points},
                        {"dim", a.dim},
                        {"batch", a.batch},
                        {"emb", a.net.emb},
                        {"layers", a.net.layers},
                        {"heads", a.net.heads},
                        {"mlp", a.net.mlp},
                        {"steps", a.steps},
                        {"params", ranks[0]["params"]},
                        {"sec_per_step_1proc", base},
                        {"sec_per_step", sec},
                        {"speedup", base / sec},
                        {"allreduce_sec_per_step", reduce},
                        {"allreduce_share", reduce / sec},
                        {"allreduce_bytes", ranks[0]["allreduce_bytes"]},
                        {"threads_per_process", a.threads}};
  Emit(rec);
  return 0;
}

}  // namespace wfm::bench
