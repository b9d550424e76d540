// Sources ("noise") of the point-cloud flow: the clouds at t = 1 that the flow
// carries to data clouds at t = 0, and the data statistics they need.
#ifndef WFM_MODEL_NOISE_POINTCLOUD_NOISE_H_
#define WFM_MODEL_NOISE_POINTCLOUD_NOISE_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "model/config/config.h"

namespace wfm::model::noise {

// Statistics of a training set, computed once and stored with the model.
struct PointCloudStats {
  int64_t dim = 0;
  double min_value = -1.0;  // smallest coordinate of any real point
  double max_value = 1.0;   // largest coordinate of any real point
  // Lower Cholesky factors of the clouds' covariances (+ 1e-6 I): their
  // entry-wise mean and (population) standard deviation, [d,d] float64.
  at::Tensor chol_mean, chol_std;
  // The covariances' entry-wise mean and standard deviation, [d,d] float64.
  at::Tensor cov_mean, cov_std;

  nlohmann::json ToJson() const;
  static absl::StatusOr<PointCloudStats> FromJson(const nlohmann::json& j);
};

// Statistics of padded clouds x [C,N,d] with weights w [C,N] (zero = padding,
// which has no influence).
absl::StatusOr<PointCloudStats> ComputePointCloudStats(const at::Tensor& x, const at::Tensor& w);

// K source clouds of n points, float32 [K,n,d], drawn with `generator`:
//   kUniform:    U[min, max] per coordinate;
//   kNormal:     N(0,1) truncated to ±3σ (inverse-CDF), mapped to [min, max];
//   kCholNormal: per cloud L = chol_mean + N(0,1) · chol_std on the lower
//                triangle, |diag| + 1e-6; points N(0, L Lᵀ) · df_scale;
//   kMetaNormal: per cloud a Wishart covariance W/df · df_scale,
//                W ~ Wishart(df = floor(d · df_scale), chol_mean chol_meanᵀ),
//                projected to eigenvalues >= 1e-6; points N(0, that),
//                clipped to [min, max].
// The user-given kinds are not drawn here (the trainer holds those clouds).
absl::StatusOr<at::Tensor> SamplePointCloudSource(PointCloudSource kind,
                                                  const PointCloudStats& stats,
                                                  double df_scale, int64_t k, int64_t n,
                                                  at::Generator generator);

}  // namespace wfm::model::noise

#endif  // WFM_MODEL_NOISE_POINTCLOUD_NOISE_H_
