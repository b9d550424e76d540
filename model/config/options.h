// Training options, defined once.
//
// Every setting of a training run — every field of model::TrainingConfig and
// of the API's wfm.v1.TrainingConfig — is one entry of TrainingOptions():
//   * its name: the flag `--NAME` of `wfm train` and `wfm-train`, and the
//     Python client's keyword (NAME with '-' written '_');
//   * per family it applies to, its field: the path in wfm.v1.TrainingConfig
//     ("network.width", "pointcloud.noise", "niche_size"), which without the
//     family prefix is also its key in the model's config JSON; whether it
//     belongs to the model's configuration (stored in checkpoints) or to the
//     run (what the run takes from its data set); its allowed values; and how
//     to read and write it in a model::TrainingConfig;
//   * its type, help text and help group.
// Defaults are not repeated here: they are the config structs' member
// initialisers (config.h), read through the same accessors.
//
// Derived from this table: the flags of `wfm train` and `wfm-train` with
// their help and defaults (option_flags.h), the proto conversion both ways
// and the DescribeTrainingOptions reply (proto/training_options.h), the
// config JSON, the range checks with their messages, and the Python client's
// keywords (which it reads from DescribeTrainingOptions). Adding an option is
// a member in config.h, a field in types.proto and one entry in options.cc.
//
// No LibTorch, no protobuf here.
#ifndef WFM_MODEL_CONFIG_OPTIONS_H_
#define WFM_MODEL_CONFIG_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config/config.h"

namespace wfm::model {

enum class OptionType { kInt, kUint, kDouble, kBool, kString };
// "int" | "uint" | "double" | "bool" | "string".
std::string OptionTypeName(OptionType type);

// A value of an option; the alternative matches the option's OptionType in
// this order (kInt = int64_t, ..., kString = std::string).
using OptionValue = std::variant<int64_t, uint64_t, double, bool, std::string>;

// The allowed values of an option: a numeric interval whose ends may be
// absent or open (doubles must also be finite), or a set of strings.
struct OptionRule {
  std::optional<double> min;
  std::optional<double> max;
  bool min_open = false;
  bool max_open = false;
  std::vector<std::string> choices;  // empty: any string

  // OK or INVALID_ARGUMENT with the rule and the value, without a field name:
  // "must be in [1, 4096], got 0", "must be a finite number > 0, got nan",
  // "unknown 'pink' (expected one of uniform, normal, ...)".
  absl::Status Check(const OptionValue& value) const;
  // "in [1, 4096]", "> 0", "one of a | b", "" (anything).
  std::string Describe(OptionType type) const;
};

// An option in one family.
struct OptionField {
  Family family = Family::kPointCloud;
  // Field path in wfm.v1.TrainingConfig.
  std::string path;
  // Part of the family's model configuration (PointCloudTrainConfig /
  // GaussianTrainConfig: stored in the model's config JSON under
  // JsonKey()); false: a setting of the run (TrainingConfig's own members).
  bool model_config = true;
  OptionRule rule;
  // When set, the rule given the rest of the configuration, which replaces
  // `rule` in ValidateTrainingConfig (heads: in [1, width]); options are
  // validated in table order, so it may rely on the options before it.
  std::function<OptionRule(const TrainingConfig& config)> context_rule;
  // The value in `config` (its `family` member is not consulted).
  std::function<OptionValue(const TrainingConfig& config)> get;
  // Stores a value of the option's type that passed `rule`.
  std::function<void(TrainingConfig* config, const OptionValue& value)> set;

  // `path` without a leading "pointcloud." / "gaussian.".
  std::string JsonKey() const;
};

struct TrainingOption {
  std::string name;   // "monge-map"
  std::string group;  // help group: "Optimisation", "Network", "Data", "Flow matching"
  std::string help;
  OptionType type = OptionType::kInt;
  std::vector<OptionField> fields;  // one per family it applies to

  // The field for `family`, or nullptr when the option does not apply to it.
  const OptionField* For(Family family) const;
  // The Python keyword: name with '_' for '-'.
  std::string Keyword() const;
  // "pointcloud", "gaussian" or "pointcloud, gaussian".
  std::string Families() const;
  // The defaults as text: "128", or "chol_normal (pointcloud), wishart (gaussian)"
  // when the families differ.
  std::string DefaultText() const;
};

// Every option, in help order.
const std::vector<TrainingOption>& TrainingOptions();
// By name ("monge-map") or keyword ("monge_map"); nullptr when unknown.
const TrainingOption* FindTrainingOption(absl::string_view name);

// A value of `type` from text: integers and doubles in full (no trailing
// characters), booleans as on|off|true|false|yes|no|1|0. INVALID_ARGUMENT
// "expected ..." otherwise.
absl::StatusOr<OptionValue> ParseOptionValue(OptionType type, absl::string_view text);
// The value as text (booleans "on" / "off").
std::string OptionValueText(const OptionValue& value);

// Every option of `config.family` against its rule, then the rules that
// relate options (heads divides width, ...). Messages name the field path:
// "network.width: must be in [2, 4096], got 1", "niche_size: ...".
absl::Status ValidateTrainingConfig(const TrainingConfig& config);

// The model configuration of `config.family` as JSON (what checkpoints store:
// {"family": ..., "network": {...}, "optimizer": {...}, "monge_map": ...}),
// and back: keys that are absent keep their defaults, the result is
// validated, type errors are INVALID_ARGUMENT "config: ...".
nlohmann::json ModelConfigJson(const TrainingConfig& config);
absl::Status ReadModelConfigJson(const nlohmann::json& json, TrainingConfig* config);

}  // namespace wfm::model

#endif  // WFM_MODEL_CONFIG_OPTIONS_H_
