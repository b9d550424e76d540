// Training and reference data from stored data sets: the held-out split,
// subsets, and the niches of SPATIAL_CELLS data sets (DESIGN.md, "Spatial
// niches") as point clouds or as Gaussian cell states, and the origin a
// model records of them. Shared by the server's job manager and wfm-train
// (what a model trains on) and Evaluate (what it is compared with), so all
// see exactly the same items. No gRPC, no LibTorch.
#ifndef WFM_REPOSITORY_TRAINING_DATA_H_
#define WFM_REPOSITORY_TRAINING_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "model/io/point_sets.h"
#include "repository/dataset_record.h"

namespace wfm::repository {

// The niche size used when a request leaves it unset.
inline constexpr int64_t kDefaultNicheSize = 8;
// Gaussian cell states: the ridge added to each niche covariance's diagonal,
// relative to the mean per-feature variance of all cells (niches of k cells
// in more than k - 1 dimensions have singular sample covariances).
inline constexpr double kNicheRidge = 1e-3;

// Where a model's training data came from, stored in its checkpoint's
// metadata under "server" (Evaluate's "heldout" split reads it).
struct TrainingOrigin {
  std::string dataset;
  std::string dataset_kind;             // "POINT_CLOUDS" | "GAUSSIANS" | "SPATIAL_CELLS"
  int64_t dataset_created_unix_ms = 0;  // identifies the data set's version
  int64_t dataset_items = 0;            // clouds, Gaussians or cells
  int64_t niche_size = 0;               // SPATIAL_CELLS: k
  double holdout_fraction = 0.0;
  std::vector<int64_t> heldout;         // sorted item indices excluded from training

  nlohmann::json ToJson() const;
  // DATA_LOSS for bad fields or held-out indices that are not sorted,
  // unique and in range.
  static absl::StatusOr<TrainingOrigin> FromJson(const nlohmann::json& j);
};

// The held-out items of a data set of `items` items: round(fraction *
// items) of them (at least 1 when fraction > 0), drawn by a Fisher-Yates
// shuffle from a splitmix64 stream of `seed`; sorted. The same arguments
// give the same subset on every platform. fraction in [0, 1).
std::vector<int64_t> HoldoutIndices(int64_t items, double fraction, uint64_t seed);

// 0..items-1 without the sorted `excluded`.
std::vector<int64_t> Complement(int64_t items, const std::vector<int64_t>& excluded);

// At most `max` of `indices` (all when max <= 0 or there are fewer), drawn
// with `seed`, kept in their original order.
std::vector<int64_t> DrawSubset(const std::vector<int64_t>& indices, int64_t max, uint64_t seed);

// The clouds / Gaussians `ids` of a set, in that order, with their labels.
model::io::PointCloudSet TakeClouds(const model::io::PointCloudSet& set,
                                    const std::vector<int64_t>& ids);
model::io::GaussianSet TakeGaussians(const model::io::GaussianSet& set,
                                     const std::vector<int64_t>& ids);

// The niche point clouds (k nearest other cells of the same sample; points =
// their features; label = the centre cell's label) of the cells `centers`
// (sorted cell indices); cells whose niche is empty (one-cell samples) are
// skipped. INVALID_ARGUMENT when no niche is left.
absl::StatusOr<model::io::PointCloudSet> NicheClouds(const CellSet& cells, int64_t k,
                                                     const std::vector<int64_t>& centers);
// The niches' Gaussian cell states: mean and sample covariance of the
// neighbours' features, plus kNicheRidge x the mean feature variance on the
// diagonal, so every covariance is symmetric positive definite.
absl::StatusOr<model::io::GaussianSet> NicheGaussians(const CellSet& cells, int64_t k,
                                                      const std::vector<int64_t>& centers);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_TRAINING_DATA_H_
