#include "model/sample/gaussian_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "absl/strings/str_cat.h"
#include "model/checkpoint/module_state.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/checkpoint/model_files.h"
#include "model/gaussian/spd.h"
#include "model/gaussian/spd_check.h"

namespace wfm::model {
namespace {

// The float64 values of tensor `name` with `count` entries; DATA_LOSS when it
// is missing, not a float tensor, of another size or not finite.
absl::StatusOr<std::vector<double>> DoubleValues(const checkpoint::Checkpoint& ckpt,
                                                 absl::string_view name, int64_t multiple) {
  const at::Tensor* t = FindTensor(ckpt, name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' missing"));
  if (!at::isFloatingType(t->scalar_type()) || t->numel() == 0 || t->numel() % multiple != 0) {
    return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name,
                                            "' must be a non-empty float tensor of ", multiple,
                                            " values per item"));
  }
  const at::Tensor c = t->to(at::kDouble).contiguous();
  std::vector<double> v(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  for (double x : v) {
    if (!std::isfinite(x)) {
      return absl::DataLossError(absl::StrCat("checkpoint: tensor '", name, "' is not finite"));
    }
  }
  return v;
}

// Absolute eigenvalue floor of the final safeguard, in units of the data's
// mean covariance diagonal.
constexpr double kSafeguardFloor = 1e-8;

bool AllFinite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

absl::Status NonFinite() {
  return absl::FailedPreconditionError(
      "sampling produced non-finite values: the model's velocities are not finite (a diverged "
      "training run?)");
}

void Symmetrize(double* s, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      const double v = 0.5 * (s[i * d + j] + s[j * d + i]);
      s[i * d + j] = v;
      s[j * d + i] = v;
    }
  }
}

}  // namespace

absl::StatusOr<nn::GaussianNetConfig> GaussianNetConfigFor(const GaussianTrainConfig& config,
                                                           const LabelSpace& labels, int64_t dim) {
  nn::GaussianNetConfig c;
  c.space_dim = dim;
  c.width = config.network.width;
  c.layers = config.network.layers;
  c.mlp_hidden = config.network.mlp_hidden;
  if (config.network.architecture == "separate") {
    c.architecture = nn::GaussianArchitecture::kSeparate;
  } else if (config.network.architecture == "joint") {
    c.architecture = nn::GaussianArchitecture::kJoint;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("network.architecture: unknown '",
                                                   config.network.architecture,
                                                   "' (expected one of separate, joint)"));
  }
  switch (labels.kind) {
    case LabelSpace::Kind::kNone: c.num_labels = 0; break;
    case LabelSpace::Kind::kDiscrete: c.num_labels = static_cast<int64_t>(labels.names.size()); break;
    case LabelSpace::Kind::kContinuous:
      return absl::InvalidArgumentError(
          "labels: Gaussian models are conditioned on discrete labels only, not on condition "
          "vectors");
  }
  return c;
}

absl::StatusOr<std::shared_ptr<const GaussianModel>> GaussianModel::Load(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(checkpoint::Checkpoint ckpt, checkpoint::Read(path));
  return FromCheckpoint(ckpt);
}

absl::StatusOr<std::shared_ptr<const GaussianModel>> GaussianModel::FromCheckpoint(
    const checkpoint::Checkpoint& ckpt) {
  std::shared_ptr<GaussianModel> m(new GaussianModel());
  const nlohmann::json& meta = ckpt.metadata;
  WFM_RETURN_IF_ERROR(CheckModelFormat(meta, kGaussianModelFormat, kGaussianModelVersion));
  m->metadata_ = meta;
  try {
    WFM_ASSIGN_OR_RETURN(m->config_, GaussianTrainConfigFromJson(meta.at("config")));
    WFM_ASSIGN_OR_RETURN(m->labels_, LabelSpace::FromJson(meta.at("labels")));
    WFM_ASSIGN_OR_RETURN(m->stats_, noise::GaussianStats::FromJson(meta.at("data_stats")));
    m->summary_ = TrainingSummary::FromJson(meta.value("summary", nlohmann::json::object()));
    if (meta.at("dim").get<int64_t>() != m->stats_.dim) {
      return absl::DataLossError("checkpoint: metadata dim and data_stats.dim differ");
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint metadata: ", e.what()));
  }
  const int64_t d = m->dim();
  m->riemannian_ = m->config_.velocity == "riemannian";
  if (m->config_.source == GaussianSource::kWishart) {
    WFM_ASSIGN_OR_RETURN(m->wishart_,
                         noise::MakeWishartSource(m->stats_, m->config_.degrees_of_freedom_scale,
                                                  m->config_.mean_scale_factor,
                                                  m->config_.cov_scale_factor));
  } else {
    WFM_ASSIGN_OR_RETURN(m->source_means_, DoubleValues(ckpt, "source.means", d));
    WFM_ASSIGN_OR_RETURN(m->source_covs_, DoubleValues(ckpt, "source.covs", d * d));
    if (m->source_means_.size() / d != m->source_covs_.size() / (d * d)) {
      return absl::DataLossError("checkpoint: source.means and source.covs differ in count");
    }
    for (int64_t g = 0; g * d * d < static_cast<int64_t>(m->source_covs_.size()); ++g) {
      if (!gaussian::CheckSpd(m->source_covs_.data() + g * d * d, d).ok()) {
        return absl::DataLossError(absl::StrCat(
            "checkpoint: source.covs[", g, "] is not a symmetric positive definite covariance"));
      }
    }
  }
  WFM_ASSIGN_OR_RETURN(const nn::GaussianNetConfig net_config,
                       GaussianNetConfigFor(m->config_, m->labels_, d));
  WFM_RETURN_IF_ERROR(GuardTorch("GaussianModel", [&]() -> absl::Status {
    at::Generator init = at::make_generator<at::CPUGeneratorImpl>(0);
    WFM_ASSIGN_OR_RETURN(m->net_, nn::MakeGaussianVelocityNet(net_config, init));
    WFM_RETURN_IF_ERROR(checkpoint::LoadStateTensors(*m->net_, ckpt.tensors,
                                                     checkpoint::SamplingPrefix(ckpt.tensors)));
    m->net_->eval();
    return absl::OkStatus();
  }));
  return std::shared_ptr<const GaussianModel>(std::move(m));
}

int64_t GaussianModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : net_->parameters()) n += p.numel();
  return n;
}

absl::Status GaussianModel::ValidateRequest(const GaussianSampleRequest& r,
                                            const SampleLimits& limits) const {
  if (r.num_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_samples: must be >= 1, got ", r.num_samples));
  }
  if (r.num_samples > limits.max_samples) {
    return absl::ResourceExhaustedError(absl::StrCat("num_samples: ", r.num_samples,
                                                     " exceeds the limit of ", limits.max_samples));
  }
  if (r.steps < 1) return absl::InvalidArgumentError(absl::StrCat("steps: must be >= 1, got ", r.steps));
  if (r.steps > limits.max_steps) {
    return absl::ResourceExhaustedError(
        absl::StrCat("steps: ", r.steps, " exceeds the limit of ", limits.max_steps));
  }
  if (!r.label.empty()) {
    if (labels_.kind != LabelSpace::Kind::kDiscrete) {
      return absl::InvalidArgumentError("label: this model is not conditioned on labels");
    }
    WFM_RETURN_IF_ERROR(labels_.Code(r.label).status());
  }
  if (r.trajectory) {
    const double d = static_cast<double>(dim());
    const double values = static_cast<double>(r.steps + 1) * r.num_samples * (d + d * d);
    if (values > static_cast<double>(limits.max_trajectory_values)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "trajectory: ", r.steps + 1, " frames of ", r.num_samples,
          " Gaussians exceed the limit of ", limits.max_trajectory_values,
          " values; ask for fewer steps or samples"));
    }
  }
  return absl::OkStatus();
}

absl::Status GaussianModel::PrepareRequest(const GaussianSampleRequest& r, std::vector<double>* means,
                                           std::vector<double>* covs, std::vector<int64_t>* codes,
                                           GeneratedGaussians* out) const {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(r.seed);
  const int64_t d = dim();
  const int64_t num = r.num_samples;
  out->dim = d;
  // Labels first, then the sources: a request's draws depend on nothing but
  // the request.
  codes->assign(num, -1);
  if (labels_.kind == LabelSpace::Kind::kDiscrete) {
    if (!r.label.empty()) {
      WFM_ASSIGN_OR_RETURN(const int64_t code, labels_.Code(r.label));
      codes->assign(num, code);
    } else {
      const at::Tensor drawn =
          at::randint(static_cast<int64_t>(labels_.names.size()), {num}, gen, at::kLong);
      std::copy(drawn.data_ptr<int64_t>(), drawn.data_ptr<int64_t>() + num, codes->begin());
    }
    for (int64_t s = 0; s < num; ++s) out->labels.push_back(labels_.names[(*codes)[s]]);
  }
  if (source_means_.empty()) {
    WFM_ASSIGN_OR_RETURN(const noise::GaussianBatch batch,
                         noise::SampleWishartSource(wishart_, num, gen));
    const at::Tensor mc = batch.means.contiguous(), sc = batch.covs.contiguous();
    means->assign(mc.data_ptr<double>(), mc.data_ptr<double>() + num * d);
    covs->assign(sc.data_ptr<double>(), sc.data_ptr<double>() + num * d * d);
  } else {
    const int64_t pool = static_cast<int64_t>(source_means_.size()) / d;
    const at::Tensor drawn = at::randint(pool, {num}, gen, at::kLong);
    means->resize(num * d);
    covs->resize(num * d * d);
    for (int64_t s = 0; s < num; ++s) {
      const int64_t i = drawn.data_ptr<int64_t>()[s];
      std::copy_n(source_means_.data() + i * d, d, means->data() + s * d);
      std::copy_n(source_covs_.data() + i * d * d, d * d, covs->data() + s * d * d);
    }
  }
  out->means.assign(num * d, 0.0);
  out->covs.assign(num * d * d, 0.0);
  if (r.trajectory) {
    out->trajectory_means.assign((r.steps + 1) * num * d, 0.0);
    out->trajectory_covs.assign((r.steps + 1) * num * d * d, 0.0);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GeneratedGaussians>> GaussianModel::Sample(
    const std::vector<GaussianSampleRequest>& requests, const std::function<bool()>& cancelled) const {
  for (const auto& r : requests) WFM_RETURN_IF_ERROR(ValidateRequest(r));
  return GuardTorch("Sample", [&]() -> absl::StatusOr<std::vector<GeneratedGaussians>> {
    c10::InferenceMode inference;
    const int64_t d = dim();
    const int64_t dd = d * d;
    const int64_t tri = nn::TriangleSize(d);
    const bool labelled = labels_.kind == LabelSpace::Kind::kDiscrete;
    std::vector<GeneratedGaussians> outs(requests.size());
    // Per request: source means, covariances and label codes.
    std::vector<std::vector<double>> means(requests.size()), covs(requests.size());
    std::vector<std::vector<int64_t>> codes(requests.size());
    for (size_t r = 0; r < requests.size(); ++r) {
      WFM_RETURN_IF_ERROR(PrepareRequest(requests[r], &means[r], &covs[r], &codes[r], &outs[r]));
    }
    // Requests of one step count and update rule integrate together.
    std::map<std::pair<int64_t, bool>, std::vector<size_t>> groups;
    for (size_t r = 0; r < requests.size(); ++r) {
      groups[{requests[r].steps, requests[r].reference_cov_sign}].push_back(r);
    }
    for (const auto& group : groups) {
      // Plain references: lambdas below capture them (C++17 lambdas cannot
      // capture structured bindings).
      const auto& key = group.first;
      const auto& members = group.second;
      const int64_t steps = key.first;
      // W enters as U = I + sign·dt·W: −1 is the corrected update (I + dt·V).
      const double sign = key.second ? 1.0 : -1.0;
      // The group's rows: request members[k] owns rows [first[k], first[k+1]).
      std::vector<int64_t> first = {0};
      for (size_t r : members) first.push_back(first.back() + requests[r].num_samples);
      const int64_t g = first.back();
      std::vector<double> m(g * d), s(g * dd);
      at::Tensor label_tensor;
      if (labelled) label_tensor = at::empty({g}, at::kLong);
      for (size_t k = 0; k < members.size(); ++k) {
        const size_t r = members[k];
        std::copy(means[r].begin(), means[r].end(), m.begin() + first[k] * d);
        std::copy(covs[r].begin(), covs[r].end(), s.begin() + first[k] * dd);
        if (labelled) {
          std::copy(codes[r].begin(), codes[r].end(), label_tensor.data_ptr<int64_t>() + first[k]);
        }
      }
      auto record = [&](int64_t frame) {
        for (size_t k = 0; k < members.size(); ++k) {
          const GaussianSampleRequest& req = requests[members[k]];
          if (!req.trajectory) continue;
          GeneratedGaussians& out = outs[members[k]];
          const int64_t n = req.num_samples;
          std::copy_n(m.data() + first[k] * d, n * d, out.trajectory_means.data() + frame * n * d);
          std::copy_n(s.data() + first[k] * dd, n * dd, out.trajectory_covs.data() + frame * n * dd);
        }
      };
      record(0);
      at::Tensor mean_in = at::empty({g, d}, at::kFloat);
      at::Tensor tril_in = at::empty({g, tri}, at::kFloat);
      std::vector<double> u_mat(dd), tmp(dd), w_mat(dd);
      const double dt = 1.0 / static_cast<double>(steps);
      for (int64_t step = 0; step < steps; ++step) {
        if (cancelled && cancelled()) return absl::CancelledError("sampling cancelled");
        const double t = 1.0 - static_cast<double>(step) * dt;
        float* mf = mean_in.data_ptr<float>();
        float* tf = tril_in.data_ptr<float>();
        for (int64_t i = 0; i < g; ++i) {
          for (int64_t a = 0; a < d; ++a) mf[i * d + a] = static_cast<float>(m[i * d + a]);
          const double* si = s.data() + i * dd;
          float* ti = tf + i * tri;
          for (int64_t a = 0, p = 0; a < d; ++a) {
            for (int64_t b = 0; b <= a; ++b, ++p) ti[p] = static_cast<float>(si[a * d + b]);
          }
        }
        const nn::GaussianVelocity v = net_->forward(
            mean_in, tril_in, at::full({g}, static_cast<float>(t), at::kFloat), label_tensor);
        const at::Tensor vm = v.mean.contiguous(), vc = v.cov_tril.contiguous();
        const float* um = vm.data_ptr<float>();
        const float* uc = vc.data_ptr<float>();
        for (int64_t i = 0; i < g; ++i) {
          for (int64_t a = 0; a < d; ++a) m[i * d + a] -= dt * static_cast<double>(um[i * d + a]);
          // W = L + Lᵀ from the predicted lower triangle.
          const float* ci = uc + i * tri;
          for (int64_t a = 0, p = 0; a < d; ++a) {
            for (int64_t b = 0; b <= a; ++b, ++p) {
              const double w = static_cast<double>(ci[p]);
              w_mat[a * d + b] = a == b ? 2.0 * w : w;
              w_mat[b * d + a] = w_mat[a * d + b];
            }
          }
          double* si = s.data() + i * dd;
          if (riemannian_) {
            // S ← U S Uᵀ, U = I + sign·dt·W (symmetric, so Uᵀ = U).
            for (int64_t e = 0; e < dd; ++e) u_mat[e] = sign * dt * w_mat[e];
            for (int64_t a = 0; a < d; ++a) u_mat[a * d + a] += 1.0;
            for (int64_t a = 0; a < d; ++a) {
              for (int64_t b = 0; b < d; ++b) {
                double acc = 0.0;
                for (int64_t c = 0; c < d; ++c) acc += u_mat[a * d + c] * si[c * d + b];
                tmp[a * d + b] = acc;
              }
            }
            for (int64_t a = 0; a < d; ++a) {
              for (int64_t b = 0; b <= a; ++b) {
                double acc = 0.0;
                for (int64_t c = 0; c < d; ++c) acc += tmp[a * d + c] * u_mat[b * d + c];
                si[a * d + b] = acc;
              }
            }
            for (int64_t a = 0; a < d; ++a) {
              for (int64_t b = 0; b < a; ++b) si[b * d + a] = si[a * d + b];
            }
          } else {
            for (int64_t e = 0; e < dd; ++e) si[e] += sign * dt * w_mat[e];
          }
        }
        if (!riemannian_) {
          if (!AllFinite(s)) return NonFinite();
          // S ← ProjectSpd(S ∓ dt·W), per item.
          const at::Tensor all = at::from_blob(s.data(), {g, d, d}, at::kDouble);
          WFM_ASSIGN_OR_RETURN(const at::Tensor projected, gaussian::ProjectSpd(all));
          const at::Tensor pc = projected.contiguous();
          std::copy_n(pc.data_ptr<double>(), g * dd, s.data());
        }
        record(step + 1);
      }
      if (!AllFinite(m) || !AllFinite(s)) return NonFinite();
      // Outputs: exactly symmetric, and positive definite (safeguard).
      for (size_t k = 0; k < members.size(); ++k) {
        GeneratedGaussians& out = outs[members[k]];
        const int64_t n = requests[members[k]].num_samples;
        std::copy_n(m.data() + first[k] * d, n * d, out.means.data());
        for (int64_t i = 0; i < n; ++i) {
          double* dst = out.covs.data() + i * dd;
          std::copy_n(s.data() + (first[k] + i) * dd, dd, dst);
          Symmetrize(dst, d);
          if (!gaussian::CheckSpd(dst, d).ok()) {
            const at::Tensor one = at::from_blob(dst, {1, d, d}, at::kDouble);
            gaussian::EigenvalueFloor floor;
            floor.absolute = kSafeguardFloor * stats_.cov_diag_mean;
            WFM_ASSIGN_OR_RETURN(const at::Tensor fixed, gaussian::ProjectSpd(one, floor));
            std::copy_n(fixed.contiguous().data_ptr<double>(), dd, dst);
            Symmetrize(dst, d);
          }
        }
      }
    }
    return outs;
  });
}

}  // namespace wfm::model
