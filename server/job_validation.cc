#include "server/job_validation.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"
#include "repository/names.h"
#include "repository/training_data.h"

namespace wfm::server {
namespace {

using repository::FamilyKind;
using repository::HoldoutCount;
using repository::KindFits;
using repository::UsesGivenSource;
using repository::ValidateName;

constexpr int64_t kMaxNicheSize = 1024;

std::string LabelsText(LabelType type, int64_t condition_dim) {
  switch (type) {
    case LabelType::kNone: return "no labels";
    case LabelType::kDiscrete: return "discrete labels";
    case LabelType::kContinuous:
      return absl::StrCat("continuous conditions of length ", condition_dim);
  }
  return "";
}

LabelType ModelLabelType(const model::LabelSpace& labels) {
  switch (labels.kind) {
    case model::LabelSpace::Kind::kNone: return LabelType::kNone;
    case model::LabelSpace::Kind::kDiscrete: return LabelType::kDiscrete;
    case model::LabelSpace::Kind::kContinuous: return LabelType::kContinuous;
  }
  return LabelType::kNone;
}

// Fine-tuning: the base model exists (in the version asked for) and its
// network fits the request: same family, data of the same dimension and
// labels, and the same network shape.
absl::Status ValidateInitFrom(const TrainingRequest& request, const DatasetInfo& data,
                              const ModelRegistry& models) {
  const std::string& base = request.init_from_model;
  if (base.empty()) {
    if (request.init_from_version != 0) {
      return absl::InvalidArgumentError("init_from_version: only used with init_from_model");
    }
    return absl::OkStatus();
  }
  WFM_RETURN_IF_ERROR(ValidateName("init_from_model", base));
  if (request.init_from_version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("init_from_version: must be >= 0 (0 = the serving version), got ",
                     request.init_from_version));
  }
  if (!models.Contains(base)) {
    return absl::NotFoundError(absl::StrCat("init_from_model: model '", base, "' not found"));
  }
  absl::StatusOr<ModelInfo> found = models.Info(base, request.init_from_version);
  if (!found.ok()) {
    return absl::NotFoundError(absl::StrCat("init_from_version: model '", base,
                                            "' has no version ", request.init_from_version));
  }
  const ModelInfo& info = *found;
  const model::TrainingConfig& r = request.config;
  const std::string of_base = absl::StrCat(" the base model '", base, "'");
  if (info.family != r.family) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.family: ", model::FamilyName(r.family), " differs from", of_base, " (",
        model::FamilyName(info.family), "); fine-tuning keeps the family"));
  }
  if (info.dim != data.dim) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: '", request.dataset, "' has dim ",
                                                   data.dim, ",", of_base, " dim ", info.dim));
  }
  const LabelType base_labels = ModelLabelType(info.labels);
  const bool same_labels =
      base_labels == data.label_type &&
      (data.label_type != LabelType::kDiscrete || info.labels.names == data.label_names) &&
      (data.label_type != LabelType::kContinuous || info.labels.cond_dim == data.condition_dim);
  if (!same_labels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset: '", request.dataset, "' has ", LabelsText(data.label_type, data.condition_dim),
        data.label_type == LabelType::kDiscrete
            ? absl::StrCat(" (", absl::StrJoin(data.label_names, ", "), ")")
            : "",
        ",", of_base, " ", LabelsText(base_labels, info.labels.cond_dim),
        base_labels == LabelType::kDiscrete
            ? absl::StrCat(" (", absl::StrJoin(info.labels.names, ", "), ")")
            : "",
        "; fine-tuning keeps the labels"));
  }
  const model::NetworkConfig& want = r.network();
  const model::NetworkConfig& have = info.pointcloud_config.has_value()
                                         ? info.pointcloud_config->network
                                         : info.gaussian_config->network;
  auto same = [&](const char* field, const std::string& value,
                  const std::string& base_value) -> absl::Status {
    if (value == base_value) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("config.network.", field, ": ", value,
                                                   " differs from", of_base, " (", base_value,
                                                   "); fine-tuning keeps the network's shape"));
  };
  WFM_RETURN_IF_ERROR(same("width", absl::StrCat(want.width), absl::StrCat(have.width)));
  if (r.family == model::Family::kPointCloud) {
    WFM_RETURN_IF_ERROR(same("heads", absl::StrCat(want.heads), absl::StrCat(have.heads)));
  }
  WFM_RETURN_IF_ERROR(same("layers", absl::StrCat(want.layers), absl::StrCat(have.layers)));
  WFM_RETURN_IF_ERROR(
      same("mlp_hidden", absl::StrCat(want.mlp_hidden), absl::StrCat(have.mlp_hidden)));
  if (r.family == model::Family::kGaussian) {
    WFM_RETURN_IF_ERROR(same("architecture", want.architecture, have.architecture));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrainingRequest(const TrainingRequest& request, const DatasetStore& datasets,
                                     const ModelRegistry& models) {
  const model::TrainingConfig& r = request.config;
  WFM_RETURN_IF_ERROR(ValidateName("dataset", request.dataset));
  WFM_RETURN_IF_ERROR(ValidateName("model", request.model));
  WFM_ASSIGN_OR_RETURN(const DatasetInfo data, datasets.Get(request.dataset));
  if (!KindFits(r.family, data.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.family: ", model::FamilyName(r.family), " models train on ",
        r.family == model::Family::kPointCloud ? "POINT_CLOUDS" : "GAUSSIANS, POINT_CLOUDS",
        " or SPATIAL_CELLS data sets; '", request.dataset, "' holds ", DatasetKindName(data.kind)));
  }
  // Gaussians from point clouds: each cloud's mean and covariance.
  if (r.family == model::Family::kGaussian && data.kind == DatasetKind::kPointClouds) {
    if (data.dim > kMaxGaussianDim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.family: gaussian models of point clouds take dim <= ", kMaxGaussianDim,
          " (a dim x dim covariance per cloud); '", request.dataset, "' has dim ", data.dim));
    }
    if (data.min_size < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.family: gaussian models of point clouds need clouds of 2 or more points (a "
          "sample covariance); '", request.dataset, "' has a cloud of ", data.min_size));
    }
  }
  if (r.family == model::Family::kPointCloud) {
    WFM_RETURN_IF_ERROR(model::ValidatePointCloudTrainConfig(r.pointcloud));
  } else {
    WFM_RETURN_IF_ERROR(model::ValidateGaussianTrainConfig(r.gaussian));
  }
  if (data.kind == DatasetKind::kSpatialCells &&
      (r.niche_size < 1 || r.niche_size > kMaxNicheSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.niche_size: must be in [1, ", kMaxNicheSize, "], got ", r.niche_size));
  }
  if (!(r.holdout_fraction >= 0.0 && r.holdout_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.holdout_fraction: must be in [0, 1), got ", r.holdout_fraction));
  }
  const int64_t training_items = data.items - HoldoutCount(data.items, r.holdout_fraction);
  if (training_items < 1) {
    return absl::InvalidArgumentError(absl::StrCat("config.holdout_fraction: ", r.holdout_fraction,
                                                   " of ", data.items,
                                                   " items leaves nothing to train on"));
  }
  const int64_t batch = r.family == model::Family::kPointCloud ? r.pointcloud.optimizer.batch_size
                                                               : r.gaussian.optimizer.batch_size;
  if (batch > training_items) {
    return absl::InvalidArgumentError(absl::StrCat("config.optimizer.batch_size: ", batch,
                                                   " is larger than the ", training_items,
                                                   " training items of '", request.dataset, "'"));
  }
  const char* source_field = r.family == model::Family::kPointCloud
                                 ? "config.pointcloud.source_dataset"
                                 : "config.gaussian.source_dataset";
  if (UsesGivenSource(r)) {
    if (r.source_dataset.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source_field, ": noise given_random / given_matched needs a data set of source items"));
    }
    WFM_RETURN_IF_ERROR(ValidateName(source_field, r.source_dataset));
    WFM_ASSIGN_OR_RETURN(const DatasetInfo source, datasets.Get(r.source_dataset));
    const DatasetKind want = FamilyKind(r.family);
    if (source.kind != want) {
      return absl::InvalidArgumentError(absl::StrCat(source_field, ": '", r.source_dataset,
                                                     "' holds ", DatasetKindName(source.kind),
                                                     ", sources must be ", DatasetKindName(want)));
    }
    if (source.dim != data.dim) {
      return absl::InvalidArgumentError(absl::StrCat(source_field, ": '", r.source_dataset,
                                                     "' has dim ", source.dim, ", the data set ",
                                                     data.dim));
    }
  } else if (!r.source_dataset.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_field, ": only used with noise given_random or given_matched"));
  }
  // Into an existing model name, training adds a version (with overwrite,
  // it replaces every version).
  return ValidateInitFrom(request, data, models);
}

}  // namespace wfm::server
