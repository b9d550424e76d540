// What a training run reports and accepts while it runs; shared by the
// trainers of both families.
#ifndef WFM_MODEL_TRAIN_TRAIN_HOOKS_H_
#define WFM_MODEL_TRAIN_TRAIN_HOOKS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wfm::model {

struct TrainProgress {
  int64_t step = 0;         // steps done
  int64_t total_steps = 0;
  double loss = 0.0;        // loss of the last step
  double steps_per_second = 0.0;  // over this run so far
  double eta_seconds = 0.0;
  double elapsed_seconds = 0.0;
};

struct TrainHooks {
  // Called after every step (callers throttle what they forward).
  std::function<void(const TrainProgress&)> on_progress;
  // Checked before every step: when true the run stops with CANCELLED.
  const std::atomic<bool>* cancel = nullptr;
  // Called after every config.checkpoint_every-th step (not after the last;
  // the caller saves the final model). An error stops the run.
  std::function<absl::Status(int64_t step)> on_checkpoint;
  // Data-parallel training: called after the backward pass with the gradient
  // of every parameter, in registration order; must replace each by its mean
  // over the ranks. An error stops the run.
  std::function<absl::Status(std::vector<at::Tensor>& grads)> reduce_gradients;
  // Data-parallel training with a time budget: given whether this rank's
  // budget has run out, returns whether the run stops now, the same answer
  // on every rank (so all ranks train the same steps). Unset: each process
  // decides alone.
  std::function<absl::StatusOr<bool>(bool budget_spent)> agree_to_stop;
};

// This process's part in a data-parallel run: the global batch of
// config.optimizer.batch_size clouds is split in world_size equal shares and
// rank r trains on share r. Every rank draws the whole global batch's
// randomness from the same seed and keeps its share, so with minibatch OT off
// and a deterministic Monge map the run equals one process on the global
// batch (up to float rounding of the gradient mean).
struct DistributedRole {
  int64_t rank = 0;
  int64_t world_size = 1;
};

// Seconds spent per phase of the training steps since the last reset.
struct PhaseTimes {
  int64_t steps = 0;
  double noise = 0.0;      // batch assembly and source clouds
  double pairing = 0.0;    // minibatch OT
  double transport = 0.0;  // per-pair OT and Monge map
  double network = 0.0;    // forward, backward, (reduce,) Adam
};

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_TRAIN_HOOKS_H_
