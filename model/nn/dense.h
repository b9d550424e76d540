// flax.linen.Dense for LibTorch: y = x Wᵀ + b with flax's initialisers, drawn
// from an explicit generator.
//
// Parameters (checkpoint keys, relative to the module):
//   "weight"  float32 [out_features, in_features]  (PyTorch layout: W, not flax's Wᵀ)
//   "bias"    float32 [out_features]
//
// Initialisation (Initialize): the weight from flax's
// variance_scaling(init_scale, "fan_in", "truncated_normal") — a normal
// truncated to ±2 standard deviations, with standard deviation
// sqrt(init_scale / in_features) / 0.87962566103423978 so that the truncated
// distribution has variance init_scale / in_features (init_scale 1 is flax's
// default lecun_normal); the bias is zero. reset() only allocates (zeros), so
// clone() can rebuild the module and copy the values in.
#ifndef WFM_MODEL_NN_DENSE_H_
#define WFM_MODEL_NN_DENSE_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

namespace wfm::model::nn {

// The standard deviation of a standard normal truncated to [-2, 2].
inline constexpr double kTruncatedNormalStd = 0.87962566103423978;

// Fills `weight` (any float tensor) in place from
// variance_scaling(scale, "fan_in", "truncated_normal") with the given fan-in,
// drawing from `generator` (a CPU generator).
void VarianceScalingTruncatedNormal(at::Tensor& weight, double scale, int64_t fan_in,
                                    at::Generator& generator);

class DenseImpl : public torch::nn::Cloneable<DenseImpl> {
 public:
  DenseImpl(int64_t in_features, int64_t out_features, double init_scale = 1.0);

  void reset() override;
  // Draws the weight (see above) and zeroes the bias.
  void Initialize(at::Generator& generator);

  // x [..., in_features] -> [..., out_features]. Without autograd (grad
  // mode off, e.g. under c10::InferenceMode) the rows are multiplied in fixed
  // blocks of kInferenceRows, so each row's result is bitwise the same
  // whatever batch it belongs to (sampling requests merged by the server give
  // the results of lone requests).
  at::Tensor forward(const at::Tensor& x);

  static constexpr int64_t kInferenceRows = 64;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  double init_scale() const { return init_scale_; }

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t in_features_;
  int64_t out_features_;
  double init_scale_;
};
TORCH_MODULE(Dense);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_DENSE_H_
