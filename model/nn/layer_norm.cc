#include "model/nn/layer_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/nn/nn_kernels.h"

namespace wfm::model::nn {
namespace {

struct Rows {
  int64_t groups;     // clouds (1 without a shift)
  int64_t per_group;  // rows sharing one shift row
  int64_t cols;
};

Rows Layout(const at::Tensor& x, const at::Tensor& shift) {
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  if (!shift.defined()) return {1, rows, cols};
  return {x.size(0), x.size(1), cols};
}

void CheckInputs(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& weight,
                 const at::Tensor& bias) {
  TORCH_CHECK(x.dim() >= 1 && x.scalar_type() == at::kFloat,
              "AddLayerNorm: x must be a float32 tensor");
  const int64_t e = x.size(-1);
  TORCH_CHECK(weight.scalar_type() == at::kFloat && bias.scalar_type() == at::kFloat &&
                  weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == e && bias.size(0) == e,
              "AddLayerNorm: weight and bias must be float32 [", e, "]");
  if (shift.defined()) {
    TORCH_CHECK(x.dim() == 3 && shift.dim() == 2 && shift.size(0) == x.size(0) &&
                    shift.size(1) == e && shift.scalar_type() == at::kFloat,
                "AddLayerNorm: shift must be float32 [B, E] for x [B, N, E]");
  }
}

void Forward(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& weight,
             const at::Tensor& bias, double eps, at::Tensor& y, float* mean, float* rstd) {
  const Rows r = Layout(x, shift);
  const kernel::FloatKernels& k = kernel::BestFloatKernels();
  const float* xp = x.data_ptr<float>();
  const float* sp = shift.defined() ? shift.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  for (int64_t g = 0; g < r.groups; ++g) {
    const int64_t off = g * r.per_group;
    k.layer_norm_rows(xp + off * r.cols, sp == nullptr ? nullptr : sp + g * r.cols,
                      static_cast<int>(r.per_group), static_cast<int>(r.cols),
                      weight.data_ptr<float>(), bias.data_ptr<float>(), static_cast<float>(eps),
                      yp + off * r.cols, mean == nullptr ? nullptr : mean + off,
                      rstd == nullptr ? nullptr : rstd + off);
  }
}

class AddLayerNormFunction : public torch::autograd::Function<AddLayerNormFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const c10::optional<at::Tensor>& shift_arg, const at::Tensor& weight,
                            const at::Tensor& bias, double eps) {
    const at::Tensor shift = shift_arg.value_or(at::Tensor());
    const Rows r = Layout(x, shift);
    at::Tensor y = at::empty_like(x);
    at::Tensor stats = at::empty({2, r.groups * r.per_group}, x.options());
    Forward(x, shift, weight, bias, eps, y, stats[0].data_ptr<float>(), stats[1].data_ptr<float>());
    ctx->save_for_backward({x, weight});
    ctx->saved_data["shift"] = shift;
    ctx->saved_data["stats"] = stats;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor shift = ctx->saved_data["shift"].toTensor();
    const at::Tensor stats = ctx->saved_data["stats"].toTensor();
    const at::Tensor dy = grads[0].contiguous();
    const Rows r = Layout(x, shift);
    at::Tensor dx = at::empty_like(x);
    at::Tensor dweight = at::zeros_like(weight);
    at::Tensor dbias = at::zeros_like(weight);
    const kernel::FloatKernels& k = kernel::BestFloatKernels();
    const float* mean = stats[0].data_ptr<float>();
    const float* rstd = stats[1].data_ptr<float>();
    for (int64_t g = 0; g < r.groups; ++g) {
      const int64_t off = g * r.per_group;
      k.layer_norm_backward_rows(
          dy.data_ptr<float>() + off * r.cols, x.data_ptr<float>() + off * r.cols,
          shift.defined() ? shift.data_ptr<float>() + g * r.cols : nullptr,
          static_cast<int>(r.per_group), static_cast<int>(r.cols), weight.data_ptr<float>(),
          mean + off, rstd + off, dx.data_ptr<float>() + off * r.cols, dweight.data_ptr<float>(),
          dbias.data_ptr<float>());
    }
    // The shift is broadcast over each cloud's rows: its gradient sums them.
    const at::Tensor dshift = shift.defined() ? dx.sum(1) : at::Tensor();
    return {dx, dshift, dweight, dbias, at::Tensor()};
  }
};

}  // namespace

at::Tensor AddLayerNorm(const at::Tensor& x_in, const at::Tensor& shift_in,
                        const at::Tensor& weight, const at::Tensor& bias, double eps) {
  CheckInputs(x_in, shift_in, weight, bias);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor shift = shift_in.defined() ? shift_in.contiguous() : shift_in;
  const bool needs_graph = at::GradMode::is_enabled() &&
                           (x.requires_grad() || weight.requires_grad() || bias.requires_grad() ||
                            (shift.defined() && shift.requires_grad()));
  if (needs_graph) {
    return AddLayerNormFunction::apply(
        x, shift.defined() ? c10::optional<at::Tensor>(shift) : c10::nullopt, weight.contiguous(),
        bias.contiguous(), eps);
  }
  at::Tensor y = at::empty_like(x);
  Forward(x, shift, weight.contiguous(), bias.contiguous(), eps, y, nullptr, nullptr);
  return y;
}

}  // namespace wfm::model::nn
