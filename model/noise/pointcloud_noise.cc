#include "model/noise/pointcloud_noise.h"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/parallel.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/gaussian/bures.h"

namespace wfm::model::noise {
namespace {

nlohmann::json MatrixJson(const at::Tensor& m) {
  const at::Tensor c = m.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

absl::StatusOr<at::Tensor> MatrixFromJson(const nlohmann::json& j, int64_t d, const char* name) {
  std::vector<double> v = j.at(name).get<std::vector<double>>();
  if (static_cast<int64_t>(v.size()) != d * d) {
    return absl::InvalidArgumentError(
        absl::StrCat("data statistics: ", name, " has ", v.size(), " entries, expected ", d * d));
  }
  return at::tensor(v, at::kDouble).view({d, d}).clone();
}

// Truncated standard normal on [-3, 3] by inverse CDF, as jax's.
at::Tensor TruncatedNormal(at::IntArrayRef shape, at::Generator& gen) {
  const double lo = std::erf(-3.0 / std::sqrt(2.0)), hi = std::erf(3.0 / std::sqrt(2.0));
  const at::Tensor u = at::rand(shape, gen, at::kFloat) * (hi - lo) + lo;
  return (std::sqrt(2.0) * at::erfinv(u)).clamp(-3.0, 3.0);
}

}  // namespace

nlohmann::json PointCloudStats::ToJson() const {
  return {{"dim", dim},
          {"min_value", min_value},
          {"max_value", max_value},
          {"chol_mean", MatrixJson(chol_mean)},
          {"chol_std", MatrixJson(chol_std)},
          {"cov_mean", MatrixJson(cov_mean)},
          {"cov_std", MatrixJson(cov_std)}};
}

absl::StatusOr<PointCloudStats> PointCloudStats::FromJson(const nlohmann::json& j) {
  try {
    PointCloudStats s;
    s.dim = j.at("dim").get<int64_t>();
    if (s.dim < 1) return absl::InvalidArgumentError("data statistics: dim must be >= 1");
    s.min_value = j.at("min_value").get<double>();
    s.max_value = j.at("max_value").get<double>();
    WFM_ASSIGN_OR_RETURN(s.chol_mean, MatrixFromJson(j, s.dim, "chol_mean"));
    WFM_ASSIGN_OR_RETURN(s.chol_std, MatrixFromJson(j, s.dim, "chol_std"));
    WFM_ASSIGN_OR_RETURN(s.cov_mean, MatrixFromJson(j, s.dim, "cov_mean"));
    WFM_ASSIGN_OR_RETURN(s.cov_std, MatrixFromJson(j, s.dim, "cov_std"));
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("data statistics: ", e.what()));
  }
}

absl::StatusOr<PointCloudStats> ComputePointCloudStats(const at::Tensor& x, const at::Tensor& w) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "clouds", 3));
  WFM_RETURN_IF_ERROR(CheckShape(w, "weights", {x.size(0), x.size(1)}));
  if (x.size(0) == 0) return absl::InvalidArgumentError("clouds: need at least one cloud");
  WFM_ASSIGN_OR_RETURN(auto moments,
                       gaussian::WeightedMeanCovariance(x.to(at::kDouble), w.to(at::kDouble), 1e-6));
  return GuardTorch("ComputePointCloudStats", [&]() -> absl::StatusOr<PointCloudStats> {
    PointCloudStats s;
    s.dim = x.size(2);
    const at::Tensor real = x.index({w > 0});  // [P_real, d]
    s.min_value = real.min().item<double>();
    s.max_value = real.max().item<double>();
    const at::Tensor& cov = moments.second;  // [C,d,d]
    const at::Tensor chol = at::linalg_cholesky(cov);
    s.chol_mean = chol.mean(0);
    s.chol_std = chol.std(0, /*unbiased=*/false);
    s.cov_mean = cov.mean(0);
    s.cov_std = cov.std(0, /*unbiased=*/false);
    return s;
  });
}

absl::StatusOr<at::Tensor> SamplePointCloudSource(PointCloudSource kind,
                                                  const PointCloudStats& stats, double df_scale,
                                                  int64_t k, int64_t n, at::Generator generator) {
  if (k < 0 || n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("source: need k >= 0 clouds of n >= 1 points, got ",
                                                   k, " x ", n));
  }
  const int64_t d = stats.dim;
  const double lo = stats.min_value, hi = stats.max_value;
  return GuardTorch("SamplePointCloudSource", [&]() -> absl::StatusOr<at::Tensor> {
    // A few values per point: ATen's loops here (the triangle mask, the
    // per-cloud products) would each wake a thread for microseconds of work
    // (one per sampling request, measured), so they stay on this thread.
    const CallingThreadOnly on_this_thread;
    switch (kind) {
      case PointCloudSource::kUniform:
        return at::rand({k, n, d}, generator, at::kFloat) * (hi - lo) + lo;
      case PointCloudSource::kNormal:
        return lo + (hi - lo) * (TruncatedNormal({k, n, d}, generator) + 3.0) / 6.0;
      case PointCloudSource::kCholNormal: {
        const at::Tensor lower = at::ones({d, d}, at::kFloat).tril();
        const at::Tensor pert = at::randn({k, d, d}, generator, at::kFloat) *
                                stats.chol_std.to(at::kFloat) * lower;
        at::Tensor chol = stats.chol_mean.to(at::kFloat) + pert;
        const at::Tensor diag = chol.diagonal(0, 1, 2);
        diag.copy_(diag.abs() + 1e-6);
        const at::Tensor z = at::randn({k, n, d}, generator, at::kFloat);
        return at::matmul(z, chol.transpose(1, 2)) * df_scale;
      }
      case PointCloudSource::kMetaNormal: {
        const int64_t df = std::max<int64_t>(1, static_cast<int64_t>(std::floor(d * df_scale)));
        const at::Tensor z = at::randn({k, df, d}, generator, at::kFloat);
        const at::Tensor l = at::matmul(z, stats.chol_mean.to(at::kFloat).t());  // [k,df,d]
        at::Tensor cov = at::matmul(l.transpose(1, 2), l) / static_cast<double>(df) * df_scale;
        auto eig = at::linalg_eigh(cov.to(at::kDouble));
        const at::Tensor vals = std::get<0>(eig).clamp_min(1e-6);
        const at::Tensor vecs = std::get<1>(eig);
        cov = at::matmul(vecs * vals.unsqueeze(1), vecs.transpose(1, 2));
        const at::Tensor chol = at::linalg_cholesky(cov).to(at::kFloat);
        const at::Tensor pts = at::matmul(at::randn({k, n, d}, generator, at::kFloat), chol.transpose(1, 2));
        return pts.clamp(lo, hi);
      }
      case PointCloudSource::kGivenRandom:
      case PointCloudSource::kGivenMatched:
        break;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "source: '", PointCloudSourceName(kind), "' clouds are given by the user, not drawn"));
  });
}

}  // namespace wfm::model::noise
