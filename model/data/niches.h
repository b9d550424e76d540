// Spatial niches (DESIGN.md, "Spatial niches"): a cell's niche is its k
// nearest spatial neighbours within its own sample (tissue section); the
// niche's points are the neighbours' feature vectors and its condition is
// the centre cell's label. Gaussian cell states are the mean and covariance
// of the same feature vectors. No LibTorch.
//
// Conventions, following the reference (DoronHav/WassersteinFlowMatching,
// SpatialWassersteinFlowMatching._get_niche_indices, which calls
// sklearn.neighbors.kneighbors_graph with include_self=False per batch):
//  * the centre cell is NOT part of its own niche; a niche holds k OTHER
//    cells of the same sample (never a cell of another sample);
//  * a sample with n_s <= k cells: with SmallSamplePolicy::kShrink (the
//    reference's behaviour, k_s = min(k, n_s - 1)) each of its cells gets
//    the n_s - 1 other cells, and the single cell of a one-cell sample gets
//    an empty niche (skipped when niches are gathered); with kError it is an
//    InvalidArgument naming the sample;
//  * distances are Euclidean in the coordinate space, computed in double
//    precision from the float32 coordinates; neighbours are ordered by
//    distance, ties broken by the smaller cell index, so the result is
//    exact and deterministic (equal to a brute-force sort by
//    (distance, index)), including for duplicate coordinates.
// One KD-tree (nanoflann) is built per sample.
#ifndef WFM_MODEL_DATA_NICHES_H_
#define WFM_MODEL_DATA_NICHES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/io/point_sets.h"

namespace wfm::model::data {

enum class SmallSamplePolicy {
  kShrink,  // samples with n_s <= k cells give niches of n_s - 1 cells
  kError,   // such samples are an InvalidArgument
};

struct NicheOptions {
  int64_t k = 8;  // neighbours per niche, >= 1
  SmallSamplePolicy small_samples = SmallSamplePolicy::kShrink;
  int num_threads = 1;  // >= 1; queries are split over this many threads
};

// The niches of n cells in CSR form.
struct Niches {
  int64_t k = 0;                   // the requested niche size
  std::vector<int64_t> offsets;    // [n+1]; niche of cell i = neighbors[offsets[i] .. offsets[i+1])
  std::vector<int64_t> neighbors;  // [offsets[n]] cell indices, nearest first

  int64_t num_cells() const {
    return offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  }
  absl::Span<const int64_t> of(int64_t cell) const {
    return absl::MakeConstSpan(neighbors.data() + offsets[cell],
                               neighbors.data() + offsets[cell + 1]);
  }
};

// coords: [n, dim] float32 row-major spatial coordinates (dim >= 1, usually
// 2), finite. sample_ids: [n] sample of each cell, or empty (one sample).
// InvalidArgument names the field and the rule.
absl::StatusOr<Niches> BuildNiches(absl::Span<const float> coords, int64_t dim,
                                   absl::Span<const int64_t> sample_ids,
                                   const NicheOptions& options);
// Same, with sample ids given as text (e.g. a categorical obs column).
absl::StatusOr<Niches> BuildNiches(absl::Span<const float> coords, int64_t dim,
                                   const std::vector<std::string>& sample_ids,
                                   const NicheOptions& options);

// Niche point clouds gathered from per-cell features.
struct NicheClouds {
  // points [sum of niche sizes, f] float32: the neighbours' feature rows,
  // niche by niche in neighbour order; offsets [m+1]; labels: the centre
  // cells' labels (none when no cell labels were given).
  io::PointCloudSet clouds;
  std::vector<int64_t> centers;  // [m] the centre cell of each cloud
};

// features: [n, f] float32 row-major (finite). cell_labels: none, or one
// label per cell. centers: the cells whose niches to gather, in that order;
// empty = every cell with a non-empty niche (cells of one-cell samples are
// skipped). An explicitly requested empty niche is an InvalidArgument.
absl::StatusOr<NicheClouds> GatherNicheClouds(const Niches& niches,
                                              absl::Span<const float> features, int64_t feature_dim,
                                              const io::Labels& cell_labels = {},
                                              absl::Span<const int64_t> centers = {});

struct NicheGaussianOptions {
  // Covariance divisor n - ddof: 1 = sample covariance (numpy.cov, the
  // reference's mean_and_cov_from_pointclouds), 0 = population covariance.
  int ddof = 1;
  // Added to the covariance diagonal (>= 0): keeps niches with fewer than
  // f + ddof cells (rank-deficient covariances) positive definite.
  double ridge = 0.0;
};

// Gaussian cell states of the niches.
struct NicheGaussians {
  // means [m, f], covs [m, f, f] (float64), labels as in NicheClouds. The
  // covariances are not checked for definiteness here; call
  // io::ValidateGaussianSet before using them as Bures–Wasserstein data.
  io::GaussianSet gaussians;
  std::vector<int64_t> centers;  // [m]
};

// Per-niche mean and covariance of the neighbours' features, accumulated in
// double precision (two passes: mean, then centred products). Centre
// selection as in GatherNicheClouds; a selected niche with <= ddof cells is
// an InvalidArgument.
absl::StatusOr<NicheGaussians> ComputeNicheGaussians(const Niches& niches,
                                                     absl::Span<const float> features,
                                                     int64_t feature_dim,
                                                     const io::Labels& cell_labels = {},
                                                     absl::Span<const int64_t> centers = {},
                                                     const NicheGaussianOptions& options = {});

}  // namespace wfm::model::data

#endif  // WFM_MODEL_DATA_NICHES_H_
