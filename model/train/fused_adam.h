// A fused, single-pass implementation of torch::optim::Adam::step for float32
// CPU parameters.
//
// LibTorch's Adam makes about seven passes over every parameter per step
// (mul_, add_, mul_, addcmul_, sqrt, div, add_, addcdiv_) and allocates two
// temporaries; at the Gaussian network's 1.2 M parameters that is ~5 ms of a
// ~15 ms training step (measured, one thread). FusedAdamStep reads p, grad,
// exp_avg and exp_avg_sq once and writes p, exp_avg and exp_avg_sq once, with
// SIMD (AVX2 when the CPU has it, SSE2 otherwise) over LibTorch's intra-op
// pool.
//
// It keeps the optimizer's own state (torch::optim::AdamParamState: step,
// exp_avg, exp_avg_sq, created on a parameter's first update exactly as
// Adam::step creates it), so checkpoint::AdamStateTensors / LoadAdamState and
// a later plain adam.step() see the same state. The update is Adam's:
//   step += 1; bc1 = 1 − β1^step; bc2 = 1 − β2^step
//   m ← β1 m + (1 − β1) g;   v ← β2 v + (1 − β2) g²
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + ε)
// with the same float32 operations up to rounding order (results agree with
// Adam::step to a few float ulps per step, not bit for bit). Parameters
// without a gradient are skipped, as Adam::step does. Groups with amsgrad or
// a weight decay, or parameters that are not contiguous float32 CPU tensors,
// are delegated to adam.step() unchanged.
#ifndef WFM_MODEL_TRAIN_FUSED_ADAM_H_
#define WFM_MODEL_TRAIN_FUSED_ADAM_H_

#include <torch/optim/adam.h>

namespace wfm::model {

// One Adam step over every parameter of `adam` (see above). Must run outside
// autograd recording (it uses no autograd ops itself). Throws c10::Error only
// for programmer errors (e.g. a state of another optimizer type); callers
// wrap it in GuardTorch with the rest of their step.
void FusedAdamStep(torch::optim::Adam& adam);

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_FUSED_ADAM_H_
