#include "server/proto_convert.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/config/config.h"
#include "repository/training_data.h"

namespace wfm::server {
namespace {

namespace pb = ::wfm::v1;

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

template <typename T>
absl::Span<const T> Span(const google::protobuf::RepeatedField<T>& field) {
  return absl::MakeConstSpan(field.data(), static_cast<size_t>(field.size()));
}

pb::LabelType LabelTypeToProto(LabelType t) {
  switch (t) {
    case LabelType::kNone: return pb::LABEL_TYPE_NONE;
    case LabelType::kDiscrete: return pb::LABEL_TYPE_DISCRETE;
    case LabelType::kContinuous: return pb::LABEL_TYPE_CONTINUOUS;
  }
  return pb::LABEL_TYPE_UNSPECIFIED;
}

pb::Family FamilyToProto(model::Family f) {
  return f == model::Family::kPointCloud ? pb::FAMILY_POINTCLOUD : pb::FAMILY_GAUSSIAN;
}

pb::JobState JobStateToProto(JobState s) {
  switch (s) {
    case JobState::kQueued: return pb::QUEUED;
    case JobState::kRunning: return pb::RUNNING;
    case JobState::kSucceeded: return pb::SUCCEEDED;
    case JobState::kFailed: return pb::FAILED;
    case JobState::kCancelled: return pb::CANCELLED;
  }
  return pb::JOB_STATE_UNSPECIFIED;
}

void ApplyNetwork(const pb::NetworkConfig& in, model::NetworkConfig* c) {
  if (in.has_width()) c->width = in.width();
  if (in.has_heads()) c->heads = in.heads();
  if (in.has_layers()) c->layers = in.layers();
  if (in.has_mlp_hidden()) c->mlp_hidden = in.mlp_hidden();
  if (in.has_dropout()) c->dropout = in.dropout();
  if (in.has_architecture()) c->architecture = in.architecture();
}

void ApplyOptimizer(const pb::OptimizerConfig& in, model::OptimizerConfig* c) {
  if (in.has_steps()) c->steps = in.steps();
  if (in.has_batch_size()) c->batch_size = in.batch_size();
  if (in.has_learning_rate()) c->learning_rate = in.learning_rate();
  if (in.has_decay_steps()) c->decay_steps = in.decay_steps();
  if (in.has_decay_rate()) c->decay_rate = in.decay_rate();
  if (in.has_grad_clip_norm()) c->grad_clip_norm = in.grad_clip_norm();
  if (in.has_seed()) c->seed = in.seed();
}

void NetworkToProto(const model::NetworkConfig& c, model::Family family, pb::NetworkConfig* out) {
  out->set_width(c.width);
  out->set_layers(c.layers);
  out->set_mlp_hidden(c.mlp_hidden);
  if (family == model::Family::kPointCloud) {
    out->set_heads(c.heads);
    out->set_dropout(c.dropout);
  } else {
    out->set_architecture(c.architecture);
  }
}

void OptimizerToProto(const model::OptimizerConfig& c, pb::OptimizerConfig* out) {
  out->set_steps(c.steps);
  out->set_batch_size(c.batch_size);
  out->set_learning_rate(c.learning_rate);
  out->set_decay_steps(c.decay_steps);
  out->set_decay_rate(c.decay_rate);
  out->set_grad_clip_norm(c.grad_clip_norm);
  out->set_seed(c.seed);
}

void PointCloudToProto(const model::PointCloudTrainConfig& c, pb::TrainingConfig* out) {
  out->set_family(pb::FAMILY_POINTCLOUD);
  NetworkToProto(c.network, model::Family::kPointCloud, out->mutable_network());
  OptimizerToProto(c.optimizer, out->mutable_optimizer());
  pb::PointCloudOptions* p = out->mutable_pointcloud();
  p->set_monge_map(c.monge_map);
  p->set_epsilon(c.epsilon);
  p->set_sinkhorn_iterations(c.sinkhorn_iterations);
  p->set_sinkhorn_tolerance(c.sinkhorn_tolerance);
  p->set_minibatch_ot(c.minibatch_ot);
  p->set_minibatch_cost(c.minibatch_cost);
  p->set_minibatch_cost_epsilon(c.minibatch_cost_epsilon);
  p->set_minibatch_epsilon(c.minibatch_epsilon);
  p->set_noise(model::PointCloudSourceName(c.source));
  p->set_noise_df_scale(c.noise_df_scale);
  p->set_guidance(c.guidance);
  p->set_p_uncond(c.p_uncond);
  p->set_subsample_points(c.subsample_points);
  p->set_source_subsample_points(c.source_subsample_points);
  out->set_checkpoint_every(c.checkpoint_every);
}

void GaussianToProto(const model::GaussianTrainConfig& c, pb::TrainingConfig* out) {
  out->set_family(pb::FAMILY_GAUSSIAN);
  NetworkToProto(c.network, model::Family::kGaussian, out->mutable_network());
  OptimizerToProto(c.optimizer, out->mutable_optimizer());
  pb::GaussianOptions* g = out->mutable_gaussian();
  g->set_minibatch_ot(c.minibatch_ot);
  g->set_minibatch_epsilon(c.minibatch_epsilon);
  g->set_velocity(c.velocity);
  g->set_loss(c.loss);
  g->set_noise(model::GaussianSourceName(c.source));
  g->set_degrees_of_freedom_scale(c.degrees_of_freedom_scale);
  g->set_mean_scale_factor(c.mean_scale_factor);
  g->set_cov_scale_factor(c.cov_scale_factor);
  out->set_checkpoint_every(c.checkpoint_every);
}

void MetricsToProto(const model::eval::DistributionMetrics& m, pb::DistributionMetrics* out) {
  out->set_one_nna(m.one_nna);
  out->set_mmd(m.mmd);
  out->set_cov(m.cov);
}

absl::Status Prefixed(absl::string_view prefix, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

}  // namespace

absl::StatusOr<DatasetHeader> HeaderFromProto(const pb::DatasetHeader& header) {
  DatasetHeader h;
  h.name = header.name();
  switch (header.kind()) {
    case pb::POINT_CLOUDS: h.kind = DatasetKind::kPointClouds; break;
    case pb::GAUSSIANS: h.kind = DatasetKind::kGaussians; break;
    case pb::SPATIAL_CELLS: h.kind = DatasetKind::kSpatialCells; break;
    default:
      return absl::InvalidArgumentError(
          "header.kind: required (POINT_CLOUDS, GAUSSIANS or SPATIAL_CELLS)");
  }
  h.dim = header.dim();
  switch (header.label_type()) {
    case pb::LABEL_TYPE_UNSPECIFIED:
    case pb::LABEL_TYPE_NONE: h.label_type = LabelType::kNone; break;
    case pb::LABEL_TYPE_DISCRETE: h.label_type = LabelType::kDiscrete; break;
    case pb::LABEL_TYPE_CONTINUOUS: h.label_type = LabelType::kContinuous; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("header.label_type: unknown value ", header.label_type()));
  }
  h.condition_dim = header.condition_dim();
  h.description = header.description();
  h.overwrite = header.overwrite();
  return h;
}

void ToProto(const DatasetInfo& info, pb::Dataset* out) {
  out->set_name(info.name);
  switch (info.kind) {
    case DatasetKind::kPointClouds: out->set_kind(pb::POINT_CLOUDS); break;
    case DatasetKind::kGaussians: out->set_kind(pb::GAUSSIANS); break;
    case DatasetKind::kSpatialCells: out->set_kind(pb::SPATIAL_CELLS); break;
  }
  out->set_dim(info.dim);
  out->set_label_type(LabelTypeToProto(info.label_type));
  out->set_condition_dim(info.condition_dim);
  out->set_items(info.items);
  out->set_points(info.points);
  out->set_min_size(info.min_size);
  out->set_max_size(info.max_size);
  out->set_samples(info.samples);
  for (const auto& l : info.label_names) out->add_label_names(l);
  out->set_size_bytes(info.size_bytes);
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_description(info.description);
}

CloudChunkView ChunkView(const pb::PointCloudChunk& chunk) {
  return {Span(chunk.sizes()), Span(chunk.points()), Strings(chunk.labels()),
          Span(chunk.conditions())};
}

GaussianChunkView ChunkView(const pb::GaussianChunk& chunk) {
  return {Span(chunk.means()), Span(chunk.covs()), Strings(chunk.labels())};
}

CellChunkView ChunkView(const pb::CellChunk& chunk) {
  return {Span(chunk.features()), Span(chunk.coords()), Strings(chunk.sample_ids()),
          Strings(chunk.labels())};
}

absl::StatusOr<TrainingRequest> TrainingRequestFromProto(const pb::StartTrainingRequest& req,
                                                         int64_t default_checkpoint_every) {
  TrainingRequest r;
  r.dataset = req.dataset();
  r.model = req.model();
  r.overwrite = req.overwrite();
  const pb::TrainingConfig& c = req.config();
  switch (c.family()) {
    case pb::FAMILY_POINTCLOUD: r.config.family = model::Family::kPointCloud; break;
    case pb::FAMILY_GAUSSIAN: r.config.family = model::Family::kGaussian; break;
    default:
      return absl::InvalidArgumentError(
          "config.family: required (FAMILY_POINTCLOUD or FAMILY_GAUSSIAN)");
  }
  r.config.niche_size = c.has_niche_size() ? c.niche_size() : repository::kDefaultNicheSize;
  r.config.holdout_fraction = c.has_holdout_fraction() ? c.holdout_fraction() : 0.0;
  const int64_t checkpoint_every =
      c.has_checkpoint_every() ? c.checkpoint_every() : default_checkpoint_every;
  if (checkpoint_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.checkpoint_every: must be >= 0, got ", checkpoint_every));
  }
  if (r.config.family == model::Family::kPointCloud) {
    if (c.has_gaussian()) {
      return absl::InvalidArgumentError(
          "config.gaussian: options of the gaussian family given for a pointcloud model");
    }
    model::PointCloudTrainConfig& p = r.config.pointcloud;
    ApplyNetwork(c.network(), &p.network);
    ApplyOptimizer(c.optimizer(), &p.optimizer);
    const pb::PointCloudOptions& o = c.pointcloud();
    if (o.has_monge_map()) p.monge_map = o.monge_map();
    if (o.has_epsilon()) p.epsilon = o.epsilon();
    if (o.has_sinkhorn_iterations()) p.sinkhorn_iterations = o.sinkhorn_iterations();
    if (o.has_sinkhorn_tolerance()) p.sinkhorn_tolerance = o.sinkhorn_tolerance();
    if (o.has_minibatch_ot()) p.minibatch_ot = o.minibatch_ot();
    if (o.has_minibatch_cost()) p.minibatch_cost = o.minibatch_cost();
    if (o.has_minibatch_cost_epsilon()) p.minibatch_cost_epsilon = o.minibatch_cost_epsilon();
    if (o.has_minibatch_epsilon()) p.minibatch_epsilon = o.minibatch_epsilon();
    if (o.has_noise()) {
      absl::StatusOr<model::PointCloudSource> source = model::ParsePointCloudSource(o.noise());
      if (!source.ok()) return Prefixed("config.pointcloud.noise: ", source.status());
      p.source = *source;
    }
    if (o.has_noise_df_scale()) p.noise_df_scale = o.noise_df_scale();
    if (o.has_guidance()) p.guidance = o.guidance();
    if (o.has_p_uncond()) p.p_uncond = o.p_uncond();
    if (o.has_subsample_points()) p.subsample_points = o.subsample_points();
    if (o.has_source_subsample_points()) p.source_subsample_points = o.source_subsample_points();
    r.config.source_dataset = o.source_dataset();
    p.checkpoint_every = checkpoint_every;
  } else {
    if (c.has_pointcloud()) {
      return absl::InvalidArgumentError(
          "config.pointcloud: options of the pointcloud family given for a gaussian model");
    }
    model::GaussianTrainConfig& g = r.config.gaussian;
    ApplyNetwork(c.network(), &g.network);
    ApplyOptimizer(c.optimizer(), &g.optimizer);
    const pb::GaussianOptions& o = c.gaussian();
    if (o.has_minibatch_ot()) g.minibatch_ot = o.minibatch_ot();
    if (o.has_minibatch_epsilon()) g.minibatch_epsilon = o.minibatch_epsilon();
    if (o.has_velocity()) g.velocity = o.velocity();
    if (o.has_loss()) g.loss = o.loss();
    if (o.has_noise()) {
      absl::StatusOr<model::GaussianSource> source = model::ParseGaussianSource(o.noise());
      if (!source.ok()) return Prefixed("config.gaussian.noise: ", source.status());
      g.source = *source;
    }
    if (o.has_degrees_of_freedom_scale()) g.degrees_of_freedom_scale = o.degrees_of_freedom_scale();
    if (o.has_mean_scale_factor()) g.mean_scale_factor = o.mean_scale_factor();
    if (o.has_cov_scale_factor()) g.cov_scale_factor = o.cov_scale_factor();
    r.config.source_dataset = o.source_dataset();
    g.checkpoint_every = checkpoint_every;
  }
  return r;
}

void ToProto(const TrainingRequest& request, pb::TrainingConfig* out) {
  if (request.config.family == model::Family::kPointCloud) {
    PointCloudToProto(request.config.pointcloud, out);
    out->mutable_pointcloud()->set_source_dataset(request.config.source_dataset);
  } else {
    GaussianToProto(request.config.gaussian, out);
    out->mutable_gaussian()->set_source_dataset(request.config.source_dataset);
  }
  out->set_niche_size(request.config.niche_size);
  out->set_holdout_fraction(request.config.holdout_fraction);
}

void ToProto(const JobStatus& s, pb::TrainingJob* out) {
  out->set_id(s.id);
  out->set_model(s.request.model);
  out->set_dataset(s.request.dataset);
  out->set_family(FamilyToProto(s.request.config.family));
  out->set_state(JobStateToProto(s.state));
  out->set_step(s.step);
  out->set_total_steps(s.total_steps);
  out->set_loss(s.loss);
  out->set_steps_per_second(s.steps_per_second);
  out->set_eta_seconds(s.eta_seconds);
  out->set_error(s.error);
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_started_unix_ms(s.started_unix_ms);
  out->set_finished_unix_ms(s.finished_unix_ms);
  ToProto(s.request, out->mutable_config());
}

void ToProto(const ModelInfo& info, pb::ModelInfo* out) {
  out->set_name(info.name);
  out->set_family(FamilyToProto(info.family));
  out->set_dim(info.dim);
  switch (info.labels.kind) {
    case model::LabelSpace::Kind::kNone: out->set_label_type(pb::LABEL_TYPE_NONE); break;
    case model::LabelSpace::Kind::kDiscrete: out->set_label_type(pb::LABEL_TYPE_DISCRETE); break;
    case model::LabelSpace::Kind::kContinuous:
      out->set_label_type(pb::LABEL_TYPE_CONTINUOUS);
      break;
  }
  for (const auto& name : info.labels.names) out->add_labels(name);
  out->set_condition_dim(info.labels.cond_dim);
  pb::TrainingConfig* config = out->mutable_config();
  if (info.pointcloud_config.has_value()) PointCloudToProto(*info.pointcloud_config, config);
  if (info.gaussian_config.has_value()) GaussianToProto(*info.gaussian_config, config);
  if (info.origin.niche_size > 0) config->set_niche_size(info.origin.niche_size);
  config->set_holdout_fraction(info.origin.holdout_fraction);
  out->set_config_json(info.config_json.dump());
  pb::TrainingSummary* s = out->mutable_summary();
  s->set_dataset(info.summary.dataset);
  s->set_items(info.summary.items);
  s->set_steps(info.summary.steps);
  s->set_final_loss(info.summary.final_loss);
  s->set_recent_loss(info.summary.recent_loss);
  s->set_seconds(info.summary.seconds);
  s->set_steps_per_second(info.summary.steps_per_second);
  s->set_world_size(info.summary.world_size);
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_parameters(info.parameters);
  out->set_size_bytes(info.size_bytes);
  out->set_default_guidance(info.default_guidance);
}

absl::StatusOr<model::CloudSampleRequest> CloudRequestFromProto(
    const pb::SampleNichesRequest& req) {
  model::CloudSampleRequest r;
  r.num_samples = req.num_samples();
  r.points = req.points_per_sample();
  r.label = req.label();
  r.condition.assign(req.condition().begin(), req.condition().end());
  if (req.has_guidance()) r.guidance = req.guidance();
  if (req.steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: must be >= 0 (0 = 100), got ", req.steps()));
  }
  r.steps = req.steps() == 0 ? 100 : req.steps();
  r.seed = req.seed();
  r.trajectory = req.trajectory();
  if (req.samples_per_message() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "samples_per_message: must be >= 0 (0 = the server's choice), got ",
        req.samples_per_message()));
  }
  return r;
}

absl::StatusOr<model::GaussianSampleRequest> GaussianRequestFromProto(
    const pb::SampleGaussiansRequest& req) {
  model::GaussianSampleRequest r;
  r.num_samples = req.num_samples();
  r.label = req.label();
  if (req.steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: must be >= 0 (0 = 100), got ", req.steps()));
  }
  r.steps = req.steps() == 0 ? 100 : req.steps();
  r.seed = req.seed();
  r.trajectory = req.trajectory();
  return r;
}

void ToProto(const model::GeneratedGaussians& g, int64_t frames,
             pb::SampleGaussiansResponse* out) {
  out->set_dim(g.dim);
  out->mutable_means()->Add(g.means.begin(), g.means.end());
  out->mutable_covs()->Add(g.covs.begin(), g.covs.end());
  for (const auto& label : g.labels) out->add_labels(label);
  if (frames > 0) {
    out->set_frames(frames);
    out->mutable_trajectory_means()->Add(g.trajectory_means.begin(), g.trajectory_means.end());
    out->mutable_trajectory_covs()->Add(g.trajectory_covs.begin(), g.trajectory_covs.end());
  }
}

EvaluateOptions EvaluateOptionsFromProto(const pb::EvaluateRequest& req) {
  EvaluateOptions o;
  o.split = req.split().empty() ? "all" : req.split();
  o.num_samples = req.num_samples();
  o.max_reference = req.max_reference();
  o.steps = req.steps() == 0 ? 100 : req.steps();
  o.seed = req.seed();
  o.emd = req.has_emd() ? req.emd() : true;
  return o;
}

void ToProto(const EvaluationResult& r, pb::EvaluateResponse* out) {
  out->set_family(FamilyToProto(r.family));
  out->set_generated(r.generated);
  out->set_reference(r.reference);
  if (r.family == model::Family::kPointCloud) {
    MetricsToProto(r.chamfer, out->mutable_chamfer());
    if (r.has_emd) MetricsToProto(r.emd, out->mutable_emd());
  } else {
    MetricsToProto(r.bures, out->mutable_bures());
    out->set_mean_error(r.mean_error);
    out->set_covariance_error(r.covariance_error);
  }
  out->set_seconds(r.seconds);
}

}  // namespace wfm::server
