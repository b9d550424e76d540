// Layer normalisation over the last dimension with an optional per-cloud
// shift added first — LayerNorm(x + shift) as one pass — and a hand-written
// backward (see nn_kernels.h for the formulas). Same result as
// at::layer_norm(x + shift.unsqueeze(1), {E}, weight, bias, eps).
#ifndef WFM_MODEL_NN_LAYER_NORM_H_
#define WFM_MODEL_NN_LAYER_NORM_H_

#include <ATen/core/Tensor.h>

namespace wfm::model::nn {

// x float32 [..., E] (any layout; made contiguous); weight, bias float32 [E].
// shift: undefined, or float32 [B, E] for x [B, N, E] (row b·N + n gets
// shift[b]). Returns float32 with x's shape. Differentiable in x, shift,
// weight and bias when grad mode is on.
at::Tensor AddLayerNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& weight,
                        const at::Tensor& bias, double eps);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_LAYER_NORM_H_
