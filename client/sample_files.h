// Files of generated samples, chosen by the output's extension (DESIGN.md,
// "Files users bring and get"):
//  * .npz point clouds: points float32 [P, d], offsets int64 [C+1], labels
//    (strings [C] for discrete models, float32 [C, k] for continuous ones),
//    and with a trajectory: trajectory float32 [frames, P, d] (frame 0 is
//    the noise at t = 1, the last frame the sample at t = 0);
//  * .npz Gaussians: means float64 [C, d], covs float64 [C, d, d], labels,
//    and trajectory_means [frames, C, d], trajectory_covs [frames, C, d, d];
//  * .h5ad (point clouds only): one cell per generated point (X = points),
//    obs `sample` and `condition` (io::WriteNichesH5ad), var names the
//    model's feature names (ModelInfo.feature_names; none: f0, f1, ...);
//  * .svg: a picture (client/svg.h).
// Every file is written atomically.
#ifndef WFM_CLIENT_SAMPLE_FILES_H_
#define WFM_CLIENT_SAMPLE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/svg.h"

namespace wfm::client {

// OK when `path` has an extension the family can be written to; otherwise
// InvalidArgument naming the supported ones. `trajectory`: only .npz.
absl::Status CheckSampleOutput(const std::string& path, bool gaussian, bool trajectory);

// `feature_names`: the .h5ad's var names, one per dimension, or empty.
absl::Status WriteSampledClouds(const std::string& path, const SampledClouds& samples,
                                const SvgOptions& svg = {},
                                const std::vector<std::string>& feature_names = {});
absl::Status WriteSampledGaussians(const std::string& path, const SampledGaussians& samples,
                                   const SvgOptions& svg = {});

// The view for --pca-from FILE: the principal axes of a data set file's
// points (.npz point clouds), means (.npz Gaussians) or features (.h5ad,
// `features` = X or obsm:KEY).
absl::StatusOr<Projection> ProjectionFromFile(const std::string& path, const std::string& features);

}  // namespace wfm::client

#endif  // WFM_CLIENT_SAMPLE_FILES_H_
