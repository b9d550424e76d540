// The optimisation state both trainers share: Adam over the network with the
// reference's learning-rate schedule, the one random stream every draw of a
// run comes from, the step count, the recent losses and the training time —
// with their checkpoint form, so a resumed run continues bit for bit.
#ifndef WFM_MODEL_TRAIN_OPTIMIZATION_STATE_H_
#define WFM_MODEL_TRAIN_OPTIMIZATION_STATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config/config.h"
#include "model/config/metadata.h"
#include "model/train/train_hooks.h"

namespace wfm::model {

class OptimizationState {
 public:
  // Adam (optax defaults) over `net`'s parameters at config.learning_rate,
  // decayed as lr · decay_rate^(step / decay_steps) (constant when
  // decay_steps is 0); the random stream is seeded from config.seed (apart
  // from the stream that initialised the network).
  OptimizationState(std::shared_ptr<torch::nn::Module> net, const OptimizerConfig& config,
                    int64_t decay_steps);

  at::Generator& generator() { return gen_; }
  int64_t step() const { return step_; }
  int64_t decay_steps() const { return decay_steps_; }

  // Backward pass of `loss` (a scalar), hooks.reduce_gradients, clipping at
  // config.grad_clip_norm, the scheduled learning rate and a (fused) Adam
  // step; counts the step and records the loss, which it returns.
  // FAILED_PRECONDITION when the loss is not finite.
  absl::StatusOr<double> Apply(const at::Tensor& loss, const TrainHooks& hooks);

  // RunTrainingLoop over `step` until `total_steps`, timing the steps.
  absl::Status Train(const TrainHooks& hooks, int64_t total_steps, int64_t checkpoint_every,
                     const std::function<absl::StatusOr<double>()>& step);

  // Sets the summary's steps, final and recent loss, seconds and rate.
  void Summarize(TrainingSummary* summary) const;

  // Adds "optimizer.*" (Adam state), "trainer.rng" (the stream) and
  // metadata["trainer"] (step, decay_steps, losses, seconds).
  absl::Status AddTo(checkpoint::Checkpoint* ckpt) const;
  // Restores what AddTo saved. DATA_LOSS / INVALID_ARGUMENT when missing or
  // inconsistent with the network.
  absl::Status RestoreFrom(const checkpoint::Checkpoint& ckpt);

 private:
  std::shared_ptr<torch::nn::Module> net_;
  OptimizerConfig config_;
  int64_t decay_steps_;
  std::unique_ptr<torch::optim::Adam> adam_;
  at::Generator gen_;
  int64_t step_ = 0;
  double last_loss_ = 0.0;
  double seconds_ = 0.0;
  std::deque<double> recent_losses_;
};

// The training config stored in a resumable checkpoint of `format`: checks
// the format and the trainer state, parses metadata["config"] with `parse`
// and replaces the total steps when `steps` > 0.
template <typename Config>
absl::StatusOr<Config> ResumeConfig(
    const checkpoint::Checkpoint& ckpt, const char* format, int version, int64_t steps,
    const std::function<absl::StatusOr<Config>(const nlohmann::json&)>& parse);

// Non-template part of ResumeConfig: the format and trainer-state checks,
// and metadata["config"].
absl::StatusOr<nlohmann::json> ResumableConfigJson(const checkpoint::Checkpoint& ckpt,
                                                   const char* format, int version);

template <typename Config>
absl::StatusOr<Config> ResumeConfig(
    const checkpoint::Checkpoint& ckpt, const char* format, int version, int64_t steps,
    const std::function<absl::StatusOr<Config>(const nlohmann::json&)>& parse) {
  absl::StatusOr<nlohmann::json> json = ResumableConfigJson(ckpt, format, version);
  if (!json.ok()) return json.status();
  absl::StatusOr<Config> config = parse(*json);
  if (config.ok() && steps > 0) config->optimizer.steps = steps;
  return config;
}

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_OPTIMIZATION_STATE_H_
