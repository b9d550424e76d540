#include "model/train/pointcloud_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/checkpoint/module_state.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/checkpoint/model_files.h"
#include "model/train/train_common.h"

namespace wfm::model {
namespace {

// Points [P,d] of a set as a float32 tensor (a copy), through `transform`.
absl::StatusOr<at::Tensor> PointsTensor(const io::PointCloudSet& set,
                                        const FeatureTransform& transform, absl::string_view what) {
  at::Tensor points = at::tensor(set.points, at::kFloat).view({set.num_points(), set.dim}).clone();
  WFM_RETURN_IF_ERROR(transform.Apply(points.data_ptr<float>(), points.numel(), what));
  return points;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PointCloudTrainer>> PointCloudTrainer::Create(
    const io::PointCloudSet& data, const PointCloudTrainConfig& config, const std::string& dataset,
    const io::PointCloudSet* source, const DistributedRole& role) {
  std::unique_ptr<PointCloudTrainer> t(new PointCloudTrainer());
  WFM_RETURN_IF_ERROR(t->Init(data, config, dataset, source, role));
  return t;
}

absl::Status PointCloudTrainer::Init(const io::PointCloudSet& data,
                                     const PointCloudTrainConfig& config,
                                     const std::string& dataset, const io::PointCloudSet* source,
                                     const DistributedRole& role) {
  WFM_RETURN_IF_ERROR(ValidatePointCloudTrainConfig(config));
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(data, "dataset"));
  WFM_RETURN_IF_ERROR(ValidateDistributedRole(role, config.optimizer.batch_size));
  config_ = config;
  role_ = role;
  dataset_ = dataset;
  dim_ = data.dim;
  WFM_ASSIGN_OR_RETURN(monge_, ot::ParseMongeMapKind(config.monge_map));
  WFM_ASSIGN_OR_RETURN(minibatch_cost_, ot::ParseCloudCostKind(config.minibatch_cost));
  WFM_ASSIGN_OR_RETURN(labels_, EncodeLabels(data.labels));
  const bool given = config.source == PointCloudSource::kGivenRandom ||
                     config.source == PointCloudSource::kGivenMatched;
  if (given) {
    if (source == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "noise: '", PointCloudSourceName(config.source), "' needs the source clouds"));
    }
    WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(*source, "source"));
    if (source->dim != data.dim) {
      return absl::InvalidArgumentError(absl::StrCat("source: clouds have dimension ", source->dim,
                                                     ", the data set ", data.dim));
    }
    if (config.source == PointCloudSource::kGivenMatched &&
        source->num_clouds() != data.num_clouds()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source: given_matched needs one source cloud per data cloud (", data.num_clouds(),
          "), got ", source->num_clouds()));
    }
  } else if (source != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source: source clouds were given but noise is '", PointCloudSourceName(config.source),
        "' (use given_random or given_matched)"));
  }
  if (monge_ == ot::MongeMapKind::kEuclidean) {
    // Index pairing needs each source cloud to have its data cloud's size.
    if (given && config.source == PointCloudSource::kGivenRandom) {
      return absl::InvalidArgumentError(
          "monge_map: euclidean pairs points by index and cannot pair randomly drawn source "
          "clouds of other sizes (use given_matched sources or another map)");
    }
  }
  // Minibatch OT re-pairs noise and data: only for unconditional models with
  // sources not matched one-to-one (as the reference).
  minibatch_ot_ = config.minibatch_ot && !labels_.space.conditional() &&
                  config.source != PointCloudSource::kGivenMatched;
  p_uncond_ = labels_.space.conditional() && config.guidance > 1.0 ? config.p_uncond : 0.0;
  WFM_ASSIGN_OR_RETURN(transform_,
                       FeatureTransform::Fit(config.feature_transform, data.points, data.dim));

  return GuardTorch("PointCloudTrainer", [&]() -> absl::Status {
    WFM_ASSIGN_OR_RETURN(points_, PointsTensor(data, transform_, "dataset"));
    offsets_ = data.offsets;
    if (labels_.space.kind == LabelSpace::Kind::kDiscrete) codes_ = Int64Tensor(labels_.codes);
    if (labels_.space.kind == LabelSpace::Kind::kContinuous) {
      conditions_ = FloatTensor(labels_.conditions, {data.num_clouds(), labels_.space.cond_dim});
    }
    if (given) {
      WFM_ASSIGN_OR_RETURN(source_points_, PointsTensor(*source, transform_, "source"));
      source_offsets_ = source->offsets;
    }
    // Data statistics from all clouds, padded once.
    std::vector<int64_t> all(data.num_clouds());
    std::iota(all.begin(), all.end(), 0);
    int64_t largest = 0;
    for (int64_t c = 0; c < data.num_clouds(); ++c) largest = std::max(largest, data.cloud_size(c));
    const Batch everything = Gather(points_, offsets_, all, 0, largest);
    WFM_ASSIGN_OR_RETURN(stats_, noise::ComputePointCloudStats(everything.x, everything.w));

    at::Generator init = at::make_generator<at::CPUGeneratorImpl>(config.optimizer.seed);
    WFM_ASSIGN_OR_RETURN(net_, nn::MakePointCloudVelocityNet(
                                   PointCloudNetConfigFor(config_, labels_.space, dim_), init));
    net_->train();
    state_ = std::make_unique<OptimizationState>(net_.ptr(), config_.optimizer,
                                                 config_.optimizer.decay_steps);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::unique_ptr<PointCloudTrainer>> PointCloudTrainer::Resume(
    const io::PointCloudSet& data, const checkpoint::Checkpoint& ckpt,
    const io::PointCloudSet* source, int64_t steps, const DistributedRole& role) {
  WFM_ASSIGN_OR_RETURN(const PointCloudTrainConfig config,
                       ResumeConfig<PointCloudTrainConfig>(ckpt, kPointCloudModelFormat,
                                                           kPointCloudModelVersion, steps,
                                                           PointCloudTrainConfigFromJson));
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<PointCloudTrainer> t,
                       Create(data, config, ckpt.metadata.value("dataset", ""), source, role));
  WFM_RETURN_IF_ERROR(t->state_->ResumeFrom(ckpt));
  return t;
}

PointCloudTrainer::Batch PointCloudTrainer::Gather(const at::Tensor& points,
                                                   const std::vector<int64_t>& offsets,
                                                   const std::vector<int64_t>& ids,
                                                   int64_t subsample, int64_t pad_to) {
  const int64_t b = static_cast<int64_t>(ids.size());
  std::vector<at::Tensor> clouds(b);
  int64_t longest = pad_to;
  for (int64_t k = 0; k < b; ++k) {
    const int64_t begin = offsets[ids[k]], n = offsets[ids[k] + 1] - begin;
    clouds[k] = points.narrow(0, begin, n);
    if (subsample > 0 && n > subsample) {
      const at::Tensor keep = at::randperm(n, state_->generator(), at::kLong).narrow(0, 0, subsample);
      clouds[k] = clouds[k].index_select(0, keep);
    }
    longest = std::max(longest, clouds[k].size(0));
  }
  Batch batch{at::zeros({b, longest, dim_}, at::kFloat), at::zeros({b, longest}, at::kFloat)};
  for (int64_t k = 0; k < b; ++k) {
    const int64_t n = clouds[k].size(0);
    batch.x[k].narrow(0, 0, n).copy_(clouds[k]);
    batch.w[k].narrow(0, 0, n).fill_(1.0f / static_cast<float>(n));
  }
  return batch;
}

absl::Status PointCloudTrainer::InitWeightsFrom(const checkpoint::Checkpoint& ckpt) {
  WFM_RETURN_IF_ERROR(CheckModelFormat(ckpt.metadata, kPointCloudModelFormat, kPointCloudModelVersion));
  return state_->InitWeightsFrom(ckpt);
}

absl::StatusOr<double> PointCloudTrainer::Step(const TrainHooks& hooks) {
  return GuardTorch("Step", [&]() -> absl::StatusOr<double> {
    auto t0 = TrainClock::now();
    const int64_t global = config_.optimizer.batch_size;
    const int64_t share = global / role_.world_size;
    const int64_t first = role_.rank * share;
    const int64_t num_clouds = static_cast<int64_t>(offsets_.size()) - 1;
    at::Generator& gen = state_->generator();

    // The global batch's draws, in a fixed order on every rank.
    const at::Tensor idx = at::randint(num_clouds, {global}, gen, at::kLong);
    const std::vector<int64_t> all_ids(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + global);
    std::vector<int64_t> source_ids;
    if (config_.source == PointCloudSource::kGivenMatched) {
      source_ids = all_ids;
    } else if (config_.source == PointCloudSource::kGivenRandom) {
      const at::Tensor s = at::randint(static_cast<int64_t>(source_offsets_.size()) - 1, {global}, gen, at::kLong);
      source_ids.assign(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + global);
    }
    int64_t longest = 0;
    for (int64_t id : all_ids) {
      int64_t n = offsets_[id + 1] - offsets_[id];
      if (config_.subsample_points > 0) n = std::min(n, config_.subsample_points);
      longest = std::max(longest, n);
    }
    for (int64_t id : source_ids) {
      int64_t n = source_offsets_[id + 1] - source_offsets_[id];
      if (config_.source_subsample_points > 0) n = std::min(n, config_.source_subsample_points);
      longest = std::max(longest, n);
    }
    const Batch data_all = Gather(points_, offsets_, all_ids, config_.subsample_points, longest);
    Batch noise_all;
    if (source_ids.empty()) {
      WFM_ASSIGN_OR_RETURN(noise_all.x, noise::SamplePointCloudSource(config_.source, stats_,
                                                                       config_.noise_df_scale,
                                                                       global, longest, gen));
      noise_all.w = data_all.w;
    } else {
      noise_all = Gather(source_points_, source_offsets_, source_ids,
                         config_.source_subsample_points, longest);
    }
    const at::Tensor t_all = SampleFlowTimes(config_.time_distribution, global, gen);
    at::Tensor uncond_all;
    if (p_uncond_ > 0) uncond_all = at::rand({global}, gen, at::kFloat) < p_uncond_;

    // This rank's share.
    at::Tensor x = data_all.x.narrow(0, first, share);
    at::Tensor w = data_all.w.narrow(0, first, share);
    at::Tensor y = noise_all.x.narrow(0, first, share);
    at::Tensor yw = noise_all.w.narrow(0, first, share);
    const at::Tensor t = t_all.narrow(0, first, share);
    at::Tensor cond;
    if (labels_.space.kind != LabelSpace::Kind::kNone) {
      const at::Tensor rows = idx.narrow(0, first, share);
      cond = labels_.space.kind == LabelSpace::Kind::kDiscrete ? codes_.index_select(0, rows)
                                                                : conditions_.index_select(0, rows);
      if (p_uncond_ > 0) {
        const at::Tensor drop = uncond_all.narrow(0, first, share);
        const at::Tensor null = net_->NullCondition(share);
        cond = at::where(cond.dim() == 2 ? drop.unsqueeze(1) : drop, null, cond);
      }
    }
    phases_.noise += SecondsSince(t0);
    t0 = TrainClock::now();

    if (minibatch_ot_) {
      ot::CloudCostOptions cost_options;
      cost_options.entropic_epsilon = config_.minibatch_cost_epsilon;
      cost_options.entropic_iterations =
          config_.sinkhorn_iterations > 0 ? static_cast<int>(config_.sinkhorn_iterations) : 200;
      WFM_ASSIGN_OR_RETURN(at::Tensor cost,
                           ot::PairwiseCloudCost(minibatch_cost_, x, w, y, yw, cost_options));
      ot::SinkhornOptions pairing;
      pairing.epsilon = config_.minibatch_epsilon;
      pairing.iterations = 200;
      WFM_ASSIGN_OR_RETURN(const at::Tensor perm, ot::MinibatchPairing(cost, pairing));
      y = y.index_select(0, perm);
      // As the reference: generated sources keep the data's weights unless the
      // map is entropic; given sources always travel with their weights.
      if (monge_ == ot::MongeMapKind::kEntropic || !source_ids.empty()) yw = yw.index_select(0, perm);
    }
    phases_.pairing += SecondsSince(t0);
    t0 = TrainClock::now();

    ot::SinkhornOptions sinkhorn;
    sinkhorn.epsilon = config_.epsilon;
    if (config_.sinkhorn_iterations > 0) {
      sinkhorn.iterations = static_cast<int>(config_.sinkhorn_iterations);
    } else {
      sinkhorn.until_converged = true;
      sinkhorn.tolerance = config_.sinkhorn_tolerance;
      sinkhorn.iterations = 2000;
    }
    WFM_ASSIGN_OR_RETURN(const at::Tensor targets,
                         ot::MongeTargets(monge_, y, yw, x, w, sinkhorn, gen));
    const at::Tensor delta = targets - y;
    const at::Tensor interp = y + (1.0 - t).view({share, 1, 1}) * delta;
    phases_.transport += SecondsSince(t0);
    t0 = TrainClock::now();

    const at::Tensor mask = yw > 0;
    const bool padded = !mask.all().item<bool>();
    const at::Tensor pred = net_->forward(interp, padded ? mask : at::Tensor(), t, cond, gen);
    const at::Tensor loss = ((pred + delta).pow(2) * yw.unsqueeze(2)).sum(1).mean();
    absl::StatusOr<double> applied = state_->Apply(loss, hooks);
    phases_.network += SecondsSince(t0);
    ++phases_.steps;
    return applied;
  });
}

absl::Status PointCloudTrainer::Train(const TrainHooks& hooks) {
  return state_->Train(hooks, config_.optimizer.steps, config_.checkpoint_every,
                       [&]() { return Step(hooks); });
}

TrainingSummary PointCloudTrainer::Summary() const {
  TrainingSummary s;
  s.dataset = dataset_;
  s.items = static_cast<int64_t>(offsets_.size()) - 1;
  state_->Summarize(&s);
  s.world_size = role_.world_size;
  return s;
}

absl::StatusOr<checkpoint::Checkpoint> PointCloudTrainer::MakeCheckpoint(bool with_optimizer) const {
  return GuardTorch("MakeCheckpoint", [&]() -> absl::StatusOr<checkpoint::Checkpoint> {
    checkpoint::Checkpoint ckpt;
    ckpt.metadata = ModelMetadata(kPointCloudModelFormat, kPointCloudModelVersion, Family::kPointCloud,
                                  dim_, ToJson(config_), labels_.space, Summary(), dataset_);
    ckpt.metadata["data_stats"] = stats_.ToJson();
    if (!transform_.identity()) ckpt.metadata["feature_transform"] = transform_.ToJson();
    WFM_ASSIGN_OR_RETURN(ckpt.tensors, checkpoint::StateTensors(*net_));
    WFM_ASSIGN_OR_RETURN(checkpoint::NamedTensors ema, state_->SamplingWeights());
    for (auto& entry : ema) ckpt.tensors.push_back(std::move(entry));
    std::vector<int64_t> sizes(offsets_.size() - 1);
    for (size_t c = 0; c + 1 < offsets_.size(); ++c) sizes[c] = offsets_[c + 1] - offsets_[c];
    ckpt.tensors.emplace_back("data.sizes", Int64Tensor(sizes));
    if (codes_.defined()) ckpt.tensors.emplace_back("data.label_codes", codes_.clone());
    if (conditions_.defined()) ckpt.tensors.emplace_back("data.conditions", conditions_.clone());
    if (source_points_.defined()) {
      ckpt.tensors.emplace_back("source.points", source_points_.clone());
      ckpt.tensors.emplace_back("source.offsets", Int64Tensor(source_offsets_));
    }
    if (with_optimizer) WFM_RETURN_IF_ERROR(state_->AddTo(&ckpt));
    return ckpt;
  });
}

absl::StatusOr<std::shared_ptr<const PointCloudModel>> PointCloudTrainer::MakeModel() const {
  WFM_ASSIGN_OR_RETURN(checkpoint::Checkpoint ckpt, MakeCheckpoint(false));
  return PointCloudModel::FromCheckpoint(ckpt);
}

}  // namespace wfm::model
