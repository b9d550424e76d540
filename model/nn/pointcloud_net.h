// The point-cloud velocity network (DESIGN.md, point clouds step 6): a
// permutation-equivariant transformer over the points of each cloud, with no
// positional encoding. It reproduces the reference's flax AttentionNN
// (anchors/refwfm/pointcloud.py):
//
//   x   = Dense(d -> E)(points)                                      [B,N,E]
//   τ   = Dense(E)([cos(f t), sin(f t)]),  f_k = k · 2π/E, k < E/2     [B,E]
//   c   = Dense(E)(one_hot(label))  or  Dense(E)(condition vector)    [B,E]
//   per block:  h = LayerNorm(x + τ (+ c))
//               x = x + MultiHeadAttention(h, key mask)
//               x = x + Dense(E)(leaky_relu(dropout(Dense(mlp)(LayerNorm(x))), 0.01))
//   velocity = Dense(E -> d)(LayerNorm(x))                            [B,N,d]
//
// LayerNorm ε = 1e-6; Dense kernels truncated lecun-normal with zero biases,
// the last one at variance scale 1e-5 (the initial velocity is near 0).
// Dropout (training only) acts on the feed-forward hidden layer and on the
// attention weights (one [N,N] mask per block shared by all clouds and heads).
//
// Padding: mask [B,N] marks the real points. Padded points are excluded as
// keys, so they never change the velocity of a real point; their own rows
// are computed like any other point (finite values, to be ignored).
//
// Conditioning: none; discrete labels (int64 [B] in [0, num_classes), the
// null label -1 — used for classifier-free guidance — embeds as the zero
// one-hot vector, as jax.nn.one_hot does); or a continuous vector (float32
// [B, cond_dim], the zero vector being the null condition).
//
// Checkpoint keys (registered names; never rename without a format bump):
//   embed.{weight,bias}                      Dense(d -> E)
//   time_embed.{weight,bias}                 Dense(2·⌊E/2⌋ -> E)
//   cond_embed.{weight,bias}                 Dense(num_classes | cond_dim -> E), conditional only
//   blocks.<i>.norm1.{weight,bias}           LayerNorm(E)
//   blocks.<i>.attention.qkv.{weight,bias}   Dense(E -> 3E), see attention.h
//   blocks.<i>.attention.out.{weight,bias}   Dense(E -> E)
//   blocks.<i>.norm2.{weight,bias}           LayerNorm(E)
//   blocks.<i>.feed_forward.fc1.{weight,bias}  Dense(E -> mlp)
//   blocks.<i>.feed_forward.fc2.{weight,bias}  Dense(mlp -> E)
//   final_norm.{weight,bias}                 LayerNorm(E)
//   final.{weight,bias}                      Dense(E -> d), init scale 1e-5
// There are no buffers. Every tensor is float32 on the CPU.
//
// Speed: the attention core (attention.h) and LayerNorm(x + shift)
// (layer_norm.h) are custom autograd functions over SIMD kernels and direct
// BLAS calls; dropout masks come from a counter-based hash keyed by the
// caller's generator (nn_kernels.h), not from per-element generator draws.
// Without a graph (c10::InferenceMode / NoGradGuard) nothing is saved for a
// backward and residual sums are made in place. The attention core runs
// clouds in parallel (model/common/parallel.h), each calling the BLAS
// single-threaded; the Dense layers are single-threaded BLAS products. See
// cpu_runtime.h for the process settings that matter; sampling uses the
// packed inference path (pointcloud_inference.h).
#ifndef WFM_MODEL_NN_POINTCLOUD_NET_H_
#define WFM_MODEL_NN_POINTCLOUD_NET_H_

#include <cstdint>
#include <optional>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/nn/attention.h"
#include "model/nn/dense.h"
#include "model/nn/nn_kernels.h"

namespace wfm::model::nn {

// LayerNorm epsilon of every network here (flax's default).
inline constexpr double kLayerNormEps = 1e-6;
// Variance scale of the point-cloud network's last Dense layer.
inline constexpr double kFinalLayerInitScale = 1e-5;

enum class ConditionKind {
  kNone,        // unconditional
  kDiscrete,    // int64 labels [B] in [0, num_classes); -1 = null (zero one-hot)
  kContinuous,  // float32 vectors [B, cond_dim]; the zero vector = null
};

struct PointCloudNetConfig {
  int64_t space_dim = 3;  // d: coordinates per point
  int64_t width = 128;    // E: embedding width; a multiple of heads
  int64_t heads = 4;
  int64_t layers = 3;        // encoder blocks
  int64_t mlp_hidden = 256;  // feed-forward hidden width
  double dropout = 0.1;      // in [0, 1); training mode only
  ConditionKind condition = ConditionKind::kNone;
  int64_t num_classes = 0;  // kDiscrete: > 0 (ignored otherwise)
  int64_t cond_dim = 0;     // kContinuous: > 0 (ignored otherwise)
};

// INVALID_ARGUMENT naming the field and the rule: positive sizes, width
// at least 2 and divisible by heads ("width (130) must be divisible by
// heads (4)"),
// 0 <= dropout < 1, num_classes / cond_dim positive for their kind.
absl::Status ValidatePointCloudNetConfig(const PointCloudNetConfig& config);

// Throws c10::Error (prefixed by `who`) unless `condition` is what a network
// of `config` takes for a batch of `batch` clouds (see forward below).
void CheckConditionArgument(const PointCloudNetConfig& config, const at::Tensor& condition,
                            int64_t batch, const char* who);

// Dense(mlp) -> dropout -> leaky_relu(0.01) -> Dense(E).
// Keys: fc1.{weight,bias} [mlp,E],[mlp]; fc2.{weight,bias} [E,mlp],[E].
class FeedForwardImpl : public torch::nn::Cloneable<FeedForwardImpl> {
 public:
  FeedForwardImpl(int64_t width, int64_t hidden);
  void reset() override;
  void Initialize(at::Generator& generator);
  // x [..., E] -> [..., E]; dropout null (none) or the hidden layer's stream.
  at::Tensor forward(const at::Tensor& x, const kernel::DropoutStream* dropout = nullptr);

  Dense fc1{nullptr};
  Dense fc2{nullptr};

 private:
  int64_t width_;
  int64_t hidden_;
};
TORCH_MODULE(FeedForward);

// One pre-norm encoder block (keys norm1, attention, norm2, feed_forward).
class EncoderBlockImpl : public torch::nn::Cloneable<EncoderBlockImpl> {
 public:
  EncoderBlockImpl(int64_t width, int64_t heads, int64_t mlp_hidden);
  void reset() override;
  void Initialize(at::Generator& generator);
  // x [B,N,E]; cond [B,E] (time plus condition embedding); key_bias as
  // AttentionCore; the two dropout streams null or set together.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cond, const at::Tensor& key_bias,
                     const kernel::DropoutStream* attention_dropout = nullptr,
                     const kernel::DropoutStream* hidden_dropout = nullptr);

  torch::nn::LayerNorm norm1{nullptr};
  MultiHeadAttention attention{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  FeedForward feed_forward{nullptr};

 private:
  int64_t width_;
  int64_t heads_;
  int64_t mlp_hidden_;
};
TORCH_MODULE(EncoderBlock);

class PointCloudVelocityNetImpl : public torch::nn::Cloneable<PointCloudVelocityNetImpl> {
 public:
  // CHECK-fails (c10::Error) on an invalid config; use MakePointCloudVelocityNet
  // for a status. Parameters are drawn from `generator` (a CPU generator) in
  // registration order.
  PointCloudVelocityNetImpl(const PointCloudNetConfig& config, at::Generator& generator);

  void reset() override;

  // points    float32 [B,N,d]
  // mask      bool [B,N], true = real point; undefined = every point real
  // t         float32 [B] (time in [0,1]; 1 = noise, 0 = data)
  // condition kNone: undefined; kDiscrete: int64 [B]; kContinuous: float32
  //           [B, cond_dim]
  // generator training mode with dropout > 0 only (required there): the CPU
  //           generator the dropout masks are drawn from (two 64-bit draws per
  //           block per call); ignored in eval mode
  // Returns the velocity float32 [B,N,d]. Shape/dtype misuse throws c10::Error;
  // ValidateInputs gives INVALID_ARGUMENT statuses instead.
  at::Tensor forward(const at::Tensor& points, const at::Tensor& mask, const at::Tensor& t,
                     const at::Tensor& condition = {},
                     std::optional<at::Generator> generator = std::nullopt);

  // Checks the forward arguments (shapes, dtypes, labels in [-1, num_classes),
  // finite values); the message names the argument.
  absl::Status ValidateInputs(const at::Tensor& points, const at::Tensor& mask, const at::Tensor& t,
                              const at::Tensor& condition) const;

  // The null condition for a batch of B (kDiscrete: labels -1; kContinuous:
  // zeros [B, cond_dim]; kNone: undefined).
  at::Tensor NullCondition(int64_t batch) const;

  const PointCloudNetConfig& config() const { return config_; }
  // f_k = k · 2π/E (float32 [⌊E/2⌋]) of the time embedding.
  const at::Tensor& time_frequencies() const { return time_freqs_; }

  Dense embed{nullptr};
  Dense time_embed{nullptr};
  Dense cond_embed{nullptr};  // null when unconditional
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  Dense final{nullptr};

 private:
  void Initialize(at::Generator& generator);
  // [B, E]: the time embedding plus the condition embedding.
  at::Tensor Conditioning(const at::Tensor& t, const at::Tensor& condition);

  PointCloudNetConfig config_;
  at::Tensor time_freqs_;  // float32 [⌊E/2⌋]; not a parameter
};
TORCH_MODULE(PointCloudVelocityNet);

// Validates the config and builds a network initialised from `generator`.
absl::StatusOr<PointCloudVelocityNet> MakePointCloudVelocityNet(const PointCloudNetConfig& config,
                                                                at::Generator& generator);

// Classifier-free guided velocity v_u + γ (v_c − v_u), as the reference
// sampler's _velocity:
//   * condition undefined, or γ == 0: the velocity under `null_condition`
//     (undefined for an unconditional network);
//   * γ == 1: the conditional velocity only;
//   * otherwise the conditional and unconditional velocities in one forward
//     over the batch concatenated with itself.
// The network must be in eval mode (FAILED_PRECONDITION otherwise); call it
// under c10::InferenceMode for sampling. Inputs as forward; INVALID_ARGUMENT
// for bad inputs or a non-finite γ.
absl::StatusOr<at::Tensor> GuidedVelocity(PointCloudVelocityNet& net, const at::Tensor& points,
                                          const at::Tensor& mask, const at::Tensor& t,
                                          const at::Tensor& condition,
                                          const at::Tensor& null_condition, double gamma);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_POINTCLOUD_NET_H_
