// The optimisation state both trainers share: Adam (or AdamW) over the
// network with its learning-rate schedule, the exponential moving average of
// the weights that sampling uses, the one random stream every draw of a run
// comes from, the step count, the recent losses and the training time — with
// their checkpoint form, so a resumed run continues bit for bit.
#ifndef WFM_MODEL_TRAIN_OPTIMIZATION_STATE_H_
#define WFM_MODEL_TRAIN_OPTIMIZATION_STATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

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
  // Adam (optax defaults) over `net`'s parameters at config.learning_rate
  // and its schedule (ScheduledLearningRate, with `decay_steps` for the
  // exponential one); the random stream is seeded from config.seed (apart
  // from the stream that initialised the network). With config.ema_decay > 0
  // the average starts at the network's current weights.
  OptimizationState(std::shared_ptr<torch::nn::Module> net, const OptimizerConfig& config,
                    int64_t decay_steps);

  at::Generator& generator() { return gen_; }
  int64_t step() const { return step_; }
  int64_t decay_steps() const { return decay_steps_; }

  // Backward pass of `loss` (a scalar), hooks.reduce_gradients, clipping at
  // config.grad_clip_norm, the scheduled learning rate, AdamW's decoupled
  // weight decay p ← p · (1 − lr · weight_decay) when set, a (fused) Adam
  // step and the moving average
  //   ema ← d · ema + (1 − d) · p,  d = min(ema_decay, (1 + n) / (10 + n))
  // after the n-th step (the ramp keeps the average from holding on to the
  // initial weights in short runs); counts the step and records the loss,
  // which it returns. FAILED_PRECONDITION when the loss is not finite.
  absl::StatusOr<double> Apply(const at::Tensor& loss, const TrainHooks& hooks);

  // RunTrainingLoop over `step` until `total_steps` or the time budget,
  // timing the steps.
  absl::Status Train(const TrainHooks& hooks, int64_t total_steps, int64_t checkpoint_every,
                     const std::function<absl::StatusOr<double>()>& step);

  // The fraction of the run done: steps / config.steps, or with a time budget
  // the larger of that and the training seconds / the budget.
  double Progress() const;

  // The weights sampling uses, as checkpoint tensors "ema.<name>" (the
  // network's parameters replaced by their average, its buffers as they
  // are); empty without a moving average.
  absl::StatusOr<checkpoint::NamedTensors> SamplingWeights() const;

  // Sets the summary's steps, final and recent loss, seconds and rate.
  void Summarize(TrainingSummary* summary) const;

  // Adds "optimizer.*" (Adam state), "trainer.rng" (the stream) and
  // metadata["trainer"] (step, decay_steps, losses, seconds).
  absl::Status AddTo(checkpoint::Checkpoint* ckpt) const;
  // Restores a resumed run: the network's weights ("model.*"), what AddTo
  // saved, and the moving average from "ema.*" (from the network's weights
  // when the checkpoint has none). DATA_LOSS / INVALID_ARGUMENT when missing
  // or inconsistent with the network; INVALID_ARGUMENT ("steps: ...") when
  // the checkpoint's step is beyond the configured total.
  absl::Status ResumeFrom(const checkpoint::Checkpoint& ckpt);
  // Fine-tuning: the network's weights from another model's checkpoint
  // ("model.*": its trained parameters, not their moving average). The
  // optimizer, schedule, step count and random stream stay fresh; the moving
  // average restarts at these weights. INVALID_ARGUMENT naming the first
  // parameter whose shape differs (the network is then left unchanged).
  absl::Status InitWeightsFrom(const checkpoint::Checkpoint& ckpt);

 private:
  // ResumeFrom without the guard and the step check.
  absl::Status RestoreFrom(const checkpoint::Checkpoint& ckpt);
  // The moving average at the network's current weights (none when off).
  void ResetAverage();

  std::shared_ptr<torch::nn::Module> net_;
  OptimizerConfig config_;
  int64_t decay_steps_;
  std::unique_ptr<torch::optim::Adam> adam_;
  at::Generator gen_;
  int64_t step_ = 0;
  double last_loss_ = 0.0;
  double seconds_ = 0.0;
  std::deque<double> recent_losses_;
  std::vector<at::Tensor> ema_;  // per parameter, in registration order
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
