#include "client/conditions.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

absl::Status Invalid(absl::string_view where, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", rule));
}

// One-hot rows of `codes` (each in [0, categories) or -1 = missing).
absl::StatusOr<ConditionTable> OneHot(const std::vector<int64_t>& codes,
                                      std::vector<std::string> categories,
                                      const std::string& name, absl::string_view key) {
  ConditionTable t;
  const int64_t k = static_cast<int64_t>(categories.size());
  if (k < 1) return Invalid(key, "a categorical column without categories");
  t.width = k;
  t.values.assign(codes.size() * k, 0.0f);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] < 0 || codes[i] >= k) {
      return Invalid(key, absl::StrCat("cell ", i, " has no value; every cell needs one"));
    }
    t.values[i * k + codes[i]] = 1.0f;
  }
  v1::ConditionColumn column;
  column.set_name(name);
  column.set_kind(v1::CONDITION_KIND_CATEGORICAL);
  for (std::string& c : categories) column.add_categories(std::move(c));
  column.set_width(k);
  t.columns.push_back(std::move(column));
  return t;
}

ConditionTable Numeric(std::vector<float> values, const std::string& name,
                       v1::ConditionKind kind, int64_t width) {
  ConditionTable t;
  t.width = width;
  t.values = std::move(values);
  v1::ConditionColumn column;
  column.set_name(name);
  column.set_kind(kind);
  column.set_width(width);
  t.columns.push_back(std::move(column));
  return t;
}

std::string ColumnKey(const v1::ConditionColumn& c) {
  return c.kind() == v1::CONDITION_KIND_OBSM ? absl::StrCat("obsm:", c.name()) : c.name();
}

absl::StatusOr<float> ParseNumber(absl::string_view flag, absl::string_view key,
                                  absl::string_view text) {
  double v = 0.0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &v) || !std::isfinite(v)) {
    return Invalid(flag, absl::StrCat(key, "='", text, "': not a finite number"));
  }
  return static_cast<float>(v);
}

}  // namespace

absl::StatusOr<ConditionTable> EncodeObsColumn(const io::ObsColumn& column,
                                               const std::string& name, absl::string_view key) {
  using Kind = io::ObsColumn::Kind;
  switch (column.kind) {
    case Kind::kCategorical: return OneHot(column.codes, column.categories, name, key);
    case Kind::kString: {
      const std::set<std::string> distinct(column.strings.begin(), column.strings.end());
      std::vector<std::string> categories(distinct.begin(), distinct.end());
      std::map<absl::string_view, int64_t> code_of;
      for (size_t c = 0; c < categories.size(); ++c) code_of[categories[c]] = c;
      std::vector<int64_t> codes;
      codes.reserve(column.strings.size());
      for (const std::string& s : column.strings) codes.push_back(s.empty() ? -1 : code_of[s]);
      if (!categories.empty() && categories.front().empty()) {
        // An empty text is a missing value, not a category.
        categories.erase(categories.begin());
        for (int64_t& c : codes) c = c < 0 ? -1 : c - 1;
      }
      return OneHot(codes, std::move(categories), name, key);
    }
    case Kind::kInteger:
    case Kind::kBool: {
      std::vector<float> values(column.integers.begin(), column.integers.end());
      return Numeric(std::move(values), name, v1::CONDITION_KIND_NUMERIC, 1);
    }
    case Kind::kFloat: {
      std::vector<float> values;
      values.reserve(column.floats.size());
      for (size_t i = 0; i < column.floats.size(); ++i) {
        if (!std::isfinite(column.floats[i])) {
          return Invalid(key, absl::StrCat("cell ", i, " has no finite value (",
                                           column.floats[i], "); every cell needs one"));
        }
        values.push_back(static_cast<float>(column.floats[i]));
      }
      return Numeric(std::move(values), name, v1::CONDITION_KIND_NUMERIC, 1);
    }
  }
  return absl::InternalError("obs column: unknown kind");
}

absl::StatusOr<ConditionTable> EncodeObsm(const io::DenseMatrix& matrix, const std::string& name,
                                          absl::string_view key) {
  if (matrix.cols < 1) return Invalid(key, "an obsm matrix without columns");
  for (size_t i = 0; i < matrix.values.size(); ++i) {
    if (!std::isfinite(matrix.values[i])) {
      return Invalid(key, absl::StrCat("cell ", i / matrix.cols, " column ", i % matrix.cols,
                                       " is not finite; values must be finite"));
    }
  }
  return Numeric(matrix.values, name, v1::CONDITION_KIND_OBSM, matrix.cols);
}

ConditionTable ConcatenateConditions(const std::vector<ConditionTable>& parts) {
  ConditionTable out;
  for (const ConditionTable& p : parts) {
    for (v1::ConditionColumn c : p.columns) {
      c.set_offset(c.offset() + out.width);
      out.columns.push_back(std::move(c));
    }
    out.width += p.width;
  }
  const int64_t n = parts.empty() || parts[0].width == 0
                        ? 0
                        : static_cast<int64_t>(parts[0].values.size()) / parts[0].width;
  out.values.resize(n * out.width);
  int64_t offset = 0;
  for (const ConditionTable& p : parts) {
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(p.values.begin() + i * p.width, p.width,
                  out.values.begin() + i * out.width + offset);
    }
    offset += p.width;
  }
  return out;
}

absl::StatusOr<ConditionTable> ReadConditions(const io::H5adFile& file,
                                              const std::vector<std::string>& keys) {
  std::vector<ConditionTable> parts;
  std::set<std::string> seen;
  for (const std::string& key : keys) {
    const std::string where = absl::StrCat(file.path(), ": --condition-key ", key);
    if (!seen.insert(key).second) return Invalid(where, "given twice; name each column once");
    absl::string_view name = key;
    const bool obsm = absl::ConsumePrefix(&name, "obsm:");
    if (name.empty()) return Invalid(where, "empty name; use an obs column or obsm:KEY");
    // The reader's messages name the file already.
    const auto reason = [&file](const absl::Status& status) {
      absl::string_view message = status.message();
      absl::ConsumePrefix(&message, absl::StrCat(file.path(), ": "));
      return message;
    };
    absl::StatusOr<ConditionTable> part;
    if (obsm) {
      absl::StatusOr<io::DenseMatrix> matrix = file.ReadObsm(name);
      if (!matrix.ok()) return Invalid(where, reason(matrix.status()));
      part = EncodeObsm(*matrix, std::string(name), where);
    } else {
      absl::StatusOr<io::ObsColumn> column = file.ReadObsColumn(name);
      if (!column.ok()) return Invalid(where, reason(column.status()));
      part = EncodeObsColumn(*column, std::string(name), where);
    }
    if (!part.ok()) return part.status();
    parts.push_back(*std::move(part));
  }
  return ConcatenateConditions(parts);
}

bool IsNamedCondition(absl::string_view text) { return absl::StrContains(text, '='); }

absl::StatusOr<std::vector<float>> EncodeNamedCondition(
    absl::string_view text, const google::protobuf::RepeatedPtrField<v1::ConditionColumn>& columns,
    absl::string_view flag) {
  if (columns.empty()) {
    return Invalid(flag, "the model's conditions have no named columns; give the vector, e.g. "
                         "0.5,1");
  }
  std::map<std::string, const v1::ConditionColumn*> by_key;
  int64_t width = 0;
  for (const v1::ConditionColumn& c : columns) {
    by_key[ColumnKey(c)] = &c;
    width = std::max<int64_t>(width, c.offset() + c.width());
  }
  std::vector<float> vector(width, 0.0f);
  std::set<std::string> given;
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    const std::string key(absl::StripAsciiWhitespace(kv.first));
    if (!absl::StrContains(pair, '=') || key.empty()) {
      return Invalid(flag, absl::StrCat("'", pair, "' is not KEY=VALUE"));
    }
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      return Invalid(flag, absl::StrCat("unknown key '", key, "'; the model's columns: ",
                                        DescribeConditionColumns(columns)));
    }
    if (!given.insert(key).second) {
      return Invalid(flag, absl::StrCat("key '", key, "' given twice"));
    }
    const v1::ConditionColumn& c = *it->second;
    const absl::string_view value = kv.second;
    switch (c.kind()) {
      case v1::CONDITION_KIND_CATEGORICAL: {
        const auto cat = std::find(c.categories().begin(), c.categories().end(), value);
        if (cat == c.categories().end()) {
          return Invalid(flag, absl::StrCat(key, "='", value, "': unknown category; one of ",
                                            absl::StrJoin(c.categories(), ", ")));
        }
        vector[c.offset() + (cat - c.categories().begin())] = 1.0f;
        break;
      }
      case v1::CONDITION_KIND_NUMERIC: {
        WFM_ASSIGN_OR_RETURN(vector[c.offset()], ParseNumber(flag, key, value));
        break;
      }
      case v1::CONDITION_KIND_OBSM: {
        const std::vector<absl::string_view> parts = absl::StrSplit(value, ';');
        if (static_cast<int64_t>(parts.size()) != c.width()) {
          return Invalid(flag, absl::StrCat(key, ": ", parts.size(), " values, the model's ",
                                            key, " has ", c.width(),
                                            " (separate them with ';')"));
        }
        for (int64_t j = 0; j < c.width(); ++j) {
          WFM_ASSIGN_OR_RETURN(vector[c.offset() + j], ParseNumber(flag, key, parts[j]));
        }
        break;
      }
      default:
        return Invalid(flag, absl::StrCat("the model's column '", key, "' has an unknown kind"));
    }
  }
  for (const v1::ConditionColumn& c : columns) {
    if (given.count(ColumnKey(c)) == 0) {
      return Invalid(flag, absl::StrCat("missing key '", ColumnKey(c),
                                        "'; give every column of the model: ",
                                        DescribeConditionColumns(columns)));
    }
  }
  return vector;
}

absl::StatusOr<NamedCondition> ResolveNamedCondition(absl::string_view text,
                                                     const v1::ModelInfo& model,
                                                     absl::string_view flag) {
  NamedCondition out;
  switch (model.label_type()) {
    case v1::LABEL_TYPE_CONTINUOUS: {
      WFM_ASSIGN_OR_RETURN(out.vector, EncodeNamedCondition(text, model.condition_columns(), flag));
      return out;
    }
    case v1::LABEL_TYPE_DISCRETE: {
      const std::vector<absl::string_view> pairs = absl::StrSplit(text, ',');
      const size_t eq = text.find('=');
      if (pairs.size() != 1 || eq == 0) {
        return Invalid(flag, absl::StrCat("model '", model.name(),
                                          "' has discrete labels; give one KEY=LABEL"));
      }
      out.label = std::string(text.substr(eq + 1));
      const auto& labels = model.labels();
      if (!labels.empty() && std::find(labels.begin(), labels.end(), out.label) == labels.end()) {
        return Invalid(flag, absl::StrCat("'", out.label, "': unknown label of model '",
                                          model.name(), "'; its labels: ",
                                          absl::StrJoin(labels, ", ")));
      }
      return out;
    }
    default:
      return Invalid(flag, absl::StrCat("model '", model.name(), "' is unconditional"));
  }
}

std::string DescribeConditionColumns(
    const google::protobuf::RepeatedPtrField<v1::ConditionColumn>& columns) {
  std::vector<std::string> parts;
  for (const v1::ConditionColumn& c : columns) {
    switch (c.kind()) {
      case v1::CONDITION_KIND_CATEGORICAL: {
        const int shown = std::min(c.categories_size(), 8);
        parts.push_back(absl::StrCat(
            c.name(), " (categorical: ",
            absl::StrJoin(c.categories().begin(), c.categories().begin() + shown, ", "),
            c.categories_size() > shown ? ", ..." : "", ")"));
        break;
      }
      case v1::CONDITION_KIND_NUMERIC: parts.push_back(absl::StrCat(c.name(), " (numeric)")); break;
      default: parts.push_back(absl::StrCat(ColumnKey(c), " (", c.width(), " values)")); break;
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace wfm::client
