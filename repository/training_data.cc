#include "repository/training_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/data/niches.h"

namespace wfm::repository {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A uniformly shuffled prefix of `values` of length `count` (partial
// Fisher-Yates).
void ShufflePrefix(std::vector<int64_t>* values, int64_t count, uint64_t seed) {
  uint64_t state = seed;
  const int64_t n = static_cast<int64_t>(values->size());
  for (int64_t i = 0; i < count && i < n; ++i) {
    const uint64_t span = static_cast<uint64_t>(n - i);
    const int64_t j = i + static_cast<int64_t>(SplitMix64(&state) % span);
    std::swap((*values)[i], (*values)[j]);
  }
}

// Cells of `centers` with a non-empty niche.
std::vector<int64_t> WithNiches(const model::data::Niches& niches,
                                const std::vector<int64_t>& centers) {
  std::vector<int64_t> out;
  out.reserve(centers.size());
  for (int64_t c : centers) {
    if (niches.offsets[c + 1] > niches.offsets[c]) out.push_back(c);
  }
  return out;
}

absl::StatusOr<model::data::Niches> BuildCellNiches(const CellSet& cells, int64_t k) {
  model::data::NicheOptions options;
  options.k = k;
  return model::data::BuildNiches(cells.coords, cells.spatial_dim, cells.sample_ids, options);
}

absl::Status CheckCenters(const CellSet& cells, const std::vector<int64_t>& centers) {
  for (int64_t c : centers) {
    if (c < 0 || c >= cells.num_cells()) {
      return absl::InvalidArgumentError(absl::StrCat("cell ", c, " out of range"));
    }
  }
  return absl::OkStatus();
}

// Sample covariances (divisor n - 1) with kNicheRidge x the mean
// per-feature variance of all `values` ([n, d] row-major) on the diagonal.
model::data::NicheGaussianOptions RidgedSampleCovariance(absl::Span<const float> values,
                                                         int64_t d) {
  const int64_t n = static_cast<int64_t>(values.size()) / d;
  double variance = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    double mean = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += values[i * d + j];
    mean /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      const double x = values[i * d + j] - mean;
      sq += x * x;
    }
    variance += sq / static_cast<double>(n);
  }
  variance /= static_cast<double>(d);
  model::data::NicheGaussianOptions options;
  options.ddof = 1;
  options.ridge = variance > 0.0 ? kNicheRidge * variance : kNicheRidge;
  return options;
}

}  // namespace

nlohmann::json TrainingOrigin::ToJson() const {
  nlohmann::json j = {{"dataset", dataset},
                      {"dataset_kind", dataset_kind},
                      {"dataset_created_unix_ms", dataset_created_unix_ms},
                      {"dataset_items", dataset_items},
                      {"niche_size", niche_size},
                      {"holdout_fraction", holdout_fraction},
                      {"heldout", heldout},
                      {"feature_names", feature_names},
                      {"condition_columns", ConditionColumnsToJson(condition_columns)}};
  if (source_created_unix_ms != 0) j["source_created_unix_ms"] = source_created_unix_ms;
  if (!job.empty()) j["job"] = job;
  if (!init_from_model.empty()) {
    j["init_from_model"] = init_from_model;
    j["init_from_version"] = init_from_version;
  }
  return j;
}

absl::StatusOr<TrainingOrigin> TrainingOrigin::FromJson(const nlohmann::json& j) {
  try {
    TrainingOrigin o;
    o.dataset = j.value("dataset", "");
    o.dataset_kind = j.value("dataset_kind", "");
    o.dataset_created_unix_ms = j.value("dataset_created_unix_ms", int64_t{0});
    o.dataset_items = j.value("dataset_items", int64_t{0});
    o.niche_size = j.value("niche_size", int64_t{0});
    o.holdout_fraction = j.value("holdout_fraction", 0.0);
    o.heldout = j.value("heldout", std::vector<int64_t>{});
    o.feature_names = j.value("feature_names", std::vector<std::string>{});
    o.source_created_unix_ms = j.value("source_created_unix_ms", int64_t{0});
    o.job = j.value("job", "");
    o.init_from_model = j.value("init_from_model", "");
    o.init_from_version = j.value("init_from_version", int64_t{0});
    // Models trained before condition encodings have none.
    if (j.contains("condition_columns")) {
      WFM_ASSIGN_OR_RETURN(o.condition_columns,
                           ConditionColumnsFromJson(j.at("condition_columns")));
    }
    for (size_t i = 0; i < o.heldout.size(); ++i) {
      if (o.heldout[i] < 0 || o.heldout[i] >= o.dataset_items ||
          (i > 0 && o.heldout[i] <= o.heldout[i - 1])) {
        return absl::DataLossError("server.heldout: indices must be sorted, unique, in range");
      }
    }
    return o;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint metadata 'server': ", e.what()));
  }
}

bool KindFits(model::Family family, DatasetKind kind) {
  return kind == DatasetKind::kSpatialCells || kind == FamilyKind(family) ||
         (family == model::Family::kGaussian && kind == DatasetKind::kPointClouds);
}

DatasetKind FamilyKind(model::Family family) {
  return family == model::Family::kPointCloud ? DatasetKind::kPointClouds
                                              : DatasetKind::kGaussians;
}

model::TrainingConfig ConfigForData(model::TrainingConfig config, DatasetKind kind) {
  std::string& transform = config.pointcloud.feature_transform;
  if (transform == "auto" && kind != DatasetKind::kSpatialCells) transform = "none";
  return config;
}

bool UsesGivenSource(const model::TrainingConfig& config) {
  if (config.family == model::Family::kPointCloud) {
    return config.pointcloud.source == model::PointCloudSource::kGivenRandom ||
           config.pointcloud.source == model::PointCloudSource::kGivenMatched;
  }
  return config.gaussian.source == model::GaussianSource::kGivenRandom ||
         config.gaussian.source == model::GaussianSource::kGivenMatched;
}

bool UsesMatchedSource(const model::TrainingConfig& config) {
  return config.family == model::Family::kPointCloud
             ? config.pointcloud.source == model::PointCloudSource::kGivenMatched
             : config.gaussian.source == model::GaussianSource::kGivenMatched;
}

int64_t HoldoutCount(int64_t items, double fraction) {
  if (items <= 0 || !(fraction > 0.0)) return 0;
  const int64_t count = static_cast<int64_t>(std::llround(fraction * static_cast<double>(items)));
  return std::clamp<int64_t>(count, 1, items);
}

std::vector<int64_t> HoldoutIndices(int64_t items, double fraction, uint64_t seed) {
  const int64_t count = HoldoutCount(items, fraction);
  if (count == 0) return {};
  std::vector<int64_t> all(items);
  std::iota(all.begin(), all.end(), 0);
  ShufflePrefix(&all, count, seed ^ 0x5EEDF0A7C0FFEE11ULL);
  all.resize(count);
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<int64_t> Complement(int64_t items, const std::vector<int64_t>& excluded) {
  std::vector<int64_t> out;
  out.reserve(items - static_cast<int64_t>(excluded.size()));
  size_t e = 0;
  for (int64_t i = 0; i < items; ++i) {
    while (e < excluded.size() && excluded[e] < i) ++e;
    if (e < excluded.size() && excluded[e] == i) continue;
    out.push_back(i);
  }
  return out;
}

std::vector<int64_t> DrawSubset(const std::vector<int64_t>& indices, int64_t max, uint64_t seed) {
  if (max <= 0 || static_cast<int64_t>(indices.size()) <= max) return indices;
  std::vector<int64_t> positions(indices.size());
  std::iota(positions.begin(), positions.end(), 0);
  ShufflePrefix(&positions, max, seed);
  positions.resize(max);
  std::sort(positions.begin(), positions.end());
  std::vector<int64_t> out;
  out.reserve(max);
  for (int64_t p : positions) out.push_back(indices[p]);
  return out;
}

model::io::PointCloudSet TakeClouds(const model::io::PointCloudSet& set,
                                    const std::vector<int64_t>& ids) {
  model::io::PointCloudSet out;
  out.dim = set.dim;
  out.offsets.push_back(0);
  int64_t total = 0;
  for (int64_t id : ids) total += set.cloud_size(id);
  out.points.reserve(total * set.dim);
  for (int64_t id : ids) {
    out.points.insert(out.points.end(), set.points.begin() + set.offsets[id] * set.dim,
                      set.points.begin() + set.offsets[id + 1] * set.dim);
    out.offsets.push_back(out.offsets.back() + set.cloud_size(id));
  }
  // Unlabelled sets have no labels to take (Labels::Take checks every index
  // against the label count, 0 for them).
  if (set.labels.kind != model::io::Labels::Kind::kNone) out.labels = set.labels.Take(ids);
  return out;
}

model::io::GaussianSet TakeGaussians(const model::io::GaussianSet& set,
                                     const std::vector<int64_t>& ids) {
  model::io::GaussianSet out;
  const int64_t d = set.dim;
  out.dim = d;
  out.means.reserve(ids.size() * d);
  out.covs.reserve(ids.size() * d * d);
  for (int64_t id : ids) {
    out.means.insert(out.means.end(), set.means.begin() + id * d, set.means.begin() + (id + 1) * d);
    out.covs.insert(out.covs.end(), set.covs.begin() + id * d * d,
                    set.covs.begin() + (id + 1) * d * d);
  }
  // Unlabelled sets have no labels to take (Labels::Take checks every index
  // against the label count, 0 for them).
  if (set.labels.kind != model::io::Labels::Kind::kNone) out.labels = set.labels.Take(ids);
  return out;
}

absl::StatusOr<model::io::PointCloudSet> NicheClouds(const CellSet& cells, int64_t k,
                                                     const std::vector<int64_t>& centers) {
  WFM_RETURN_IF_ERROR(CheckCenters(cells, centers));
  WFM_ASSIGN_OR_RETURN(const model::data::Niches niches, BuildCellNiches(cells, k));
  const std::vector<int64_t> kept = WithNiches(niches, centers);
  if (kept.empty()) {
    return absl::InvalidArgumentError(
        "niches: no cell has a neighbour in its sample (every sample holds one cell)");
  }
  WFM_ASSIGN_OR_RETURN(model::data::NicheClouds clouds,
                       model::data::GatherNicheClouds(niches, cells.features, cells.dim,
                                                      cells.labels, kept));
  return std::move(clouds.clouds);
}

absl::StatusOr<model::io::GaussianSet> NicheGaussians(const CellSet& cells, int64_t k,
                                                      const std::vector<int64_t>& centers) {
  WFM_RETURN_IF_ERROR(CheckCenters(cells, centers));
  WFM_ASSIGN_OR_RETURN(const model::data::Niches niches, BuildCellNiches(cells, k));
  // A sample covariance needs two cells: keep niches of at least 2.
  std::vector<int64_t> kept;
  for (int64_t c : centers) {
    if (niches.offsets[c + 1] - niches.offsets[c] >= 2) kept.push_back(c);
  }
  if (kept.empty()) {
    return absl::InvalidArgumentError(
        "niches: no niche holds two cells (Gaussian cell states need samples of 3 or more cells)");
  }
  WFM_ASSIGN_OR_RETURN(
      model::data::NicheGaussians gaussians,
      model::data::ComputeNicheGaussians(niches, cells.features, cells.dim, cells.labels, kept,
                                         RidgedSampleCovariance(cells.features, cells.dim)));
  WFM_RETURN_IF_ERROR(model::io::ValidateGaussianSet(gaussians.gaussians, "niche Gaussians"));
  return std::move(gaussians.gaussians);
}

absl::StatusOr<model::io::GaussianSet> CloudGaussians(const model::io::PointCloudSet& clouds,
                                                      const std::vector<int64_t>& ids) {
  const int64_t c = clouds.num_clouds(), p = clouds.num_points();
  for (int64_t id : ids) {
    if (id < 0 || id >= c) {
      return absl::InvalidArgumentError(
          absl::StrCat("clouds: item ", id, " is outside [0, ", c, ")"));
    }
    if (clouds.cloud_size(id) < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("clouds[", id, "]: ", clouds.cloud_size(id),
                       " point; a Gaussian (mean and sample covariance) needs at least 2"));
    }
  }
  // The clouds as niches over their points: "cell" i < C has the points of
  // cloud i as its niche, the others none (they are never centres).
  model::data::Niches niches;
  niches.offsets = clouds.offsets;
  niches.offsets.resize(p + 1, p);
  niches.neighbors.resize(p);
  std::iota(niches.neighbors.begin(), niches.neighbors.end(), int64_t{0});
  WFM_ASSIGN_OR_RETURN(
      model::data::NicheGaussians gaussians,
      model::data::ComputeNicheGaussians(niches, clouds.points, clouds.dim, {}, ids,
                                         RidgedSampleCovariance(clouds.points, clouds.dim)));
  if (!clouds.labels.empty()) gaussians.gaussians.labels = clouds.labels.Take(ids);
  WFM_RETURN_IF_ERROR(model::io::ValidateGaussianSet(gaussians.gaussians, "cloud Gaussians"));
  return std::move(gaussians.gaussians);
}

absl::StatusOr<model::io::GaussianSet> GaussianItems(const DatasetData& data, int64_t niche_size,
                                                     const std::vector<int64_t>& ids) {
  switch (data.info.kind) {
    case DatasetKind::kGaussians: return TakeGaussians(data.gaussians(), ids);
    case DatasetKind::kPointClouds: return CloudGaussians(data.clouds(), ids);
    case DatasetKind::kSpatialCells: return NicheGaussians(data.cells(), niche_size, ids);
  }
  return absl::InternalError("data set: unknown kind");
}

absl::StatusOr<TrainingInputs> MakeTrainingInputs(const DatasetData& data,
                                                  const DatasetData* source,
                                                  const model::TrainingConfig& config) {
  const DatasetInfo& info = data.info;
  const model::Family family = config.family;
  if (!KindFits(family, info.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set '", info.name, "' holds ", DatasetKindName(info.kind), "; ",
        model::FamilyName(family), " models train on ", DatasetKindName(FamilyKind(family)),
        family == model::Family::kGaussian ? ", POINT_CLOUDS" : "", " or SPATIAL_CELLS data"));
  }
  TrainingInputs in;
  TrainingOrigin& origin = in.origin;
  origin.dataset = info.name;
  origin.dataset_kind = DatasetKindName(info.kind);
  origin.dataset_created_unix_ms = info.created_unix_ms;
  origin.dataset_items = info.items;
  origin.niche_size = info.kind == DatasetKind::kSpatialCells ? config.niche_size : 0;
  origin.holdout_fraction = config.holdout_fraction;
  origin.feature_names = info.feature_names;
  origin.condition_columns = info.condition_columns;
  origin.heldout = HoldoutIndices(info.items, config.holdout_fraction, config.seed());
  const std::vector<int64_t> train_ids = Complement(info.items, origin.heldout);
  if (train_ids.empty()) {
    return absl::InvalidArgumentError("holdout_fraction leaves nothing to train on");
  }
  const bool all = origin.heldout.empty();

  if (source == nullptr && UsesGivenSource(config)) {
    return absl::InvalidArgumentError(
        "noise given_random / given_matched: needs a data set of source items");
  }
  if (source != nullptr && !UsesGivenSource(config)) {
    return absl::InvalidArgumentError(
        "source items: only used with noise given_random or given_matched");
  }
  if (source != nullptr && source->info.kind != FamilyKind(family)) {
    return absl::InvalidArgumentError(absl::StrCat("source ", source->info.name, ": holds ",
                                                   DatasetKindName(source->info.kind),
                                                   ", needs ",
                                                   DatasetKindName(FamilyKind(family))));
  }
  if (source != nullptr) origin.source_created_unix_ms = source->info.created_unix_ms;
  // Matched sources follow the data set's items through the holdout.
  const bool follow = source != nullptr && UsesMatchedSource(config) && !all &&
                      source->info.items == info.items;

  const bool cells = info.kind == DatasetKind::kSpatialCells;
  if (family == model::Family::kPointCloud) {
    if (cells) {
      WFM_ASSIGN_OR_RETURN(in.clouds, NicheClouds(data.cells(), config.niche_size, train_ids));
    } else {
      in.clouds = all ? data.clouds() : TakeClouds(data.clouds(), train_ids);
    }
    if (source != nullptr) {
      in.source_clouds = follow ? TakeClouds(source->clouds(), train_ids) : source->clouds();
    }
  } else {
    if (info.kind == DatasetKind::kGaussians && all) {
      in.gaussians = data.gaussians();
    } else {
      WFM_ASSIGN_OR_RETURN(in.gaussians, GaussianItems(data, config.niche_size, train_ids));
    }
    if (source != nullptr) {
      in.source_gaussians =
          follow ? TakeGaussians(source->gaussians(), train_ids) : source->gaussians();
    }
  }
  return in;
}

}  // namespace wfm::repository
