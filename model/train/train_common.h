// Pieces shared by the trainers of both families: Adam with the reference's
// learning-rate schedule, the training loop around Step(), and the common
// checkpoint metadata.
#ifndef WFM_MODEL_TRAIN_TRAIN_COMMON_H_
#define WFM_MODEL_TRAIN_TRAIN_COMMON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config/config.h"
#include "model/config/metadata.h"
#include "model/train/train_hooks.h"

namespace wfm::model {

// Seconds from t0 to now on the steady clock (the trainers' phase timings).
using TrainClock = std::chrono::steady_clock;
inline double SecondsSince(TrainClock::time_point t0) {
  return std::chrono::duration<double>(TrainClock::now() - t0).count();
}

// optax.adam defaults (β 0.9, 0.999, ε 1e-8) at the config's learning rate.
std::unique_ptr<torch::optim::Adam> MakeAdam(const std::vector<at::Tensor>& params,
                                             const OptimizerConfig& config);

// The learning rate of step `step` (0-based):
//   exponential  lr · rate^(step / decay_steps) (optax.exponential_decay, not
//                staircased; lr when decay_steps is 0);
//   cosine       lr · (1 + cos(π · progress)) / 2, progress in [0, 1] the
//                fraction of the run done;
// times (step + 1) / warmup_steps during the first warmup_steps steps.
double ScheduledLearningRate(const OptimizerConfig& config, int64_t step, double progress);
void SetLearningRate(torch::optim::Adam& adam, double lr);

// `n` flow times t in (0, 1) (float32 [n]) drawn from `distribution`:
// "uniform" (U(0, 1), the reference's) or "logit_normal" (sigmoid of a
// standard normal).
at::Tensor SampleFlowTimes(const std::string& distribution, int64_t n, at::Generator& gen);

// 0 <= rank < world_size, and the global batch splits evenly.
absl::Status ValidateDistributedRole(const DistributedRole& role, int64_t batch_size);

// Calls step() until current_step() reaches total_steps: cancel flag before
// every step, progress after every step, on_checkpoint every
// checkpoint_every steps (not after the last). Adds the time spent in step()
// to *seconds. With time_budget_seconds > 0 the loop also ends (OK) before a
// step once at least one step is done and *seconds (which includes the time
// of earlier segments of a resumed run) plus the time spent outside step()
// in this loop has reached the budget; hooks.agree_to_stop makes that a
// decision of all ranks.
absl::Status RunTrainingLoop(const TrainHooks& hooks, int64_t total_steps, int64_t checkpoint_every,
                             double time_budget_seconds,
                             const std::function<int64_t()>& current_step,
                             const std::function<absl::StatusOr<double>()>& step, double* seconds);

// The metadata every model checkpoint starts with: format, version, family,
// dim, config, labels, summary, dataset, created_unix_ms.
nlohmann::json ModelMetadata(const char* format, int version, Family family, int64_t dim,
                             nlohmann::json config, const LabelSpace& labels,
                             const TrainingSummary& summary, const std::string& dataset);

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_TRAIN_COMMON_H_
