// How a continuous condition vector was made from named columns of a data
// set (the API's ConditionColumn; the reference's conditioning_obs /
// conditioning_obsm): categorical obs columns one-hot, numeric obs columns
// as their value, obsm matrices as their row, concatenated in column order.
// Clients encode at upload and at sampling; the server checks the encoding,
// stores it with the data set (dataset.json) and hands it to the models
// trained on it (their checkpoint metadata, ModelInfo). No gRPC.
#ifndef WFM_REPOSITORY_CONDITION_COLUMNS_H_
#define WFM_REPOSITORY_CONDITION_COLUMNS_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

// Bounds of an encoding.
inline constexpr int64_t kMaxConditionColumns = 256;
inline constexpr size_t kMaxConditionNameBytes = 256;

enum class ConditionKind {
  kCategorical,  // one-hot over `categories` (width = their number)
  kNumeric,      // the value as is (width 1)
  kObsm,         // an obsm row as is (width = its columns)
};

// "categorical" | "numeric" | "obsm" (the JSON and text spelling).
std::string ConditionKindName(ConditionKind kind);

struct ConditionColumn {
  std::string name;  // obs column or obsm key (without "obsm:")
  ConditionKind kind = ConditionKind::kNumeric;
  std::vector<std::string> categories;  // kCategorical: category i sets value offset + i
  int64_t width = 0;
  int64_t offset = 0;  // first value of the column in the vector

  // How users name the column in `--condition KEY=...`: NAME, or obsm:NAME.
  std::string Key() const;

  bool operator==(const ConditionColumn& o) const {
    return name == o.name && kind == o.kind && categories == o.categories && width == o.width &&
           offset == o.offset;
  }
};

// The rules of an encoding of `condition_dim` values (the API's
// DatasetHeader.condition_columns): at most kMaxConditionColumns columns;
// names 1 to kMaxConditionNameBytes bytes, keys (Key()) unique; categorical
// columns with 1 or more unique categories of 1 to kMaxConditionNameBytes
// bytes and width = their number; numeric width 1 and obsm width >= 1, both
// without categories; offset = the sum of the widths before; the widths add
// up to condition_dim. An empty encoding is valid (plain vectors).
// INVALID_ARGUMENT naming `field` and the column ("header.condition_columns[1]
// .categories[2]: 'B' repeats categories[0]; categories must be unique").
absl::Status CheckConditionColumns(const std::vector<ConditionColumn>& columns,
                                   int64_t condition_dim, absl::string_view field);

// The stored form: a JSON array of {"name", "kind", "categories", "width",
// "offset"}. From JSON: DATA_LOSS for bad fields (the rules are the
// caller's: CheckConditionColumns).
nlohmann::json ConditionColumnsToJson(const std::vector<ConditionColumn>& columns);
absl::StatusOr<std::vector<ConditionColumn>> ConditionColumnsFromJson(const nlohmann::json& j);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_CONDITION_COLUMNS_H_
