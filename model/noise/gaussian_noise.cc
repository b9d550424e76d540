#include "model/noise/gaussian_noise.h"

#include <cmath>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/torch_status.h"

namespace wfm::model::noise {

nlohmann::json GaussianStats::ToJson() const {
  return {{"dim", dim}, {"count", count}, {"mean_std", mean_std}, {"cov_diag_mean", cov_diag_mean}};
}

absl::StatusOr<GaussianStats> GaussianStats::FromJson(const nlohmann::json& j) {
  try {
    GaussianStats s;
    s.dim = j.at("dim").get<int64_t>();
    s.count = j.value("count", int64_t{0});
    s.mean_std = j.at("mean_std").get<double>();
    s.cov_diag_mean = j.at("cov_diag_mean").get<double>();
    if (s.dim < 1) return absl::InvalidArgumentError("data statistics: dim must be >= 1");
    if (!std::isfinite(s.mean_std) || s.mean_std < 0) {
      return absl::InvalidArgumentError("data statistics: mean_std must be finite and >= 0");
    }
    if (!std::isfinite(s.cov_diag_mean) || s.cov_diag_mean <= 0) {
      return absl::InvalidArgumentError("data statistics: cov_diag_mean must be finite and > 0");
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("data statistics: ", e.what()));
  }
}

absl::StatusOr<GaussianStats> ComputeGaussianStats(const io::GaussianSet& data) {
  const int64_t d = data.dim;
  const int64_t c = data.num_gaussians();
  if (d < 1 || c < 1 || static_cast<int64_t>(data.means.size()) != c * d ||
      static_cast<int64_t>(data.covs.size()) != c * d * d) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: need at least one Gaussian with means [C,d] and covs [C,d,d] (d = ",
                     d, ", ", data.means.size(), " mean and ", data.covs.size(),
                     " covariance values)"));
  }
  GaussianStats s;
  s.dim = d;
  s.count = c;
  // Two passes in double: mean, then the centred second moment.
  double sum = 0.0;
  for (double v : data.means) sum += v;
  const double mean = sum / static_cast<double>(c * d);
  double sq = 0.0;
  for (double v : data.means) sq += (v - mean) * (v - mean);
  s.mean_std = std::sqrt(sq / static_cast<double>(c * d));
  double diag = 0.0;
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t k = 0; k < d; ++k) diag += data.covs[(i * d + k) * d + k];
  }
  s.cov_diag_mean = diag / static_cast<double>(c * d);
  if (!std::isfinite(s.mean_std) || !std::isfinite(s.cov_diag_mean) || s.cov_diag_mean <= 0) {
    return absl::InvalidArgumentError(
        "dataset: the mean spread and mean covariance diagonal must be finite, and the diagonal "
        "positive");
  }
  return s;
}

absl::StatusOr<WishartSource> MakeWishartSource(const GaussianStats& stats,
                                                double degrees_of_freedom_scale,
                                                double mean_scale_factor,
                                                double cov_scale_factor) {
  if (!std::isfinite(degrees_of_freedom_scale) || degrees_of_freedom_scale <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "degrees_of_freedom_scale: must be a finite number > 0, got ", degrees_of_freedom_scale));
  }
  if (!std::isfinite(mean_scale_factor) || mean_scale_factor <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("mean_scale_factor: must be a finite number > 0, got ", mean_scale_factor));
  }
  if (!std::isfinite(cov_scale_factor) || cov_scale_factor <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cov_scale_factor: must be a finite number > 0, got ", cov_scale_factor));
  }
  const double k = std::floor(static_cast<double>(stats.dim) * degrees_of_freedom_scale);
  if (k < static_cast<double>(stats.dim) || k > 1e6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "degrees_of_freedom_scale: floor(d · scale) = ", k, " degrees of freedom for d = ",
        stats.dim, "; must be in [d, 1e6] (scale >= 1) for positive definite covariances"));
  }
  WishartSource s;
  s.dim = stats.dim;
  s.mean_scale = stats.mean_std * mean_scale_factor;
  s.cov_scale = stats.cov_diag_mean * cov_scale_factor;
  s.degrees_of_freedom = static_cast<int64_t>(k);
  if (!std::isfinite(s.mean_scale) || !std::isfinite(s.cov_scale) || s.cov_scale <= 0) {
    return absl::InvalidArgumentError("cov_scale_factor: the scaled source is not finite");
  }
  return s;
}

absl::StatusOr<GaussianBatch> SampleWishartSource(const WishartSource& source, int64_t k,
                                                  at::Generator& generator) {
  if (k < 0) return absl::InvalidArgumentError(absl::StrCat("count: must be >= 0, got ", k));
  if (source.dim < 1 || source.degrees_of_freedom < source.dim) {
    return absl::InvalidArgumentError("source: dimension >= 1 and degrees of freedom >= d needed");
  }
  return GuardTorch("SampleWishartSource", [&]() -> GaussianBatch {
    const int64_t d = source.dim, dof = source.degrees_of_freedom;
    GaussianBatch out;
    out.means = at::randn({k, d}, generator, at::kDouble) * source.mean_scale;
    const at::Tensor l = at::randn({k, d, dof}, generator, at::kDouble);
    at::Tensor s = at::matmul(l, l.transpose(1, 2)) * (source.cov_scale / static_cast<double>(dof));
    out.covs = 0.5 * (s + s.transpose(1, 2));
    return out;
  });
}

}  // namespace wfm::model::noise
