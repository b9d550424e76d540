#include "model/sample/pointcloud_model.h"

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

namespace wfm::model {

// How a cloud's velocity is evaluated.
enum class VelocityMode {
  kPlain,   // unconditional model
  kNull,    // conditional model, γ = 0: the null condition only
  kCond,    // γ = 1: the condition only
  kGuided,  // v_u + γ (v_c − v_u)
};

struct PointCloudModel::CloudJob {
  size_t request = 0;
  int64_t sample = 0;
  int64_t points = 0;
  OdeSettings ode;
  VelocityMode mode = VelocityMode::kPlain;
  double gamma = 1.0;
  int64_t code = -1;     // discrete label code
  at::Tensor condition;  // continuous: float32 [cond_dim]
  at::Tensor x0;         // float32 [points, dim]: the source cloud
  bool trajectory = false;
};

namespace {

int64_t Draw(at::Generator& gen, int64_t n) {
  return at::randint(n, {1}, gen, at::kLong).item<int64_t>();
}

}  // namespace

io::PointCloudSet ToPointCloudSet(GeneratedClouds generated) {
  return {generated.dim, std::move(generated.points), std::move(generated.offsets), {}};
}

nn::PointCloudNetConfig PointCloudNetConfigFor(const PointCloudTrainConfig& config,
                                               const LabelSpace& labels, int64_t dim) {
  nn::PointCloudNetConfig c;
  c.space_dim = dim;
  c.width = config.network.width;
  c.heads = config.network.heads;
  c.layers = config.network.layers;
  c.mlp_hidden = config.network.mlp_hidden;
  c.dropout = config.network.dropout;
  switch (labels.kind) {
    case LabelSpace::Kind::kNone: c.condition = nn::ConditionKind::kNone; break;
    case LabelSpace::Kind::kDiscrete:
      c.condition = nn::ConditionKind::kDiscrete;
      c.num_classes = static_cast<int64_t>(labels.names.size());
      break;
    case LabelSpace::Kind::kContinuous:
      c.condition = nn::ConditionKind::kContinuous;
      c.cond_dim = labels.cond_dim;
      break;
  }
  return c;
}

absl::StatusOr<std::shared_ptr<const PointCloudModel>> PointCloudModel::Load(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(checkpoint::Checkpoint ckpt, checkpoint::Read(path));
  return FromCheckpoint(ckpt);
}

absl::StatusOr<std::shared_ptr<const PointCloudModel>> PointCloudModel::FromCheckpoint(
    const checkpoint::Checkpoint& ckpt) {
  std::shared_ptr<PointCloudModel> m(new PointCloudModel());
  const nlohmann::json& meta = ckpt.metadata;
  WFM_RETURN_IF_ERROR(CheckModelFormat(meta, kPointCloudModelFormat, kPointCloudModelVersion));
  m->metadata_ = meta;
  try {
    WFM_ASSIGN_OR_RETURN(m->config_, PointCloudTrainConfigFromJson(meta.at("config")));
    WFM_ASSIGN_OR_RETURN(m->labels_, LabelSpace::FromJson(meta.at("labels")));
    WFM_ASSIGN_OR_RETURN(m->stats_, noise::PointCloudStats::FromJson(meta.at("data_stats")));
    m->summary_ = TrainingSummary::FromJson(meta.value("summary", nlohmann::json::object()));
    if (meta.contains("feature_transform")) {
      WFM_ASSIGN_OR_RETURN(m->transform_, FeatureTransform::FromJson(meta["feature_transform"]));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint metadata: ", e.what()));
  }
  WFM_ASSIGN_OR_RETURN(m->sizes_, TensorToInt64(ckpt, "data.sizes"));
  if (m->sizes_.empty() ||
      std::any_of(m->sizes_.begin(), m->sizes_.end(), [](int64_t n) { return n < 1; })) {
    return absl::DataLossError("checkpoint: data.sizes must hold one positive size per cloud");
  }
  if (m->labels_.kind == LabelSpace::Kind::kDiscrete) {
    WFM_ASSIGN_OR_RETURN(std::vector<int64_t> codes, TensorToInt64(ckpt, "data.label_codes"));
    const int64_t k = static_cast<int64_t>(m->labels_.names.size());
    if (codes.size() != m->sizes_.size()) {
      return absl::DataLossError("checkpoint: data.label_codes and data.sizes differ in length");
    }
    m->sizes_by_label_.assign(k, {});
    for (size_t i = 0; i < codes.size(); ++i) {
      if (codes[i] < 0 || codes[i] >= k) {
        return absl::DataLossError(absl::StrCat("checkpoint: data.label_codes[", i, "] out of range"));
      }
      m->sizes_by_label_[codes[i]].push_back(m->sizes_[i]);
    }
  } else if (m->labels_.kind == LabelSpace::Kind::kContinuous) {
    WFM_ASSIGN_OR_RETURN(m->train_conditions_, TensorToFloat(ckpt, "data.conditions"));
    if (m->train_conditions_.size() != m->sizes_.size() * m->labels_.cond_dim) {
      return absl::DataLossError("checkpoint: data.conditions does not hold one vector per cloud");
    }
  }
  if (m->config_.source == PointCloudSource::kGivenRandom ||
      m->config_.source == PointCloudSource::kGivenMatched) {
    WFM_ASSIGN_OR_RETURN(m->source_points_, TensorToFloat(ckpt, "source.points"));
    WFM_ASSIGN_OR_RETURN(m->source_offsets_, TensorToInt64(ckpt, "source.offsets"));
    WFM_RETURN_IF_ERROR(CheckOffsets(m->source_offsets_, m->source_points_.size(), m->dim(),
                                     "source.offsets"));
  }
  const nn::PointCloudNetConfig net_config = PointCloudNetConfigFor(m->config_, m->labels_, m->dim());
  WFM_RETURN_IF_ERROR(GuardTorch("PointCloudModel", [&]() -> absl::Status {
    at::Generator init = at::make_generator<at::CPUGeneratorImpl>(0);
    WFM_ASSIGN_OR_RETURN(m->net_, nn::MakePointCloudVelocityNet(net_config, init));
    WFM_RETURN_IF_ERROR(checkpoint::LoadStateTensors(*m->net_, ckpt.tensors,
                                                     checkpoint::SamplingPrefix(ckpt.tensors)));
    m->net_->eval();
    m->inference_ = std::make_unique<const nn::PointCloudInference>(*m->net_);
    return absl::OkStatus();
  }));
  return std::shared_ptr<const PointCloudModel>(std::move(m));
}

double PointCloudModel::default_guidance() const {
  return config_.guidance > 1.0 ? config_.guidance : 1.0;
}

int64_t PointCloudModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : net_->parameters()) n += p.numel();
  return n;
}

int64_t PointCloudModel::memory_bytes() const {
  return checkpoint::StateBytes(*net_) + (inference_ != nullptr ? inference_->bytes() : 0) +
         static_cast<int64_t>((train_conditions_.size() + source_points_.size()) * sizeof(float) +
                              source_offsets_.size() * sizeof(int64_t));
}

absl::Status PointCloudModel::ValidateInit(const CloudSampleRequest& r,
                                           const SampleLimits& limits) const {
  if (r.init_sizes.empty()) {
    if (r.init_points.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "init_sizes: required with init_points (the points of each given source cloud)");
  }
  if (static_cast<int64_t>(r.init_sizes.size()) != r.num_samples) {
    return absl::InvalidArgumentError(
        absl::StrCat("init_sizes: ", r.init_sizes.size(), " given source clouds for num_samples ",
                     r.num_samples, "; one source cloud per sample"));
  }
  int64_t total = 0;
  for (size_t s = 0; s < r.init_sizes.size(); ++s) {
    const int64_t n = r.init_sizes[s];
    if (n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("init_sizes[", s, "]: a source cloud needs >= 1 point, got ", n));
    }
    if (n > limits.max_points) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "init_sizes[", s, "]: ", n, " points exceed the limit of ", limits.max_points));
    }
    if (r.points > 0 && n != r.points) {
      return absl::InvalidArgumentError(
          absl::StrCat("points: ", r.points, " per sample, but given source cloud ", s, " has ", n,
                       " points; leave points at 0 with given sources (their sizes are the "
                       "generated clouds' sizes)"));
    }
    total += n;
  }
  const int64_t d = dim();
  if (static_cast<int64_t>(r.init_points.size()) != total * d) {
    return absl::InvalidArgumentError(
        absl::StrCat("init_points: ", r.init_points.size(), " values; the ", total,
                     " points of init_sizes in dimension ", d, " need ", total * d));
  }
  const bool log1p = transform_.kind() == "log1p" || transform_.kind() == "log1p_standardize";
  for (size_t i = 0; i < r.init_points.size(); ++i) {
    const float v = r.init_points[i];
    if (!std::isfinite(v) || (log1p && v < 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "init_points[", static_cast<int64_t>(i) / d, ", ", static_cast<int64_t>(i) % d, "] = ", v,
          std::isfinite(v) ? ": the model's feature transform (" + transform_.kind() +
                                 ") needs non-negative values"
                           : ": values must be finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status PointCloudModel::ValidateRequest(const CloudSampleRequest& r,
                                              const SampleLimits& limits) const {
  if (r.num_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_samples: must be >= 1, got ", r.num_samples));
  }
  if (r.num_samples > limits.max_samples) {
    return absl::ResourceExhaustedError(absl::StrCat("num_samples: ", r.num_samples,
                                                     " exceeds the limit of ", limits.max_samples));
  }
  if (r.points < 0) {
    return absl::InvalidArgumentError(absl::StrCat("points: must be >= 0 (0 = training sizes), got ", r.points));
  }
  if (r.points > limits.max_points) {
    return absl::ResourceExhaustedError(absl::StrCat("points: ", r.points, " per sample exceeds the limit of ",
                                                     limits.max_points));
  }
  WFM_RETURN_IF_ERROR(ValidateInit(r, limits));
  if (r.points > 0 && !source_offsets_.empty() && r.init_sizes.empty()) {
    return absl::InvalidArgumentError(
        "points: this model starts from user-given source clouds, whose sizes set the sizes of "
        "the generated clouds; leave points at 0");
  }
  WFM_RETURN_IF_ERROR(ValidateOdeSettings(r.ode(), limits.max_steps));
  if (r.guidance.has_value() && !(std::isfinite(*r.guidance) && *r.guidance >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("guidance: must be a finite number >= 0, got ", *r.guidance));
  }
  if (!r.label.empty()) {
    if (labels_.kind != LabelSpace::Kind::kDiscrete) {
      return absl::InvalidArgumentError("label: this model is not conditioned on discrete labels");
    }
    WFM_RETURN_IF_ERROR(labels_.Code(r.label).status());
  }
  WFM_RETURN_IF_ERROR(labels_.CheckCondition(r.condition));
  if (r.trajectory) {
    int64_t largest = r.points;
    if (!r.init_sizes.empty()) {
      largest = *std::max_element(r.init_sizes.begin(), r.init_sizes.end());
    } else if (largest == 0) {
      largest = *std::max_element(sizes_.begin(), sizes_.end());
      for (size_t s = 0; s + 1 < source_offsets_.size(); ++s) {
        largest = std::max(largest, source_offsets_[s + 1] - source_offsets_[s]);
      }
    }
    const double values = static_cast<double>(r.steps + 1) * r.num_samples * largest * dim();
    if (values > static_cast<double>(limits.max_trajectory_values)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "trajectory: ", r.steps + 1, " frames of ", r.num_samples, " clouds exceed the limit of ",
          limits.max_trajectory_values, " values; ask for fewer steps or samples"));
    }
  }
  return absl::OkStatus();
}

absl::Status PointCloudModel::PrepareJobs(const CloudSampleRequest& r, size_t index,
                                          std::vector<CloudJob>* jobs, GeneratedClouds* out) const {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(r.seed);
  const int64_t d = dim();
  const int64_t num = r.num_samples;
  out->dim = d;
  // Labels or conditions first, then sizes, then source clouds: a request's
  // draws depend on nothing but the request.
  std::vector<int64_t> codes(num, -1);
  std::vector<at::Tensor> conditions(num);
  if (labels_.kind == LabelSpace::Kind::kDiscrete) {
    const int64_t k = static_cast<int64_t>(labels_.names.size());
    for (int64_t s = 0; s < num; ++s) {
      if (!r.label.empty()) {
        WFM_ASSIGN_OR_RETURN(codes[s], labels_.Code(r.label));
      } else {
        codes[s] = Draw(gen, k);
      }
      out->labels.push_back(labels_.names[codes[s]]);
    }
  } else if (labels_.kind == LabelSpace::Kind::kContinuous) {
    const int64_t c = labels_.cond_dim;
    const int64_t pool = static_cast<int64_t>(train_conditions_.size()) / c;
    for (int64_t s = 0; s < num; ++s) {
      const float* v = r.condition.empty() ? train_conditions_.data() + Draw(gen, pool) * c
                                           : r.condition.data();
      conditions[s] = at::from_blob(const_cast<float*>(v), {c}, at::kFloat).clone();
      out->conditions.insert(out->conditions.end(), v, v + c);
    }
  }
  std::vector<int64_t> sizes(num, r.points);
  std::vector<int64_t> source_index(num, -1);
  const bool given = !r.init_sizes.empty();
  for (int64_t s = 0; s < num; ++s) {
    if (given) {
      sizes[s] = r.init_sizes[s];
    } else if (!source_offsets_.empty()) {
      source_index[s] = Draw(gen, static_cast<int64_t>(source_offsets_.size()) - 1);
      sizes[s] = source_offsets_[source_index[s] + 1] - source_offsets_[source_index[s]];
    } else if (r.points == 0) {
      const std::vector<int64_t>& pool =
          labels_.kind == LabelSpace::Kind::kDiscrete && !sizes_by_label_[codes[s]].empty()
              ? sizes_by_label_[codes[s]]
              : sizes_;
      sizes[s] = pool[Draw(gen, static_cast<int64_t>(pool.size()))];
    }
  }
  const double gamma = r.guidance.value_or(default_guidance());
  VelocityMode mode = VelocityMode::kPlain;
  if (labels_.conditional()) {
    mode = gamma == 0.0 ? VelocityMode::kNull : gamma == 1.0 ? VelocityMode::kCond : VelocityMode::kGuided;
  }
  out->offsets.assign(1, 0);
  for (int64_t s = 0; s < num; ++s) {
    CloudJob job;
    job.request = index;
    job.sample = s;
    job.points = sizes[s];
    job.ode = r.ode();
    job.mode = mode;
    job.gamma = gamma;
    job.code = codes[s];
    job.condition = conditions[s];
    job.trajectory = r.trajectory;
    if (given) {
      // The request's own source cloud, in the space the flow was trained in.
      at::Tensor x = at::from_blob(const_cast<float*>(r.init_points.data()) + out->offsets.back() * d,
                                   {sizes[s], d}, at::kFloat)
                         .clone();
      WFM_RETURN_IF_ERROR(transform_.Apply(x.data_ptr<float>(), x.numel(), "init_points"));
      job.x0 = std::move(x);
    } else if (source_index[s] >= 0) {
      const int64_t begin = source_offsets_[source_index[s]];
      job.x0 = at::from_blob(const_cast<float*>(source_points_.data()) + begin * d, {sizes[s], d},
                             at::kFloat)
                   .clone();
    } else {
      WFM_ASSIGN_OR_RETURN(at::Tensor x,
                           noise::SamplePointCloudSource(config_.source, stats_, config_.noise_df_scale,
                                                         1, sizes[s], gen));
      job.x0 = x[0];
    }
    out->offsets.push_back(out->offsets.back() + sizes[s]);
    jobs->push_back(std::move(job));
  }
  out->points.assign(out->offsets.back() * d, 0.0f);
  if (r.trajectory) out->trajectory.reserve(MaxFrames(r.ode()) * out->offsets.back() * d);
  return absl::OkStatus();
}

namespace {

// The flow of a group of clouds for the ODE solvers: one batch per cloud
// size (the state holds a tensor [clouds, points, dim] per size).
class CloudFlow {
 public:
  using State = std::vector<at::Tensor>;
  using Tangent = std::vector<at::Tensor>;

  // One batch of clouds of one size: the velocity at (points, t).
  using BatchVelocity = std::function<at::Tensor(size_t batch, const at::Tensor& pts, double t)>;
  // Frame `frame` at time t of the batches.
  using Recorder = std::function<void(const State& x, int64_t frame, double t)>;

  CloudFlow(BatchVelocity velocity, Recorder recorder)
      : velocity_(std::move(velocity)), recorder_(std::move(recorder)) {}

  absl::StatusOr<Tangent> Velocity(const State& x, double t) {
    Tangent v(x.size());
    for (size_t b = 0; b < x.size(); ++b) v[b] = velocity_(b, x[b], t);
    return v;
  }

  absl::StatusOr<State> Advance(const State& x, const Terms<Tangent>& terms, double h) {
    State out(x.size());
    for (size_t b = 0; b < x.size(); ++b) {
      if (terms.size() == 1) {
        out[b] = x[b] - (h * terms[0].first) * (*terms[0].second)[b];
        continue;
      }
      at::Tensor sum = terms[0].first * (*terms[0].second)[b];
      for (size_t j = 1; j < terms.size(); ++j) sum.add_((*terms[j].second)[b], terms[j].first);
      out[b] = x[b] - h * sum;
    }
    return out;
  }

  double ErrorNorm(const State& x, const State& high, const State& low, double rtol,
                   double atol) const {
    double sum = 0.0;
    int64_t count = 0;
    for (size_t b = 0; b < x.size(); ++b) {
      const at::Tensor hi = high[b].to(at::kDouble);
      const at::Tensor scale = atol + rtol * at::maximum(x[b].to(at::kDouble).abs(), hi.abs());
      sum += ((hi - low[b].to(at::kDouble)) / scale).square().sum().item<double>();
      count += x[b].numel();
    }
    return std::sqrt(sum / static_cast<double>(std::max<int64_t>(count, 1)));
  }

  void Record(const State& x, int64_t frame, double t) { recorder_(x, frame, t); }

 private:
  BatchVelocity velocity_;
  Recorder recorder_;
};

}  // namespace

absl::StatusOr<std::vector<GeneratedClouds>> PointCloudModel::Sample(
    const std::vector<CloudSampleRequest>& requests, const std::function<bool()>& cancelled) const {
  for (const auto& r : requests) WFM_RETURN_IF_ERROR(ValidateRequest(r));
  return GuardTorch("Sample", [&]() -> absl::StatusOr<std::vector<GeneratedClouds>> {
    c10::InferenceMode inference;
    std::vector<GeneratedClouds> outs(requests.size());
    std::vector<CloudJob> jobs;
    for (size_t r = 0; r < requests.size(); ++r) {
      WFM_RETURN_IF_ERROR(PrepareJobs(requests[r], r, &jobs, &outs[r]));
    }
    // Clouds of one fixed-step solver, step count and velocity mode integrate
    // together; an adaptive request integrates alone (its own time grid).
    using GroupKey = std::tuple<int, int64_t, int, double, double, int64_t>;
    std::map<GroupKey, std::vector<const CloudJob*>> groups;
    for (const CloudJob& job : jobs) {
      const bool adaptive = job.ode.solver == OdeSolver::kAdaptive;
      groups[{static_cast<int>(job.ode.solver), job.ode.steps, static_cast<int>(job.mode),
              adaptive ? job.ode.rtol : 0.0, adaptive ? job.ode.atol : 0.0,
              adaptive ? static_cast<int64_t>(job.request) : -1}]
          .push_back(&job);
    }
    const int64_t d = dim();
    for (const auto& group : groups) {
      const CloudJob& lead = *group.second.front();
      const VelocityMode mode = lead.mode;
      // The group's batches: clouds of one size.
      std::map<int64_t, std::vector<const CloudJob*>> by_size;
      for (const CloudJob* job : group.second) by_size[job->points].push_back(job);
      std::vector<std::vector<const CloudJob*>> batches;
      struct BatchInputs {
        at::Tensor cond, null, cond2, gamma;
      };
      std::vector<BatchInputs> inputs;
      CloudFlow::State x;
      for (auto& [size, members] : by_size) {
        const int64_t g = static_cast<int64_t>(members.size());
        std::vector<at::Tensor> x0s, conds;
        std::vector<double> gammas;
        for (const CloudJob* job : members) {
          x0s.push_back(job->x0);
          gammas.push_back(job->gamma);
          if (labels_.kind == LabelSpace::Kind::kDiscrete) {
            conds.push_back(at::full({1}, job->code, at::kLong));
          } else if (labels_.kind == LabelSpace::Kind::kContinuous) {
            conds.push_back(job->condition.unsqueeze(0));
          }
        }
        BatchInputs in;
        in.cond = conds.empty() ? at::Tensor() : at::cat(conds);
        in.null = labels_.conditional() ? net_->NullCondition(g) : at::Tensor();
        in.gamma = at::tensor(gammas, at::kFloat).view({g, 1, 1});
        // For guidance the conditional and null batches go through one forward.
        if (mode == VelocityMode::kGuided) in.cond2 = at::cat({in.cond, in.null});
        inputs.push_back(std::move(in));
        x.push_back(at::stack(x0s));
        batches.push_back(std::move(members));
      }
      // The packed inference path: each cloud's velocity depends on that
      // cloud alone, so merged requests get the results of lone ones.
      auto velocity = [&](size_t b, const at::Tensor& pts, double t) {
        const BatchInputs& in = inputs[b];
        const int64_t g = pts.size(0);
        switch (mode) {
          case VelocityMode::kPlain:
            return inference_->Velocity(pts, at::full({g}, t, at::kFloat), {});
          case VelocityMode::kNull:
            return inference_->Velocity(pts, at::full({g}, t, at::kFloat), in.null);
          case VelocityMode::kCond:
            return inference_->Velocity(pts, at::full({g}, t, at::kFloat), in.cond);
          case VelocityMode::kGuided: {
            const at::Tensor both = inference_->Velocity(at::cat({pts, pts}),
                                                         at::full({2 * g}, t, at::kFloat), in.cond2);
            const at::Tensor vc = both.narrow(0, 0, g), vu = both.narrow(0, g, g);
            return vu + in.gamma * (vc - vu);
          }
        }
        return at::Tensor();
      };
      auto record = [&](const CloudFlow::State& state, int64_t frame, double t) {
        for (size_t b = 0; b < batches.size(); ++b) {
          const int64_t n = state[b].size(1);
          for (size_t k = 0; k < batches[b].size(); ++k) {
            const CloudJob* job = batches[b][k];
            if (!job->trajectory) continue;
            GeneratedClouds& out = outs[job->request];
            const int64_t total = out.offsets.back();
            if (static_cast<int64_t>(out.trajectory.size()) < (frame + 1) * total * d) {
              out.trajectory.resize((frame + 1) * total * d, 0.0f);
              out.trajectory_times.resize(frame + 1, 0.0);
            }
            out.trajectory_times[frame] = t;
            float* dst = out.trajectory.data() + (frame * total + out.offsets[job->sample]) * d;
            const at::Tensor src = state[b][static_cast<int64_t>(k)].contiguous();
            std::copy(src.data_ptr<float>(), src.data_ptr<float>() + n * d, dst);
          }
        }
      };
      CloudFlow flow(velocity, record);
      WFM_ASSIGN_OR_RETURN(const OdeStats stats, Integrate(flow, &x, lead.ode, cancelled));
      for (size_t b = 0; b < batches.size(); ++b) {
        const at::Tensor xb = x[b].contiguous();
        const int64_t n = xb.size(1);
        for (size_t k = 0; k < batches[b].size(); ++k) {
          const CloudJob* job = batches[b][k];
          GeneratedClouds& out = outs[job->request];
          const float* src = xb.data_ptr<float>() + static_cast<int64_t>(k) * n * d;
          std::copy(src, src + n * d, out.points.data() + out.offsets[job->sample] * d);
          out.evaluations = stats.evaluations;
        }
      }
    }
    for (GeneratedClouds& out : outs) {  // back from the space the flow was trained in
      transform_.Invert(out.points.data(), static_cast<int64_t>(out.points.size()));
      transform_.Invert(out.trajectory.data(), static_cast<int64_t>(out.trajectory.size()));
    }
    return outs;
  });
}

}  // namespace wfm::model
