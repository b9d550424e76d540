#include "model/train/optimization_state.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include "absl/strings/str_cat.h"
#include "model/checkpoint/adam_state.h"
#include "model/checkpoint/module_state.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/checkpoint/model_files.h"
#include "model/checkpoint/module_state.h"
#include "model/train/fused_adam.h"
#include "model/train/train_common.h"

namespace wfm::model {
namespace {

// The training stream's seed, apart from the initialisation's.
uint64_t StreamSeed(uint64_t seed) { return seed ^ 0x9E3779B97F4A7C15ULL; }

constexpr size_t kRecentLosses = 100;

}  // namespace

OptimizationState::OptimizationState(std::shared_ptr<torch::nn::Module> net,
                                     const OptimizerConfig& config, int64_t decay_steps)
    : net_(std::move(net)),
      config_(config),
      decay_steps_(decay_steps),
      adam_(MakeAdam(net_->parameters(), config)),
      gen_(at::make_generator<at::CPUGeneratorImpl>(StreamSeed(config.seed))) {
  ResetAverage();
}

void OptimizationState::ResetAverage() {
  ema_.clear();
  if (config_.ema_decay <= 0) return;
  for (const auto& p : net_->parameters()) ema_.push_back(p.detach().clone());
}

absl::StatusOr<double> OptimizationState::Apply(const at::Tensor& loss, const TrainHooks& hooks) {
  // Gradients start undefined, so backward stores them instead of adding
  // them to zeroed buffers.
  for (auto& p : net_->parameters()) p.mutable_grad().reset();
  loss.backward();
  if (hooks.reduce_gradients) {
    std::vector<at::Tensor> grads;
    for (const auto& p : net_->parameters()) grads.push_back(p.grad());
    WFM_RETURN_IF_ERROR(hooks.reduce_gradients(grads));
  }
  if (config_.grad_clip_norm > 0) {
    torch::nn::utils::clip_grad_norm_(net_->parameters(), config_.grad_clip_norm);
  }
  OptimizerConfig schedule = config_;
  schedule.decay_steps = decay_steps_;
  const double lr = ScheduledLearningRate(schedule, step_, Progress());
  SetLearningRate(*adam_, lr);
  {
    at::NoGradGuard no_grad;
    if (config_.weight_decay > 0) {
      for (auto& p : net_->parameters()) p.mul_(1.0 - lr * config_.weight_decay);
    }
    FusedAdamStep(*adam_);
    ++step_;
    if (!ema_.empty()) {
      const double n = static_cast<double>(step_);
      const double d = std::min(config_.ema_decay, (1.0 + n) / (10.0 + n));
      const std::vector<at::Tensor> params = net_->parameters();
      for (size_t i = 0; i < ema_.size(); ++i) ema_[i].mul_(d).add_(params[i].detach(), 1.0 - d);
    }
  }
  last_loss_ = loss.item<double>();
  recent_losses_.push_back(last_loss_);
  if (recent_losses_.size() > kRecentLosses) recent_losses_.pop_front();
  if (!std::isfinite(last_loss_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training diverged at step ", step_, " (loss ", last_loss_,
        "); lower the learning rate or enable gradient clipping"));
  }
  return last_loss_;
}

absl::Status OptimizationState::Train(const TrainHooks& hooks, int64_t total_steps,
                                      int64_t checkpoint_every,
                                      const std::function<absl::StatusOr<double>()>& step) {
  return RunTrainingLoop(hooks, total_steps, checkpoint_every, config_.time_budget_seconds,
                         [this] { return step_; }, step, &seconds_);
}

double OptimizationState::Progress() const {
  double progress = config_.steps > 0 ? static_cast<double>(step_) / config_.steps : 0.0;
  if (config_.time_budget_seconds > 0) {
    progress = std::max(progress, seconds_ / config_.time_budget_seconds);
  }
  return std::min(progress, 1.0);
}

absl::StatusOr<checkpoint::NamedTensors> OptimizationState::SamplingWeights() const {
  if (ema_.empty()) return checkpoint::NamedTensors{};
  WFM_ASSIGN_OR_RETURN(checkpoint::NamedTensors tensors,
                       checkpoint::StateTensors(*net_, checkpoint::kEmaPrefix));
  const std::vector<std::pair<std::string, at::Tensor>> params = net_->named_parameters().pairs();
  for (size_t i = 0; i < ema_.size(); ++i) {
    const std::string name = absl::StrCat(checkpoint::kEmaPrefix, params[i].first);
    for (auto& entry : tensors) {
      if (entry.first == name) entry.second = ema_[i].clone();
    }
  }
  return tensors;
}

void OptimizationState::Summarize(TrainingSummary* s) const {
  s->steps = step_;
  s->final_loss = last_loss_;
  s->recent_loss = recent_losses_.empty()
                       ? 0.0
                       : std::accumulate(recent_losses_.begin(), recent_losses_.end(), 0.0) /
                             static_cast<double>(recent_losses_.size());
  s->seconds = seconds_;
  s->steps_per_second = seconds_ > 0 ? static_cast<double>(step_) / seconds_ : 0.0;
}

absl::Status OptimizationState::AddTo(checkpoint::Checkpoint* ckpt) const {
  WFM_ASSIGN_OR_RETURN(checkpoint::NamedTensors adam, checkpoint::AdamStateTensors(*adam_, *net_));
  for (auto& entry : adam) ckpt->tensors.push_back(std::move(entry));
  ckpt->tensors.emplace_back("trainer.rng", gen_.get_state());
  ckpt->metadata["trainer"] = {
      {"step", step_},
      {"decay_steps", decay_steps_},
      {"last_loss", last_loss_},
      {"seconds", seconds_},
      {"recent_losses", std::vector<double>(recent_losses_.begin(), recent_losses_.end())}};
  return absl::OkStatus();
}

absl::Status OptimizationState::ResumeFrom(const checkpoint::Checkpoint& ckpt) {
  WFM_RETURN_IF_ERROR(GuardTorch("Resume", [&]() { return RestoreFrom(ckpt); }));
  if (step_ > config_.steps) {
    return absl::InvalidArgumentError(absl::StrCat("steps: the checkpoint is at step ", step_,
                                                   ", beyond the requested total ", config_.steps));
  }
  return absl::OkStatus();
}

absl::Status OptimizationState::InitWeightsFrom(const checkpoint::Checkpoint& ckpt) {
  return GuardTorch("InitWeightsFrom", [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(checkpoint::LoadStateTensors(*net_, ckpt.tensors));
    ResetAverage();
    return absl::OkStatus();
  });
}

absl::Status OptimizationState::RestoreFrom(const checkpoint::Checkpoint& ckpt) {
  WFM_RETURN_IF_ERROR(checkpoint::LoadStateTensors(*net_, ckpt.tensors));
  WFM_RETURN_IF_ERROR(checkpoint::LoadAdamState(*adam_, *net_, ckpt.tensors));
  const at::Tensor* rng = FindTensor(ckpt, "trainer.rng");
  if (rng == nullptr) return absl::DataLossError("checkpoint: tensor 'trainer.rng' missing");
  gen_.set_state(*rng);
  try {
    const nlohmann::json& state = ckpt.metadata.at("trainer");
    step_ = state.at("step").get<int64_t>();
    decay_steps_ = state.value("decay_steps", decay_steps_);
    last_loss_ = state.value("last_loss", 0.0);
    seconds_ = state.value("seconds", 0.0);
    recent_losses_.clear();
    for (double l : state.value("recent_losses", std::vector<double>{})) recent_losses_.push_back(l);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint: trainer state: ", e.what()));
  }
  if (step_ < 0) return absl::DataLossError("checkpoint: trainer state: negative step");
  ResetAverage();
  if (ema_.empty()) return absl::OkStatus();
  const std::vector<std::pair<std::string, at::Tensor>> params = net_->named_parameters().pairs();
  for (size_t i = 0; i < ema_.size(); ++i) {
    const at::Tensor* saved =
        FindTensor(ckpt, absl::StrCat(checkpoint::kEmaPrefix, params[i].first));
    if (saved == nullptr) continue;  // a checkpoint without an average starts it here
    if (saved->sizes() != ema_[i].sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint: moving average of '", params[i].first, "' has another shape"));
    }
    ema_[i].copy_(*saved);
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ResumableConfigJson(const checkpoint::Checkpoint& ckpt,
                                                   const char* format, int version) {
  WFM_RETURN_IF_ERROR(CheckModelFormat(ckpt.metadata, format, version));
  if (!ckpt.metadata.contains("trainer")) {
    return absl::FailedPreconditionError(
        "checkpoint: holds no trainer state (it was saved for serving only) and cannot resume");
  }
  if (!ckpt.metadata.contains("config") || !ckpt.metadata["config"].is_object()) {
    return absl::DataLossError("checkpoint metadata: no config object");
  }
  return ckpt.metadata["config"];
}

}  // namespace wfm::model
