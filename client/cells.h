// Spatial cells (the SPATIAL_CELLS data sets of the API): per-cell feature
// vectors, spatial coordinates (2-D sections or 3-D tissue), optional sample ids and labels, read from
// an AnnData .h5ad file. The server builds the niches from them.
#ifndef WFM_CLIENT_CELLS_H_
#define WFM_CLIENT_CELLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "model/io/point_sets.h"
#include "wfm/v1/types.pb.h"

namespace wfm::client {

struct SpatialCells {
  int64_t dim = 0;                      // features per cell, >= 1
  std::vector<float> features;          // [n, dim] row-major, finite
  int64_t spatial_dim = 2;              // coordinate columns, 1 to kMaxSpatialDim
  std::vector<float> coords;            // [n, spatial_dim] row-major, finite
  std::vector<std::string> sample_ids;  // [n], or empty (one sample)
  std::vector<std::string> labels;      // [n] (e.g. cell type), or empty
  // Continuous conditions (client/conditions.h), exclusive with labels:
  // [n, condition_dim] row-major and their encoding, or empty.
  int64_t condition_dim = 0;
  std::vector<float> conditions;
  std::vector<v1::ConditionColumn> condition_columns;
  // [dim]: var_names when the features are X; empty for obsm features.
  std::vector<std::string> feature_names;

  int64_t num_cells() const {
    return spatial_dim > 0 ? static_cast<int64_t>(coords.size()) / spatial_dim : 0;
  }
};

// The server's bound on spatial_dim (DatasetHeader.spatial_dim).
inline constexpr int64_t kMaxSpatialDim = 16;

// Checks: at least one cell; dim >= 1; spatial_dim in [1, kMaxSpatialDim];
// features n*dim and coords n*spatial_dim values,
// all finite; sample_ids and labels empty or n entries, none empty.
// InvalidArgument prefixed with `source`, naming the field and the cell.
absl::Status ValidateSpatialCells(const SpatialCells& cells, absl::string_view source);

// Where the parts of the data set are in the .h5ad file (the command-line
// tool's --features, --spatial-key, --label-key, --sample-key).
struct CellReadOptions {
  std::string features = "X";         // "X" or "obsm:KEY"
  std::string spatial_key = "spatial";  // obsm/<key>, [n_obs, spatial_dim]
  std::string label_key;              // obs column; empty = no labels
  // --condition-key, repeatable (obs columns, obsm:KEY). One key naming a
  // categorical, string, integer or bool obs column gives discrete labels,
  // as label_key does; otherwise the keys are encoded into condition vectors
  // (client/conditions.h). Exclusive with label_key.
  std::vector<std::string> condition_keys;
  std::string sample_key;             // obs column; empty = one sample
  // The file is read in a child process (client/isolated.h): a corrupt file
  // that crashes libhdf5 gives DataLoss, one that makes it loop is stopped
  // after this long (DeadlineExceeded).
  absl::Duration timeout = absl::Minutes(10);
};

// Reads and validates. Every column of the spatial array is a coordinate:
// 2 for tissue sections, 3 for 3-D tissue (1 to kMaxSpatialDim). Labels come from categorical, string, integer or bool
// columns (continuous columns are InvalidArgument, as are missing values).
// Errors: NotFound for a missing file, InvalidArgument naming the file, the
// element and the rule (an unknown obsm key or obs column lists the
// available ones); DataLoss or DeadlineExceeded when libhdf5 crashes or
// hangs on the file (see CellReadOptions::timeout).
absl::StatusOr<SpatialCells> ReadSpatialCells(const std::string& path,
                                              const CellReadOptions& options);

// Gaussians read from an .h5ad whose rows (obs) are the Gaussians: means
// obsm[means_key] [n_obs, d], covariances obsm[covs_key] [n_obs, d, d]
// (dense, read as float64; the tool's --means-key, --covs-key), and labels
// or condition vectors from condition_keys exactly as for cells.
struct GaussianReadOptions {
  std::string means_key;
  std::string covs_key;
  std::vector<std::string> condition_keys;
  absl::Duration timeout = absl::Minutes(10);  // as CellReadOptions::timeout
};
struct H5adGaussians {
  // Labels: discrete (one label key), the condition vectors (continuous), or none.
  model::io::GaussianSet gaussians;
  std::vector<v1::ConditionColumn> condition_columns;  // the vectors' encoding
};
// Reads and validates (io::ValidateGaussianSet). Errors as ReadSpatialCells,
// naming --means-key / --covs-key for arrays of the wrong shape.
absl::StatusOr<H5adGaussians> ReadGaussiansH5ad(const std::string& path,
                                                const GaussianReadOptions& options);

}  // namespace wfm::client

#endif  // WFM_CLIENT_CELLS_H_
