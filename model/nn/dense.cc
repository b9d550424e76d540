#include "model/nn/dense.h"

#include <cmath>

#include <vector>

#include <ATen/ATen.h>

namespace wfm::model::nn {

void VarianceScalingTruncatedNormal(at::Tensor& weight, double scale, int64_t fan_in,
                                    at::Generator& generator) {
  TORCH_CHECK(fan_in > 0, "VarianceScalingTruncatedNormal: fan_in must be positive");
  TORCH_CHECK(scale > 0, "VarianceScalingTruncatedNormal: scale must be positive");
  const double std = std::sqrt(scale / static_cast<double>(fan_in)) / kTruncatedNormalStd;
  // Inverse-CDF sampling of N(0, 1) truncated to [-2, 2]: u uniform on
  // [2Φ(-2) - 1, 2Φ(2) - 1], z = √2 erfinv(u). Computed in float64.
  const double lo = std::erf(-2.0 / std::sqrt(2.0));  // 2Φ(-2) - 1
  const double hi = -lo;
  at::Tensor z = at::empty(weight.sizes(), weight.options().dtype(at::kDouble));
  z.uniform_(lo, hi, generator);  // takes the generator's lock itself
  z.erfinv_().mul_(std::sqrt(2.0) * std).clamp_(-2.0 * std, 2.0 * std);
  at::NoGradGuard no_grad;
  weight.copy_(z);
}

DenseImpl::DenseImpl(int64_t in_features, int64_t out_features, double init_scale)
    : in_features_(in_features), out_features_(out_features), init_scale_(init_scale) {
  TORCH_CHECK(in_features > 0 && out_features > 0, "Dense: sizes must be positive, got ",
              in_features, " -> ", out_features);
  reset();
}

void DenseImpl::reset() {
  weight = register_parameter("weight", at::zeros({out_features_, in_features_}));
  bias = register_parameter("bias", at::zeros({out_features_}));
}

void DenseImpl::Initialize(at::Generator& generator) {
  VarianceScalingTruncatedNormal(weight, init_scale_, in_features_, generator);
  at::NoGradGuard no_grad;
  bias.zero_();
}

at::Tensor DenseImpl::forward(const at::Tensor& x) {
  if (at::GradMode::is_enabled() || x.numel() == 0) return at::linear(x, weight, bias);
  // Inference: fixed blocks of kInferenceRows rows (the last one zero-padded).
  // The BLAS picks its kernels by the row count, so one row's result could
  // otherwise change with the batch it is computed in; with every product
  // kInferenceRows rows tall, a row's result depends on that row alone.
  const at::Tensor rows = x.reshape({-1, in_features_}).contiguous();
  const int64_t m = rows.size(0);
  at::Tensor out = at::empty({m, out_features_}, rows.options());
  const at::Tensor wt = weight.t();
  int64_t start = 0;
  for (; start + kInferenceRows <= m; start += kInferenceRows) {
    at::Tensor block_out = out.narrow(0, start, kInferenceRows);
    at::addmm_out(block_out, bias, rows.narrow(0, start, kInferenceRows), wt);
  }
  if (start < m) {
    const int64_t tail = m - start;
    at::Tensor padded = at::zeros({kInferenceRows, in_features_}, rows.options());
    padded.narrow(0, 0, tail).copy_(rows.narrow(0, start, tail));
    out.narrow(0, start, tail).copy_(at::addmm(bias, padded, wt).narrow(0, 0, tail));
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_features_;
  return out.view(shape);
}

}  // namespace wfm::model::nn
