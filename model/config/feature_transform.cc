#include "model/config/feature_transform.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"

namespace wfm::model {
namespace {

bool IsCounts(const std::vector<float>& points) {
  return std::all_of(points.begin(), points.end(),
                     [](float v) { return v >= 0.0f && v == std::floor(v); });
}

}  // namespace

absl::StatusOr<FeatureTransform> FeatureTransform::Fit(absl::string_view name,
                                                       const std::vector<float>& points,
                                                       int64_t dim, absl::string_view what) {
  if (name != "none" && name != "log1p" && name != "standardize" &&
      name != "log1p_standardize" && name != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "feature_transform: unknown '", name,
        "' (expected one of none, log1p, standardize, log1p_standardize, auto)"));
  }
  if (dim < 1 || points.empty() || points.size() % static_cast<size_t>(dim) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": feature_transform needs points of dimension >= 1"));
  }
  FeatureTransform t;
  t.kind_ = std::string(name);
  if (name == "auto") t.kind_ = IsCounts(points) ? "log1p_standardize" : "none";
  const int64_t n = static_cast<int64_t>(points.size()) / dim;
  t.mean_.assign(dim, 0.0);
  t.scale_.assign(dim, 1.0);
  if (t.identity()) return t;
  // log1p (with mean 0 and scale 1 the standardisation is the identity).
  std::vector<float> x = points;
  WFM_RETURN_IF_ERROR(t.Apply(x.data(), static_cast<int64_t>(x.size()), what));
  if (t.standardize()) {
    for (int64_t j = 0; j < dim; ++j) {
      double mean = 0.0, sq = 0.0;
      for (int64_t i = 0; i < n; ++i) mean += x[i * dim + j];
      mean /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) sq += (x[i * dim + j] - mean) * (x[i * dim + j] - mean);
      const double sd = std::sqrt(sq / static_cast<double>(n));
      t.mean_[j] = mean;
      t.scale_[j] = sd > 1e-12 ? sd : 1.0;
    }
  }
  return t;
}

absl::Status FeatureTransform::Apply(float* values, int64_t count, absl::string_view what) const {
  if (identity()) return absl::OkStatus();
  const int64_t d = dim();
  for (int64_t k = 0; k < count; ++k) {
    double v = values[k];
    if (log1p()) {
      if (!(v >= 0.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": feature_transform ", kind_, " needs non-negative values, got ", v,
            " (point ", k / d, ", feature ", k % d, ")"));
      }
      v = std::log1p(v);
    }
    if (standardize()) v = (v - mean_[k % d]) / scale_[k % d];
    values[k] = static_cast<float>(v);
  }
  return absl::OkStatus();
}

void FeatureTransform::Invert(float* values, int64_t count) const {
  if (identity()) return;
  const int64_t d = dim();
  for (int64_t k = 0; k < count; ++k) {
    double v = values[k];
    if (standardize()) v = v * scale_[k % d] + mean_[k % d];
    if (log1p()) v = std::max(0.0, std::expm1(v));
    values[k] = static_cast<float>(v);
  }
}

nlohmann::json FeatureTransform::ToJson() const {
  return {{"kind", kind_}, {"mean", mean_}, {"scale", scale_}};
}

absl::StatusOr<FeatureTransform> FeatureTransform::FromJson(const nlohmann::json& json) {
  FeatureTransform t;
  try {
    t.kind_ = json.at("kind").get<std::string>();
    t.mean_ = json.at("mean").get<std::vector<double>>();
    t.scale_ = json.at("scale").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("feature_transform: ", e.what()));
  }
  if (t.kind_ != "none" && t.kind_ != "log1p" && t.kind_ != "standardize" &&
      t.kind_ != "log1p_standardize") {
    return absl::DataLossError(absl::StrCat("feature_transform: unknown kind '", t.kind_, "'"));
  }
  if (t.mean_.size() != t.scale_.size() || (t.standardize() && t.mean_.empty())) {
    return absl::DataLossError("feature_transform: mean and scale need one value per feature");
  }
  for (size_t j = 0; j < t.scale_.size(); ++j) {
    if (!std::isfinite(t.mean_[j]) || !std::isfinite(t.scale_[j]) || t.scale_[j] <= 0) {
      return absl::DataLossError(
          absl::StrCat("feature_transform: feature ", j, " has no finite positive scale"));
    }
  }
  return t;
}

}  // namespace wfm::model
