// wfm-train's command line: the distributed, data and run flags of one rank
// and every training option of the option table (model/config/options.h),
// spelled as `wfm train` spells them.
#ifndef WFM_TRAIN_FLAGS_H_
#define WFM_TRAIN_FLAGS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "model/config/option_flags.h"
#include "model/distributed/data_parallel.h"
#include "train/train_run.h"

namespace wfm::train {

// Checkpoints every this many steps unless --checkpoint-every says otherwise.
inline constexpr int64_t kDefaultCheckpointEvery = 500;

struct TrainCommand {
  TrainRunOptions run;
  model::distributed::DistributedOptions distributed;
  // Given flags win over the environment (WORLD_SIZE, RANK, MASTER_ADDR,
  // MASTER_PORT), which wins over the defaults.
  std::optional<int64_t> world_size;
  std::optional<int64_t> rank;
  std::optional<std::string> master_addr;
  std::optional<int> master_port;
  double timeout_seconds = 60.0;
  int threads = 0;  // 0: the default policy (model/nn/cpu_runtime.h)
  std::string log_level = "info";
  // Training options as given; ApplyTrainingFlags stores them in run.
  std::optional<std::string> family;
  model::GivenOptions options;
};

// Registers every flag of wfm-train on `app`, writing into `command`.
void AddTrainCommandFlags(CLI::App* app, TrainCommand* command);

// After parsing: run.family from --family, and the training options in
// run.config — for that family, or, without --family (the family then comes
// from the data), in each family configuration that takes them.
// checkpoint_every is kDefaultCheckpointEvery unless given. INVALID_ARGUMENT
// naming the flag (an option of the other family, a value the family does
// not take).
absl::Status ApplyTrainingFlags(TrainCommand* command);

}  // namespace wfm::train

#endif  // WFM_TRAIN_FLAGS_H_
