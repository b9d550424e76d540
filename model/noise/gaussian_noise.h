// Sources ("noise") of the Gaussian (Bures–Wasserstein) flow: the Gaussians
// N(m, S) at t = 1 that the flow carries to data Gaussians at t = 0, and the
// data statistics they are scaled by (DESIGN.md, Gaussians step 1).
//
// The Wishart source follows the reference (bures_wasserstein noise
// "gaussian", anchors/refwfm/bures.py `gaussian`):
//   mean = mean_scale · z,                    z ~ N(0, I_d)
//   S    = cov_scale · L Lᵀ / k,              L ~ N(0, 1)^{d×k},
//   k    = floor(d · degrees_of_freedom_scale),
//   mean_scale = (population std of all data mean entries) · mean_scale_factor,
//   cov_scale  = (mean diagonal entry of the data covariances) · cov_scale_factor,
// so E[S] = cov_scale · I. k >= d is required (else S would be singular).
//
// Everything here is float64 on the CPU; means [K,d], covariances [K,d,d].
#ifndef WFM_MODEL_NOISE_GAUSSIAN_NOISE_H_
#define WFM_MODEL_NOISE_GAUSSIAN_NOISE_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "model/io/point_sets.h"

namespace wfm::model::noise {

// Statistics of a Gaussian training set, computed once and stored with the
// model (checkpoint metadata "data_stats").
struct GaussianStats {
  int64_t dim = 0;
  int64_t count = 0;           // Gaussians in the data set
  double mean_std = 0.0;       // population std of all C·d mean entries
  double cov_diag_mean = 0.0;  // mean of the C·d diagonal covariance entries (> 0)

  nlohmann::json ToJson() const;
  // INVALID_ARGUMENT ("data statistics: ...") for missing or out-of-range
  // fields.
  static absl::StatusOr<GaussianStats> FromJson(const nlohmann::json& j);
};

// Statistics of a validated data set (see io::ValidateGaussianSet; this only
// checks the sizes).
absl::StatusOr<GaussianStats> ComputeGaussianStats(const io::GaussianSet& data);

// The parameters of the Wishart source.
struct WishartSource {
  int64_t dim = 0;
  double mean_scale = 0.0;  // >= 0
  double cov_scale = 0.0;   // > 0
  int64_t degrees_of_freedom = 0;  // k >= dim
};

// The source of a model from its data statistics and the config's factors.
// INVALID_ARGUMENT naming the field: degrees_of_freedom_scale (k < d, or not
// finite), mean_scale_factor / cov_scale_factor (not finite or <= 0).
absl::StatusOr<WishartSource> MakeWishartSource(const GaussianStats& stats,
                                                double degrees_of_freedom_scale,
                                                double mean_scale_factor,
                                                double cov_scale_factor);

// K source Gaussians drawn with `generator`: first the means [K,d] (one
// randn call), then the factors L [K,d,k] (one randn call), so K draws of one
// call equal the first K of a larger one only for the means. Covariances are
// exactly symmetric and, with k >= d, positive definite with probability 1.
struct GaussianBatch {
  at::Tensor means;  // float64 [K,d]
  at::Tensor covs;   // float64 [K,d,d]
};
absl::StatusOr<GaussianBatch> SampleWishartSource(const WishartSource& source, int64_t k,
                                                  at::Generator& generator);

}  // namespace wfm::model::noise

#endif  // WFM_MODEL_NOISE_GAUSSIAN_NOISE_H_
