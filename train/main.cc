// wfm-train: one rank of a data-parallel training run (see train_run.h and
// data_parallel.h). Start world-size processes with the same flags and a
// different rank each; rank 0 hosts the rendezvous and publishes the model.
//
//   wfm-train --world-size 2 --rank 0 --master-addr 10.0.0.5 --master-port 29500
//       --data-dir /data --dataset shapes --model shapes-big --steps 20000 --batch 64
//
// WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT (and GLOO_SOCKET_IFNAME) are read
// first; flags given explicitly win. Exit status: 0 done, 1 failed (one line
// "wfm-train: rank R: <why>" on stderr), 2 bad flags. A failing rank exits
// at once, without waiting for its peers.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "model/distributed/data_parallel.h"
#include "model/nn/cpu_runtime.h"
#include "repository/logging.h"
#include "train/flags.h"
#include "train/train_run.h"

namespace {

[[noreturn]] void Fail(int64_t rank, const absl::Status& status) {
  wfm::LogError(absl::StrCat("wfm-train: rank ", rank, ": ", status.message(), " [",
                             absl::StatusCodeToString(status.code()), "]"));
  std::fflush(nullptr);
  // Peers may be gone or stuck: leave without running destructors that
  // could wait for them.
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wfm-train: one rank of a data-parallel WFM training run (c10d, Gloo)"};
  wfm::train::TrainCommand c;
  wfm::train::AddTrainCommandFlags(&app, &c);
  CLI11_PARSE(app, argc, argv);
  wfm::train::TrainRunOptions& o = c.run;
  wfm::model::distributed::DistributedOptions& d = c.distributed;
  const std::string& log_level = c.log_level;

  absl::StatusOr<wfm::LogLevel> level = wfm::ParseLogLevel(log_level);
  if (!level.ok()) {
    std::fprintf(stderr, "wfm-train: --log-level %s: %s\n", log_level.c_str(),
                 std::string(level.status().message()).c_str());
    return 2;
  }
  wfm::SetLogLevel(*level);

  if (absl::Status s = wfm::model::distributed::ApplyEnvironment(&d); !s.ok()) Fail(d.rank, s);
  if (c.world_size) d.world_size = *c.world_size;
  if (c.rank) d.rank = *c.rank;
  if (c.master_addr) d.master_addr = *c.master_addr;
  if (c.master_port) d.master_port = *c.master_port;
  d.timeout = absl::Seconds(c.timeout_seconds);
  if (absl::Status s = wfm::model::distributed::ValidateDistributedOptions(d); !s.ok()) {
    Fail(d.rank, s);
  }
  if (absl::Status s = wfm::train::ApplyTrainingFlags(&c); !s.ok()) Fail(d.rank, s);
  if (absl::Status s = wfm::train::ValidateTrainRunOptions(o, d.world_size); !s.ok()) {
    Fail(d.rank, s);
  }

  wfm::model::nn::CpuRuntimeOptions cpu;
  cpu.threads = c.threads;  // 0: the default policy (model/nn/cpu_runtime.h)
  if (absl::Status s = wfm::model::nn::ConfigureCpuRuntime(cpu); !s.ok()) Fail(d.rank, s);

  wfm::LogInfo(absl::StrCat(
      "wfm-train: rank ", d.rank, " of ", d.world_size,
      d.world_size > 1 ? absl::StrCat(", rendezvous at ", d.master_addr, ":", d.master_port)
                       : std::string()));
  absl::StatusOr<std::unique_ptr<wfm::model::distributed::DataParallel>> dp =
      wfm::model::distributed::DataParallel::Connect(d);
  if (!dp.ok()) Fail(d.rank, dp.status());
  absl::StatusOr<wfm::train::TrainRunResult> result = wfm::train::RunTraining(o, **dp);
  if (!result.ok()) Fail(d.rank, result.status());
  const double share = result->seconds > 0 ? result->gradients.seconds / result->seconds : 0.0;
  wfm::LogInfo(absl::StrCat(
      "wfm-train: rank ", d.rank, " done: step ", result->steps, ", loss ", result->final_loss,
      ", ", result->seconds, " s, gradient all-reduce ", 100.0 * share, "% of it",
      d.rank == 0 ? absl::StrCat(", model written to ", result->checkpoint) : std::string()));
  return 0;
}
