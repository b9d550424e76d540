// The Gaussian velocity network (DESIGN.md, Gaussians step 4): an MLP that
// maps a Gaussian N(m, S) on the Bures–Wasserstein path at time t to the
// velocity of its mean and covariance. It reproduces the reference's flax
// BuresWassersteinNN (anchors/refwfm/bures.py):
//
//   tower(m, tril(S), t [, condition]):
//     x = concat[Dense(E)(m), Dense(E)(tril), Dense(E)([cos(f t), sin(f t)])
//                [, Dense(E)(one_hot(label)) or Dense(E)(condition vector)]]
//                                                       width W = 3E or 4E
//         with f_k = k (integer frequencies k < E/2, no 2π/E factor)
//     layers × { x = LayerNorm(Dense(W)(swish(Dense(mlp)(x))) + x) }
//   separate: mean = Dense(d)(tower_m(...)), cov = Dense(d(d+1)/2)(tower_c(...)),
//             both heads initialised at variance scale 1e-3;
//   joint:    h = swish(Dense(mlp)(tower(...))), mean = Dense(d)(h),
//             cov = Dense(d(d+1)/2)(h), lecun-normal heads.
//
// Dense kernels truncated lecun-normal, zero biases; LayerNorm ε 1e-6. The
// covariance travels as its lower triangle, row by row:
// [S00, S10, S11, S20, S21, S22, ...] (d(d+1)/2 entries).
//
// Conditioning: none; discrete labels (int64 [B] in [0, num_labels); -1, the
// null label, embeds as the zero one-hot); or continuous condition vectors
// (float32 [B, condition_dim], as the point-cloud network's; the zero vector
// is the null condition).
//
// Checkpoint keys (never rename without a format bump), <tower> being
// mean_tower and cov_tower (separate) or tower (joint):
//   <tower>.mean_embed.{weight,bias}         Dense(d -> E)
//   <tower>.cov_embed.{weight,bias}          Dense(d(d+1)/2 -> E)
//   <tower>.time_embed.{weight,bias}         Dense(2·⌊E/2⌋ -> E)
//   <tower>.label_embed.{weight,bias}        Dense(num_labels -> E), labelled only
//   <tower>.condition_embed.{weight,bias}    Dense(condition_dim -> E), continuous only
//   <tower>.blocks.<i>.fc1.{weight,bias}     Dense(W -> mlp)
//   <tower>.blocks.<i>.fc2.{weight,bias}     Dense(mlp -> W)
//   <tower>.blocks.<i>.norm.{weight,bias}    LayerNorm(W)
//   mix.{weight,bias}                        Dense(W -> mlp), joint only
//   mean_head.{weight,bias}                  Dense(W or mlp -> d)
//   cov_head.{weight,bias}                   Dense(W or mlp -> d(d+1)/2)
// No buffers; float32 on the CPU.
#ifndef WFM_MODEL_NN_GAUSSIAN_NET_H_
#define WFM_MODEL_NN_GAUSSIAN_NET_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/nn/dense.h"

namespace wfm::model::nn {

// Variance scale of the separate architecture's two heads.
inline constexpr double kGaussianHeadInitScale = 1e-3;

enum class GaussianArchitecture { kSeparate, kJoint };

struct GaussianNetConfig {
  int64_t space_dim = 2;     // d
  int64_t width = 128;       // E, per embedding; the tower is 3E (4E conditional) wide
  int64_t layers = 3;        // residual blocks per tower
  int64_t mlp_hidden = 256;  // hidden width of every block (and of the joint mix)
  GaussianArchitecture architecture = GaussianArchitecture::kSeparate;
  int64_t num_labels = 0;     // > 0: discrete labels
  int64_t condition_dim = 0;  // > 0: continuous condition vectors (not with labels)

  bool conditional() const { return num_labels > 0 || condition_dim > 0; }
};

// INVALID_ARGUMENT naming the field: positive sizes, width >= 2,
// num_labels >= 0, condition_dim >= 0, not both positive.
absl::Status ValidateGaussianNetConfig(const GaussianNetConfig& config);

// d(d+1)/2.
inline int64_t TriangleSize(int64_t d) { return d * (d + 1) / 2; }

// x -> LayerNorm(Dense(W)(swish(Dense(mlp)(x))) + x). Keys fc1, fc2, norm.
class ResidualBlockImpl : public torch::nn::Cloneable<ResidualBlockImpl> {
 public:
  ResidualBlockImpl(int64_t width, int64_t hidden);
  void reset() override;
  void Initialize(at::Generator& generator);
  at::Tensor forward(const at::Tensor& x);  // [B, W] -> [B, W]

  Dense fc1{nullptr};
  Dense fc2{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  int64_t width_;
  int64_t hidden_;
};
TORCH_MODULE(ResidualBlock);

// The input tower (the reference's InputMeanCovarianceNN), on precomputed
// time and condition features (GaussianTimeFeatures,
// GaussianConditionFeatures) so that the two towers of the separate
// architecture share them.
class GaussianTowerImpl : public torch::nn::Cloneable<GaussianTowerImpl> {
 public:
  explicit GaussianTowerImpl(const GaussianNetConfig& config);
  void reset() override;
  void Initialize(at::Generator& generator);
  // mean [B,d], cov_tril [B,d(d+1)/2], time_features [B, 2·⌊E/2⌋],
  // condition_features [B, num_labels | condition_dim] (conditional configs)
  // or undefined -> [B, output_width()].
  at::Tensor forward(const at::Tensor& mean, const at::Tensor& cov_tril,
                     const at::Tensor& time_features, const at::Tensor& condition_features);
  // The same on panel-layout inputs (see nn_kernels.h PanelDense; float32
  // [P, F, panel] each), with the SIMD kernels and no autograd: the inference
  // path. Returns [P, output_width(), panel].
  at::Tensor ForwardPanels(const at::Tensor& mean, const at::Tensor& cov_tril,
                           const at::Tensor& time_features, const at::Tensor& condition_features);
  int64_t output_width() const;

  Dense mean_embed{nullptr};
  Dense cov_embed{nullptr};
  Dense time_embed{nullptr};
  Dense label_embed{nullptr};      // null unless labelled
  Dense condition_embed{nullptr};  // null unless continuous
  torch::nn::ModuleList blocks{nullptr};

 private:
  GaussianNetConfig config_;
};
TORCH_MODULE(GaussianTower);

// [cos(k t), sin(k t)] for k = 0 .. ⌊width/2⌋ - 1 (integer frequencies, no
// 2π/E factor, unlike the point-cloud network): t [B] -> [B, 2·⌊width/2⌋].
at::Tensor GaussianTimeFeatures(const at::Tensor& t, int64_t width);
// one_hot(labels, num_labels) as float32, the null label -1 giving zeros.
at::Tensor GaussianLabelFeatures(const at::Tensor& labels, int64_t num_labels);
// What the tower's condition embedding sees: the one-hot labels (labelled
// configs), the condition vectors themselves (continuous), undefined
// (unconditional).
at::Tensor GaussianConditionFeatures(const GaussianNetConfig& config, const at::Tensor& condition);
// The null condition of `batch` items, what classifier-free guidance
// trains and samples the unconditional velocity with: labels -1 (labelled
// configs), zero vectors (continuous), undefined (unconditional).
at::Tensor GaussianNullCondition(const GaussianNetConfig& config, int64_t batch);

// The two outputs: mean velocity [B,d], covariance velocity lower triangle
// [B, d(d+1)/2] (same encoding as the input).
struct GaussianVelocity {
  at::Tensor mean;
  at::Tensor cov_tril;
};

class GaussianVelocityNetImpl : public torch::nn::Cloneable<GaussianVelocityNetImpl> {
 public:
  // CHECK-fails (c10::Error) on an invalid config; MakeGaussianVelocityNet
  // gives a status. Parameters are drawn from `generator` (CPU) in
  // registration order.
  GaussianVelocityNetImpl(const GaussianNetConfig& config, at::Generator& generator);

  void reset() override;

  // mean float32 [B,d]; cov_tril float32 [B,d(d+1)/2]; t float32 [B];
  // condition: int64 labels [B] when num_labels > 0 (-1 = null), float32
  // [B, condition_dim] when condition_dim > 0 (zeros = null), undefined
  // otherwise.
  // Misuse throws c10::Error; ValidateInputs returns statuses instead.
  // With grad mode off (c10::InferenceMode, NoGradGuard) it runs the
  // inference path: batch-in-lanes SIMD kernels (nn_kernels.h PanelDense),
  // about twice as fast as ATen's GEMMs at sampling batch sizes; the results
  // agree with the autograd path to float rounding.
  GaussianVelocity forward(const at::Tensor& mean, const at::Tensor& cov_tril, const at::Tensor& t,
                           const at::Tensor& condition = {});

  absl::Status ValidateInputs(const at::Tensor& mean, const at::Tensor& cov_tril,
                              const at::Tensor& t, const at::Tensor& condition) const;

  const GaussianNetConfig& config() const { return config_; }

  // Separate architecture.
  GaussianTower mean_tower{nullptr};
  GaussianTower cov_tower{nullptr};
  // Joint architecture.
  GaussianTower tower{nullptr};
  Dense mix{nullptr};
  // Both.
  Dense mean_head{nullptr};
  Dense cov_head{nullptr};

 private:
  void Initialize(at::Generator& generator);
  // The inference path of forward on [B, F] features.
  GaussianVelocity ForwardPanels(const at::Tensor& mean, const at::Tensor& cov_tril,
                                 const at::Tensor& time_features,
                                 const at::Tensor& condition_features);

  GaussianNetConfig config_;
};
TORCH_MODULE(GaussianVelocityNet);

// Validates the config and builds a network initialised from `generator`.
absl::StatusOr<GaussianVelocityNet> MakeGaussianVelocityNet(const GaussianNetConfig& config,
                                                            at::Generator& generator);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_GAUSSIAN_NET_H_
