#include "model/sample/gaussian_model.h"

#include <algorithm>
#include <cmath>
#include <functional>
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

}  // namespace

io::GaussianSet ToGaussianSet(GeneratedGaussians generated) {
  return {generated.dim, std::move(generated.means), std::move(generated.covs), {}};
}

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
    case LabelSpace::Kind::kContinuous: c.condition_dim = labels.cond_dim; break;
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
  if (m->labels_.kind == LabelSpace::Kind::kContinuous) {
    WFM_ASSIGN_OR_RETURN(m->train_conditions_, TensorToFloat(ckpt, "data.conditions"));
    if (m->labels_.cond_dim < 1 || m->train_conditions_.empty() ||
        m->train_conditions_.size() % m->labels_.cond_dim != 0) {
      return absl::DataLossError(absl::StrCat("checkpoint: data.conditions must hold vectors of ",
                                              m->labels_.cond_dim, " values"));
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

double GaussianModel::default_guidance() const {
  return config_.guidance > 1.0 ? config_.guidance : 1.0;
}

int64_t GaussianModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : net_->parameters()) n += p.numel();
  return n;
}

int64_t GaussianModel::memory_bytes() const {
  return checkpoint::StateBytes(*net_) +
         static_cast<int64_t>(train_conditions_.size() * sizeof(float) +
                              (source_means_.size() + source_covs_.size()) * sizeof(double));
}

absl::Status GaussianModel::ValidateInit(const GaussianSampleRequest& r) const {
  if (r.init_means.empty() && r.init_covs.empty()) return absl::OkStatus();
  const int64_t d = dim(), n = r.num_samples;
  if (static_cast<int64_t>(r.init_means.size()) != n * d) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init_means: ", r.init_means.size(), " values; one given source mean per sample needs [",
        n, ", ", d, "] = ", n * d));
  }
  if (static_cast<int64_t>(r.init_covs.size()) != n * d * d) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init_covs: ", r.init_covs.size(), " values; one given source covariance per sample needs [",
        n, ", ", d, ", ", d, "] = ", n * d * d));
  }
  for (int64_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(r.init_means[i])) {
      return absl::InvalidArgumentError(absl::StrCat("init_means[", i / d, ", ", i % d, "] = ",
                                                     r.init_means[i], ": values must be finite"));
    }
  }
  for (int64_t g = 0; g < n; ++g) {
    // The acceptance rule every reader of covariances shares (spd_check.h).
    const double* s = r.init_covs.data() + g * d * d;
    const gaussian::SpdVerdict v = gaussian::CheckSpd(s, d);
    const std::string at = absl::StrCat("init_covs[", g, ", ", v.row, ", ", v.col, "] = ");
    switch (v.kind) {
      case gaussian::SpdVerdict::Kind::kSpd: break;
      case gaussian::SpdVerdict::Kind::kNotFinite:
        return absl::InvalidArgumentError(
            absl::StrCat(at, s[v.row * d + v.col], ": values must be finite"));
      case gaussian::SpdVerdict::Kind::kNotSymmetric:
        return absl::InvalidArgumentError(absl::StrCat(
            "init_covs[", g, "]: not symmetric (", at, s[v.row * d + v.col], ", [", v.col, ", ",
            v.row, "] = ", s[v.col * d + v.row], ")"));
      case gaussian::SpdVerdict::Kind::kNotPositiveDefinite:
        return absl::InvalidArgumentError(absl::StrCat("init_covs[", g, "]: not positive definite"));
    }
  }
  return absl::OkStatus();
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
  WFM_RETURN_IF_ERROR(ValidateOdeSettings(r.ode(), limits.max_steps));
  if (r.guidance.has_value() && !(std::isfinite(*r.guidance) && *r.guidance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("guidance: must be a finite number >= 0, got ", *r.guidance));
  }
  if (!r.label.empty()) {
    if (labels_.kind != LabelSpace::Kind::kDiscrete) {
      return absl::InvalidArgumentError("label: this model is not conditioned on labels");
    }
    WFM_RETURN_IF_ERROR(labels_.Code(r.label).status());
  }
  WFM_RETURN_IF_ERROR(labels_.CheckCondition(r.condition, r.num_samples));
  WFM_RETURN_IF_ERROR(ValidateInit(r));
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
  } else if (labels_.kind == LabelSpace::Kind::kContinuous) {
    const int64_t c = labels_.cond_dim;
    if (r.condition.empty()) {
      const int64_t pool = static_cast<int64_t>(train_conditions_.size()) / c;
      const at::Tensor drawn = at::randint(pool, {num}, gen, at::kLong);
      out->conditions.resize(num * c);
      for (int64_t s = 0; s < num; ++s) {
        std::copy_n(train_conditions_.data() + drawn.data_ptr<int64_t>()[s] * c, c,
                    out->conditions.data() + s * c);
      }
    } else if (static_cast<int64_t>(r.condition.size()) == c) {
      for (int64_t s = 0; s < num; ++s) {
        out->conditions.insert(out->conditions.end(), r.condition.begin(), r.condition.end());
      }
    } else {
      out->conditions = r.condition;
    }
  }
  if (!r.init_means.empty()) {  // the request's own sources
    *means = r.init_means;
    *covs = r.init_covs;
  } else if (source_means_.empty()) {
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
    out->trajectory_means.reserve(MaxFrames(r.ode()) * num * d);
    out->trajectory_covs.reserve(MaxFrames(r.ode()) * num * d * d);
  }
  return absl::OkStatus();
}

namespace {

// How a group's velocity is made: as trained (unconditional models, or γ
// 1), under the null condition (γ 0), or guided (any other γ).
enum class VelocityMode { kCond, kNull, kGuided };
VelocityMode ModeOf(double gamma) {
  return gamma == 1.0 ? VelocityMode::kCond
                      : gamma == 0.0 ? VelocityMode::kNull : VelocityMode::kGuided;
}

// The flow of a group of Gaussians (rows) for the ODE solvers.
struct GaussianState {
  std::vector<double> m;  // [rows, d]
  std::vector<double> s;  // [rows, d, d]
};
struct GaussianTangent {
  std::vector<double> u;  // [rows, d]
  std::vector<double> w;  // [rows, d, d], symmetric
};

class GaussianFlow {
 public:
  using State = GaussianState;
  using Tangent = GaussianTangent;
  using Recorder = std::function<void(const State& x, int64_t frame, double t)>;

  // `labels`: the network's condition input for the rows (see
  // GaussianVelocityNet::forward). With `gamma` ([rows, 1] float32) the
  // velocity is guided: `labels` holds the rows' conditions followed by as
  // many null conditions, and row i moves along v_u + γ_i (v_c − v_u).
  GaussianFlow(nn::GaussianVelocityNet net, at::Tensor labels, at::Tensor gamma, int64_t rows,
               int64_t d, bool riemannian, double sign, Recorder recorder)
      : net_(std::move(net)),
        labels_(std::move(labels)),
        gamma_(std::move(gamma)),
        rows_(rows),
        d_(d),
        riemannian_(riemannian),
        sign_(sign),
        recorder_(std::move(recorder)),
        mean_in_(at::empty({rows, d}, at::kFloat)),
        tril_in_(at::empty({rows, nn::TriangleSize(d)}, at::kFloat)) {}

  absl::StatusOr<Tangent> Velocity(const State& x, double t) {
    const int64_t d = d_, dd = d * d, tri = nn::TriangleSize(d);
    float* mf = mean_in_.data_ptr<float>();
    float* tf = tril_in_.data_ptr<float>();
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t a = 0; a < d; ++a) mf[i * d + a] = static_cast<float>(x.m[i * d + a]);
      const double* si = x.s.data() + i * dd;
      float* ti = tf + i * tri;
      for (int64_t a = 0, p = 0; a < d; ++a) {
        for (int64_t b = 0; b <= a; ++b, ++p) ti[p] = static_cast<float>(si[a * d + b]);
      }
    }
    nn::GaussianVelocity v;
    if (gamma_.defined()) {
      // The conditional and null rows in one forward; each row's velocity
      // depends on that row alone.
      const nn::GaussianVelocity both =
          net_->forward(at::cat({mean_in_, mean_in_}), at::cat({tril_in_, tril_in_}),
                        at::full({2 * rows_}, static_cast<float>(t), at::kFloat), labels_);
      const auto guided = [&](const at::Tensor& x) {
        const at::Tensor vc = x.narrow(0, 0, rows_), vu = x.narrow(0, rows_, rows_);
        return vu + gamma_ * (vc - vu);
      };
      v = {guided(both.mean), guided(both.cov_tril)};
    } else {
      v = net_->forward(mean_in_, tril_in_, at::full({rows_}, static_cast<float>(t), at::kFloat),
                        labels_);
    }
    const at::Tensor vm = v.mean.contiguous(), vc = v.cov_tril.contiguous();
    const float* um = vm.data_ptr<float>();
    const float* uc = vc.data_ptr<float>();
    Tangent k;
    k.u.assign(um, um + rows_ * d);
    k.w.resize(rows_ * dd);
    for (int64_t i = 0; i < rows_; ++i) {
      // W = L + Lᵀ from the predicted lower triangle.
      const float* ci = uc + i * tri;
      double* wi = k.w.data() + i * dd;
      for (int64_t a = 0, p = 0; a < d; ++a) {
        for (int64_t b = 0; b <= a; ++b, ++p) {
          const double w = static_cast<double>(ci[p]);
          wi[a * d + b] = a == b ? 2.0 * w : w;
          wi[b * d + a] = wi[a * d + b];
        }
      }
    }
    return k;
  }

  absl::StatusOr<State> Advance(const State& x, const Terms<Tangent>& terms, double h) {
    const int64_t d = d_, dd = d * d;
    // The combined velocity; a single term of weight 1 is used as it is.
    const Tangent* k = terms[0].second;
    Tangent combined;
    if (terms.size() > 1 || terms[0].first != 1.0) {
      combined.u.assign(x.m.size(), 0.0);
      combined.w.assign(x.s.size(), 0.0);
      for (const auto& [weight, term] : terms) {
        for (size_t e = 0; e < combined.u.size(); ++e) combined.u[e] += weight * term->u[e];
        for (size_t e = 0; e < combined.w.size(); ++e) combined.w[e] += weight * term->w[e];
      }
      k = &combined;
    }
    State out;
    out.m.resize(x.m.size());
    for (size_t e = 0; e < x.m.size(); ++e) out.m[e] = x.m[e] - h * k->u[e];
    out.s.resize(x.s.size());
    std::vector<double> u_mat(dd), tmp(dd);
    for (int64_t i = 0; i < rows_; ++i) {
      const double* si = x.s.data() + i * dd;
      const double* wi = k->w.data() + i * dd;
      double* so = out.s.data() + i * dd;
      if (riemannian_) {
        // S ← U S Uᵀ, U = I + sign·h·W (symmetric, so Uᵀ = U).
        for (int64_t e = 0; e < dd; ++e) u_mat[e] = sign_ * h * wi[e];
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
            so[a * d + b] = acc;
          }
        }
        for (int64_t a = 0; a < d; ++a) {
          for (int64_t b = 0; b < a; ++b) so[b * d + a] = so[a * d + b];
        }
      } else {
        for (int64_t e = 0; e < dd; ++e) so[e] = si[e] + sign_ * h * wi[e];
      }
    }
    if (!riemannian_) {
      if (!AllFinite(out.s)) return NonFinite();
      // S ← ProjectSpd(S ∓ h·W), per item.
      const at::Tensor all = at::from_blob(out.s.data(), {rows_, d, d}, at::kDouble);
      WFM_ASSIGN_OR_RETURN(const at::Tensor projected, gaussian::ProjectSpd(all));
      const at::Tensor pc = projected.contiguous();
      std::copy_n(pc.data_ptr<double>(), rows_ * dd, out.s.data());
    }
    return out;
  }

  double ErrorNorm(const State& x, const State& high, const State& low, double rtol,
                   double atol) const {
    double sum = 0.0;
    auto add = [&](const std::vector<double>& a, const std::vector<double>& hi,
                   const std::vector<double>& lo) {
      for (size_t e = 0; e < a.size(); ++e) {
        const double scale = atol + rtol * std::max(std::abs(a[e]), std::abs(hi[e]));
        const double r = (hi[e] - lo[e]) / scale;
        sum += r * r;
      }
    };
    add(x.m, high.m, low.m);
    add(x.s, high.s, low.s);
    return std::sqrt(sum / static_cast<double>(x.m.size() + x.s.size()));
  }

  void Record(const State& x, int64_t frame, double t) { recorder_(x, frame, t); }

 private:
  nn::GaussianVelocityNet net_;
  at::Tensor labels_;
  at::Tensor gamma_;  // [rows, 1] when guided
  int64_t rows_, d_;
  bool riemannian_;
  double sign_;
  Recorder recorder_;
  at::Tensor mean_in_, tril_in_;
};

}  // namespace

absl::StatusOr<std::vector<GeneratedGaussians>> GaussianModel::Sample(
    const std::vector<GaussianSampleRequest>& requests, const std::function<bool()>& cancelled) const {
  for (const auto& r : requests) WFM_RETURN_IF_ERROR(ValidateRequest(r));
  return GuardTorch("Sample", [&]() -> absl::StatusOr<std::vector<GeneratedGaussians>> {
    c10::InferenceMode inference;
    const int64_t d = dim();
    const int64_t dd = d * d;
    const bool labelled = labels_.kind == LabelSpace::Kind::kDiscrete;
    const bool continuous = labels_.kind == LabelSpace::Kind::kContinuous;
    const int64_t c = labels_.cond_dim;
    std::vector<GeneratedGaussians> outs(requests.size());
    // Per request: source means, covariances and label codes.
    std::vector<std::vector<double>> means(requests.size()), covs(requests.size());
    std::vector<std::vector<int64_t>> codes(requests.size());
    for (size_t r = 0; r < requests.size(); ++r) {
      WFM_RETURN_IF_ERROR(PrepareRequest(requests[r], &means[r], &covs[r], &codes[r], &outs[r]));
    }
    // Requests of one fixed-step solver, step count, update rule and velocity
    // mode integrate together; an adaptive request integrates alone (its own
    // time grid).
    std::vector<double> gammas(requests.size(), 1.0);
    using GroupKey = std::tuple<int, int64_t, bool, double, double, int64_t, int>;
    std::map<GroupKey, std::vector<size_t>> groups;
    for (size_t r = 0; r < requests.size(); ++r) {
      const GaussianSampleRequest& q = requests[r];
      const bool adaptive = q.solver == OdeSolver::kAdaptive;
      if (labels_.conditional()) gammas[r] = q.guidance.value_or(default_guidance());
      const VelocityMode mode = ModeOf(gammas[r]);
      groups[{static_cast<int>(q.solver), q.steps, q.reference_cov_sign, adaptive ? q.rtol : 0.0,
              adaptive ? q.atol : 0.0, adaptive ? static_cast<int64_t>(r) : -1,
              static_cast<int>(mode)}]
          .push_back(r);
    }
    for (const auto& group : groups) {
      const std::vector<size_t>& members = group.second;
      const GaussianSampleRequest& lead = requests[members.front()];
      // W enters as U = I + sign·h·W: −1 is the corrected update (I + h·V).
      const double sign = lead.reference_cov_sign ? 1.0 : -1.0;
      // The group's rows: request members[k] owns rows [first[k], first[k+1]).
      std::vector<int64_t> first = {0};
      for (size_t r : members) first.push_back(first.back() + requests[r].num_samples);
      const int64_t g = first.back();
      GaussianState x;
      x.m.resize(g * d);
      x.s.resize(g * dd);
      at::Tensor label_tensor;
      if (labelled) label_tensor = at::empty({g}, at::kLong);
      if (continuous) label_tensor = at::empty({g, c}, at::kFloat);
      for (size_t k = 0; k < members.size(); ++k) {
        const size_t r = members[k];
        std::copy(means[r].begin(), means[r].end(), x.m.begin() + first[k] * d);
        std::copy(covs[r].begin(), covs[r].end(), x.s.begin() + first[k] * dd);
        if (labelled) {
          std::copy(codes[r].begin(), codes[r].end(), label_tensor.data_ptr<int64_t>() + first[k]);
        }
        if (continuous) {
          std::copy(outs[r].conditions.begin(), outs[r].conditions.end(),
                    label_tensor.data_ptr<float>() + first[k] * c);
        }
      }
      auto record = [&](const GaussianState& state, int64_t frame, double t) {
        for (size_t k = 0; k < members.size(); ++k) {
          const GaussianSampleRequest& req = requests[members[k]];
          if (!req.trajectory) continue;
          GeneratedGaussians& out = outs[members[k]];
          const int64_t n = req.num_samples;
          out.trajectory_means.resize((frame + 1) * n * d);
          out.trajectory_covs.resize((frame + 1) * n * dd);
          out.trajectory_times.resize(frame + 1);
          out.trajectory_times[frame] = t;
          std::copy_n(state.m.data() + first[k] * d, n * d, out.trajectory_means.data() + frame * n * d);
          std::copy_n(state.s.data() + first[k] * dd, n * dd,
                      out.trajectory_covs.data() + frame * n * dd);
        }
      };
      // γ 1 is the conditional velocity, γ 0 the null condition's alone.
      const VelocityMode mode = ModeOf(gammas[members.front()]);
      at::Tensor gamma_tensor;
      if (mode == VelocityMode::kNull) {
        label_tensor = nn::GaussianNullCondition(net_->config(), g);
      } else if (mode == VelocityMode::kGuided) {
        gamma_tensor = at::empty({g, 1}, at::kFloat);
        for (size_t k = 0; k < members.size(); ++k) {
          gamma_tensor.narrow(0, first[k], first[k + 1] - first[k])
              .fill_(static_cast<float>(gammas[members[k]]));
        }
        label_tensor = at::cat({label_tensor, nn::GaussianNullCondition(net_->config(), g)});
      }
      GaussianFlow flow(net_, label_tensor, gamma_tensor, g, d, riemannian_, sign, record);
      WFM_ASSIGN_OR_RETURN(const OdeStats stats, Integrate(flow, &x, lead.ode(), cancelled));
      if (!AllFinite(x.m) || !AllFinite(x.s)) return NonFinite();
      // Outputs: exactly symmetric, and positive definite (safeguard).
      for (size_t k = 0; k < members.size(); ++k) {
        GeneratedGaussians& out = outs[members[k]];
        out.evaluations = stats.evaluations;
        const int64_t n = requests[members[k]].num_samples;
        std::copy_n(x.m.data() + first[k] * d, n * d, out.means.data());
        for (int64_t i = 0; i < n; ++i) {
          double* dst = out.covs.data() + i * dd;
          std::copy_n(x.s.data() + (first[k] + i) * dd, dd, dst);
          gaussian::SymmetrizeInPlace(dst, d);
          if (!gaussian::CheckSpd(dst, d).ok()) {
            const at::Tensor one = at::from_blob(dst, {1, d, d}, at::kDouble);
            gaussian::EigenvalueFloor floor;
            floor.absolute = kSafeguardFloor * stats_.cov_diag_mean;
            WFM_ASSIGN_OR_RETURN(const at::Tensor fixed, gaussian::ProjectSpd(one, floor));
            std::copy_n(fixed.contiguous().data_ptr<double>(), dd, dst);
            gaussian::SymmetrizeInPlace(dst, d);
          }
        }
      }
    }
    return outs;
  });
}

}  // namespace wfm::model
