// A stored data set of the repository, one folder per data set below
// <data-dir>/datasets, as the server's data set store writes it and
// wfm-server and wfm-train read it:
//   <root>/<name>/data.npz      the data (layouts below)
//   <root>/<name>/dataset.json  the record: kind, dim, label type, counts,
//                               created time, description
//
// data.npz layouts:
//   POINT_CLOUDS   points float32 [P, dim], offsets int64 [C+1], labels
//                  (discrete: strings [C]; continuous: float32 [C, cond_dim])
//   GAUSSIANS      means float64 [C, dim], covs float64 [C, dim, dim], labels
//                  (discrete: strings [C])
//   SPATIAL_CELLS  features float32 [n, dim], coords float32 [n, spatial_dim],
//                  sample_ids strings [n] (absent: one sample), labels strings
//                  [n] (discrete), conditions float32 [n, cond_dim] (continuous)
#ifndef WFM_REPOSITORY_DATASET_RECORD_H_
#define WFM_REPOSITORY_DATASET_RECORD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/point_sets.h"
#include "repository/condition_columns.h"

namespace wfm::repository {

inline constexpr char kDatasetDataFile[] = "data.npz";
inline constexpr char kDatasetRecordFile[] = "dataset.json";

enum class DatasetKind { kPointClouds, kGaussians, kSpatialCells };
enum class LabelType { kNone, kDiscrete, kContinuous };

// "POINT_CLOUDS" | "GAUSSIANS" | "SPATIAL_CELLS" (the API's enum names).
std::string DatasetKindName(DatasetKind kind);
absl::StatusOr<DatasetKind> ParseDatasetKind(absl::string_view name);
// "none" | "discrete" | "continuous".
std::string LabelTypeName(LabelType type);
absl::StatusOr<LabelType> ParseLabelType(absl::string_view name);

// What the record says about a data set (the API's Dataset message).
struct DatasetInfo {
  std::string name;
  DatasetKind kind = DatasetKind::kPointClouds;
  int64_t dim = 0;
  LabelType label_type = LabelType::kNone;
  int64_t condition_dim = 0;
  int64_t items = 0;     // clouds, Gaussians or cells
  int64_t points = 0;    // POINT_CLOUDS: total points
  int64_t min_size = 0;  // POINT_CLOUDS: smallest cloud
  int64_t max_size = 0;  // POINT_CLOUDS: largest cloud
  int64_t samples = 0;   // SPATIAL_CELLS: distinct sample ids (1 without ids)
  int64_t spatial_dim = 0;  // SPATIAL_CELLS: coordinate columns (2 or 3, ...); others 0
  std::vector<std::string> label_names;  // discrete: distinct labels, sorted
  int64_t size_bytes = 0;                // of data.npz
  int64_t created_unix_ms = 0;
  std::string description;
  // One name per dimension (the upload's header.feature_names), or empty.
  std::vector<std::string> feature_names;
  // Continuous labels: how the condition vectors were encoded from named
  // columns (CheckConditionColumns holds), or empty (plain vectors).
  std::vector<ConditionColumn> condition_columns;
};

// Cells of a spatial transcriptomics data set.
struct CellSet {
  int64_t dim = 0;                      // features per cell
  std::vector<float> features;          // [n, dim] row-major
  int64_t spatial_dim = 2;              // coordinate columns (2-D sections, 3-D tissue)
  std::vector<float> coords;            // [n, spatial_dim] row-major
  std::vector<std::string> sample_ids;  // [n], or empty: one sample
  model::io::Labels labels;             // none, strings [n] or continuous [n, cond_dim]

  int64_t num_cells() const { return dim > 0 ? static_cast<int64_t>(features.size()) / dim : 0; }
};

// A loaded data set: its record and its data (the alternative matching
// info.kind).
struct DatasetData {
  DatasetInfo info;
  std::variant<model::io::PointCloudSet, model::io::GaussianSet, CellSet> data;

  const model::io::PointCloudSet& clouds() const {
    return std::get<model::io::PointCloudSet>(data);
  }
  const model::io::GaussianSet& gaussians() const { return std::get<model::io::GaussianSet>(data); }
  const CellSet& cells() const { return std::get<CellSet>(data); }
};

// The record as stored (dataset.json) and back. From JSON: INVALID_ARGUMENT
// for another format, UNIMPLEMENTED for a newer record version, DATA_LOSS
// for missing or bad fields.
nlohmann::json DatasetRecordToJson(const DatasetInfo& info);
absl::StatusOr<DatasetInfo> DatasetRecordFromJson(const nlohmann::json& j);

// Writes `info` as <folder>/dataset.json (atomic write).
absl::Status WriteDatasetRecord(const std::string& folder, const DatasetInfo& info);

// Reads the record of the data set folder `folder` and checks it against
// the folder: it names `name`, and data.npz has the recorded size (DATA_LOSS
// otherwise; NOT_FOUND when a file is missing).
absl::StatusOr<DatasetInfo> ReadDatasetRecord(const std::string& folder, absl::string_view name);

// Reads the data of `info` from `folder` (data.npz) and checks it against
// the record: NOT_FOUND ("data set 'x' was deleted") when the file is gone,
// DATA_LOSS when it does not hold what the record says.
absl::StatusOr<std::shared_ptr<const DatasetData>> ReadDatasetFolder(const std::string& folder,
                                                                     const DatasetInfo& info);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_DATASET_RECORD_H_
