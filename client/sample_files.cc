#include "client/sample_files.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "model/common/status.h"
#include "model/io/h5ad.h"
#include "model/io/npz.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

void AddLabels(const io::Labels& labels, int64_t count,
               std::vector<std::pair<std::string, io::ArrayView>>* arrays) {
  if (labels.kind == io::Labels::Kind::kString) {
    arrays->emplace_back("labels", io::ArrayView::Of({count}, labels.strings));
  } else if (labels.kind == io::Labels::Kind::kContinuous) {
    arrays->emplace_back("labels", io::ArrayView::Of({count, labels.width}, labels.values));
  } else if (labels.kind == io::Labels::Kind::kInteger) {
    arrays->emplace_back("labels", io::ArrayView::Of({count}, labels.integers));
  }
}

}  // namespace

absl::Status CheckSampleOutput(const std::string& path, bool gaussian, bool trajectory) {
  const std::string ext = Extension(path);
  if (ext != ".npz" && ext != ".h5ad" && ext != ".svg") {
    return absl::InvalidArgumentError(
        absl::StrCat("--out ", path, ": unsupported file type '",
                     ext.empty() ? std::string("(none)") : ext,
                     "'; write .npz, .h5ad (point clouds) or .svg"));
  }
  if (gaussian && ext == ".h5ad") {
    return absl::InvalidArgumentError(
        absl::StrCat("--out ", path, ": Gaussian samples go to .npz or .svg, not .h5ad"));
  }
  if (trajectory && ext != ".npz") {
    return absl::InvalidArgumentError(
        absl::StrCat("--trajectory needs an .npz output; --out is ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteSampledClouds(const std::string& path, const SampledClouds& samples,
                                const SvgOptions& svg,
                                const std::vector<std::string>& feature_names) {
  const io::PointCloudSet& clouds = samples.clouds;
  WFM_RETURN_IF_ERROR(CheckSampleOutput(path, false, samples.frames > 0));
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(clouds, "generated samples"));
  const std::string ext = Extension(path);
  if (ext == ".svg") {
    WFM_ASSIGN_OR_RETURN(const std::string text, RenderCloudsSvg(clouds, svg));
    return WriteSvgFile(path, text);
  }
  if (ext == ".h5ad") {
    io::NichesH5adOptions options;
    options.var_names = feature_names;
    return io::WriteNichesH5ad(path, clouds, options);
  }
  const int64_t p = clouds.num_points(), c = clouds.num_clouds();
  std::vector<std::pair<std::string, io::ArrayView>> arrays = {
      {"points", io::ArrayView::Of({p, clouds.dim}, clouds.points)},
      {"offsets", io::ArrayView::Of({c + 1}, clouds.offsets)}};
  AddLabels(clouds.labels, c, &arrays);
  if (samples.frames > 0) {
    if (static_cast<int64_t>(samples.trajectory.size()) != samples.frames * p * clouds.dim) {
      return absl::InternalError("trajectory size does not match frames x points x dim");
    }
    arrays.emplace_back("trajectory",
                        io::ArrayView::Of({samples.frames, p, clouds.dim}, samples.trajectory));
  }
  return io::WriteNpz(path, arrays);
}

absl::Status WriteSampledGaussians(const std::string& path, const SampledGaussians& samples,
                                   const SvgOptions& svg) {
  const io::GaussianSet& g = samples.gaussians;
  WFM_RETURN_IF_ERROR(CheckSampleOutput(path, true, samples.frames > 0));
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(g, "generated samples"));
  if (Extension(path) == ".svg") {
    WFM_ASSIGN_OR_RETURN(const std::string text, RenderGaussiansSvg(g, svg));
    return WriteSvgFile(path, text);
  }
  const int64_t c = g.num_gaussians(), d = g.dim;
  std::vector<std::pair<std::string, io::ArrayView>> arrays = {
      {"means", io::ArrayView::Of({c, d}, g.means)}, {"covs", io::ArrayView::Of({c, d, d}, g.covs)}};
  AddLabels(g.labels, c, &arrays);
  if (samples.frames > 0) {
    if (static_cast<int64_t>(samples.trajectory_means.size()) != samples.frames * c * d ||
        static_cast<int64_t>(samples.trajectory_covs.size()) != samples.frames * c * d * d) {
      return absl::InternalError("trajectory sizes do not match frames x Gaussians");
    }
    arrays.emplace_back("trajectory_means",
                        io::ArrayView::Of({samples.frames, c, d}, samples.trajectory_means));
    arrays.emplace_back("trajectory_covs",
                        io::ArrayView::Of({samples.frames, c, d, d}, samples.trajectory_covs));
  }
  return io::WriteNpz(path, arrays);
}

absl::StatusOr<Projection> ProjectionFromFile(const std::string& path, const std::string& features) {
  const std::string ext = Extension(path);
  if (ext == ".npz") {
    WFM_ASSIGN_OR_RETURN(io::NpzArrays arrays, io::ReadNpz(path));
    WFM_ASSIGN_OR_RETURN(const io::NpzKind kind, io::DetectNpzKind(arrays, path));
    if (kind == io::NpzKind::kPointClouds) {
      WFM_ASSIGN_OR_RETURN(const io::PointCloudSet set,
                           io::PointCloudsFromArrays(std::move(arrays), path));
      return PcaProjection(set.points, set.dim);
    }
    WFM_ASSIGN_OR_RETURN(const io::GaussianSet set, io::GaussiansFromArrays(std::move(arrays), path));
    return PcaProjection(std::vector<float>(set.means.begin(), set.means.end()), set.dim);
  }
  if (ext == ".h5ad") {
    WFM_ASSIGN_OR_RETURN(const io::H5adFile file, io::H5adFile::Open(path));
    absl::StatusOr<io::DenseMatrix> m = file.ReadFeatures(features);
    if (!m.ok() && !absl::StartsWith(m.status().message(), path)) {
      return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
    }
    if (!m.ok()) return m.status();
    return PcaProjection(m->values, m->cols);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--pca-from ", path, ": unsupported file type; use an .npz or .h5ad data set file"));
}

}  // namespace wfm::client
