// Writing .h5ad files; the API and the layout are described in h5ad.h.
#include "model/io/h5ad.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/h5_util.h"
#include "model/io/text_codec.h"

namespace wfm::model::io {
namespace {

using h5::Handle;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status CheckText(const std::vector<std::string>& values, absl::string_view where) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!IsValidUtf8(values[i])) {
      return Invalid(where, absl::StrCat("entry ", i, " is not valid UTF-8"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckUnique(const std::vector<std::string>& values, absl::string_view where) {
  std::set<absl::string_view> seen;
  for (const std::string& v : values) {
    if (!seen.insert(v).second) {
      return Invalid(where, absl::StrCat("'", v, "' appears twice; names must be unique"));
    }
  }
  return absl::OkStatus();
}

// The obs or var names (`axis` "obs" or "var") when given: one per row
// (`count`, the axis length n_obs or n_vars), valid UTF-8 and unique.
absl::Status CheckNames(const std::vector<std::string>& names, int64_t count,
                        absl::string_view axis, absl::string_view path) {
  if (names.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(names.size()) != count) {
    return Invalid(path, absl::StrCat(axis, " names: ", names.size(), " names for n_", axis, " = ",
                                      count));
  }
  const std::string where = absl::StrCat(path, ": ", axis, " names");
  WFM_RETURN_IF_ERROR(CheckText(names, where));
  return CheckUnique(names, where);
}

absl::Status Validate(const H5adContent& c, absl::string_view path) {
  if (c.n_obs < 0 || c.n_vars < 0) {
    return Invalid(path, "n_obs and n_vars must be >= 0");
  }
  if (static_cast<int64_t>(c.x.size()) != c.n_obs * c.n_vars) {
    return Invalid(path, absl::StrCat("X: ", c.x.size(),
                                      " values; needs n_obs * n_vars = ", c.n_obs * c.n_vars));
  }
  WFM_RETURN_IF_ERROR(CheckNames(c.obs_names, c.n_obs, "obs", path));
  WFM_RETURN_IF_ERROR(CheckNames(c.var_names, c.n_vars, "var", path));
  std::vector<std::string> column_names;
  for (const H5adColumn& column : c.obs) {
    const std::string where = absl::StrCat(path, ": obs/", column.name);
    if (column.name.empty() || column.name == "_index" || column.name == "__categories" ||
        column.name.find('/') != std::string::npos || !IsValidUtf8(column.name)) {
      return Invalid(where, "invalid column name");
    }
    column_names.push_back(column.name);
    size_t size = 0;
    switch (column.kind) {
      case ObsColumn::Kind::kInteger:
      case ObsColumn::Kind::kBool:
        size = column.integers.size();
        break;
      case ObsColumn::Kind::kFloat:
        size = column.floats.size();
        break;
      case ObsColumn::Kind::kString:
        size = column.strings.size();
        WFM_RETURN_IF_ERROR(CheckText(column.strings, where));
        break;
      case ObsColumn::Kind::kCategorical: {
        size = column.codes.size();
        WFM_RETURN_IF_ERROR(CheckText(column.categories, absl::StrCat(where, " categories")));
        WFM_RETURN_IF_ERROR(CheckUnique(column.categories, absl::StrCat(where, " categories")));
        const int64_t n = static_cast<int64_t>(column.categories.size());
        for (size_t i = 0; i < column.codes.size(); ++i) {
          if (column.codes[i] < -1 || column.codes[i] >= n) {
            return Invalid(where, absl::StrCat("code ", column.codes[i], " of cell ", i,
                                               " is outside [-1, ", n, ")"));
          }
        }
        break;
      }
    }
    if (static_cast<int64_t>(size) != c.n_obs) {
      return Invalid(where, absl::StrCat(size, " values; needs n_obs = ", c.n_obs));
    }
  }
  WFM_RETURN_IF_ERROR(CheckUnique(column_names, absl::StrCat(path, ": obs columns")));
  std::vector<std::string> obsm_names;
  for (const H5adMatrix& m : c.obsm) {
    const std::string where = absl::StrCat(path, ": obsm/", m.name);
    if (m.name.empty() || m.name.find('/') != std::string::npos || !IsValidUtf8(m.name)) {
      return Invalid(where, "invalid obsm key");
    }
    obsm_names.push_back(m.name);
    if (m.cols < 1 || static_cast<int64_t>(m.values.size()) != c.n_obs * m.cols) {
      return Invalid(where, absl::StrCat(m.values.size(), " values; needs n_obs * cols = ", c.n_obs,
                                         " * ", m.cols, " with cols >= 1"));
    }
  }
  return CheckUnique(obsm_names, absl::StrCat(path, ": obsm keys"));
}

// codes as the narrowest signed integer pandas would use.
absl::StatusOr<Handle> WriteCodes(hid_t group, const std::vector<int64_t>& codes,
                                  size_t categories) {
  const std::vector<int64_t> shape = {static_cast<int64_t>(codes.size())};
  if (categories < 128) {
    std::vector<int8_t> narrow(codes.begin(), codes.end());
    return h5::WriteNumericDataset(group, "codes", DType::kInt8, shape, narrow.data());
  }
  if (categories < 32768) {
    std::vector<int16_t> narrow(codes.begin(), codes.end());
    return h5::WriteNumericDataset(group, "codes", DType::kInt16, shape, narrow.data());
  }
  std::vector<int32_t> narrow(codes.begin(), codes.end());
  return h5::WriteNumericDataset(group, "codes", DType::kInt32, shape, narrow.data());
}

absl::Status WriteColumn(hid_t obs, const H5adColumn& column) {
  const std::vector<int64_t> shape = {
      static_cast<int64_t>(column.kind == ObsColumn::Kind::kCategorical ? column.codes.size()
                           : column.kind == ObsColumn::Kind::kFloat     ? column.floats.size()
                           : column.kind == ObsColumn::Kind::kString    ? column.strings.size()
                                                                        : column.integers.size())};
  switch (column.kind) {
    case ObsColumn::Kind::kInteger: {
      WFM_ASSIGN_OR_RETURN(Handle d, h5::WriteNumericDataset(obs, column.name, DType::kInt64, shape,
                                                             column.integers.data()));
      return h5::WriteEncoding(d.get(), "array", "0.2.0");
    }
    case ObsColumn::Kind::kBool: {
      std::vector<uint8_t> flags(column.integers.size());
      for (size_t i = 0; i < flags.size(); ++i) flags[i] = column.integers[i] != 0;
      WFM_ASSIGN_OR_RETURN(
          Handle d, h5::WriteNumericDataset(obs, column.name, DType::kBool, shape, flags.data()));
      return h5::WriteEncoding(d.get(), "array", "0.2.0");
    }
    case ObsColumn::Kind::kFloat: {
      WFM_ASSIGN_OR_RETURN(Handle d, h5::WriteNumericDataset(obs, column.name, DType::kFloat64,
                                                             shape, column.floats.data()));
      return h5::WriteEncoding(d.get(), "array", "0.2.0");
    }
    case ObsColumn::Kind::kString: {
      WFM_ASSIGN_OR_RETURN(Handle d, h5::WriteStringDataset(obs, column.name, column.strings));
      return h5::WriteEncoding(d.get(), "string-array", "0.2.0");
    }
    case ObsColumn::Kind::kCategorical: {
      WFM_ASSIGN_OR_RETURN(Handle group, h5::CreateGroup(obs, column.name));
      WFM_RETURN_IF_ERROR(h5::WriteEncoding(group.get(), "categorical", "0.2.0"));
      WFM_RETURN_IF_ERROR(h5::WriteBoolAttribute(group.get(), "ordered", false));
      WFM_ASSIGN_OR_RETURN(Handle codes,
                           WriteCodes(group.get(), column.codes, column.categories.size()));
      WFM_RETURN_IF_ERROR(h5::WriteEncoding(codes.get(), "array", "0.2.0"));
      WFM_ASSIGN_OR_RETURN(Handle categories,
                           h5::WriteStringDataset(group.get(), "categories", column.categories));
      return h5::WriteEncoding(categories.get(), "string-array", "0.2.0");
    }
  }
  return absl::InternalError("unknown column kind");
}

absl::Status WriteFrame(hid_t file, const std::string& name, const std::vector<std::string>& index,
                        const std::vector<H5adColumn>& columns) {
  WFM_ASSIGN_OR_RETURN(Handle frame, h5::CreateGroup(file, name));
  WFM_RETURN_IF_ERROR(h5::WriteEncoding(frame.get(), "dataframe", "0.2.0"));
  WFM_RETURN_IF_ERROR(h5::WriteStringAttribute(frame.get(), "_index", "_index"));
  std::vector<std::string> order;
  for (const H5adColumn& column : columns) order.push_back(column.name);
  WFM_RETURN_IF_ERROR(h5::WriteStringArrayAttribute(frame.get(), "column-order", order));
  WFM_ASSIGN_OR_RETURN(Handle index_set, h5::WriteStringDataset(frame.get(), "_index", index));
  WFM_RETURN_IF_ERROR(h5::WriteEncoding(index_set.get(), "string-array", "0.2.0"));
  for (const H5adColumn& column : columns) {
    WFM_RETURN_IF_ERROR(WriteColumn(frame.get(), column));
  }
  return absl::OkStatus();
}

std::vector<std::string> DefaultNames(absl::string_view prefix, int64_t n) {
  std::vector<std::string> names;
  names.reserve(n);
  for (int64_t i = 0; i < n; ++i) names.push_back(absl::StrCat(prefix, i));
  return names;
}

absl::Status WriteContent(hid_t file, const H5adContent& c) {
  WFM_RETURN_IF_ERROR(h5::WriteEncoding(file, "anndata", "0.1.0"));
  WFM_ASSIGN_OR_RETURN(Handle x, h5::WriteNumericDataset(file, "X", DType::kFloat32,
                                                         {c.n_obs, c.n_vars}, c.x.data()));
  WFM_RETURN_IF_ERROR(h5::WriteEncoding(x.get(), "array", "0.2.0"));
  for (const char* dict : {"layers", "obsp", "uns", "varm", "varp"}) {
    WFM_ASSIGN_OR_RETURN(Handle group, h5::CreateGroup(file, dict));
    WFM_RETURN_IF_ERROR(h5::WriteEncoding(group.get(), "dict", "0.1.0"));
  }
  WFM_ASSIGN_OR_RETURN(Handle obsm, h5::CreateGroup(file, "obsm"));
  WFM_RETURN_IF_ERROR(h5::WriteEncoding(obsm.get(), "dict", "0.1.0"));
  for (const H5adMatrix& m : c.obsm) {
    WFM_ASSIGN_OR_RETURN(Handle d, h5::WriteNumericDataset(obsm.get(), m.name, DType::kFloat32,
                                                           {c.n_obs, m.cols}, m.values.data()));
    WFM_RETURN_IF_ERROR(h5::WriteEncoding(d.get(), "array", "0.2.0"));
  }
  WFM_RETURN_IF_ERROR(WriteFrame(
      file, "obs", c.obs_names.empty() ? DefaultNames("", c.n_obs) : c.obs_names, c.obs));
  return WriteFrame(file, "var", c.var_names.empty() ? DefaultNames("f", c.n_vars) : c.var_names,
                    {});
}

}  // namespace

absl::Status WriteH5ad(const std::string& path, const H5adContent& content) {
  h5::SilenceErrors();
  WFM_RETURN_IF_ERROR(Validate(content, path));
  return WriteAtomically(path, [&](const std::string& temp) -> absl::Status {
    const hid_t file = H5Fcreate(temp.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
      return h5::Failure(absl::StatusCode::kInternal, absl::StrCat("create ", temp));
    }
    absl::Status status = WriteContent(file, content);
    // Close explicitly: closing flushes, and a failed flush fails the write.
    if (H5Fclose(file) < 0 && status.ok()) {
      status = h5::Failure(absl::StatusCode::kInternal, absl::StrCat("write ", temp));
    }
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
    }
    return absl::OkStatus();
  });
}

absl::Status WriteNichesH5ad(const std::string& path, const PointCloudSet& clouds,
                             const NichesH5adOptions& options) {
  WFM_RETURN_IF_ERROR(ValidatePointCloudSet(clouds, path));
  const int64_t p = clouds.num_points();
  const int64_t c = clouds.num_clouds();
  H5adContent content;
  content.n_obs = p;
  content.n_vars = clouds.dim;
  content.x = absl::MakeConstSpan(clouds.points);
  content.var_names = options.var_names;
  content.obsm = options.obsm;

  H5adColumn sample;
  sample.name = "sample";
  sample.kind = ObsColumn::Kind::kInteger;
  sample.integers.resize(p);
  for (int64_t i = 0; i < c; ++i) {
    std::fill(sample.integers.begin() + clouds.offsets[i],
              sample.integers.begin() + clouds.offsets[i + 1], i);
  }
  content.obs.push_back(std::move(sample));

  const Labels& labels = clouds.labels;
  std::vector<float> condition_values;
  if (labels.kind == Labels::Kind::kInteger || labels.kind == Labels::Kind::kString) {
    // Categories sorted (integers numerically), codes per point.
    std::vector<int64_t> cloud_code(c);
    H5adColumn condition;
    condition.name = "condition";
    condition.kind = ObsColumn::Kind::kCategorical;
    if (labels.kind == Labels::Kind::kInteger) {
      std::map<int64_t, int64_t> codes;
      for (int64_t v : labels.integers) codes.emplace(v, 0);
      int64_t next = 0;
      for (auto& [value, code] : codes) {
        code = next++;
        condition.categories.push_back(absl::StrCat(value));
      }
      for (int64_t i = 0; i < c; ++i) cloud_code[i] = codes[labels.integers[i]];
    } else {
      std::map<std::string, int64_t> codes;
      for (const std::string& v : labels.strings) codes.emplace(v, 0);
      int64_t next = 0;
      for (auto& [value, code] : codes) {
        code = next++;
        condition.categories.push_back(value);
      }
      for (int64_t i = 0; i < c; ++i) cloud_code[i] = codes[labels.strings[i]];
    }
    condition.codes.resize(p);
    for (int64_t i = 0; i < c; ++i) {
      std::fill(condition.codes.begin() + clouds.offsets[i],
                condition.codes.begin() + clouds.offsets[i + 1], cloud_code[i]);
    }
    content.obs.push_back(std::move(condition));
  } else if (labels.kind == Labels::Kind::kContinuous) {
    const int64_t w = labels.width;
    condition_values.resize(p * w);
    for (int64_t i = 0; i < c; ++i) {
      for (int64_t row = clouds.offsets[i]; row < clouds.offsets[i + 1]; ++row) {
        std::copy(labels.values.begin() + i * w, labels.values.begin() + (i + 1) * w,
                  condition_values.begin() + row * w);
      }
    }
    content.obsm.push_back({"condition", w, absl::MakeConstSpan(condition_values)});
  }
  return WriteH5ad(path, content);
}

}  // namespace wfm::model::io
