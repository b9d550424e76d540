#include "model/nn/gaussian_net.h"

#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/nn/net_common.h"
#include "model/nn/nn_kernels.h"
#include "model/nn/pointcloud_net.h"

namespace wfm::model::nn {
namespace {

// ------------------------------------------------------- panel (inference) path

// [B, F] -> [P, F, lanes], P = ceil(B / lanes), unused lanes zero.
at::Tensor ToPanels(const at::Tensor& x, int64_t lanes) {
  const int64_t b = x.size(0), f = x.size(1);
  const int64_t panels = (b + lanes - 1) / lanes;
  at::Tensor padded = x.to(at::kFloat);
  if (panels * lanes != b) {
    padded = at::cat({padded, at::zeros({panels * lanes - b, f}, padded.options())});
  }
  return padded.view({panels, lanes, f}).transpose(1, 2).contiguous();
}

// [P, F, lanes] -> [B, F].
at::Tensor FromPanels(const at::Tensor& p, int64_t batch) {
  return p.transpose(1, 2).reshape({-1, p.size(1)}).narrow(0, 0, batch).contiguous();
}

// y (rows [y_row, y_row + out) of a [P, y_rows, lanes] buffer) = dense(x).
void PanelLayer(DenseImpl& dense, const at::Tensor& x, at::Tensor& y, int64_t y_row, bool silu,
                bool residual) {
  const kernel::FloatKernels& k = kernel::BestFloatKernels();
  const int64_t lanes = k.panel;
  const at::Tensor w = dense.weight.contiguous();
  const at::Tensor b = dense.bias.contiguous();
  TORCH_CHECK(w.scalar_type() == at::kFloat, "GaussianVelocityNet: float32 parameters expected");
  const int y_stride = static_cast<int>(y.size(1) * lanes);
  float* yp = y.data_ptr<float>() + y_row * lanes;
  k.panel_dense(w.data_ptr<float>(), b.data_ptr<float>(), x.data_ptr<float>(),
                static_cast<int>(x.size(1) * lanes), static_cast<int>(dense.in_features()),
                static_cast<int>(dense.out_features()), static_cast<int>(x.size(0)), silu,
                residual ? yp : nullptr, y_stride, yp, y_stride);
}

}  // namespace

absl::Status ValidateGaussianNetConfig(const GaussianNetConfig& c) {
  WFM_RETURN_IF_ERROR(ValidateNetSizes({{"space_dim", c.space_dim},
                                        {"width", c.width},
                                        {"layers", c.layers},
                                        {"mlp_hidden", c.mlp_hidden}},
                                       c.width));
  if (c.num_labels < 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_labels (", c.num_labels, ") must be >= 0"));
  }
  if (c.condition_dim < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("condition_dim (", c.condition_dim, ") must be >= 0"));
  }
  if (c.num_labels > 0 && c.condition_dim > 0) {
    return absl::InvalidArgumentError(
        "condition_dim: a network takes discrete labels or condition vectors, not both");
  }
  return absl::OkStatus();
}

// -------------------------------------------------------------- ResidualBlock

ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t hidden)
    : width_(width), hidden_(hidden) {
  reset();
}

void ResidualBlockImpl::reset() {
  fc1 = register_module("fc1", Dense(width_, hidden_));
  fc2 = register_module("fc2", Dense(hidden_, width_));
  norm = register_module("norm", MakeLayerNorm(width_));
}

void ResidualBlockImpl::Initialize(at::Generator& generator) {
  fc1->Initialize(generator);
  fc2->Initialize(generator);
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x) {
  return norm(fc2(at::silu(fc1(x))) + x);
}

// --------------------------------------------------------------- GaussianTower

GaussianTowerImpl::GaussianTowerImpl(const GaussianNetConfig& config) : config_(config) { reset(); }

int64_t GaussianTowerImpl::output_width() const {
  return (config_.conditional() ? 4 : 3) * config_.width;
}

void GaussianTowerImpl::reset() {
  const int64_t e = config_.width;
  const int64_t half = e / 2;
  mean_embed = register_module("mean_embed", Dense(config_.space_dim, e));
  cov_embed = register_module("cov_embed", Dense(TriangleSize(config_.space_dim), e));
  time_embed = register_module("time_embed", Dense(2 * half, e));
  if (config_.num_labels > 0) {
    label_embed = register_module("label_embed", Dense(config_.num_labels, e));
  } else {
    label_embed = nullptr;
  }
  if (config_.condition_dim > 0) {
    condition_embed = register_module("condition_embed", Dense(config_.condition_dim, e));
  } else {
    condition_embed = nullptr;
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.layers; ++i) {
    blocks->push_back(ResidualBlock(output_width(), config_.mlp_hidden));
  }
}

void GaussianTowerImpl::Initialize(at::Generator& generator) {
  mean_embed->Initialize(generator);
  cov_embed->Initialize(generator);
  time_embed->Initialize(generator);
  if (label_embed) label_embed->Initialize(generator);
  if (condition_embed) condition_embed->Initialize(generator);
  for (const auto& block : *blocks) block->as<ResidualBlockImpl>()->Initialize(generator);
}

at::Tensor GaussianTowerImpl::forward(const at::Tensor& mean, const at::Tensor& cov_tril,
                                      const at::Tensor& time_features,
                                      const at::Tensor& condition_features) {
  std::vector<at::Tensor> parts = {mean_embed(mean), cov_embed(cov_tril),
                                   time_embed(time_features)};
  if (label_embed) parts.push_back(label_embed(condition_features));
  if (condition_embed) parts.push_back(condition_embed(condition_features));
  at::Tensor x = at::cat(parts, -1);
  for (const auto& block : *blocks) x = block->as<ResidualBlockImpl>()->forward(x);
  return x;
}

at::Tensor GaussianTowerImpl::ForwardPanels(const at::Tensor& mean, const at::Tensor& cov_tril,
                                            const at::Tensor& time_features,
                                            const at::Tensor& condition_features) {
  const int64_t panels = mean.size(0);
  const int64_t lanes = kernel::BestFloatKernels().panel;
  const int64_t e = config_.width;
  at::Tensor x = at::empty({panels, output_width(), lanes}, at::kFloat);
  PanelLayer(*mean_embed, mean, x, 0, false, false);
  PanelLayer(*cov_embed, cov_tril, x, e, false, false);
  PanelLayer(*time_embed, time_features, x, 2 * e, false, false);
  if (label_embed) PanelLayer(*label_embed, condition_features, x, 3 * e, false, false);
  if (condition_embed) PanelLayer(*condition_embed, condition_features, x, 3 * e, false, false);
  at::Tensor h = at::empty({panels, config_.mlp_hidden, lanes}, at::kFloat);
  for (const auto& module : *blocks) {
    ResidualBlockImpl& block = *module->as<ResidualBlockImpl>();
    PanelLayer(*block.fc1, x, h, 0, /*silu=*/true, false);
    PanelLayer(*block.fc2, h, x, 0, false, /*residual=*/true);  // x ← fc2(h) + x
    const at::Tensor gamma = block.norm->weight.contiguous();
    const at::Tensor beta = block.norm->bias.contiguous();
    kernel::BestFloatKernels().panel_layer_norm(
        x.data_ptr<float>(), static_cast<int>(output_width()), static_cast<int>(panels),
        gamma.data_ptr<float>(), beta.data_ptr<float>(), static_cast<float>(kLayerNormEps));
  }
  return x;
}

at::Tensor GaussianTimeFeatures(const at::Tensor& t, int64_t width) {
  const at::Tensor freqs = at::arange(width / 2, t.options().dtype(at::kFloat));
  const at::Tensor phase = freqs.unsqueeze(0) * t.unsqueeze(1);
  return at::cat({phase.cos(), phase.sin()}, -1);
}

at::Tensor GaussianLabelFeatures(const at::Tensor& labels, int64_t num_labels) {
  return labels.unsqueeze(-1)
      .eq(at::arange(num_labels, labels.options().dtype(at::kLong)))
      .to(at::kFloat);
}

at::Tensor GaussianConditionFeatures(const GaussianNetConfig& config, const at::Tensor& condition) {
  if (config.num_labels > 0) return GaussianLabelFeatures(condition, config.num_labels);
  if (config.condition_dim > 0) return condition;
  return at::Tensor();
}

at::Tensor GaussianNullCondition(const GaussianNetConfig& config, int64_t batch) {
  if (config.num_labels > 0) return at::full({batch}, -1, at::kLong);
  if (config.condition_dim > 0) return at::zeros({batch, config.condition_dim}, at::kFloat);
  return at::Tensor();
}

// -------------------------------------------------------- GaussianVelocityNet

GaussianVelocityNetImpl::GaussianVelocityNetImpl(const GaussianNetConfig& config,
                                                 at::Generator& generator)
    : config_(config) {
  const absl::Status status = ValidateGaussianNetConfig(config);
  TORCH_CHECK(status.ok(), "GaussianVelocityNet: ", std::string(status.message()));
  reset();
  Initialize(generator);
}

void GaussianVelocityNetImpl::reset() {
  const int64_t d = config_.space_dim;
  const int64_t tri = TriangleSize(d);
  if (config_.architecture == GaussianArchitecture::kSeparate) {
    mean_tower = register_module("mean_tower", GaussianTower(config_));
    cov_tower = register_module("cov_tower", GaussianTower(config_));
    const int64_t w = mean_tower->output_width();
    mean_head = register_module("mean_head", Dense(w, d, kGaussianHeadInitScale));
    cov_head = register_module("cov_head", Dense(w, tri, kGaussianHeadInitScale));
  } else {
    tower = register_module("tower", GaussianTower(config_));
    mix = register_module("mix", Dense(tower->output_width(), config_.mlp_hidden));
    mean_head = register_module("mean_head", Dense(config_.mlp_hidden, d));
    cov_head = register_module("cov_head", Dense(config_.mlp_hidden, tri));
  }
}

void GaussianVelocityNetImpl::Initialize(at::Generator& generator) {
  if (config_.architecture == GaussianArchitecture::kSeparate) {
    mean_tower->Initialize(generator);
    cov_tower->Initialize(generator);
  } else {
    tower->Initialize(generator);
    mix->Initialize(generator);
  }
  mean_head->Initialize(generator);
  cov_head->Initialize(generator);
}

GaussianVelocity GaussianVelocityNetImpl::forward(const at::Tensor& mean,
                                                  const at::Tensor& cov_tril, const at::Tensor& t,
                                                  const at::Tensor& condition) {
  const int64_t d = config_.space_dim;
  TORCH_CHECK(mean.dim() == 2 && mean.size(1) == d && mean.scalar_type() == at::kFloat,
              "GaussianVelocityNet: mean must be float32 [B,", d, "]");
  const int64_t batch = mean.size(0);
  TORCH_CHECK(cov_tril.dim() == 2 && cov_tril.size(0) == batch &&
                  cov_tril.size(1) == TriangleSize(d) && cov_tril.scalar_type() == at::kFloat,
              "GaussianVelocityNet: cov_tril must be float32 [B,", TriangleSize(d), "]");
  TORCH_CHECK(t.dim() == 1 && t.size(0) == batch, "GaussianVelocityNet: t must be [B]");
  if (config_.num_labels > 0) {
    TORCH_CHECK(condition.defined() && condition.dim() == 1 && condition.size(0) == batch &&
                    condition.scalar_type() == at::kLong,
                "GaussianVelocityNet: labels must be int64 [B]");
  } else if (config_.condition_dim > 0) {
    TORCH_CHECK(condition.defined() && condition.dim() == 2 && condition.size(0) == batch &&
                    condition.size(1) == config_.condition_dim &&
                    condition.scalar_type() == at::kFloat,
                "GaussianVelocityNet: condition must be float32 [B,", config_.condition_dim, "]");
  } else {
    TORCH_CHECK(!condition.defined(),
                "GaussianVelocityNet: an unconditional network takes no condition");
  }
  const at::Tensor time_features = GaussianTimeFeatures(t, config_.width);
  const at::Tensor label_features = GaussianConditionFeatures(config_, condition);
  if (!at::GradMode::is_enabled()) {
    return ForwardPanels(mean, cov_tril, time_features, label_features);
  }
  if (config_.architecture == GaussianArchitecture::kSeparate) {
    return {mean_head(mean_tower(mean, cov_tril, time_features, label_features)),
            cov_head(cov_tower(mean, cov_tril, time_features, label_features))};
  }
  const at::Tensor h = at::silu(mix(tower(mean, cov_tril, time_features, label_features)));
  return {mean_head(h), cov_head(h)};
}

GaussianVelocity GaussianVelocityNetImpl::ForwardPanels(const at::Tensor& mean,
                                                        const at::Tensor& cov_tril,
                                                        const at::Tensor& time_features,
                                                        const at::Tensor& label_features) {
  const int64_t batch = mean.size(0);
  const int64_t lanes = kernel::BestFloatKernels().panel;
  const at::Tensor mean_p = ToPanels(mean, lanes);
  const at::Tensor tril_p = ToPanels(cov_tril, lanes);
  const at::Tensor time_p = ToPanels(time_features, lanes);
  const at::Tensor label_p =
      label_features.defined() ? ToPanels(label_features, lanes) : at::Tensor();
  const int64_t panels = mean_p.size(0);
  at::Tensor mean_out = at::empty({panels, config_.space_dim, lanes}, at::kFloat);
  at::Tensor cov_out = at::empty({panels, TriangleSize(config_.space_dim), lanes}, at::kFloat);
  if (config_.architecture == GaussianArchitecture::kSeparate) {
    PanelLayer(*mean_head, mean_tower->ForwardPanels(mean_p, tril_p, time_p, label_p), mean_out, 0,
               false, false);
    PanelLayer(*cov_head, cov_tower->ForwardPanels(mean_p, tril_p, time_p, label_p), cov_out, 0,
               false, false);
  } else {
    const at::Tensor x = tower->ForwardPanels(mean_p, tril_p, time_p, label_p);
    at::Tensor h = at::empty({panels, config_.mlp_hidden, lanes}, at::kFloat);
    PanelLayer(*mix, x, h, 0, /*silu=*/true, false);
    PanelLayer(*mean_head, h, mean_out, 0, false, false);
    PanelLayer(*cov_head, h, cov_out, 0, false, false);
  }
  return {FromPanels(mean_out, batch), FromPanels(cov_out, batch)};
}

absl::Status GaussianVelocityNetImpl::ValidateInputs(const at::Tensor& mean,
                                                     const at::Tensor& cov_tril,
                                                     const at::Tensor& t,
                                                     const at::Tensor& labels) const {
  const int64_t d = config_.space_dim;
  WFM_RETURN_IF_ERROR(CheckFloatTensor(mean, "mean", 2));
  if (mean.scalar_type() != at::kFloat) return absl::InvalidArgumentError("mean: must be float32");
  WFM_RETURN_IF_ERROR(CheckShape(mean, "mean", {-1, d}));
  WFM_RETURN_IF_ERROR(CheckFinite(mean, "mean"));
  const int64_t batch = mean.size(0);
  WFM_RETURN_IF_ERROR(CheckFloatTensor(cov_tril, "cov_tril", 2));
  if (cov_tril.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError("cov_tril: must be float32");
  }
  WFM_RETURN_IF_ERROR(CheckShape(cov_tril, "cov_tril", {batch, TriangleSize(d)}));
  WFM_RETURN_IF_ERROR(CheckFinite(cov_tril, "cov_tril"));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(t, "t", 1));
  if (t.scalar_type() != at::kFloat) return absl::InvalidArgumentError("t: must be float32");
  WFM_RETURN_IF_ERROR(CheckShape(t, "t", {batch}));
  WFM_RETURN_IF_ERROR(CheckFinite(t, "t"));
  if (config_.condition_dim > 0) {
    if (!labels.defined() || labels.scalar_type() != at::kFloat || !labels.device().is_cpu()) {
      return absl::InvalidArgumentError("condition: must be a float32 CPU tensor");
    }
    WFM_RETURN_IF_ERROR(CheckShape(labels, "condition", {batch, config_.condition_dim}));
    return CheckFinite(labels, "condition");
  }
  if (config_.num_labels == 0) {
    if (labels.defined()) {
      return absl::InvalidArgumentError("labels: the network is unlabelled and takes no labels");
    }
    return absl::OkStatus();
  }
  if (!labels.defined() || labels.scalar_type() != at::kLong || !labels.device().is_cpu()) {
    return absl::InvalidArgumentError("labels: must be an int64 CPU tensor");
  }
  WFM_RETURN_IF_ERROR(CheckShape(labels, "labels", {batch}));
  if (batch > 0 &&
      (labels.min().item<int64_t>() < -1 || labels.max().item<int64_t>() >= config_.num_labels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels: must be in [0, ", config_.num_labels, ") or -1 (null)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GaussianVelocityNet> MakeGaussianVelocityNet(const GaussianNetConfig& config,
                                                            at::Generator& generator) {
  WFM_RETURN_IF_ERROR(ValidateGaussianNetConfig(config));
  return GuardTorch("MakeGaussianVelocityNet",
                    [&] { return GaussianVelocityNet(config, generator); });
}

}  // namespace wfm::model::nn
