#include "model/config/config.h"

#include "absl/strings/str_cat.h"

namespace wfm::model {
namespace {

absl::Status Invalid(absl::string_view field, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

}  // namespace

std::string FamilyName(Family family) {
  return family == Family::kPointCloud ? "pointcloud" : "gaussian";
}

absl::StatusOr<Family> ParseFamily(absl::string_view name) {
  if (name == "pointcloud") return Family::kPointCloud;
  if (name == "gaussian") return Family::kGaussian;
  return Invalid("family", absl::StrCat("unknown '", name, "' (expected pointcloud or gaussian)"));
}

std::string PointCloudSourceName(PointCloudSource source) {
  switch (source) {
    case PointCloudSource::kUniform: return "uniform";
    case PointCloudSource::kNormal: return "normal";
    case PointCloudSource::kCholNormal: return "chol_normal";
    case PointCloudSource::kMetaNormal: return "meta_normal";
    case PointCloudSource::kGivenRandom: return "given_random";
    case PointCloudSource::kGivenMatched: return "given_matched";
  }
  return "unknown";
}

absl::StatusOr<PointCloudSource> ParsePointCloudSource(absl::string_view name) {
  for (PointCloudSource s : {PointCloudSource::kUniform, PointCloudSource::kNormal,
                             PointCloudSource::kCholNormal, PointCloudSource::kMetaNormal,
                             PointCloudSource::kGivenRandom, PointCloudSource::kGivenMatched}) {
    if (name == PointCloudSourceName(s)) return s;
  }
  return Invalid("noise", absl::StrCat("unknown '", name,
                                       "' (expected uniform, normal, chol_normal, meta_normal, "
                                       "given_random or given_matched)"));
}

std::string GaussianSourceName(GaussianSource source) {
  switch (source) {
    case GaussianSource::kWishart: return "wishart";
    case GaussianSource::kGivenRandom: return "given_random";
    case GaussianSource::kGivenMatched: return "given_matched";
  }
  return "unknown";
}

absl::StatusOr<GaussianSource> ParseGaussianSource(absl::string_view name) {
  for (GaussianSource s :
       {GaussianSource::kWishart, GaussianSource::kGivenRandom, GaussianSource::kGivenMatched}) {
    if (name == GaussianSourceName(s)) return s;
  }
  return Invalid("noise", absl::StrCat("unknown '", name,
                                       "' (expected wishart, given_random or given_matched)"));
}

const NetworkConfig& TrainingConfig::network() const {
  return family == Family::kPointCloud ? pointcloud.network : gaussian.network;
}

const OptimizerConfig& TrainingConfig::optimizer() const {
  return family == Family::kPointCloud ? pointcloud.optimizer : gaussian.optimizer;
}

int64_t TrainingConfig::checkpoint_every() const {
  return family == Family::kPointCloud ? pointcloud.checkpoint_every : gaussian.checkpoint_every;
}

}  // namespace wfm::model
