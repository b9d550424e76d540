#include "server/job_validation.h"

#include "absl/strings/str_cat.h"
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
  if (!request.overwrite && models.Contains(request.model)) {
    return absl::AlreadyExistsError(
        absl::StrCat("model: '", request.model, "' already exists (set overwrite to replace it)"));
  }
  return absl::OkStatus();
}

}  // namespace wfm::server
