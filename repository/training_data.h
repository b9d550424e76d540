// Training and reference data from stored data sets: the held-out split,
// subsets, and the niches of SPATIAL_CELLS data sets (DESIGN.md, "Spatial
// niches") as point clouds or as Gaussian cell states; the inputs of a
// trainer made from a data set and a training configuration
// (MakeTrainingInputs), and the origin a model records of them. Shared by
// the server's job manager and wfm-train (what a model trains on) and
// Evaluate (what it is compared with), so all see exactly the same items.
// No gRPC, no LibTorch.
#ifndef WFM_REPOSITORY_TRAINING_DATA_H_
#define WFM_REPOSITORY_TRAINING_DATA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "model/config/config.h"
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
  std::vector<std::string> feature_names;  // the data set's, one per dimension, or empty
  std::vector<ConditionColumn> condition_columns;  // the data set's encoding, or empty
  int64_t source_created_unix_ms = 0;  // the user-given source data set's version, or 0
  // Set by the server: the training job that published the model, and the
  // model (version) whose weights its training started from; or empty / 0.
  std::string job;
  std::string init_from_model;
  int64_t init_from_version = 0;

  nlohmann::json ToJson() const;
  // DATA_LOSS for bad fields or held-out indices that are not sorted,
  // unique and in range.
  static absl::StatusOr<TrainingOrigin> FromJson(const nlohmann::json& j);
};

// Whether a `family` model trains on a data set of `kind`: one of the
// family's own kind (FamilyKind), SPATIAL_CELLS (its niches) or, for
// Gaussian models, POINT_CLOUDS (each cloud's mean and covariance).
bool KindFits(model::Family family, DatasetKind kind);
// The kind of a family's items and user-given sources: POINT_CLOUDS or
// GAUSSIANS.
DatasetKind FamilyKind(model::Family family);
// Whether the configuration's source (of config.family) is user-given
// (noise given_random or given_matched), and matched one-to-one with the
// items (given_matched).
bool UsesGivenSource(const model::TrainingConfig& config);
bool UsesMatchedSource(const model::TrainingConfig& config);
// The configuration a run trains with on a data set of `kind`: `config` with
// its data-dependent defaults resolved. A point-cloud feature transform of
// `auto` (the default) stays `auto` for the niches of a SPATIAL_CELLS data
// set (expression features: log1p_standardize when they are counts) and
// becomes `none` for any other data (coordinates: a shape given in integer
// pixel coordinates is not count data).
model::TrainingConfig ConfigForData(model::TrainingConfig config, DatasetKind kind);

// The held-out items of a data set of `items` items: round(fraction *
// items) of them (at least 1 when fraction > 0), drawn by a Fisher-Yates
// shuffle from a splitmix64 stream of `seed`; sorted. The same arguments
// give the same subset on every platform. fraction in [0, 1).
std::vector<int64_t> HoldoutIndices(int64_t items, double fraction, uint64_t seed);
// How many items HoldoutIndices holds out (without drawing them).
int64_t HoldoutCount(int64_t items, double fraction);

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
// INVALID_ARGUMENT for cells with continuous labels (as CloudGaussians).
absl::StatusOr<model::io::GaussianSet> NicheGaussians(const CellSet& cells, int64_t k,
                                                      const std::vector<int64_t>& centers);

// Gaussians from point clouds (the reference's point_clouds= input): cloud
// `ids[j]` becomes N(mean, cov) with the mean and the sample covariance
// (divisor n - 1, as numpy.cov) of its points, equally weighted, plus
// kNicheRidge x the mean per-dimension variance of all points on the
// diagonal (as NicheGaussians: clouds of n <= dim points have singular
// sample covariances), and the cloud's label. INVALID_ARGUMENT for
// continuous labels (Gaussian models take discrete labels) or a cloud of
// fewer than 2 points.
absl::StatusOr<model::io::GaussianSet> CloudGaussians(const model::io::PointCloudSet& clouds,
                                                      const std::vector<int64_t>& ids);

// The Gaussians a Gaussian model trains on or is compared with: items
// `ids` of a GAUSSIANS data set, the Gaussians of clouds `ids`
// (CloudGaussians) or the Gaussian cell states of the niches of cells `ids`
// with `niche_size` cells (NicheGaussians).
absl::StatusOr<model::io::GaussianSet> GaussianItems(const DatasetData& data, int64_t niche_size,
                                                     const std::vector<int64_t>& ids);

// What a trainer of config.family takes, made from a stored data set.
struct TrainingInputs {
  model::io::PointCloudSet clouds;   // family kPointCloud: the training items
  model::io::GaussianSet gaussians;  // family kGaussian: the training items
  // The user-given sources, when the configuration uses them (one of the
  // two, by family).
  std::optional<model::io::PointCloudSet> source_clouds;
  std::optional<model::io::GaussianSet> source_gaussians;
  // The data set, its version and the held-out items, for the model.
  TrainingOrigin origin;

  const model::io::PointCloudSet* source_clouds_or_null() const {
    return source_clouds ? &*source_clouds : nullptr;
  }
  const model::io::GaussianSet* source_gaussians_or_null() const {
    return source_gaussians ? &*source_gaussians : nullptr;
  }
};

// The inputs of a config.family trainer on the data set `data` (named
// data.info.name in the origin): the held-out split of
// config.holdout_fraction and the run's seed (HoldoutIndices, drawn once
// here), the remaining items (SPATIAL_CELLS: their niches of
// config.niche_size cells, as point clouds or Gaussian cell states;
// POINT_CLOUDS for a Gaussian model: CloudGaussians), and,
// when the configuration uses them, the sources `source` (given_matched
// sources with one per data set item follow the items through the split).
// INVALID_ARGUMENT when the data set's kind does not fit the family, the
// split leaves nothing to train on, `source` is missing, not needed or of
// the wrong kind ("source NAME: holds KIND, needs KIND"), or no niche
// remains. Callers check what they can name better (a flag, a field) first.
absl::StatusOr<TrainingInputs> MakeTrainingInputs(const DatasetData& data,
                                                  const DatasetData* source,
                                                  const model::TrainingConfig& config);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_TRAINING_DATA_H_
