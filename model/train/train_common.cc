#include "model/train/train_common.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"

namespace wfm::model {

std::unique_ptr<torch::optim::Adam> MakeAdam(const std::vector<at::Tensor>& params,
                                             const OptimizerConfig& config) {
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(config.learning_rate).betas({0.9, 0.999}).eps(1e-8));
}

double ScheduledLearningRate(const OptimizerConfig& config, int64_t step, double progress) {
  constexpr double kPi = 3.14159265358979323846;
  double lr = config.learning_rate;
  if (config.lr_schedule == "cosine") {
    lr *= 0.5 * (1.0 + std::cos(kPi * std::clamp(progress, 0.0, 1.0)));
  } else if (config.decay_steps > 0) {
    lr *= std::pow(config.decay_rate,
                   static_cast<double>(step) / static_cast<double>(config.decay_steps));
  }
  if (step < config.warmup_steps) {
    lr *= static_cast<double>(step + 1) / static_cast<double>(config.warmup_steps);
  }
  return lr;
}

void SetLearningRate(torch::optim::Adam& adam, double lr) {
  for (auto& group : adam.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }
}

at::Tensor SampleFlowTimes(const std::string& distribution, int64_t n, at::Generator& gen) {
  if (distribution == "logit_normal") return at::sigmoid(at::randn({n}, gen, at::kFloat));
  return at::rand({n}, gen, at::kFloat);
}

absl::Status ValidateDistributedRole(const DistributedRole& role, int64_t batch_size) {
  if (role.world_size < 1 || role.rank < 0 || role.rank >= role.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank: must be in [0, world_size = ",
                                                   role.world_size, "), got ", role.rank));
  }
  if (batch_size % role.world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size: ", batch_size,
                                                   " must split evenly over ", role.world_size,
                                                   " processes"));
  }
  return absl::OkStatus();
}

absl::Status RunTrainingLoop(const TrainHooks& hooks, int64_t total_steps, int64_t checkpoint_every,
                             double time_budget_seconds,
                             const std::function<int64_t()>& current_step,
                             const std::function<absl::StatusOr<double>()>& step, double* seconds) {
  const auto start = TrainClock::now();
  const int64_t first = current_step();
  const double prior = *seconds;  // training time before this loop (resumed runs)
  double outside = 0.0;           // time in this loop outside step()
  while (current_step() < total_steps) {
    if (hooks.cancel != nullptr && hooks.cancel->load()) {
      return absl::CancelledError(absl::StrCat("training cancelled at step ", current_step()));
    }
    if (time_budget_seconds > 0 && current_step() > 0) {
      bool stop = *seconds + outside >= time_budget_seconds;
      if (hooks.agree_to_stop) {
        WFM_ASSIGN_OR_RETURN(stop, hooks.agree_to_stop(stop));
      }
      if (stop) break;
    }
    const auto t0 = TrainClock::now();
    WFM_ASSIGN_OR_RETURN(const double loss, step());
    *seconds += SecondsSince(t0);
    const int64_t done = current_step();
    if (hooks.on_progress) {
      TrainProgress p;
      p.step = done;
      p.total_steps = total_steps;
      p.loss = loss;
      p.elapsed_seconds = SecondsSince(start);
      p.steps_per_second = p.elapsed_seconds > 0 ? (done - first) / p.elapsed_seconds : 0.0;
      p.eta_seconds = p.steps_per_second > 0 ? (total_steps - done) / p.steps_per_second : 0.0;
      if (time_budget_seconds > 0) {
        p.eta_seconds = std::min(p.eta_seconds, std::max(0.0, time_budget_seconds - *seconds));
      }
      hooks.on_progress(p);
    }
    if (checkpoint_every > 0 && done % checkpoint_every == 0 && done < total_steps &&
        hooks.on_checkpoint) {
      WFM_RETURN_IF_ERROR(hooks.on_checkpoint(done));
    }
    outside = SecondsSince(start) - (*seconds - prior);
  }
  return absl::OkStatus();
}

nlohmann::json ModelMetadata(const char* format, int version, Family family, int64_t dim,
                             nlohmann::json config, const LabelSpace& labels,
                             const TrainingSummary& summary, const std::string& dataset) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  return {{"format", format},
          {"version", version},
          {"family", FamilyName(family)},
          {"dim", dim},
          {"config", std::move(config)},
          {"labels", labels.ToJson()},
          {"summary", summary.ToJson()},
          {"dataset", dataset},
          {"created_unix_ms", now_ms}};
}

}  // namespace wfm::model
