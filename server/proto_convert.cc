#include "server/proto_convert.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/config/config.h"
#include "model/sample/ode_solver.h"
#include "proto/training_options.h"
#include "repository/model_folder.h"

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

void MetricsToProto(const model::eval::DistributionMetrics& m, pb::DistributionMetrics* out) {
  out->set_one_nna(m.one_nna);
  out->set_mmd(m.mmd);
  out->set_cov(m.cov);
}

}  // namespace

namespace {

// The API's condition columns (repeated ConditionColumn) and back.
absl::StatusOr<std::vector<ConditionColumn>> ConditionColumnsFromProto(
    const google::protobuf::RepeatedPtrField<pb::ConditionColumn>& columns,
    absl::string_view field) {
  std::vector<ConditionColumn> out;
  out.reserve(columns.size());
  for (int i = 0; i < columns.size(); ++i) {
    const pb::ConditionColumn& c = columns[i];
    ConditionColumn column;
    switch (c.kind()) {
      case pb::CONDITION_KIND_CATEGORICAL: column.kind = ConditionKind::kCategorical; break;
      case pb::CONDITION_KIND_NUMERIC: column.kind = ConditionKind::kNumeric; break;
      case pb::CONDITION_KIND_OBSM: column.kind = ConditionKind::kObsm; break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(field, "[", i, "].kind: required (CONDITION_KIND_CATEGORICAL, ",
                         "CONDITION_KIND_NUMERIC or CONDITION_KIND_OBSM), got ", c.kind()));
    }
    column.name = c.name();
    column.categories = Strings(c.categories());
    column.width = c.width();
    column.offset = c.offset();
    out.push_back(std::move(column));
  }
  return out;
}

void ConditionColumnsToProto(const std::vector<ConditionColumn>& columns,
                             google::protobuf::RepeatedPtrField<pb::ConditionColumn>* out) {
  for (const ConditionColumn& column : columns) {
    pb::ConditionColumn* c = out->Add();
    c->set_name(column.name);
    switch (column.kind) {
      case ConditionKind::kCategorical: c->set_kind(pb::CONDITION_KIND_CATEGORICAL); break;
      case ConditionKind::kNumeric: c->set_kind(pb::CONDITION_KIND_NUMERIC); break;
      case ConditionKind::kObsm: c->set_kind(pb::CONDITION_KIND_OBSM); break;
    }
    for (const std::string& category : column.categories) c->add_categories(category);
    c->set_width(column.width);
    c->set_offset(column.offset);
  }
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
  h.feature_names = Strings(header.feature_names());
  h.spatial_dim = header.spatial_dim();
  WFM_ASSIGN_OR_RETURN(h.condition_columns, ConditionColumnsFromProto(header.condition_columns(),
                                                                      "header.condition_columns"));
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
  out->set_spatial_dim(info.spatial_dim);
  for (const auto& l : info.label_names) out->add_label_names(l);
  out->set_size_bytes(info.size_bytes);
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_description(info.description);
  for (const auto& name : info.feature_names) out->add_feature_names(name);
  ConditionColumnsToProto(info.condition_columns, out->mutable_condition_columns());
}

CloudChunkView ChunkView(const pb::PointCloudChunk& chunk) {
  return {Span(chunk.sizes()), Span(chunk.points()), Strings(chunk.labels()),
          Span(chunk.conditions())};
}

GaussianChunkView ChunkView(const pb::GaussianChunk& chunk) {
  return {Span(chunk.means()), Span(chunk.covs()), Strings(chunk.labels()),
          Span(chunk.conditions())};
}

CellChunkView ChunkView(const pb::CellChunk& chunk) {
  return {Span(chunk.features()), Span(chunk.coords()), Strings(chunk.sample_ids()),
          Strings(chunk.labels()), Span(chunk.conditions())};
}

absl::StatusOr<TrainingRequest> TrainingRequestFromProto(const pb::StartTrainingRequest& req,
                                                         int64_t default_checkpoint_every) {
  WFM_ASSIGN_OR_RETURN(const model::TrainingConfig config,
                       api::TrainingConfigFromProto(req.config(), default_checkpoint_every));
  TrainingRequest r;
  r.dataset = req.dataset();
  r.model = req.model();
  r.overwrite = req.overwrite();
  r.init_from_model = req.init_from_model();
  r.init_from_version = req.init_from_version();
  r.config = config;
  return r;
}

void ToProto(const TrainingRequest& request, pb::TrainingConfig* out) {
  api::TrainingConfigToProto(request.config, out);
}

void ToProto(const JobStatus& s, pb::TrainingJob* out) {
  out->set_id(s.id);
  out->set_model(s.request.model);
  out->set_dataset(s.request.dataset);
  out->set_family(api::FamilyToProto(s.request.config.family));
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
  out->set_init_from_model(s.request.init_from_model);
  out->set_init_from_version(s.request.init_from_version);
  out->set_checkpoint_step(s.checkpoint_step);
  out->set_resumes(s.resumes);
  out->set_resumed_from_step(s.resumed_from_step);
}

namespace {

void SummaryToProto(const model::TrainingSummary& summary, pb::TrainingSummary* s) {
  s->set_dataset(summary.dataset);
  s->set_items(summary.items);
  s->set_steps(summary.steps);
  s->set_final_loss(summary.final_loss);
  s->set_recent_loss(summary.recent_loss);
  s->set_seconds(summary.seconds);
  s->set_steps_per_second(summary.steps_per_second);
  s->set_world_size(summary.world_size);
}

}  // namespace

void ToProto(const ModelInfo& info, pb::ModelInfo* out) {
  out->set_name(info.name);
  out->set_family(api::FamilyToProto(info.family));
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
  for (const auto& name : info.origin.feature_names) out->add_feature_names(name);
  ConditionColumnsToProto(info.origin.condition_columns, out->mutable_condition_columns());
  model::TrainingConfig config;
  config.family = info.family;
  if (info.pointcloud_config.has_value()) config.pointcloud = *info.pointcloud_config;
  if (info.gaussian_config.has_value()) config.gaussian = *info.gaussian_config;
  config.niche_size = info.origin.niche_size;
  config.holdout_fraction = info.origin.holdout_fraction;
  api::TrainingConfigToProto(config, out->mutable_config());
  // Models trained on clouds or Gaussians took no niches.
  if (info.origin.niche_size <= 0) out->mutable_config()->clear_niche_size();
  out->set_config_json(info.config_json.dump());
  SummaryToProto(info.summary, out->mutable_summary());
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_parameters(info.parameters);
  out->set_size_bytes(info.size_bytes);
  out->set_memory_bytes(info.memory_bytes);
  out->set_default_guidance(info.default_guidance);
  out->set_init_from_model(info.origin.init_from_model);
  out->set_init_from_version(info.origin.init_from_version);
  out->set_version(info.version);
}

void ToProto(const ModelVersions& model, pb::ModelInfo* out) {
  ToProto(model.described->info, out);
  out->set_serving_version(model.serving_version);
  out->set_pinned_version(model.pinned_version);
  out->set_keep_versions(model.keep_versions);
  out->set_loaded(model.IsLoaded(model.described->info.version));
  for (const auto& servable : model.versions) {
    const ModelInfo& info = servable->info;
    pb::ModelVersion* v = out->add_versions();
    v->set_loaded(model.IsLoaded(info.version));
    v->set_memory_bytes(info.memory_bytes);
    v->set_version(info.version);
    v->set_created_unix_ms(info.created_unix_ms);
    SummaryToProto(info.summary, v->mutable_summary());
    v->set_size_bytes(info.size_bytes);
    v->set_parameters(info.parameters);
    v->set_dataset(info.origin.dataset);
    v->set_init_from_model(info.origin.init_from_model);
    v->set_init_from_version(info.origin.init_from_version);
  }
}

absl::Status ValidateVersionField(absl::string_view field, int64_t version) {
  if (version < 0 || version > repository::kMaxModelVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must be 0 (the serving version) or a version from 1 to ",
        repository::kMaxModelVersion, ", got ", version));
  }
  return absl::OkStatus();
}

namespace {

// The ODE fields of a sampling request (solver, steps, rtol, atol) into `r`;
// an empty solver is the family's default, steps 0 = the family's default
// (the model request's own defaults).
std::optional<double> Optional(bool has, double value) {
  return has ? std::optional<double>(value) : std::nullopt;
}

template <typename Proto, typename Request>
absl::Status OdeFromProto(const Proto& req, model::OdeSolver default_solver, Request* r) {
  if (req.steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: must be >= 0 (0 = the family's default), got ", req.steps()));
  }
  r->steps = req.steps() == 0 ? Request().steps : req.steps();
  r->solver = default_solver;
  return model::ApplyOdeChoice(req.solver(), Optional(req.has_rtol(), req.rtol()),
                               Optional(req.has_atol(), req.atol()), r);
}

}  // namespace

absl::StatusOr<model::CloudSampleRequest> CloudRequestFromProto(
    const pb::SampleNichesRequest& req) {
  model::CloudSampleRequest r;
  r.num_samples = req.num_samples();
  r.points = req.points_per_sample();
  r.label = req.label();
  r.condition.assign(req.condition().begin(), req.condition().end());
  if (req.has_guidance()) r.guidance = req.guidance();
  WFM_RETURN_IF_ERROR(OdeFromProto(req, model::OdeSolver::kMidpoint, &r));
  r.seed = req.seed();
  r.trajectory = req.trajectory();
  r.init_points.assign(req.init_points().begin(), req.init_points().end());
  r.init_sizes.assign(req.init_sizes().begin(), req.init_sizes().end());
  // Given sources define the number of samples when it is left at 0.
  if (r.num_samples == 0 && !r.init_sizes.empty()) r.num_samples = req.init_sizes_size();
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
  r.condition.assign(req.condition().begin(), req.condition().end());
  if (req.has_guidance()) r.guidance = req.guidance();
  WFM_RETURN_IF_ERROR(OdeFromProto(req, model::OdeSolver::kEuler, &r));
  r.seed = req.seed();
  r.trajectory = req.trajectory();
  r.init_means.assign(req.init_means().begin(), req.init_means().end());
  r.init_covs.assign(req.init_covs().begin(), req.init_covs().end());
  // Given sources define the number of samples when it is left at 0: n
  // means [n, d] and covariances [n, d, d] give d = covs / means. (The model
  // checks the dimension against its own.)
  if (r.num_samples == 0 && !(r.init_means.empty() && r.init_covs.empty())) {
    const int64_t m = req.init_means_size(), c = req.init_covs_size();
    const int64_t d = m > 0 && c % m == 0 ? c / m : 0;
    if (d < 1 || m % d != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "init_covs: ", c, " values do not make [n, dim, dim] for the ", m,
          " values of init_means [n, dim]"));
    }
    r.num_samples = m / d;
  }
  return r;
}

void ToProto(const model::GeneratedGaussians& g, int64_t frames,
             pb::SampleGaussiansResponse* out) {
  out->set_dim(g.dim);
  out->mutable_means()->Add(g.means.begin(), g.means.end());
  out->mutable_covs()->Add(g.covs.begin(), g.covs.end());
  for (const auto& label : g.labels) out->add_labels(label);
  out->mutable_conditions()->Add(g.conditions.begin(), g.conditions.end());
  out->set_network_evaluations(g.evaluations);
  if (frames > 0) {
    out->set_frames(frames);
    out->mutable_trajectory_times()->Add(g.trajectory_times.begin(), g.trajectory_times.end());
    out->mutable_trajectory_means()->Add(g.trajectory_means.begin(), g.trajectory_means.end());
    out->mutable_trajectory_covs()->Add(g.trajectory_covs.begin(), g.trajectory_covs.end());
  }
}

namespace {

template <typename Proto>
absl::StatusOr<QueuePolicy> QueuePolicyOf(const Proto& req) {
  QueuePolicy policy;
  switch (req.priority()) {
    case pb::SAMPLING_PRIORITY_NORMAL:
      policy.priority = QueuePriority::kNormal;
      break;
    case pb::SAMPLING_PRIORITY_LOW:
      policy.priority = QueuePriority::kLow;
      break;
    case pb::SAMPLING_PRIORITY_HIGH:
      policy.priority = QueuePriority::kHigh;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "priority: unknown value ", static_cast<int>(req.priority()),
          "; expected SAMPLING_PRIORITY_NORMAL (0), SAMPLING_PRIORITY_LOW (1) or "
          "SAMPLING_PRIORITY_HIGH (2)"));
  }
  if (req.has_queue_timeout_seconds()) {
    const double timeout = req.queue_timeout_seconds();
    // Written so that NaN fails too.
    if (!(timeout > 0 && timeout <= kMaxQueueTimeoutSeconds)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "queue_timeout_seconds: must be in (0, ", kMaxQueueTimeoutSeconds,
          "] seconds (leave it unset for no queue timeout), got ", timeout));
    }
    policy.timeout = absl::Seconds(timeout);
  }
  return policy;
}

}  // namespace

absl::StatusOr<QueuePolicy> QueuePolicyFromProto(const pb::SampleNichesRequest& req) {
  return QueuePolicyOf(req);
}

absl::StatusOr<QueuePolicy> QueuePolicyFromProto(const pb::SampleGaussiansRequest& req) {
  return QueuePolicyOf(req);
}

EvaluateOptions EvaluateOptionsFromProto(const pb::EvaluateRequest& req) {
  EvaluateOptions o;
  o.split = req.split().empty() ? "all" : req.split();
  o.num_samples = req.num_samples();
  o.max_reference = req.max_reference();
  o.steps = req.steps() == 0 ? 100 : req.steps();
  o.solver = req.solver();
  o.rtol = Optional(req.has_rtol(), req.rtol());
  o.atol = Optional(req.has_atol(), req.atol());
  o.seed = req.seed();
  o.emd = req.has_emd() ? req.emd() : true;
  return o;
}

void ToProto(const EvaluationResult& r, pb::EvaluateResponse* out) {
  out->set_family(api::FamilyToProto(r.family));
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
