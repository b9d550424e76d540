#include "model/train/gaussian_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include "absl/strings/str_cat.h"
#include "model/checkpoint/adam_state.h"
#include "model/checkpoint/module_state.h"
#include "model/common/parallel.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/gaussian/bures.h"
#include "model/gaussian/losses.h"
#include "model/gaussian/triangle.h"
#include "model/ot/cloud_costs.h"
#include "model/checkpoint/model_files.h"
#include "model/train/fused_adam.h"
#include "model/train/train_common.h"

namespace wfm::model {
namespace {

// Means [C,d] and covariances [C,d,d] of a set as float64 tensors (copies).
at::Tensor MeansTensor(const io::GaussianSet& set) {
  return at::tensor(set.means, at::kDouble).view({set.num_gaussians(), set.dim});
}
at::Tensor CovsTensor(const io::GaussianSet& set) {
  return at::tensor(set.covs, at::kDouble).view({set.num_gaussians(), set.dim, set.dim});
}

// The reference's schedule: decay_steps = min(decay_steps, steps // 100).
int64_t EffectiveDecaySteps(const OptimizerConfig& o) {
  return std::min(o.decay_steps, o.steps / 100);
}

}  // namespace

absl::StatusOr<io::GaussianSet> GaussiansFromPointClouds(const io::PointCloudSet& clouds, int ddof,
                                                         double ridge) {
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(clouds, "clouds"));
  if (ddof != 0 && ddof != 1) {
    return absl::InvalidArgumentError(absl::StrCat("ddof: must be 0 or 1, got ", ddof));
  }
  if (!(std::isfinite(ridge) && ridge >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("ridge: must be a finite number >= 0, got ", ridge));
  }
  const int64_t d = clouds.dim, c = clouds.num_clouds();
  io::GaussianSet out;
  out.dim = d;
  out.labels = clouds.labels;
  out.means.assign(c * d, 0.0);
  out.covs.assign(c * d * d, 0.0);
  for (int64_t k = 0; k < c; ++k) {
    const int64_t n = clouds.cloud_size(k);
    if (n <= ddof) {
      return absl::InvalidArgumentError(absl::StrCat("clouds: cloud ", k, " has ", n,
                                                     " point(s); a covariance with ddof ", ddof,
                                                     " needs at least ", ddof + 1));
    }
    const float* x = clouds.points.data() + clouds.offsets[k] * d;
    double* mean = out.means.data() + k * d;
    double* cov = out.covs.data() + k * d * d;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t a = 0; a < d; ++a) mean[a] += x[i * d + a];
    }
    for (int64_t a = 0; a < d; ++a) mean[a] /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t a = 0; a < d; ++a) {
        const double xa = x[i * d + a] - mean[a];
        for (int64_t b = 0; b <= a; ++b) cov[a * d + b] += xa * (x[i * d + b] - mean[b]);
      }
    }
    const double denom = static_cast<double>(n - ddof);
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t b = 0; b <= a; ++b) {
        cov[a * d + b] = cov[a * d + b] / denom + (a == b ? ridge : 0.0);
        cov[b * d + a] = cov[a * d + b];
      }
    }
  }
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(out, "clouds"));
  return out;
}

absl::StatusOr<std::unique_ptr<GaussianTrainer>> GaussianTrainer::Create(
    const io::GaussianSet& data, const GaussianTrainConfig& config, const std::string& dataset,
    const io::GaussianSet* source, const DistributedRole& role) {
  std::unique_ptr<GaussianTrainer> t(new GaussianTrainer());
  WFM_RETURN_IF_ERROR(t->Init(data, config, dataset, source, role));
  return t;
}

absl::Status GaussianTrainer::Init(const io::GaussianSet& data, const GaussianTrainConfig& config,
                                   const std::string& dataset, const io::GaussianSet* source,
                                   const DistributedRole& role) {
  WFM_RETURN_IF_ERROR(ValidateGaussianTrainConfig(config));
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(data, "dataset"));
  WFM_RETURN_IF_ERROR(ValidateDistributedRole(role, config.optimizer.batch_size));
  config_ = config;
  role_ = role;
  dataset_ = dataset;
  dim_ = data.dim;
  count_ = data.num_gaussians();
  WFM_ASSIGN_OR_RETURN(labels_, EncodeLabels(data.labels));
  const bool given = config.source != GaussianSource::kWishart;
  if (given) {
    if (source == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "noise: '", GaussianSourceName(config.source), "' needs the source Gaussians"));
    }
    WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(*source, "source"));
    if (source->dim != data.dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source: Gaussians have dimension ", source->dim, ", the data set ", data.dim));
    }
    if (config.source == GaussianSource::kGivenMatched &&
        source->num_gaussians() != data.num_gaussians()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source: given_matched needs one source Gaussian per data Gaussian (",
          data.num_gaussians(), "), got ", source->num_gaussians()));
    }
  } else if (source != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source: source Gaussians were given but noise is '", GaussianSourceName(config.source),
        "' (use given_random or given_matched)"));
  }
  WFM_ASSIGN_OR_RETURN(stats_, noise::ComputeGaussianStats(data));
  if (!given) {
    WFM_ASSIGN_OR_RETURN(wishart_, noise::MakeWishartSource(stats_, config.degrees_of_freedom_scale,
                                                            config.mean_scale_factor,
                                                            config.cov_scale_factor));
  }
  WFM_ASSIGN_OR_RETURN(const nn::GaussianNetConfig net_config,
                       GaussianNetConfigFor(config_, labels_.space, dim_));
  // Minibatch OT re-pairs sources and data: only for unconditional models
  // with sources not matched one-to-one (as the reference).
  minibatch_ot_ = config.minibatch_ot && !labels_.space.conditional() &&
                  config.source != GaussianSource::kGivenMatched;
  p_uncond_ = labels_.space.conditional() && config.guidance > 1.0 ? config.p_uncond : 0.0;
  riemannian_ = config.velocity == "riemannian";
  tangent_loss_ = config.loss == "tangent";

  return GuardTorch("GaussianTrainer", [&]() -> absl::Status {
    means_ = MeansTensor(data);
    covs_ = CovsTensor(data);
    if (labels_.space.kind == LabelSpace::Kind::kDiscrete) codes_ = Int64Tensor(labels_.codes);
    if (labels_.space.kind == LabelSpace::Kind::kContinuous) {
      conditions_ = FloatTensor(labels_.conditions, {count_, labels_.space.cond_dim});
    }
    if (given) {
      source_means_ = MeansTensor(*source);
      source_covs_ = CovsTensor(*source);
    }
    at::Generator init = at::make_generator<at::CPUGeneratorImpl>(config.optimizer.seed);
    WFM_ASSIGN_OR_RETURN(net_, nn::MakeGaussianVelocityNet(net_config, init));
    net_->train();
    state_ = std::make_unique<OptimizationState>(net_.ptr(), config_.optimizer,
                                                 EffectiveDecaySteps(config.optimizer));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::unique_ptr<GaussianTrainer>> GaussianTrainer::Resume(
    const io::GaussianSet& data, const checkpoint::Checkpoint& ckpt, const io::GaussianSet* source,
    int64_t steps, const DistributedRole& role) {
  WFM_ASSIGN_OR_RETURN(const GaussianTrainConfig config,
                       ResumeConfig<GaussianTrainConfig>(ckpt, kGaussianModelFormat,
                                                         kGaussianModelVersion, steps,
                                                         GaussianTrainConfigFromJson));
  int64_t dim = 0;
  try {
    dim = ckpt.metadata.at("dim").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint metadata: ", e.what()));
  }
  if (dim != data.dim) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: dimension ", data.dim,
                                                   " differs from the checkpoint's ", dim));
  }
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<GaussianTrainer> t,
                       Create(data, config, ckpt.metadata.value("dataset", ""), source, role));
  WFM_RETURN_IF_ERROR(t->state_->ResumeFrom(ckpt));
  return t;
}

absl::Status GaussianTrainer::InitWeightsFrom(const checkpoint::Checkpoint& ckpt) {
  WFM_RETURN_IF_ERROR(CheckModelFormat(ckpt.metadata, kGaussianModelFormat, kGaussianModelVersion));
  return state_->InitWeightsFrom(ckpt);
}

absl::StatusOr<double> GaussianTrainer::Step(const TrainHooks& hooks) {
  return GuardTorch("Step", [&]() -> absl::StatusOr<double> {
    namespace gu = gaussian::unchecked;
    auto t0 = TrainClock::now();
    const int64_t global = config_.optimizer.batch_size;
    const int64_t share = global / role_.world_size;
    const int64_t first = role_.rank * share;
    at::Generator& gen = state_->generator();

    // The global batch's draws, in a fixed order on every rank. Drawing them
    // and the network phase (below) run on this thread alone: at the usual
    // batch sizes each of their parallel loops (the network's layer norms
    // over a few rows, elementwise updates of each parameter: ~60 per step)
    // costs more to wake a thread for than it saves (CallingThreadOnly),
    // and their products run on this thread's BLAS anyway. The pairing's
    // batch × batch costs and the transport's per-item maps keep the threads.
    std::optional<CallingThreadOnly> on_this_thread(std::in_place);
    const at::Tensor idx = at::randint(count_, {global}, gen, at::kLong);
    at::Tensor m0_all, s0_all;
    if (config_.source == GaussianSource::kWishart) {
      WFM_ASSIGN_OR_RETURN(noise::GaussianBatch noise,
                           noise::SampleWishartSource(wishart_, global, gen));
      m0_all = noise.means;
      s0_all = noise.covs;
    } else {
      const at::Tensor sidx = config_.source == GaussianSource::kGivenMatched
                                  ? idx
                                  : at::randint(source_means_.size(0), {global}, gen, at::kLong);
      m0_all = source_means_.index_select(0, sidx);
      s0_all = source_covs_.index_select(0, sidx);
    }
    const at::Tensor t_all = SampleFlowTimes(config_.time_distribution, global, gen);
    at::Tensor uncond_all;
    if (p_uncond_ > 0) uncond_all = at::rand({global}, gen, at::kFloat) < p_uncond_;

    // This rank's share.
    const at::Tensor rows = idx.narrow(0, first, share);
    const at::Tensor m1 = means_.index_select(0, rows);
    const at::Tensor s1 = covs_.index_select(0, rows);
    at::Tensor m0 = m0_all.narrow(0, first, share);
    at::Tensor s0 = s0_all.narrow(0, first, share);
    const at::Tensor t = t_all.narrow(0, first, share);
    at::Tensor labels;
    if (codes_.defined()) labels = codes_.index_select(0, rows);
    if (conditions_.defined()) labels = conditions_.index_select(0, rows);
    if (p_uncond_ > 0) {
      const at::Tensor drop = uncond_all.narrow(0, first, share);
      const at::Tensor null = nn::GaussianNullCondition(net_->config(), share);
      labels = at::where(labels.dim() == 2 ? drop.unsqueeze(1) : drop, null, labels);
    }
    phases_.noise += SecondsSince(t0);
    t0 = TrainClock::now();
    on_this_thread.reset();

    if (minibatch_ot_ && share > 1) {
      // Cost [data, source]; the pairing gives each data item its source.
      const at::Tensor cost = gu::PairwiseBuresWasserstein(m1, s1, m0, s0);
      ot::SinkhornOptions pairing;
      pairing.epsilon = config_.minibatch_epsilon;
      pairing.iterations = 200;
      WFM_ASSIGN_OR_RETURN(const at::Tensor perm, ot::MinibatchPairing(cost, pairing));
      m0 = m0.index_select(0, perm);
      s0 = s0.index_select(0, perm);
    }
    phases_.pairing += SecondsSince(t0);
    t0 = TrainClock::now();

    const at::Tensor s = 1.0 - t.to(at::kDouble);
    const auto [a, b] = gu::GaussianMongeMap(m0, s0, m1, s1);
    const auto [m_s, s_s] = gu::McCannInterpolate(m0, s0, a, b, s);
    const auto [dm, target] = riemannian_ ? gu::RiemannianVelocity(m0, s0, a, b, s)
                                          : gu::EuclideanVelocity(m0, s0, a, b, s);
    const at::Tensor mean_in = m_s.to(at::kFloat);
    const at::Tensor s_in = s_s.to(at::kFloat);
    const at::Tensor tril_in = gaussian::unchecked::LowerTriangleEncode(s_in);
    const at::Tensor dm_f = dm.to(at::kFloat);
    const at::Tensor target_f = target.to(at::kFloat);
    phases_.transport += SecondsSince(t0);
    t0 = TrainClock::now();

    on_this_thread.emplace();
    const nn::GaussianVelocity pred = net_->forward(mean_in, tril_in, t, labels);
    const at::Tensor w = gaussian::unchecked::SymmetricFromLowerTriangle(pred.cov_tril, dim_);
    const at::Tensor per_item =
        tangent_loss_ ? gaussian::unchecked::TangentNormLoss(-pred.mean, -w, dm_f, target_f, s_in)
                      : gaussian::unchecked::EuclideanNormLoss(-pred.mean, -w, dm_f, target_f);
    const at::Tensor loss = per_item.mean();
    absl::StatusOr<double> applied = state_->Apply(loss, hooks);
    phases_.network += SecondsSince(t0);
    ++phases_.steps;
    return applied;
  });
}

absl::Status GaussianTrainer::Train(const TrainHooks& hooks) {
  return state_->Train(hooks, config_.optimizer.steps, config_.checkpoint_every,
                       [&]() { return Step(hooks); });
}

TrainingSummary GaussianTrainer::Summary() const {
  TrainingSummary s;
  s.dataset = dataset_;
  s.items = count_;
  state_->Summarize(&s);
  s.world_size = role_.world_size;
  return s;
}

absl::StatusOr<checkpoint::Checkpoint> GaussianTrainer::MakeCheckpoint(bool with_optimizer) const {
  return GuardTorch("MakeCheckpoint", [&]() -> absl::StatusOr<checkpoint::Checkpoint> {
    checkpoint::Checkpoint ckpt;
    ckpt.metadata = ModelMetadata(kGaussianModelFormat, kGaussianModelVersion, Family::kGaussian,
                                  dim_, ToJson(config_), labels_.space, Summary(), dataset_);
    ckpt.metadata["data_stats"] = stats_.ToJson();
    WFM_ASSIGN_OR_RETURN(ckpt.tensors, checkpoint::StateTensors(*net_));
    WFM_ASSIGN_OR_RETURN(checkpoint::NamedTensors ema, state_->SamplingWeights());
    for (auto& entry : ema) ckpt.tensors.push_back(std::move(entry));
    if (codes_.defined()) ckpt.tensors.emplace_back("data.label_codes", codes_.clone());
    if (conditions_.defined()) ckpt.tensors.emplace_back("data.conditions", conditions_.clone());
    if (source_means_.defined()) {
      ckpt.tensors.emplace_back("source.means", source_means_.clone());
      ckpt.tensors.emplace_back("source.covs", source_covs_.clone());
    }
    if (with_optimizer) WFM_RETURN_IF_ERROR(state_->AddTo(&ckpt));
    return ckpt;
  });
}

absl::StatusOr<std::shared_ptr<const GaussianModel>> GaussianTrainer::MakeModel() const {
  WFM_ASSIGN_OR_RETURN(checkpoint::Checkpoint ckpt, MakeCheckpoint(false));
  return GaussianModel::FromCheckpoint(ckpt);
}

}  // namespace wfm::model
