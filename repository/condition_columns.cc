#include "repository/condition_columns.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace wfm::repository {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::Status CheckText(absl::string_view field, const std::string& text) {
  if (text.empty()) return Invalid(field, "empty");
  if (text.size() > kMaxConditionNameBytes) {
    return Invalid(field, absl::StrCat(text.size(), " bytes, the limit is ",
                                       kMaxConditionNameBytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConditionKind> ParseConditionKind(absl::string_view name) {
  if (name == "categorical") return ConditionKind::kCategorical;
  if (name == "numeric") return ConditionKind::kNumeric;
  if (name == "obsm") return ConditionKind::kObsm;
  return absl::DataLossError(absl::StrCat("condition_columns: unknown kind '", name, "'"));
}

}  // namespace

std::string ConditionKindName(ConditionKind kind) {
  switch (kind) {
    case ConditionKind::kCategorical: return "categorical";
    case ConditionKind::kNumeric: return "numeric";
    case ConditionKind::kObsm: return "obsm";
  }
  return "?";
}

std::string ConditionColumn::Key() const {
  return kind == ConditionKind::kObsm ? absl::StrCat("obsm:", name) : name;
}

absl::Status CheckConditionColumns(const std::vector<ConditionColumn>& columns,
                                   int64_t condition_dim, absl::string_view field) {
  if (columns.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(columns.size()) > kMaxConditionColumns) {
    return Invalid(field, absl::StrCat(columns.size(), " columns, the limit is ",
                                       kMaxConditionColumns));
  }
  std::map<std::string, size_t> keys;
  int64_t offset = 0;
  for (size_t i = 0; i < columns.size(); ++i) {
    const ConditionColumn& c = columns[i];
    const std::string item = absl::StrCat(field, "[", i, "]");
    if (absl::Status s = CheckText(absl::StrCat(item, ".name"), c.name); !s.ok()) return s;
    const auto [it, inserted] = keys.emplace(c.Key(), i);
    if (!inserted) {
      return Invalid(absl::StrCat(item, ".name"),
                     absl::StrCat("'", c.Key(), "' repeats ", field, "[", it->second,
                                  "]; columns must be unique"));
    }
    if (c.kind == ConditionKind::kCategorical) {
      if (c.categories.empty()) {
        return Invalid(absl::StrCat(item, ".categories"),
                       "a categorical column needs at least one");
      }
      std::map<absl::string_view, size_t> seen;
      for (size_t k = 0; k < c.categories.size(); ++k) {
        const std::string cf = absl::StrCat(item, ".categories[", k, "]");
        if (absl::Status s = CheckText(cf, c.categories[k]); !s.ok()) return s;
        const auto [at, fresh] = seen.emplace(c.categories[k], k);
        if (!fresh) {
          return Invalid(cf, absl::StrCat("'", c.categories[k], "' repeats categories[", at->second,
                                          "]; categories must be unique"));
        }
      }
      if (c.width != static_cast<int64_t>(c.categories.size())) {
        return Invalid(absl::StrCat(item, ".width"),
                       absl::StrCat(c.width, " for ", c.categories.size(),
                                    " categories; a categorical column is one-hot (width = "
                                    "categories)"));
      }
    } else {
      if (!c.categories.empty()) {
        return Invalid(absl::StrCat(item, ".categories"),
                       absl::StrCat("only categorical columns have categories, this one is ",
                                    ConditionKindName(c.kind)));
      }
      if (c.kind == ConditionKind::kNumeric && c.width != 1) {
        return Invalid(absl::StrCat(item, ".width"),
                       absl::StrCat(c.width, "; a numeric column has width 1"));
      }
      if (c.kind == ConditionKind::kObsm && c.width < 1) {
        return Invalid(absl::StrCat(item, ".width"),
                       absl::StrCat(c.width, "; an obsm column has width >= 1"));
      }
    }
    if (c.offset != offset) {
      return Invalid(absl::StrCat(item, ".offset"),
                     absl::StrCat(c.offset, "; must be ", offset,
                                  " (the widths of the columns before it)"));
    }
    if (c.width > condition_dim - offset) {
      return Invalid(field, absl::StrCat("the widths add up to more than condition_dim ",
                                         condition_dim));
    }
    offset += c.width;
  }
  if (offset != condition_dim) {
    return Invalid(field, absl::StrCat("the widths add up to ", offset, ", not condition_dim ",
                                       condition_dim));
  }
  return absl::OkStatus();
}

nlohmann::json ConditionColumnsToJson(const std::vector<ConditionColumn>& columns) {
  nlohmann::json out = nlohmann::json::array();
  for (const ConditionColumn& c : columns) {
    out.push_back({{"name", c.name},
                   {"kind", ConditionKindName(c.kind)},
                   {"categories", c.categories},
                   {"width", c.width},
                   {"offset", c.offset}});
  }
  return out;
}

absl::StatusOr<std::vector<ConditionColumn>> ConditionColumnsFromJson(const nlohmann::json& j) {
  if (!j.is_array()) return absl::DataLossError("condition_columns: not an array");
  std::vector<ConditionColumn> out;
  try {
    for (const nlohmann::json& e : j) {
      ConditionColumn c;
      c.name = e.at("name").get<std::string>();
      absl::StatusOr<ConditionKind> kind = ParseConditionKind(e.at("kind").get<std::string>());
      if (!kind.ok()) return kind.status();
      c.kind = *kind;
      c.categories = e.at("categories").get<std::vector<std::string>>();
      c.width = e.at("width").get<int64_t>();
      c.offset = e.at("offset").get<int64_t>();
      out.push_back(std::move(c));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("condition_columns: ", e.what()));
  }
  return out;
}

}  // namespace wfm::repository
