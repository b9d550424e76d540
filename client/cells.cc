#include "client/cells.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/conditions.h"
#include "client/isolated.h"
#include "model/common/status.h"
#include "model/io/array.h"
#include "model/io/h5ad.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// Prefixes an error that does not name the file yet.
absl::Status WithSource(const absl::Status& status, absl::string_view source) {
  if (status.ok() || absl::StartsWith(status.message(), source)) return status;
  return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
}

// One text per cell from an obs column used as labels or sample ids.
absl::StatusOr<std::vector<std::string>> ColumnTexts(const io::H5adFile& file,
                                                     const std::string& key,
                                                     absl::string_view flag) {
  absl::StatusOr<io::ObsColumn> column = file.ReadObsColumn(key);
  if (!column.ok()) return WithSource(column.status(), file.path());
  if (column->kind == io::ObsColumn::Kind::kFloat) {
    return Invalid(file.path(),
                   absl::StrCat("obs/", key, " (", flag,
                                "): a float column; needs categorical, string, integer or "
                                "bool values"));
  }
  std::vector<std::string> texts = column->ToStrings();
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) {
      return Invalid(file.path(), absl::StrCat("obs/", key, "[", i, "] (", flag,
                                               "): missing or empty value; every cell needs one"));
    }
  }
  return texts;
}

}  // namespace

absl::Status ValidateSpatialCells(const SpatialCells& cells, absl::string_view source) {
  if (cells.dim < 1) {
    return Invalid(source, absl::StrCat("features: dimension ", cells.dim, "; must be >= 1"));
  }
  const int64_t sd = cells.spatial_dim;
  if (sd < 1 || sd > kMaxSpatialDim) {
    return Invalid(source, absl::StrCat("coords: spatial dimension ", sd, "; must be in [1, ",
                                        kMaxSpatialDim, "]"));
  }
  if (cells.coords.size() % sd != 0) {
    return Invalid(source, absl::StrCat("coords: needs [n, ", sd, "] values"));
  }
  const int64_t n = cells.num_cells();
  if (n < 1) return Invalid(source, "no cells; a data set needs at least one");
  if (static_cast<int64_t>(cells.features.size()) != n * cells.dim) {
    return Invalid(source, absl::StrCat("features: ", cells.features.size(), " values for ", n,
                                        " cells of dimension ", cells.dim, "; needs ",
                                        n * cells.dim));
  }
  for (size_t i = 0; i < cells.features.size(); ++i) {
    if (!std::isfinite(cells.features[i])) {
      return Invalid(source, absl::StrCat("features[", i / cells.dim, ", ", i % cells.dim,
                                          "] = ", io::FormatDouble(cells.features[i]),
                                          ": values must be finite"));
    }
  }
  for (size_t i = 0; i < cells.coords.size(); ++i) {
    if (!std::isfinite(cells.coords[i])) {
      return Invalid(source, absl::StrCat("coords[", i / sd, ", ", i % sd, "] = ",
                                          io::FormatDouble(cells.coords[i]),
                                          ": coordinates must be finite"));
    }
  }
  for (const auto& [name, values] :
       {std::make_pair("sample_ids", &cells.sample_ids), std::make_pair("labels", &cells.labels)}) {
    if (values->empty()) continue;
    if (static_cast<int64_t>(values->size()) != n) {
      return Invalid(source, absl::StrCat(name, ": ", values->size(), " entries for ", n,
                                          " cells; needs one per cell"));
    }
    for (size_t i = 0; i < values->size(); ++i) {
      if ((*values)[i].empty()) {
        return Invalid(source, absl::StrCat(name, "[", i, "]: empty; every cell needs one"));
      }
    }
  }
  if (!cells.labels.empty() && cells.condition_dim > 0) {
    return Invalid(source, "labels and conditions exclude each other");
  }
  if (static_cast<int64_t>(cells.conditions.size()) != n * cells.condition_dim) {
    return Invalid(source, absl::StrCat("conditions: ", cells.conditions.size(), " values for ", n,
                                        " cells of condition_dim ", cells.condition_dim));
  }
  for (size_t i = 0; i < cells.conditions.size(); ++i) {
    if (!std::isfinite(cells.conditions[i])) {
      return Invalid(source, absl::StrCat("conditions[", i / cells.condition_dim, ", ",
                                          i % cells.condition_dim, "]: values must be finite"));
    }
  }
  return absl::OkStatus();
}

namespace {

// The rows' labels or condition vectors from --condition-key `keys`: one key
// naming a categorical, string, integer or bool obs column gives discrete
// labels (into *labels, as --label-key; the table is then empty), otherwise
// the keys are encoded into condition vectors.
absl::StatusOr<ConditionTable> ReadConditionKeys(const io::H5adFile& file,
                                                 const std::vector<std::string>& keys,
                                                 std::vector<std::string>* labels) {
  bool single_label = false;
  if (keys.size() == 1 && !absl::StartsWith(keys[0], "obsm:")) {
    absl::StatusOr<io::ObsColumn> column = file.ReadObsColumn(keys[0]);
    single_label = column.ok() && column->kind != io::ObsColumn::Kind::kFloat;
  }
  if (!single_label) return ReadConditions(file, keys);
  WFM_ASSIGN_OR_RETURN(*labels, ColumnTexts(file, keys[0], "--condition-key"));
  return ConditionTable();
}

absl::StatusOr<SpatialCells> ReadSpatialCellsInProcess(const std::string& path,
                                                       const CellReadOptions& options) {
  WFM_ASSIGN_OR_RETURN(io::H5adFile file, io::H5adFile::Open(path));
  SpatialCells cells;

  absl::StatusOr<io::DenseMatrix> features = file.ReadFeatures(options.features);
  if (!features.ok()) return WithSource(features.status(), path);
  cells.dim = features->cols;
  cells.features = std::move(features->values);
  if (options.features == "X") {
    absl::StatusOr<std::vector<std::string>> names = file.VarNames();
    if (!names.ok()) return WithSource(names.status(), path);
    cells.feature_names = *std::move(names);
  }

  absl::StatusOr<io::DenseMatrix> spatial = file.ReadObsm(options.spatial_key);
  if (!spatial.ok()) return WithSource(spatial.status(), path);
  const std::string where = absl::StrCat("obsm/", options.spatial_key, " (--spatial-key)");
  if (spatial->cols < 1 || spatial->cols > kMaxSpatialDim) {
    return Invalid(path, absl::StrCat(where, ": ", spatial->cols, " columns; spatial coordinates ",
                                      "need 1 to ", kMaxSpatialDim, " (2-D sections, 3-D tissue)"));
  }
  // Every column is a coordinate (x, y and, for 3-D tissue, z).
  cells.spatial_dim = spatial->cols;
  cells.coords = std::move(spatial->values);

  if (!options.label_key.empty() && !options.condition_keys.empty()) {
    return Invalid(path, "--label-key and --condition-key exclude each other");
  }
  if (!options.label_key.empty()) {
    WFM_ASSIGN_OR_RETURN(cells.labels, ColumnTexts(file, options.label_key, "--label-key"));
  }
  if (!options.condition_keys.empty()) {
    WFM_ASSIGN_OR_RETURN(ConditionTable table,
                         ReadConditionKeys(file, options.condition_keys, &cells.labels));
    cells.condition_dim = table.width;
    cells.conditions = std::move(table.values);
    cells.condition_columns = std::move(table.columns);
  }
  if (!options.sample_key.empty()) {
    WFM_ASSIGN_OR_RETURN(cells.sample_ids, ColumnTexts(file, options.sample_key, "--sample-key"));
  }
  WFM_RETURN_IF_ERROR(ValidateSpatialCells(cells, path));
  return cells;
}

absl::StatusOr<H5adGaussians> ReadGaussiansInProcess(const std::string& path,
                                                     const GaussianReadOptions& options) {
  WFM_ASSIGN_OR_RETURN(io::H5adFile file, io::H5adFile::Open(path));
  absl::StatusOr<io::DenseArray> means = file.ReadObsmArray(options.means_key);
  if (!means.ok()) return WithSource(means.status(), path);
  absl::StatusOr<io::DenseArray> covs = file.ReadObsmArray(options.covs_key);
  if (!covs.ok()) return WithSource(covs.status(), path);
  const auto shape = [](const std::vector<int64_t>& dims) {
    return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
  };
  if (means->shape.size() != 2 || means->shape[1] < 1) {
    return Invalid(path, absl::StrCat("obsm/", options.means_key, " (--means-key): shape ",
                                      shape(means->shape), "; means need [n_obs, d]"));
  }
  const int64_t n = means->shape[0], d = means->shape[1];
  if (covs->shape != std::vector<int64_t>{n, d, d}) {
    return Invalid(path, absl::StrCat("obsm/", options.covs_key, " (--covs-key): shape ",
                                      shape(covs->shape), "; covariances of the means need ",
                                      shape({n, d, d})));
  }
  H5adGaussians out;
  out.gaussians.dim = d;
  out.gaussians.means = std::move(means->values);
  out.gaussians.covs = std::move(covs->values);
  if (!options.condition_keys.empty()) {
    std::vector<std::string> labels;
    WFM_ASSIGN_OR_RETURN(ConditionTable table,
                         ReadConditionKeys(file, options.condition_keys, &labels));
    if (!labels.empty()) {
      out.gaussians.labels = io::Labels::FromStrings(std::move(labels));
    } else {
      out.gaussians.labels = io::Labels::FromContinuous(std::move(table.values), table.width);
      out.condition_columns = std::move(table.columns);
    }
  }
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(out.gaussians, path));
  return out;
}

// SpatialCells <-> bytes, for the child process that reads the file: sizes
// as uint64 and values in this machine's layout (both ends are one binary).
void PutSize(std::string& out, uint64_t n) { out.append(reinterpret_cast<const char*>(&n), 8); }

template <typename T>
void PutValues(std::string& out, const std::vector<T>& values) {
  PutSize(out, values.size());
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}
void PutFloats(std::string& out, const std::vector<float>& values) { PutValues(out, values); }

void PutTexts(std::string& out, const std::vector<std::string>& texts) {
  PutSize(out, texts.size());
  for (const std::string& text : texts) {
    PutSize(out, text.size());
    out += text;
  }
}

void PutColumns(std::string& out, const std::vector<v1::ConditionColumn>& columns) {
  std::vector<std::string> texts;
  for (const v1::ConditionColumn& c : columns) texts.push_back(c.SerializeAsString());
  PutTexts(out, texts);
}

std::string EncodeCells(const SpatialCells& cells) {
  std::string out;
  PutSize(out, static_cast<uint64_t>(cells.dim));
  PutSize(out, static_cast<uint64_t>(cells.spatial_dim));
  PutFloats(out, cells.features);
  PutFloats(out, cells.coords);
  PutTexts(out, cells.sample_ids);
  PutTexts(out, cells.labels);
  PutTexts(out, cells.feature_names);
  PutSize(out, static_cast<uint64_t>(cells.condition_dim));
  PutFloats(out, cells.conditions);
  PutColumns(out, cells.condition_columns);
  return out;
}

class Decoder {
 public:
  explicit Decoder(absl::string_view bytes) : bytes_(bytes) {}

  bool Size(uint64_t& n) {
    if (bytes_.size() < 8) return false;
    std::memcpy(&n, bytes_.data(), 8);
    bytes_.remove_prefix(8);
    return true;
  }
  template <typename T>
  bool Values(std::vector<T>& values) {
    uint64_t n = 0;
    if (!Size(n) || n > bytes_.size() / sizeof(T)) return false;
    values.resize(n);
    if (n > 0) std::memcpy(values.data(), bytes_.data(), n * sizeof(T));  // data() may be null
    bytes_.remove_prefix(n * sizeof(T));
    return true;
  }
  bool Floats(std::vector<float>& values) { return Values(values); }
  bool Texts(std::vector<std::string>& texts) {
    uint64_t n = 0;
    if (!Size(n) || n > bytes_.size() / 8) return false;
    texts.resize(n);
    for (std::string& text : texts) {
      uint64_t length = 0;
      if (!Size(length) || length > bytes_.size()) return false;
      text.assign(bytes_.data(), length);
      bytes_.remove_prefix(length);
    }
    return true;
  }
  bool Done() const { return bytes_.empty(); }

 private:
  absl::string_view bytes_;
};

absl::Status Malformed(absl::string_view path) {
  return absl::InternalError(absl::StrCat(path, ": the reader process sent a malformed result"));
}

absl::Status ParseColumns(const std::vector<std::string>& texts, absl::string_view path,
                          std::vector<v1::ConditionColumn>* columns) {
  for (const std::string& bytes : texts) {
    if (!columns->emplace_back().ParseFromString(bytes)) return Malformed(path);
  }
  return absl::OkStatus();
}

// H5adGaussians <-> bytes, as the cells. Labels travel as texts (discrete)
// or values and their width (continuous).
std::string EncodeGaussians(const H5adGaussians& g) {
  std::string out;
  PutSize(out, static_cast<uint64_t>(g.gaussians.dim));
  PutValues(out, g.gaussians.means);
  PutValues(out, g.gaussians.covs);
  PutTexts(out, g.gaussians.labels.strings);
  PutSize(out, static_cast<uint64_t>(g.gaussians.labels.width));
  PutFloats(out, g.gaussians.labels.values);
  PutColumns(out, g.condition_columns);
  return out;
}

absl::StatusOr<H5adGaussians> DecodeGaussians(absl::string_view bytes, absl::string_view path) {
  H5adGaussians g;
  Decoder in(bytes);
  uint64_t dim = 0, width = 0;
  std::vector<std::string> labels, columns;
  std::vector<float> values;
  if (!in.Size(dim) || !in.Values(g.gaussians.means) || !in.Values(g.gaussians.covs) ||
      !in.Texts(labels) || !in.Size(width) || !in.Floats(values) || !in.Texts(columns) ||
      !in.Done()) {
    return Malformed(path);
  }
  g.gaussians.dim = static_cast<int64_t>(dim);
  if (!labels.empty()) g.gaussians.labels = io::Labels::FromStrings(std::move(labels));
  if (width > 0) {
    g.gaussians.labels = io::Labels::FromContinuous(std::move(values), static_cast<int64_t>(width));
  }
  WFM_RETURN_IF_ERROR(ParseColumns(columns, path, &g.condition_columns));
  return g;
}

absl::StatusOr<SpatialCells> DecodeCells(absl::string_view bytes, absl::string_view path) {
  SpatialCells cells;
  Decoder in(bytes);
  uint64_t dim = 0, spatial_dim = 0, condition_dim = 0;
  std::vector<std::string> columns;
  if (!in.Size(dim) || !in.Size(spatial_dim) || !in.Floats(cells.features) || !in.Floats(cells.coords) ||
      !in.Texts(cells.sample_ids) || !in.Texts(cells.labels) || !in.Texts(cells.feature_names) ||
      !in.Size(condition_dim) || !in.Floats(cells.conditions) || !in.Texts(columns) ||
      !in.Done()) {
    return Malformed(path);
  }
  cells.condition_dim = static_cast<int64_t>(condition_dim);
  WFM_RETURN_IF_ERROR(ParseColumns(columns, path, &cells.condition_columns));
  cells.dim = static_cast<int64_t>(dim);
  cells.spatial_dim = static_cast<int64_t>(spatial_dim);
  return cells;
}

// What `read` gives, read in a child process (client/isolated.h) and sent
// back through `encode` / `decode`.
template <typename T, typename Read>
absl::StatusOr<T> ReadIsolated(const std::string& path, absl::Duration timeout, const Read& read,
                               std::string (*encode)(const T&),
                               absl::StatusOr<T> (*decode)(absl::string_view, absl::string_view)) {
  WFM_ASSIGN_OR_RETURN(
      const std::string bytes,
      RunIsolated(
          [&]() -> absl::StatusOr<std::string> {
            WFM_ASSIGN_OR_RETURN(const T value, read());
            return encode(value);
          },
          timeout, absl::StrCat(path, ": reading the .h5ad file")));
  return decode(bytes, path);
}

}  // namespace

absl::StatusOr<SpatialCells> ReadSpatialCells(const std::string& path,
                                              const CellReadOptions& options) {
  return ReadIsolated<SpatialCells>(
      path, options.timeout, [&] { return ReadSpatialCellsInProcess(path, options); },
      &EncodeCells, &DecodeCells);
}

absl::StatusOr<H5adGaussians> ReadGaussiansH5ad(const std::string& path,
                                                const GaussianReadOptions& options) {
  return ReadIsolated<H5adGaussians>(
      path, options.timeout, [&] { return ReadGaussiansInProcess(path, options); },
      &EncodeGaussians, &DecodeGaussians);
}

}  // namespace wfm::client
