// Reading .h5ad files; the API and the layouts are described in h5ad.h.
#include "model/io/h5ad.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/h5_util.h"

namespace wfm::model::io {
namespace {

using h5::Handle;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

std::string Available(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// The sparse layout of a group, if it is one.
struct SparseInfo {
  bool csr = true;
  int64_t rows = 0;
  int64_t cols = 0;
};

absl::StatusOr<std::vector<int64_t>> IntegerAttribute(hid_t object, const std::string& name,
                                                      absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(const Array value, h5::ReadAttribute(object, name, where));
  absl::StatusOr<std::vector<int64_t>> ints = value.ToInt64();
  if (!ints.ok()) {
    return Invalid(absl::StrCat(where, ": attribute '", name, "'"), ints.status().message());
  }
  return ints;
}

// Fills `info` and returns true when `group` is a CSR/CSC matrix; returns
// false for any other group.
absl::StatusOr<bool> SparseLayout(hid_t group, absl::string_view where, SparseInfo* info) {
  std::string format;
  std::vector<int64_t> shape;
  if (h5::HasAttribute(group, "encoding-type")) {
    WFM_ASSIGN_OR_RETURN(const std::string type,
                         h5::ReadStringAttribute(group, "encoding-type", where));
    if (type != "csr_matrix" && type != "csc_matrix") return false;
    format = type == "csr_matrix" ? "csr" : "csc";
    if (!h5::HasAttribute(group, "shape")) {
      return Invalid(where, "sparse matrix without a 'shape' attribute");
    }
    WFM_ASSIGN_OR_RETURN(shape, IntegerAttribute(group, "shape", where));
  } else if (h5::HasAttribute(group, "h5sparse_format")) {
    WFM_ASSIGN_OR_RETURN(format, h5::ReadStringAttribute(group, "h5sparse_format", where));
    if (format != "csr" && format != "csc") {
      return Invalid(where, absl::StrCat("unknown sparse format '", format, "'"));
    }
    if (!h5::HasAttribute(group, "h5sparse_shape")) {
      return Invalid(where, "sparse matrix without an 'h5sparse_shape' attribute");
    }
    WFM_ASSIGN_OR_RETURN(shape, IntegerAttribute(group, "h5sparse_shape", where));
  } else {
    return false;
  }
  if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0) {
    return Invalid(where, "a sparse matrix shape must be two non-negative sizes");
  }
  info->csr = format == "csr";
  info->rows = shape[0];
  info->cols = shape[1];
  return true;
}

absl::Status CheckFinite(const DenseMatrix& m, absl::string_view where) {
  for (size_t i = 0; i < m.values.size(); ++i) {
    if (!std::isfinite(m.values[i])) {
      return Invalid(where, absl::StrCat("element [", static_cast<int64_t>(i) / m.cols, ", ",
                                         static_cast<int64_t>(i) % m.cols, "] = ",
                                         FormatDouble(m.values[i]), ": values must be finite"));
    }
  }
  return absl::OkStatus();
}

// Densifies a CSR/CSC group; duplicate entries are summed (as scipy does).
absl::StatusOr<DenseMatrix> ReadSparse(hid_t group, const SparseInfo& info,
                                       absl::string_view where) {
  for (const char* member : {"data", "indices", "indptr"}) {
    if (!h5::HasMember(group, member)) {
      return Invalid(where, absl::StrCat("sparse matrix without '", member, "'"));
    }
  }
  WFM_ASSIGN_OR_RETURN(Handle data_set, h5::OpenObject(group, "data", where));
  WFM_ASSIGN_OR_RETURN(Handle indices_set, h5::OpenObject(group, "indices", where));
  WFM_ASSIGN_OR_RETURN(Handle indptr_set, h5::OpenObject(group, "indptr", where));
  WFM_ASSIGN_OR_RETURN(const std::vector<float> data,
                       h5::ReadFloat32(data_set.get(), absl::StrCat(where, "/data")));
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> indices,
                       h5::ReadInt64(indices_set.get(), absl::StrCat(where, "/indices")));
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> indptr,
                       h5::ReadInt64(indptr_set.get(), absl::StrCat(where, "/indptr")));
  const int64_t major = info.csr ? info.rows : info.cols;
  const int64_t minor = info.csr ? info.cols : info.rows;
  const int64_t nnz = static_cast<int64_t>(data.size());
  if (static_cast<int64_t>(indptr.size()) != major + 1) {
    return Invalid(where, absl::StrCat("indptr has ", indptr.size(), " entries; a ",
                                       info.csr ? "CSR" : "CSC", " matrix of shape [", info.rows,
                                       ", ", info.cols, "] needs ", major + 1));
  }
  if (static_cast<int64_t>(indices.size()) != nnz) {
    return Invalid(where,
                   absl::StrCat("indices has ", indices.size(), " entries but data has ", nnz));
  }
  if (indptr[0] != 0 || indptr[major] != nnz) {
    return Invalid(where, absl::StrCat("indptr must run from 0 to nnz = ", nnz));
  }
  // All of indptr before any entry is read: with the ends at 0 and nnz, a
  // non-decreasing indptr keeps every row's entries inside data and indices.
  for (int64_t i = 0; i < major; ++i) {
    if (indptr[i + 1] < indptr[i]) {
      return Invalid(where, absl::StrCat("indptr[", i + 1, "] < indptr[", i,
                                         "]: indptr must be non-decreasing"));
    }
  }
  DenseMatrix m;
  m.rows = info.rows;
  m.cols = info.cols;
  int64_t cells = 0;
  if (__builtin_mul_overflow(m.rows, m.cols, &cells) ||
      cells > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(float))) {
    return Invalid(where, absl::StrCat("shape [", m.rows, ", ", m.cols,
                                       "] has more elements than memory can hold"));
  }
  m.values.assign(static_cast<size_t>(cells), 0.0f);
  for (int64_t i = 0; i < major; ++i) {
    for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
      const int64_t j = indices[p];
      if (j < 0 || j >= minor) {
        return Invalid(where,
                       absl::StrCat("indices[", p, "] = ", j, " is outside [0, ", minor, ")"));
      }
      const int64_t row = info.csr ? i : j, col = info.csr ? j : i;
      m.values[row * m.cols + col] += data[p];
    }
  }
  return m;
}

// Reads a dense 2-D dataset or a sparse group as float32.
absl::StatusOr<DenseMatrix> ReadMatrix(hid_t object, absl::string_view where) {
  DenseMatrix m;
  if (h5::IsGroup(object)) {
    SparseInfo info;
    WFM_ASSIGN_OR_RETURN(const bool sparse, SparseLayout(object, where, &info));
    if (!sparse) {
      std::string type = "a group";
      if (h5::HasAttribute(object, "encoding-type")) {
        WFM_ASSIGN_OR_RETURN(type, h5::ReadStringAttribute(object, "encoding-type", where));
      }
      return Invalid(where, absl::StrCat("is ", type, ", not a dense or sparse matrix"));
    }
    WFM_ASSIGN_OR_RETURN(m, ReadSparse(object, info, where));
  } else {
    WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, h5::DatasetShape(object, where));
    if (shape.size() != 2) {
      return Invalid(where, absl::StrCat("shape ", ShapeString(shape), "; expected a 2-D matrix"));
    }
    m.rows = shape[0];
    m.cols = shape[1];
    WFM_ASSIGN_OR_RETURN(m.values, h5::ReadFloat32(object, where));
  }
  WFM_RETURN_IF_ERROR(CheckFinite(m, where));
  return m;
}

// Name of the index dataset of a dataframe group.
absl::StatusOr<std::string> IndexName(hid_t frame, absl::string_view where) {
  if (h5::HasAttribute(frame, "_index")) {
    return h5::ReadStringAttribute(frame, "_index", where);
  }
  for (const char* name : {"_index", "index"}) {
    if (h5::HasMember(frame, name)) return std::string(name);
  }
  return Invalid(where, "no index (attribute '_index', dataset '_index' or 'index')");
}

// Length of a dataframe's index, or -1 when the dataframe is absent.
absl::StatusOr<int64_t> FrameLength(hid_t file, const std::string& frame_name) {
  if (!h5::HasMember(file, frame_name)) return -1;
  WFM_ASSIGN_OR_RETURN(Handle frame, h5::OpenObject(file, frame_name, frame_name));
  if (!h5::IsGroup(frame.get())) {
    return Invalid(frame_name,
                   "stored as a compound dataset (anndata < 0.7); re-save the file "
                   "with a newer anndata");
  }
  WFM_ASSIGN_OR_RETURN(const std::string index, IndexName(frame.get(), frame_name));
  if (!h5::HasMember(frame.get(), index)) return -1;
  WFM_ASSIGN_OR_RETURN(Handle dataset, h5::OpenObject(frame.get(), index, frame_name));
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> shape,
                       h5::DatasetShape(dataset.get(), absl::StrCat(frame_name, "/", index)));
  if (shape.size() != 1) {
    return Invalid(absl::StrCat(frame_name, "/", index), "the index must be 1-D");
  }
  return shape[0];
}

// Shape of X without reading it, or {-1, -1} without X.
absl::StatusOr<std::pair<int64_t, int64_t>> XShape(hid_t file) {
  if (!h5::HasMember(file, "X")) return std::make_pair<int64_t, int64_t>(-1, -1);
  WFM_ASSIGN_OR_RETURN(Handle x, h5::OpenObject(file, "X", "X"));
  if (h5::IsGroup(x.get())) {
    SparseInfo info;
    WFM_ASSIGN_OR_RETURN(const bool sparse, SparseLayout(x.get(), "X", &info));
    if (!sparse) return Invalid("X", "a group that is not a sparse matrix");
    return std::make_pair(info.rows, info.cols);
  }
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, h5::DatasetShape(x.get(), "X"));
  if (shape.size() != 2) {
    return Invalid("X", absl::StrCat("shape ", ShapeString(shape), "; expected [n_obs, n_vars]"));
  }
  return std::make_pair(shape[0], shape[1]);
}

absl::StatusOr<std::vector<std::string>> ReadNames(hid_t file, const std::string& frame_name,
                                                   int64_t expected) {
  if (!h5::HasMember(file, frame_name)) {
    return Invalid(frame_name, "not found in the file");
  }
  WFM_ASSIGN_OR_RETURN(Handle frame, h5::OpenObject(file, frame_name, frame_name));
  WFM_ASSIGN_OR_RETURN(const std::string index, IndexName(frame.get(), frame_name));
  const std::string where = absl::StrCat(frame_name, "/", index);
  if (!h5::HasMember(frame.get(), index)) return Invalid(where, "not found");
  WFM_ASSIGN_OR_RETURN(Handle dataset, h5::OpenObject(frame.get(), index, where));
  WFM_ASSIGN_OR_RETURN(const Array names, h5::ReadDataset(dataset.get(), where));
  if (names.ndim() != 1 || names.size() != expected) {
    return Invalid(
        where, absl::StrCat("shape ", ShapeString(names.shape()), "; expected [", expected, "]"));
  }
  return names.ToStrings();
}

// The names of `frame_name` ("obs" or "var") of the file at `path`; errors
// start with the path.
absl::StatusOr<std::vector<std::string>> ReadNamesOf(hid_t file, const std::string& path,
                                                     const std::string& frame_name,
                                                     int64_t expected) {
  h5::SilenceErrors();
  absl::StatusOr<std::vector<std::string>> names = ReadNames(file, frame_name, expected);
  if (!names.ok()) {
    return absl::Status(names.status().code(),
                        absl::StrCat(path, ": ", names.status().message()));
  }
  return names;
}

// The group `group` ("obs", "obsm") of `file` and its member `name`; a name
// not in `listed` is refused naming them ("not found; available<what>: ...").
struct ListedMember {
  Handle group;
  Handle member;
};
absl::StatusOr<ListedMember> OpenListedMember(hid_t file, const std::string& group,
                                              absl::string_view name,
                                              const std::vector<std::string>& listed,
                                              absl::string_view what, const std::string& where) {
  if (std::find(listed.begin(), listed.end(), name) == listed.end()) {
    return Invalid(where, absl::StrCat("not found; available", what, ": ", Available(listed)));
  }
  ListedMember opened;
  WFM_ASSIGN_OR_RETURN(opened.group, h5::OpenObject(file, group, where));
  WFM_ASSIGN_OR_RETURN(opened.member, h5::OpenObject(opened.group.get(), std::string(name), where));
  return opened;
}

absl::Status CheckCodes(const ObsColumn& column, absl::string_view where) {
  const int64_t n = static_cast<int64_t>(column.categories.size());
  for (size_t i = 0; i < column.codes.size(); ++i) {
    if (column.codes[i] < -1 || column.codes[i] >= n) {
      return Invalid(where, absl::StrCat("code ", column.codes[i], " of cell ", i,
                                         " is outside [-1, ", n, ")"));
    }
  }
  return absl::OkStatus();
}

// Fills a numeric/string/bool column from an Array of [n] values.
absl::Status FillPlain(const Array& values, absl::string_view where, ObsColumn* column) {
  if (values.dtype() == DType::kString) {
    column->kind = ObsColumn::Kind::kString;
    column->strings = values.values<std::string>();
  } else if (values.dtype() == DType::kBool) {
    column->kind = ObsColumn::Kind::kBool;
    for (uint8_t v : values.values<uint8_t>()) column->integers.push_back(v);
  } else if (IsInteger(values.dtype())) {
    column->kind = ObsColumn::Kind::kInteger;
    absl::StatusOr<std::vector<int64_t>> ints = values.ToInt64();
    if (!ints.ok()) return Invalid(where, ints.status().message());
    column->integers = *std::move(ints);
  } else {
    column->kind = ObsColumn::Kind::kFloat;
    WFM_ASSIGN_OR_RETURN(column->floats, values.ToFloat64());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadCategories(hid_t dataset, absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(const Array categories, h5::ReadDataset(dataset, where));
  if (categories.ndim() != 1) return Invalid(where, "categories must be 1-D");
  return categories.ToStrings();
}

absl::StatusOr<bool> ReadOrdered(hid_t object, absl::string_view where) {
  if (!h5::HasAttribute(object, "ordered")) return false;
  WFM_ASSIGN_OR_RETURN(const Array ordered, h5::ReadAttribute(object, "ordered", where));
  absl::StatusOr<std::vector<uint8_t>> flags = ordered.ToBool();
  if (!flags.ok() || flags->size() != 1) return Invalid(where, "attribute 'ordered' is not a bool");
  return (*flags)[0] != 0;
}

absl::StatusOr<ObsColumn> ReadColumnGroup(hid_t group, absl::string_view where) {
  std::string type;
  if (h5::HasAttribute(group, "encoding-type")) {
    WFM_ASSIGN_OR_RETURN(type, h5::ReadStringAttribute(group, "encoding-type", where));
  } else if (h5::HasMember(group, "codes") && h5::HasMember(group, "categories")) {
    type = "categorical";
  }
  ObsColumn column;
  if (type == "categorical") {
    if (!h5::HasMember(group, "codes") || !h5::HasMember(group, "categories")) {
      return Invalid(where, "categorical without 'codes' and 'categories'");
    }
    column.kind = ObsColumn::Kind::kCategorical;
    WFM_ASSIGN_OR_RETURN(Handle codes, h5::OpenObject(group, "codes", where));
    WFM_ASSIGN_OR_RETURN(column.codes, h5::ReadInt64(codes.get(), absl::StrCat(where, "/codes")));
    WFM_ASSIGN_OR_RETURN(Handle categories, h5::OpenObject(group, "categories", where));
    WFM_ASSIGN_OR_RETURN(column.categories,
                         ReadCategories(categories.get(), absl::StrCat(where, "/categories")));
    WFM_ASSIGN_OR_RETURN(column.ordered, ReadOrdered(group, where));
    WFM_RETURN_IF_ERROR(CheckCodes(column, where));
    return column;
  }
  if (type == "nullable-integer" || type == "nullable-boolean" || type == "nullable-string-array") {
    if (!h5::HasMember(group, "values") || !h5::HasMember(group, "mask")) {
      return Invalid(where, absl::StrCat(type, " without 'values' and 'mask'"));
    }
    WFM_ASSIGN_OR_RETURN(Handle values_set, h5::OpenObject(group, "values", where));
    WFM_ASSIGN_OR_RETURN(const Array values,
                         h5::ReadDataset(values_set.get(), absl::StrCat(where, "/values")));
    WFM_ASSIGN_OR_RETURN(Handle mask_set, h5::OpenObject(group, "mask", where));
    WFM_ASSIGN_OR_RETURN(const Array mask_array,
                         h5::ReadDataset(mask_set.get(), absl::StrCat(where, "/mask")));
    absl::StatusOr<std::vector<uint8_t>> mask = mask_array.ToBool();
    if (!mask.ok() || mask->size() != static_cast<size_t>(values.size())) {
      return Invalid(where, "mask must be a bool array as long as values");
    }
    WFM_RETURN_IF_ERROR(FillPlain(values, where, &column));
    const bool any_missing = std::any_of(mask->begin(), mask->end(), [](uint8_t m) { return m; });
    if (any_missing && column.kind == ObsColumn::Kind::kString) {
      for (size_t i = 0; i < mask->size(); ++i) {
        if ((*mask)[i]) column.strings[i].clear();
      }
    } else if (any_missing) {
      column.floats.assign(column.integers.begin(), column.integers.end());
      for (size_t i = 0; i < mask->size(); ++i) {
        if ((*mask)[i]) column.floats[i] = std::nan("");
      }
      column.integers.clear();
      column.kind = ObsColumn::Kind::kFloat;
    }
    return column;
  }
  return Invalid(where, absl::StrCat("unsupported column encoding '",
                                     type.empty() ? "a group without encoding-type" : type, "'"));
}

absl::StatusOr<ObsColumn> ReadColumnDataset(hid_t obs, hid_t dataset, const std::string& name,
                                            absl::string_view where) {
  ObsColumn column;
  Handle categories;
  const std::string legacy = "__categories";
  if (h5::HasAttribute(dataset, "categories")) {
    WFM_ASSIGN_OR_RETURN(categories, h5::DereferenceAttribute(dataset, "categories", where));
  } else if (h5::HasMember(obs, legacy)) {
    WFM_ASSIGN_OR_RETURN(Handle group, h5::OpenObject(obs, legacy, where));
    if (h5::HasMember(group.get(), name)) {
      WFM_ASSIGN_OR_RETURN(categories, h5::OpenObject(group.get(), name, where));
    }
  }
  if (categories.valid()) {
    column.kind = ObsColumn::Kind::kCategorical;
    WFM_ASSIGN_OR_RETURN(column.codes, h5::ReadInt64(dataset, where));
    WFM_ASSIGN_OR_RETURN(column.categories,
                         ReadCategories(categories.get(), absl::StrCat(where, " categories")));
    WFM_ASSIGN_OR_RETURN(column.ordered, ReadOrdered(dataset, where));
    WFM_RETURN_IF_ERROR(CheckCodes(column, where));
    return column;
  }
  WFM_ASSIGN_OR_RETURN(std::vector<std::string> enum_names, h5::EnumCategories(dataset, where));
  WFM_ASSIGN_OR_RETURN(const Array values, h5::ReadDataset(dataset, where));
  if (values.ndim() != 1) {
    return Invalid(
        where, absl::StrCat("shape ", ShapeString(values.shape()), "; an obs column must be 1-D"));
  }
  if (!enum_names.empty()) {
    column.kind = ObsColumn::Kind::kCategorical;
    column.categories = std::move(enum_names);
    WFM_ASSIGN_OR_RETURN(column.codes, values.ToInt64());
    WFM_RETURN_IF_ERROR(CheckCodes(column, where));
    return column;
  }
  WFM_RETURN_IF_ERROR(FillPlain(values, where, &column));
  return column;
}

}  // namespace

int64_t ObsColumn::size() const {
  switch (kind) {
    case Kind::kCategorical:
      return static_cast<int64_t>(codes.size());
    case Kind::kInteger:
    case Kind::kBool:
      return static_cast<int64_t>(integers.size());
    case Kind::kFloat:
      return static_cast<int64_t>(floats.size());
    case Kind::kString:
      return static_cast<int64_t>(strings.size());
  }
  return 0;
}

std::vector<std::string> ObsColumn::ToStrings() const {
  std::vector<std::string> out;
  out.reserve(size());
  switch (kind) {
    case Kind::kCategorical:
      for (int64_t c : codes) out.push_back(c >= 0 ? categories[c] : "");
      break;
    case Kind::kInteger:
      for (int64_t v : integers) out.push_back(absl::StrCat(v));
      break;
    case Kind::kBool:
      for (int64_t v : integers) out.push_back(v ? "True" : "False");
      break;
    case Kind::kFloat:
      for (double v : floats) out.push_back(FormatDouble(v));
      break;
    case Kind::kString:
      out = strings;
      break;
  }
  return out;
}

absl::StatusOr<Labels> ObsColumnToLabels(const ObsColumn& column, absl::string_view name) {
  const std::string where = absl::StrCat("obs/", name);
  switch (column.kind) {
    case ObsColumn::Kind::kCategorical:
      for (size_t i = 0; i < column.codes.size(); ++i) {
        if (column.codes[i] < 0) {
          return Invalid(
              where,
              absl::StrCat("cell ", i, " has no category (code -1); every cell needs a label"));
        }
      }
      return Labels::FromStrings(column.ToStrings());
    case ObsColumn::Kind::kInteger:
    case ObsColumn::Kind::kBool:
      return Labels::FromIntegers(column.integers);
    case ObsColumn::Kind::kFloat: {
      std::vector<float> values;
      values.reserve(column.floats.size());
      for (size_t i = 0; i < column.floats.size(); ++i) {
        if (!std::isfinite(column.floats[i])) {
          return Invalid(where, absl::StrCat("cell ", i, " = ", FormatDouble(column.floats[i]),
                                             ": labels must be finite"));
        }
        values.push_back(static_cast<float>(column.floats[i]));
      }
      return Labels::FromContinuous(std::move(values), 1, /*rank2=*/false);
    }
    case ObsColumn::Kind::kString:
      return Labels::FromStrings(column.strings);
  }
  return Invalid(where, "unknown column kind");
}

struct H5adFile::Impl {
  std::string path;
  Handle file;
  int64_t n_obs = 0;
  int64_t n_vars = 0;

  // "path: where: ..." prefix for messages.
  std::string Where(absl::string_view element) const { return absl::StrCat(path, ": ", element); }
};

H5adFile::H5adFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
H5adFile::H5adFile(H5adFile&&) noexcept = default;
H5adFile& H5adFile::operator=(H5adFile&&) noexcept = default;
H5adFile::~H5adFile() = default;

const std::string& H5adFile::path() const { return impl_->path; }
int64_t H5adFile::n_obs() const { return impl_->n_obs; }
int64_t H5adFile::n_vars() const { return impl_->n_vars; }

absl::StatusOr<H5adFile> H5adFile::Open(const std::string& path) {
  h5::SilenceErrors();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "open", path);
  if (S_ISDIR(st.st_mode)) return Invalid(path, "is a directory, not an .h5ad file");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    h5::TakeErrorText();
    return Invalid(path, "not an HDF5 (.h5ad) file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    return h5::Failure(absl::StatusCode::kInvalidArgument,
                       absl::StrCat(path,
                                    ": cannot open as HDF5 (the file may be truncated "
                                    "or corrupt)"));
  }
  impl->file = Handle(file);
  auto prefix = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
  };
  absl::StatusOr<std::pair<int64_t, int64_t>> x_shape = XShape(file);
  if (!x_shape.ok()) return prefix(x_shape.status());
  absl::StatusOr<int64_t> obs_length = FrameLength(file, "obs");
  if (!obs_length.ok()) return prefix(obs_length.status());
  absl::StatusOr<int64_t> var_length = FrameLength(file, "var");
  if (!var_length.ok()) return prefix(var_length.status());
  impl->n_obs = *obs_length >= 0 ? *obs_length : x_shape->first;
  impl->n_vars = *var_length >= 0 ? *var_length : x_shape->second;
  if (impl->n_obs < 0) {
    return Invalid(path, "has neither X nor an obs index: not an AnnData file");
  }
  if (x_shape->first >= 0 &&
      (x_shape->first != impl->n_obs || (impl->n_vars >= 0 && x_shape->second != impl->n_vars))) {
    return Invalid(path, absl::StrCat("X has shape [", x_shape->first, ", ", x_shape->second,
                                      "] but obs and var have ", impl->n_obs, " and ", impl->n_vars,
                                      " entries"));
  }
  if (impl->n_vars < 0) impl->n_vars = 0;
  return H5adFile(std::move(impl));
}

int64_t OpenHdf5ObjectCount() {
  h5::SilenceErrors();
  const ssize_t count = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  return count < 0 ? 0 : static_cast<int64_t>(count);
}

absl::StatusOr<DenseMatrix> H5adFile::ReadX() const {
  h5::SilenceErrors();
  const hid_t file = impl_->file.get();
  if (!h5::HasMember(file, "X")) return Invalid(impl_->Where("X"), "not found");
  WFM_ASSIGN_OR_RETURN(Handle x, h5::OpenObject(file, "X", impl_->Where("X")));
  return ReadMatrix(x.get(), impl_->Where("X"));
}

absl::StatusOr<std::vector<std::string>> H5adFile::ObsmKeys() const {
  h5::SilenceErrors();
  const hid_t file = impl_->file.get();
  if (!h5::HasMember(file, "obsm")) return std::vector<std::string>();
  WFM_ASSIGN_OR_RETURN(Handle obsm, h5::OpenObject(file, "obsm", impl_->Where("obsm")));
  return h5::ListMembers(obsm.get(), impl_->Where("obsm"));
}

absl::StatusOr<DenseMatrix> H5adFile::ReadObsm(absl::string_view key) const {
  h5::SilenceErrors();
  const std::string where = impl_->Where(absl::StrCat("obsm/", key));
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> keys, ObsmKeys());
  WFM_ASSIGN_OR_RETURN(const ListedMember obsm,
                       OpenListedMember(impl_->file.get(), "obsm", key, keys, "", where));
  WFM_ASSIGN_OR_RETURN(DenseMatrix m, ReadMatrix(obsm.member.get(), where));
  if (m.rows != impl_->n_obs) {
    return Invalid(where, absl::StrCat("shape [", m.rows, ", ", m.cols,
                                       "]; the first dimension must be n_obs = ", impl_->n_obs));
  }
  return m;
}

absl::StatusOr<DenseArray> H5adFile::ReadObsmArray(absl::string_view key) const {
  h5::SilenceErrors();
  const std::string where = impl_->Where(absl::StrCat("obsm/", key));
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> keys, ObsmKeys());
  WFM_ASSIGN_OR_RETURN(const ListedMember obsm,
                       OpenListedMember(impl_->file.get(), "obsm", key, keys, "", where));
  if (h5::IsGroup(obsm.member.get())) {
    return Invalid(where, "is a group (e.g. a sparse matrix), not a dense array");
  }
  DenseArray a;
  WFM_ASSIGN_OR_RETURN(a.shape, h5::DatasetShape(obsm.member.get(), where));
  if (a.shape.empty() || a.shape[0] != impl_->n_obs) {
    return Invalid(where, absl::StrCat("shape ", ShapeString(a.shape),
                                       "; the first dimension must be n_obs = ", impl_->n_obs));
  }
  WFM_ASSIGN_OR_RETURN(a.values, h5::ReadFloat64(obsm.member.get(), where));
  for (size_t i = 0; i < a.values.size(); ++i) {
    if (!std::isfinite(a.values[i])) {
      return Invalid(where, absl::StrCat("element ", i, " (row-major) = ",
                                         FormatDouble(a.values[i]), ": values must be finite"));
    }
  }
  return a;
}

absl::StatusOr<DenseMatrix> H5adFile::ReadFeatures(absl::string_view spec) const {
  if (spec == "X") return ReadX();
  if (absl::StartsWith(spec, "obsm:") && spec.size() > 5) return ReadObsm(spec.substr(5));
  return absl::InvalidArgumentError(absl::StrCat("features '", spec, "': expected X or obsm:KEY"));
}

absl::StatusOr<std::vector<std::string>> H5adFile::ObsColumns() const {
  h5::SilenceErrors();
  const hid_t file = impl_->file.get();
  if (!h5::HasMember(file, "obs")) return std::vector<std::string>();
  const std::string where = impl_->Where("obs");
  WFM_ASSIGN_OR_RETURN(Handle obs, h5::OpenObject(file, "obs", where));
  WFM_ASSIGN_OR_RETURN(const std::string index, IndexName(obs.get(), where));
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> members, h5::ListMembers(obs.get(), where));
  std::vector<std::string> columns;
  if (h5::HasAttribute(obs.get(), "column-order")) {
    WFM_ASSIGN_OR_RETURN(const Array order, h5::ReadAttribute(obs.get(), "column-order", where));
    if (order.dtype() == DType::kString) {
      for (const std::string& name : order.values<std::string>()) {
        if (std::find(members.begin(), members.end(), name) != members.end()) {
          columns.push_back(name);
        }
      }
    }
  }
  for (const std::string& name : members) {
    if (name == index || name == "__categories") continue;
    if (std::find(columns.begin(), columns.end(), name) == columns.end()) {
      columns.push_back(name);
    }
  }
  return columns;
}

absl::StatusOr<ObsColumn> H5adFile::ReadObsColumn(absl::string_view name) const {
  h5::SilenceErrors();
  const std::string where = impl_->Where(absl::StrCat("obs/", name));
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> columns, ObsColumns());
  WFM_ASSIGN_OR_RETURN(const ListedMember obs, OpenListedMember(impl_->file.get(), "obs", name,
                                                                columns, " columns", where));
  ObsColumn column;
  if (h5::IsGroup(obs.member.get())) {
    WFM_ASSIGN_OR_RETURN(column, ReadColumnGroup(obs.member.get(), where));
  } else {
    WFM_ASSIGN_OR_RETURN(column, ReadColumnDataset(obs.group.get(), obs.member.get(),
                                                   std::string(name), where));
  }
  if (column.size() != impl_->n_obs) {
    return Invalid(
        where, absl::StrCat(column.size(), " values; an obs column needs n_obs = ", impl_->n_obs));
  }
  return column;
}

absl::StatusOr<std::vector<std::string>> H5adFile::ObsNames() const {
  return ReadNamesOf(impl_->file.get(), impl_->path, "obs", impl_->n_obs);
}

absl::StatusOr<std::vector<std::string>> H5adFile::VarNames() const {
  return ReadNamesOf(impl_->file.get(), impl_->path, "var", impl_->n_vars);
}

}  // namespace wfm::model::io
