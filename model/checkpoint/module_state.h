// A torch::nn::Module's parameters and buffers as checkpoint tensors, and back.
//
// Names are the module's recursive registered names ("blocks.0.attn.qkv.weight"),
// each behind a prefix that says which part of the checkpoint holds them. The
// default layout of a wfm checkpoint:
//   "model.<name>"       the model's parameters and buffers   (kModelPrefix)
//   "optimizer.<...>"    the Adam state, see adam_state.h      (kOptimizerPrefix)
//   "ema.<name>"         the moving average of the parameters (and the
//                        buffers), when training kept one    (kEmaPrefix)
// so one checkpoint can hold several modules and optimizer state without
// name clashes; each loader looks only at the names under its prefix.
#ifndef WFM_MODEL_CHECKPOINT_MODULE_STATE_H_
#define WFM_MODEL_CHECKPOINT_MODULE_STATE_H_

#include <cstdint>

#include <torch/nn/module.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/checkpoint/checkpoint.h"

namespace wfm::model::checkpoint {

inline constexpr absl::string_view kModelPrefix = "model.";
inline constexpr absl::string_view kOptimizerPrefix = "optimizer.";
inline constexpr absl::string_view kEmaPrefix = "ema.";

// The prefix of the weights a model samples with: kEmaPrefix when `tensors`
// hold a moving average, kModelPrefix otherwise (checkpoints before moving
// averages existed, or trained without one).
absl::string_view SamplingPrefix(const NamedTensors& tensors);

// Snapshot of every defined parameter, then every defined buffer, of `module`
// and its submodules, in registration order, named prefix + registered name.
// The tensors are detached CPU copies (later training does not change them).
// INVALID_ARGUMENT when a parameter and a buffer share a name.
absl::StatusOr<NamedTensors> StateTensors(const torch::nn::Module& module,
                                          absl::string_view prefix = kModelPrefix);

// Copies into `module` (under torch::NoGradGuard, onto the module's own device)
// the tensors of `tensors` whose names start with `prefix`, matched by name
// after the prefix; other names are ignored. Every defined parameter and
// buffer must be present with the same shape and dtype, and no name under the
// prefix may be left over; otherwise INVALID_ARGUMENT, and the module is left
// unchanged:
//   "parameter 'blocks.0.ff.fc1.weight': shape [256, 128] in the checkpoint,
//    [512, 128] in the model"
//   "parameter 'head.bias': missing from the checkpoint"
//   "unexpected tensor 'model.extra.weight' in the checkpoint (the model has no
//    parameter or buffer 'extra.weight')"
absl::Status LoadStateTensors(torch::nn::Module& module, const NamedTensors& tensors,
                              absl::string_view prefix = kModelPrefix);

// Bytes held by every defined parameter and buffer of `module` and its
// submodules.
int64_t StateBytes(const torch::nn::Module& module);

}  // namespace wfm::model::checkpoint

#endif  // WFM_MODEL_CHECKPOINT_MODULE_STATE_H_
