// Pieces shared by the trainers of both families: Adam with the reference's
// learning-rate schedule, the training loop around Step(), and the common
// checkpoint metadata.
#ifndef WFM_MODEL_TRAIN_TRAIN_COMMON_H_
#define WFM_MODEL_TRAIN_TRAIN_COMMON_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config/config.h"
#include "model/config/metadata.h"
#include "model/train/train_hooks.h"

namespace wfm::model {

// optax.adam defaults (β 0.9, 0.999, ε 1e-8) at the config's learning rate.
std::unique_ptr<torch::optim::Adam> MakeAdam(const std::vector<at::Tensor>& params,
                                             const OptimizerConfig& config);

// lr · rate^(step / decay_steps) (optax.exponential_decay, not staircased);
// lr when decay_steps is 0.
double ScheduledLearningRate(const OptimizerConfig& config, int64_t step);
void SetLearningRate(torch::optim::Adam& adam, double lr);

// 0 <= rank < world_size, and the global batch splits evenly.
absl::Status ValidateDistributedRole(const DistributedRole& role, int64_t batch_size);

// Calls step() until current_step() reaches total_steps: cancel flag before
// every step, progress after every step, on_checkpoint every
// checkpoint_every steps (not after the last). Adds the time spent in step()
// to *seconds.
absl::Status RunTrainingLoop(const TrainHooks& hooks, int64_t total_steps, int64_t checkpoint_every,
                             const std::function<int64_t()>& current_step,
                             const std::function<absl::StatusOr<double>()>& step, double* seconds);

// The metadata every model checkpoint starts with: format, version, family,
// dim, config, labels, summary, dataset, created_unix_ms.
nlohmann::json ModelMetadata(const char* format, int version, Family family, int64_t dim,
                             nlohmann::json config, const LabelSpace& labels,
                             const TrainingSummary& summary, const std::string& dataset);

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_TRAIN_COMMON_H_
