#include "model/nn/pointcloud_net.h"

#include <cmath>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/nn/layer_norm.h"
#include "model/nn/net_common.h"

namespace wfm::model::nn {
namespace {

constexpr double kPi = 3.14159265358979323846;

// y = leaky_relu(dropout(f)) with the counter-based mask of `stream`; the
// backward unmasks with the same stream and takes the leaky slope from the
// saved output.
class DropoutLeakyReluFunction : public torch::autograd::Function<DropoutLeakyReluFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& f,
                            int64_t seed_lo, int64_t seed_hi, int64_t threshold, double scale) {
    const kernel::DropoutStream stream = Stream(seed_lo, seed_hi, threshold, scale);
    const at::Tensor fc = f.contiguous();
    at::Tensor y = at::empty_like(fc);
    kernel::BestFloatKernels().dropout_leaky_relu(fc.data_ptr<float>(), y.data_ptr<float>(),
                                                  fc.numel(), 0, stream);
    ctx->save_for_backward({y});
    ctx->saved_data["seed_lo"] = seed_lo;
    ctx->saved_data["seed_hi"] = seed_hi;
    ctx->saved_data["threshold"] = threshold;
    ctx->saved_data["scale"] = scale;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor y = ctx->get_saved_variables()[0];
    const kernel::DropoutStream stream =
        Stream(ctx->saved_data["seed_lo"].toInt(), ctx->saved_data["seed_hi"].toInt(),
               ctx->saved_data["threshold"].toInt(), ctx->saved_data["scale"].toDouble());
    const at::Tensor dy = grads[0].contiguous();
    at::Tensor df = at::empty_like(y);
    kernel::BestFloatKernels().dropout_leaky_relu_backward(
        dy.data_ptr<float>(), y.data_ptr<float>(), df.data_ptr<float>(), y.numel(), 0, stream);
    return {df, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

 private:
  static kernel::DropoutStream Stream(int64_t lo, int64_t hi, int64_t threshold, double scale) {
    kernel::DropoutStream s;
    s.seed_lo = static_cast<std::uint32_t>(lo);
    s.seed_hi = static_cast<std::uint32_t>(hi);
    s.threshold = static_cast<std::uint32_t>(threshold);
    s.scale = static_cast<float>(scale);
    return s;
  }
};

at::Tensor DropoutLeakyRelu(const at::Tensor& f, const kernel::DropoutStream& s) {
  TORCH_CHECK(f.scalar_type() == at::kFloat, "FeedForward: float32 activations expected");
  if (at::GradMode::is_enabled() && f.requires_grad()) {
    return DropoutLeakyReluFunction::apply(
        f, static_cast<int64_t>(s.seed_lo), static_cast<int64_t>(s.seed_hi),
        static_cast<int64_t>(s.threshold), static_cast<double>(s.scale));
  }
  // No graph: overwrite the (private) hidden activations in place.
  at::Tensor y = f.contiguous();
  kernel::BestFloatKernels().dropout_leaky_relu(y.data_ptr<float>(), y.data_ptr<float>(), y.numel(),
                                                0, s);
  return y;
}

// One-hot over num_classes; labels outside [0, num_classes) (the null label
// -1) give the zero vector, as jax.nn.one_hot.
at::Tensor OneHot(const at::Tensor& labels, int64_t num_classes) {
  return labels.unsqueeze(-1)
      .eq(at::arange(num_classes, labels.options().dtype(at::kLong)))
      .to(at::kFloat);
}

}  // namespace

absl::Status ValidatePointCloudNetConfig(const PointCloudNetConfig& c) {
  WFM_RETURN_IF_ERROR(ValidateNetSizes({{"space_dim", c.space_dim},
                                        {"width", c.width},
                                        {"heads", c.heads},
                                        {"layers", c.layers},
                                        {"mlp_hidden", c.mlp_hidden}},
                                       c.width));
  if (c.width % c.heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("width (", c.width, ") must be divisible by heads (", c.heads, ")"));
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("dropout (", c.dropout, ") must be in [0, 1)"));
  }
  if (c.condition == ConditionKind::kDiscrete && c.num_classes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_classes (", c.num_classes,
                                                   ") must be positive for discrete conditioning"));
  }
  if (c.condition == ConditionKind::kContinuous && c.cond_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cond_dim (", c.cond_dim, ") must be positive for continuous conditioning"));
  }
  return absl::OkStatus();
}

void CheckConditionArgument(const PointCloudNetConfig& config, const at::Tensor& condition,
                            int64_t batch, const char* who) {
  switch (config.condition) {
    case ConditionKind::kNone:
      TORCH_CHECK(!condition.defined(), who, ": an unconditional network takes no condition");
      break;
    case ConditionKind::kDiscrete:
      TORCH_CHECK(condition.defined() && condition.dim() == 1 && condition.size(0) == batch &&
                      condition.scalar_type() == at::kLong,
                  who, ": labels must be int64 [B]");
      break;
    case ConditionKind::kContinuous:
      TORCH_CHECK(condition.defined() && condition.dim() == 2 && condition.size(0) == batch &&
                      condition.size(1) == config.cond_dim &&
                      condition.scalar_type() == at::kFloat,
                  who, ": condition must be float32 [B,", config.cond_dim, "]");
      break;
  }
}

// ---------------------------------------------------------------- FeedForward

FeedForwardImpl::FeedForwardImpl(int64_t width, int64_t hidden) : width_(width), hidden_(hidden) {
  reset();
}

void FeedForwardImpl::reset() {
  fc1 = register_module("fc1", Dense(width_, hidden_));
  fc2 = register_module("fc2", Dense(hidden_, width_));
}

void FeedForwardImpl::Initialize(at::Generator& generator) {
  fc1->Initialize(generator);
  fc2->Initialize(generator);
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x, const kernel::DropoutStream* dropout) {
  at::Tensor h = fc1(x);
  if (dropout != nullptr) {
    h = DropoutLeakyRelu(h, *dropout);
  } else if (at::GradMode::is_enabled() && h.requires_grad()) {
    h = at::leaky_relu(h, kernel::kLeakySlope);
  } else {
    at::leaky_relu_(h, kernel::kLeakySlope);
  }
  return fc2(h);
}

// --------------------------------------------------------------- EncoderBlock

EncoderBlockImpl::EncoderBlockImpl(int64_t width, int64_t heads, int64_t mlp_hidden)
    : width_(width), heads_(heads), mlp_hidden_(mlp_hidden) {
  reset();
}

void EncoderBlockImpl::reset() {
  norm1 = register_module("norm1", MakeLayerNorm(width_));
  attention = register_module("attention", MultiHeadAttention(width_, heads_));
  norm2 = register_module("norm2", MakeLayerNorm(width_));
  feed_forward = register_module("feed_forward", FeedForward(width_, mlp_hidden_));
}

void EncoderBlockImpl::Initialize(at::Generator& generator) {
  attention->Initialize(generator);
  feed_forward->Initialize(generator);
}

at::Tensor EncoderBlockImpl::forward(const at::Tensor& x, const at::Tensor& cond,
                                     const at::Tensor& key_bias,
                                     const kernel::DropoutStream* attention_dropout,
                                     const kernel::DropoutStream* hidden_dropout) {
  // The residual stream skips the conditioning, as in the reference.
  const at::Tensor h = AddLayerNorm(x, cond, norm1->weight, norm1->bias, kLayerNormEps);
  if (at::GradMode::is_enabled()) {
    const at::Tensor y = x + attention(h, key_bias, attention_dropout);
    return y + feed_forward(AddLayerNorm(y, {}, norm2->weight, norm2->bias, kLayerNormEps),
                            hidden_dropout);
  }
  // Without a graph the residual sums go into the fresh branch outputs.
  at::Tensor y = attention(h, key_bias, attention_dropout).add_(x);
  return feed_forward(AddLayerNorm(y, {}, norm2->weight, norm2->bias, kLayerNormEps),
                      hidden_dropout)
      .add_(y);
}

// ------------------------------------------------------ PointCloudVelocityNet

PointCloudVelocityNetImpl::PointCloudVelocityNetImpl(const PointCloudNetConfig& config,
                                                     at::Generator& generator)
    : config_(config) {
  const absl::Status status = ValidatePointCloudNetConfig(config);
  TORCH_CHECK(status.ok(), "PointCloudVelocityNet: ", std::string(status.message()));
  reset();
  Initialize(generator);
}

void PointCloudVelocityNetImpl::reset() {
  const int64_t e = config_.width;
  const int64_t half = e / 2;
  embed = register_module("embed", Dense(config_.space_dim, e));
  time_embed = register_module("time_embed", Dense(2 * half, e));
  if (config_.condition == ConditionKind::kDiscrete) {
    cond_embed = register_module("cond_embed", Dense(config_.num_classes, e));
  } else if (config_.condition == ConditionKind::kContinuous) {
    cond_embed = register_module("cond_embed", Dense(config_.cond_dim, e));
  } else {
    cond_embed = nullptr;
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.layers; ++i) {
    blocks->push_back(EncoderBlock(e, config_.heads, config_.mlp_hidden));
  }
  final_norm = register_module("final_norm", MakeLayerNorm(e));
  final = register_module("final", Dense(e, config_.space_dim, kFinalLayerInitScale));
  // f_k = k · 2π/E in float32, as the reference computes it.
  time_freqs_ = at::arange(half, at::kFloat).mul(2.0 * kPi / static_cast<double>(e));
}

void PointCloudVelocityNetImpl::Initialize(at::Generator& generator) {
  embed->Initialize(generator);
  time_embed->Initialize(generator);
  if (cond_embed) cond_embed->Initialize(generator);
  for (const auto& block : *blocks) block->as<EncoderBlockImpl>()->Initialize(generator);
  final->Initialize(generator);
}

at::Tensor PointCloudVelocityNetImpl::Conditioning(const at::Tensor& t,
                                                   const at::Tensor& condition) {
  const at::Tensor phase = time_freqs_.unsqueeze(0) * t.unsqueeze(1);
  at::Tensor cond = time_embed(at::cat({phase.cos(), phase.sin()}, -1));
  switch (config_.condition) {
    case ConditionKind::kNone:
      break;
    case ConditionKind::kDiscrete:
      cond = cond + cond_embed(OneHot(condition, config_.num_classes));
      break;
    case ConditionKind::kContinuous:
      cond = cond + cond_embed(condition);
      break;
  }
  return cond;
}

at::Tensor PointCloudVelocityNetImpl::forward(const at::Tensor& points, const at::Tensor& mask,
                                              const at::Tensor& t, const at::Tensor& condition,
                                              std::optional<at::Generator> generator) {
  TORCH_CHECK(points.dim() == 3 && points.size(2) == config_.space_dim &&
                  points.scalar_type() == at::kFloat,
              "PointCloudVelocityNet: points must be float32 [B,N,", config_.space_dim, "], got ",
              points.sizes(), " ", points.scalar_type());
  const int64_t batch = points.size(0);
  const int64_t n = points.size(1);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == batch, "PointCloudVelocityNet: t must be [B]");
  TORCH_CHECK(!mask.defined() || (mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == n &&
                                  mask.scalar_type() == at::kBool),
              "PointCloudVelocityNet: mask must be bool [B,N]");
  CheckConditionArgument(config_, condition, batch, "PointCloudVelocityNet");

  // Dropout streams, two per block (attention weights, hidden layer), drawn
  // in block order.
  const bool dropout = is_training() && config_.dropout > 0.0;
  std::vector<kernel::DropoutStream> streams;
  if (dropout) {
    TORCH_CHECK(generator.has_value() && generator->defined(),
                "PointCloudVelocityNet: training with dropout needs a generator");
    auto* gen = at::check_generator<at::CPUGeneratorImpl>(*generator);
    std::lock_guard<std::mutex> lock(gen->mutex_);
    for (int64_t i = 0; i < 2 * config_.layers; ++i) {
      streams.push_back(kernel::MakeDropoutStream(config_.dropout, gen->random64()));
    }
  }

  // Keys are masked only when some point is padding, as in the reference.
  at::Tensor key_bias;
  if (mask.defined() && !mask.all().item<bool>()) key_bias = KeyBiasFromMask(mask);

  at::Tensor x = embed(points);
  const at::Tensor cond = Conditioning(t, condition);
  int64_t i = 0;
  for (const auto& block : *blocks) {
    x = block->as<EncoderBlockImpl>()->forward(x, cond, key_bias,
                                               dropout ? &streams[2 * i] : nullptr,
                                               dropout ? &streams[2 * i + 1] : nullptr);
    ++i;
  }
  return final(AddLayerNorm(x, {}, final_norm->weight, final_norm->bias, kLayerNormEps));
}

absl::Status PointCloudVelocityNetImpl::ValidateInputs(const at::Tensor& points,
                                                       const at::Tensor& mask, const at::Tensor& t,
                                                       const at::Tensor& condition) const {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(points, "points", 3));
  if (points.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError("points: must be float32");
  }
  WFM_RETURN_IF_ERROR(CheckShape(points, "points", {-1, -1, config_.space_dim}));
  WFM_RETURN_IF_ERROR(CheckFinite(points, "points"));
  const int64_t batch = points.size(0);
  const int64_t n = points.size(1);
  if (mask.defined()) {
    if (mask.scalar_type() != at::kBool || !mask.device().is_cpu()) {
      return absl::InvalidArgumentError("mask: must be a bool CPU tensor");
    }
    WFM_RETURN_IF_ERROR(CheckShape(mask, "mask", {batch, n}));
    if (n > 0 && batch > 0 && !mask.any(1).all().item<bool>()) {
      return absl::InvalidArgumentError("mask: every cloud needs at least one real point");
    }
  }
  WFM_RETURN_IF_ERROR(CheckFloatTensor(t, "t", 1));
  if (t.scalar_type() != at::kFloat) return absl::InvalidArgumentError("t: must be float32");
  WFM_RETURN_IF_ERROR(CheckShape(t, "t", {batch}));
  WFM_RETURN_IF_ERROR(CheckFinite(t, "t"));
  switch (config_.condition) {
    case ConditionKind::kNone:
      if (condition.defined()) {
        return absl::InvalidArgumentError(
            "condition: the network is unconditional and takes no condition");
      }
      break;
    case ConditionKind::kDiscrete: {
      if (!condition.defined() || condition.scalar_type() != at::kLong ||
          !condition.device().is_cpu()) {
        return absl::InvalidArgumentError("condition: labels must be an int64 CPU tensor");
      }
      WFM_RETURN_IF_ERROR(CheckShape(condition, "condition", {batch}));
      if (batch > 0 && (condition.min().item<int64_t>() < -1 ||
                        condition.max().item<int64_t>() >= config_.num_classes)) {
        return absl::InvalidArgumentError(absl::StrCat("condition: labels must be in [0, ",
                                                       config_.num_classes, ") or -1 (null)"));
      }
      break;
    }
    case ConditionKind::kContinuous:
      WFM_RETURN_IF_ERROR(CheckFloatTensor(condition, "condition", 2));
      if (condition.scalar_type() != at::kFloat) {
        return absl::InvalidArgumentError("condition: must be float32");
      }
      WFM_RETURN_IF_ERROR(CheckShape(condition, "condition", {batch, config_.cond_dim}));
      WFM_RETURN_IF_ERROR(CheckFinite(condition, "condition"));
      break;
  }
  return absl::OkStatus();
}

at::Tensor PointCloudVelocityNetImpl::NullCondition(int64_t batch) const {
  switch (config_.condition) {
    case ConditionKind::kDiscrete:
      return at::full({batch}, -1, at::kLong);
    case ConditionKind::kContinuous:
      return at::zeros({batch, config_.cond_dim}, at::kFloat);
    case ConditionKind::kNone:
      break;
  }
  return at::Tensor();
}

absl::StatusOr<PointCloudVelocityNet> MakePointCloudVelocityNet(const PointCloudNetConfig& config,
                                                                at::Generator& generator) {
  WFM_RETURN_IF_ERROR(ValidatePointCloudNetConfig(config));
  return GuardTorch("MakePointCloudVelocityNet",
                    [&] { return PointCloudVelocityNet(config, generator); });
}

absl::StatusOr<at::Tensor> GuidedVelocity(PointCloudVelocityNet& net, const at::Tensor& points,
                                          const at::Tensor& mask, const at::Tensor& t,
                                          const at::Tensor& condition,
                                          const at::Tensor& null_condition, double gamma) {
  if (net->is_training()) {
    return absl::FailedPreconditionError("GuidedVelocity: the network must be in eval mode");
  }
  if (!std::isfinite(gamma)) {
    return absl::InvalidArgumentError(absl::StrCat("gamma (", gamma, ") must be finite"));
  }
  return GuardTorch("GuidedVelocity", [&]() -> absl::StatusOr<at::Tensor> {
    if (!condition.defined() || gamma == 0.0) {
      WFM_RETURN_IF_ERROR(net->ValidateInputs(points, mask, t, null_condition));
      return net->forward(points, mask, t, null_condition);
    }
    WFM_RETURN_IF_ERROR(net->ValidateInputs(points, mask, t, condition));
    if (gamma == 1.0) return net->forward(points, mask, t, condition);
    WFM_RETURN_IF_ERROR(net->ValidateInputs(points, mask, t, null_condition));
    const int64_t batch = points.size(0);
    const at::Tensor v = net->forward(at::cat({points, points}),
                                      mask.defined() ? at::cat({mask, mask}) : at::Tensor(),
                                      at::cat({t, t}), at::cat({condition, null_condition}));
    const at::Tensor v_cond = v.narrow(0, 0, batch);
    const at::Tensor v_uncond = v.narrow(0, batch, batch);
    return v_uncond + gamma * (v_cond - v_uncond);
  });
}

}  // namespace wfm::model::nn
