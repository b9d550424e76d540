// The transform of point features that a point-cloud flow is trained in
// (PointCloudTrainConfig::feature_transform), fitted to the training points
// and stored with the model, so that generated points are mapped back to the
// data's space.
//
//   none               x
//   log1p              log(1 + x)                      (x >= 0)
//   standardize        (x - mean_j) / sd_j             per feature j
//   log1p_standardize  (log(1 + x) - mean_j) / sd_j    (x >= 0)
//   auto               log1p_standardize when every value is a non-negative
//                      integer (count data such as gene expression), none
//                      otherwise. The training default; servers and wfm-train
//                      pass it on only for niches of spatial cells and train
//                      any other data with none (a shape in integer pixel
//                      coordinates is not count data).
//
// mean_j and sd_j (population standard deviation; 1 for a constant feature)
// are those of the training points after log1p. The inverse of log1p is
// expm1 clamped at 0 (the data were non-negative). Count features are
// heavy-tailed; in log space a flow's squared-error loss and the OT costs are
// not dominated by a few highly expressed genes, and standardisation gives
// every feature the scale the network's initialisation expects.
//
// No LibTorch: points are row-major float arrays [n, dim].
#ifndef WFM_MODEL_CONFIG_FEATURE_TRANSFORM_H_
#define WFM_MODEL_CONFIG_FEATURE_TRANSFORM_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::model {

class FeatureTransform {
 public:
  // The identity.
  FeatureTransform() = default;

  // Fits transform `name` (one of the names above) to `points` [n, dim].
  // INVALID_ARGUMENT for an unknown name, no points, or (log1p kinds) a
  // negative value, naming `what`, the point and the feature:
  // "dataset: feature_transform log1p needs non-negative values, got -0.5
  // (point 3, feature 1)".
  static absl::StatusOr<FeatureTransform> Fit(absl::string_view name,
                                              const std::vector<float>& points, int64_t dim,
                                              absl::string_view what = "dataset");

  // "none", "log1p", "standardize" or "log1p_standardize" ("auto" resolved).
  const std::string& kind() const { return kind_; }
  bool identity() const { return kind_ == "none"; }
  int64_t dim() const { return static_cast<int64_t>(mean_.size()); }

  // In place, over `count` values of rows of dim() features (count a
  // multiple of dim(); any count for the identity and plain log1p).
  // Forward: INVALID_ARGUMENT for a negative value under a log1p kind.
  absl::Status Apply(float* values, int64_t count, absl::string_view what = "points") const;
  void Invert(float* values, int64_t count) const;

  // {"kind": ..., "mean": [...], "scale": [...]}; FromJson checks the kind,
  // the lengths and that every scale is finite and > 0 (DATA_LOSS otherwise).
  nlohmann::json ToJson() const;
  static absl::StatusOr<FeatureTransform> FromJson(const nlohmann::json& json);

 private:
  bool log1p() const { return kind_ == "log1p" || kind_ == "log1p_standardize"; }
  bool standardize() const { return kind_ == "standardize" || kind_ == "log1p_standardize"; }

  std::string kind_ = "none";
  std::vector<double> mean_;   // per feature (standardising kinds)
  std::vector<double> scale_;  // per feature, > 0
};

}  // namespace wfm::model

#endif  // WFM_MODEL_CONFIG_FEATURE_TRANSFORM_H_
