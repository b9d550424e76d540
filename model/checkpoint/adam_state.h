// The state of a torch::optim::Adam (LibTorch 1.13) as checkpoint tensors, and
// back, so that a resumed run makes bit-identical updates.
//
// LibTorch keys Adam's per-parameter state by the parameter's TensorImpl
// address, which means nothing in another process; here it is keyed by the
// parameter's registered name in `module` (the module whose parameters the
// optimizer updates). Tensors, behind `prefix` (default "optimizer."):
//   group.<g>.lr             float64 []   learning rate of param group g
//   group.<g>.betas          float64 [2]  (beta1, beta2)
//   group.<g>.eps            float64 []
//   group.<g>.weight_decay   float64 []
//   group.<g>.amsgrad        bool    []
//   group.<g>.num_params     int64   []   parameters in the group
//   state.<name>.step            int64 []          Adam steps taken for that parameter
//   state.<name>.exp_avg         parameter's dtype and shape
//   state.<name>.exp_avg_sq      parameter's dtype and shape
//   state.<name>.max_exp_avg_sq  parameter's dtype and shape (only when it exists, amsgrad)
// A parameter without state (never updated) has no state.* tensors.
// All tensors are CPU copies.
#ifndef WFM_MODEL_CHECKPOINT_ADAM_STATE_H_
#define WFM_MODEL_CHECKPOINT_ADAM_STATE_H_

#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/checkpoint/checkpoint.h"
#include "model/checkpoint/module_state.h"

namespace wfm::model::checkpoint {

// The options of every param group and the state of every parameter of
// `adam`. FAILED_PRECONDITION when the optimizer holds a tensor that is not a
// parameter of `module`.
absl::StatusOr<NamedTensors> AdamStateTensors(const torch::optim::Adam& adam,
                                              const torch::nn::Module& module,
                                              absl::string_view prefix = kOptimizerPrefix);

// Restores into `adam` (built over `module`'s parameters, with the same param
// groups as the saved optimizer) the tensors of `tensors` whose names start
// with `prefix`: every group's options (lr, betas, eps, weight_decay, amsgrad —
// set a different learning rate afterwards if that is wanted) and the
// per-parameter state, which replaces any state `adam` had. State tensors are
// copied onto each parameter's device. INVALID_ARGUMENT (and `adam` unchanged)
// when a group's options are missing, a group's parameter count differs, a
// parameter's state is incomplete or has another shape or dtype than the
// parameter, or a name under the prefix is not used:
//   "optimizer state of parameter '0.weight': exp_avg has shape [4, 3] in the
//    checkpoint, [8, 3] in the model"
absl::Status LoadAdamState(torch::optim::Adam& adam, const torch::nn::Module& module,
                           const NamedTensors& tensors,
                           absl::string_view prefix = kOptimizerPrefix);

}  // namespace wfm::model::checkpoint

#endif  // WFM_MODEL_CHECKPOINT_ADAM_STATE_H_
