#include "repository/dataset_record.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/json_depth.h"
#include "model/io/npz.h"
#include "repository/fs_util.h"

namespace wfm::repository {
namespace {

using model::io::GaussianSet;
using model::io::Labels;
using model::io::PointCloudSet;

constexpr char kRecordFormat[] = "wfm.dataset";
constexpr int kRecordVersion = 1;

absl::StatusOr<std::vector<std::string>> StringsOf(const model::io::NpzArrays& arrays,
                                                   const std::string& name, int64_t n,
                                                   absl::string_view source) {
  auto it = arrays.find(name);
  if (it == arrays.end()) return std::vector<std::string>{};
  WFM_ASSIGN_OR_RETURN(std::vector<std::string> values, it->second.ToStrings());
  if (static_cast<int64_t>(values.size()) != n) {
    return absl::DataLossError(absl::StrCat(source, ": ", name, " holds ", values.size(),
                                            " values for ", n, " cells"));
  }
  return values;
}

}  // namespace

std::string DatasetKindName(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kPointClouds: return "POINT_CLOUDS";
    case DatasetKind::kGaussians: return "GAUSSIANS";
    case DatasetKind::kSpatialCells: return "SPATIAL_CELLS";
  }
  return "?";
}

absl::StatusOr<DatasetKind> ParseDatasetKind(absl::string_view name) {
  if (name == "POINT_CLOUDS") return DatasetKind::kPointClouds;
  if (name == "GAUSSIANS") return DatasetKind::kGaussians;
  if (name == "SPATIAL_CELLS") return DatasetKind::kSpatialCells;
  return absl::InvalidArgumentError(absl::StrCat("kind: unknown data set kind '", name, "'"));
}

std::string LabelTypeName(LabelType type) {
  switch (type) {
    case LabelType::kNone: return "none";
    case LabelType::kDiscrete: return "discrete";
    case LabelType::kContinuous: return "continuous";
  }
  return "?";
}

absl::StatusOr<LabelType> ParseLabelType(absl::string_view name) {
  if (name == "none") return LabelType::kNone;
  if (name == "discrete") return LabelType::kDiscrete;
  if (name == "continuous") return LabelType::kContinuous;
  return absl::InvalidArgumentError(absl::StrCat("label_type: unknown label type '", name, "'"));
}

nlohmann::json DatasetRecordToJson(const DatasetInfo& info) {
  return {{"format", kRecordFormat},
          {"version", kRecordVersion},
          {"name", info.name},
          {"kind", DatasetKindName(info.kind)},
          {"dim", info.dim},
          {"label_type", LabelTypeName(info.label_type)},
          {"condition_dim", info.condition_dim},
          {"items", info.items},
          {"points", info.points},
          {"min_size", info.min_size},
          {"max_size", info.max_size},
          {"samples", info.samples},
          {"spatial_dim", info.spatial_dim},
          {"label_names", info.label_names},
          {"size_bytes", info.size_bytes},
          {"created_unix_ms", info.created_unix_ms},
          {"description", info.description},
          {"feature_names", info.feature_names},
          {"condition_columns", ConditionColumnsToJson(info.condition_columns)},
          {"data_file", kDatasetDataFile}};
}

absl::StatusOr<DatasetInfo> DatasetRecordFromJson(const nlohmann::json& j) {
  try {
    if (j.at("format").get<std::string>() != kRecordFormat) {
      return absl::InvalidArgumentError("not a wfm data set record");
    }
    if (j.at("version").get<int>() > kRecordVersion) {
      return absl::UnimplementedError(
          absl::StrCat("record version ", j.at("version").get<int>(), " is newer than this server"));
    }
    DatasetInfo info;
    info.name = j.at("name").get<std::string>();
    WFM_ASSIGN_OR_RETURN(info.kind, ParseDatasetKind(j.at("kind").get<std::string>()));
    info.dim = j.at("dim").get<int64_t>();
    WFM_ASSIGN_OR_RETURN(info.label_type, ParseLabelType(j.at("label_type").get<std::string>()));
    info.condition_dim = j.at("condition_dim").get<int64_t>();
    info.items = j.at("items").get<int64_t>();
    info.points = j.at("points").get<int64_t>();
    info.min_size = j.at("min_size").get<int64_t>();
    info.max_size = j.at("max_size").get<int64_t>();
    info.samples = j.at("samples").get<int64_t>();
    // Records written before 3-D tissue hold 2-D coordinates.
    info.spatial_dim =
        j.value("spatial_dim", info.kind == DatasetKind::kSpatialCells ? int64_t{2} : int64_t{0});
    if (info.kind == DatasetKind::kSpatialCells && info.spatial_dim < 1) {
      return absl::DataLossError("record: bad spatial_dim");
    }
    info.label_names = j.at("label_names").get<std::vector<std::string>>();
    info.size_bytes = j.at("size_bytes").get<int64_t>();
    info.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    info.description = j.at("description").get<std::string>();
    // Records written before feature names have none.
    info.feature_names = j.value("feature_names", std::vector<std::string>{});
    // Records written before condition encodings have none.
    if (j.contains("condition_columns")) {
      WFM_ASSIGN_OR_RETURN(info.condition_columns,
                           ConditionColumnsFromJson(j.at("condition_columns")));
      const absl::Status columns = CheckConditionColumns(
          info.condition_columns, info.condition_dim, "record: condition_columns");
      if (!columns.ok()) return absl::DataLossError(columns.message());
    }
    if (info.dim < 1 || info.items < 1) return absl::DataLossError("record: bad dim or items");
    if (!info.feature_names.empty() &&
        static_cast<int64_t>(info.feature_names.size()) != info.dim) {
      return absl::DataLossError(absl::StrCat("record: ", info.feature_names.size(),
                                              " feature names for dim ", info.dim));
    }
    return info;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("record: ", e.what()));
  }
}

absl::Status WriteDatasetRecord(const std::string& folder, const DatasetInfo& info) {
  return model::io::WriteFileAtomically(absl::StrCat(folder, "/", kDatasetRecordFile),
                                        DatasetRecordToJson(info).dump(2) + "\n");
}

absl::StatusOr<DatasetInfo> ReadDatasetRecord(const std::string& folder, absl::string_view name) {
  WFM_ASSIGN_OR_RETURN(const std::string text,
                       ReadFileToString(absl::StrCat(folder, "/", kDatasetRecordFile)));
  if (model::io::JsonTooDeep(text)) return absl::DataLossError("dataset.json is nested too deeply");
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::DataLossError("dataset.json is not valid JSON");
  WFM_ASSIGN_OR_RETURN(DatasetInfo record, DatasetRecordFromJson(j));
  if (record.name != name) {
    return absl::DataLossError(
        absl::StrCat("dataset.json names '", record.name, "', not the folder's name"));
  }
  WFM_ASSIGN_OR_RETURN(const int64_t size, FileSize(absl::StrCat(folder, "/", kDatasetDataFile)));
  if (size != record.size_bytes) {
    return absl::DataLossError(
        absl::StrCat("data.npz has ", size, " bytes, the record says ", record.size_bytes));
  }
  return record;
}

absl::StatusOr<std::shared_ptr<const DatasetData>> ReadDatasetFolder(const std::string& folder,
                                                                     const DatasetInfo& info) {
  const std::string path = absl::StrCat(folder, "/", kDatasetDataFile);
  const std::string source = absl::StrCat(info.name, "/", kDatasetDataFile);
  auto data = std::make_shared<DatasetData>();
  data->info = info;
  absl::Status read = [&]() -> absl::Status {
    WFM_ASSIGN_OR_RETURN(model::io::NpzArrays arrays, model::io::ReadNpz(path));
    switch (info.kind) {
      case DatasetKind::kPointClouds: {
        WFM_ASSIGN_OR_RETURN(PointCloudSet set,
                             model::io::PointCloudsFromArrays(std::move(arrays), source));
        if (set.dim != info.dim || set.num_clouds() != info.items) {
          return absl::DataLossError(absl::StrCat(source, ": holds ", set.num_clouds(),
                                                  " clouds of dim ", set.dim,
                                                  ", the record says ", info.items, " of dim ",
                                                  info.dim));
        }
        data->data = std::move(set);
        return absl::OkStatus();
      }
      case DatasetKind::kGaussians: {
        WFM_ASSIGN_OR_RETURN(GaussianSet set, model::io::GaussiansFromArrays(std::move(arrays), source));
        if (set.dim != info.dim || set.num_gaussians() != info.items) {
          return absl::DataLossError(absl::StrCat(source, ": holds ", set.num_gaussians(),
                                                  " Gaussians of dim ", set.dim,
                                                  ", the record says ", info.items, " of dim ",
                                                  info.dim));
        }
        data->data = std::move(set);
        return absl::OkStatus();
      }
      case DatasetKind::kSpatialCells: {
        CellSet cells;
        cells.dim = info.dim;
        cells.spatial_dim = info.spatial_dim;
        auto features = arrays.find("features");
        auto coords = arrays.find("coords");
        if (features == arrays.end() || coords == arrays.end()) {
          return absl::DataLossError(absl::StrCat(source, ": features or coords missing"));
        }
        WFM_ASSIGN_OR_RETURN(cells.features, features->second.ToFloat32());
        WFM_ASSIGN_OR_RETURN(cells.coords, coords->second.ToFloat32());
        const int64_t n = info.items;
        if (static_cast<int64_t>(cells.features.size()) != n * info.dim ||
            static_cast<int64_t>(cells.coords.size()) != info.spatial_dim * n) {
          return absl::DataLossError(
              absl::StrCat(source, ": features or coords do not match the record's ", n, " cells"));
        }
        WFM_ASSIGN_OR_RETURN(cells.sample_ids, StringsOf(arrays, "sample_ids", n, source));
        WFM_ASSIGN_OR_RETURN(std::vector<std::string> labels, StringsOf(arrays, "labels", n, source));
        if (info.label_type == LabelType::kDiscrete) {
          if (labels.empty()) return absl::DataLossError(absl::StrCat(source, ": labels missing"));
          cells.labels = Labels::FromStrings(std::move(labels));
        } else if (info.label_type == LabelType::kContinuous) {
          auto conditions = arrays.find("conditions");
          if (conditions == arrays.end()) {
            return absl::DataLossError(absl::StrCat(source, ": conditions missing"));
          }
          WFM_ASSIGN_OR_RETURN(std::vector<float> values, conditions->second.ToFloat32());
          if (info.condition_dim < 1 ||
              static_cast<int64_t>(values.size()) != n * info.condition_dim) {
            return absl::DataLossError(absl::StrCat(
                source, ": conditions do not match the record's ", n, " cells of condition_dim ",
                info.condition_dim));
          }
          cells.labels = Labels::FromContinuous(std::move(values), info.condition_dim);
        }
        data->data = std::move(cells);
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unknown kind");
  }();
  if (!read.ok()) {
    if (absl::IsNotFound(read)) {
      return absl::NotFoundError(absl::StrCat("data set '", info.name, "' was deleted"));
    }
    return absl::DataLossError(absl::StrCat("data set '", info.name, "': ", read.message()));
  }
  return std::shared_ptr<const DatasetData>(std::move(data));
}

}  // namespace wfm::repository
