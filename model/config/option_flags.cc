#include "model/config/option_flags.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wfm::model {
namespace {

// The rule every family of `o` shares, or nullptr when they differ.
const OptionRule* SharedRule(const TrainingOption& o) {
  const OptionRule& first = o.fields.front().rule;
  for (const OptionField& f : o.fields) {
    const OptionRule& r = f.rule;
    if (r.min != first.min || r.max != first.max || r.min_open != first.min_open ||
        r.max_open != first.max_open || r.choices != first.choices) {
      return nullptr;
    }
  }
  return &first;
}

std::string HelpText(const TrainingOption& o) {
  std::vector<std::string> facts = {o.Families()};
  if (const OptionRule* rule = SharedRule(o); rule != nullptr) {
    const std::string described = rule->Describe(o.type);
    if (!described.empty()) facts.push_back(described);
  } else {
    for (const OptionField& f : o.fields) {
      const std::string described = f.rule.Describe(o.type);
      if (!described.empty()) facts.push_back(absl::StrCat(FamilyName(f.family), " ", described));
    }
  }
  const std::string default_text = o.DefaultText();
  if (!default_text.empty()) facts.push_back(absl::StrCat("default: ", default_text));
  return absl::StrCat(o.help, " [", absl::StrJoin(facts, "; "), "]");
}

std::string TypeName(OptionType type) {
  // The value's placeholder in --help, per OptionType.
  // In the order of the enum's values (kInt, kUint, kDouble, kBool, kString).
  static constexpr const char* kMetavars[] = {"INT", "UINT", "NUMBER", "on|off", "TEXT"};
  static_assert(std::size(kMetavars) == static_cast<size_t>(OptionType::kString) + 1);
  return kMetavars[static_cast<int>(type)];
}

}  // namespace

void AddTrainingOptionFlags(CLI::App* app, GivenOptions* given) {
  for (const TrainingOption& o : TrainingOptions()) {
    const std::string name = o.name;
    const OptionType type = o.type;
    const OptionRule* shared = SharedRule(o);
    // Numbers are checked against the rule every family shares; a named
    // choice must be one of some family's (--monge-map telepathy is a usage
    // error), and whether the family takes it is checked once the family is
    // known, so that the error names it; so are booleans.
    const bool check_rule = shared != nullptr && shared->choices.empty() &&
                            type != OptionType::kBool && type != OptionType::kString;
    OptionRule any_family;
    for (const OptionField& f : o.fields) {
      for (const std::string& c : f.rule.choices) {
        if (std::find(any_family.choices.begin(), any_family.choices.end(), c) ==
            any_family.choices.end()) {
          any_family.choices.push_back(c);
        }
      }
    }
    CLI::Validator valid(
        [type, shared, check_rule, any_family](std::string& text) -> std::string {
          if (type == OptionType::kBool) return "";
          if (type == OptionType::kString) {
            return std::string(any_family.Check(text).message());
          }
          absl::StatusOr<OptionValue> value = ParseOptionValue(type, text);
          if (!value.ok()) return std::string(value.status().message());
          if (check_rule) {
            const absl::Status s = shared->Check(*value);
            if (!s.ok()) return std::string(s.message());
          }
          return "";
        },
        "", "");
    app->add_option_function<std::string>(
           "--" + name, [given, name](const std::string& v) { (*given)[name] = v; }, HelpText(o))
        ->type_name(TypeName(type))
        ->check(valid)
        ->group(o.group);
  }
}

absl::StatusOr<std::vector<GivenValue>> ResolveGivenOptions(const GivenOptions& given,
                                                            Family family) {
  for (const auto& [name, text] : given) {
    const TrainingOption* o = FindTrainingOption(name);
    if (o == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": not a training option"));
    }
    if (o->For(family) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--", o->name, " does not apply to --family ",
                                                     FamilyName(family), " (it is a ",
                                                     o->Families(), " option)"));
    }
  }
  std::vector<GivenValue> values;
  for (const TrainingOption& o : TrainingOptions()) {
    const auto it = given.find(o.name);
    if (it == given.end()) continue;
    const OptionField* field = o.For(family);
    absl::StatusOr<OptionValue> value = ParseOptionValue(o.type, it->second);
    if (!value.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", o.name, " ", value.status().message()));
    }
    const absl::Status s = field->rule.Check(*value);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", o.name, " ", it->second, ": ", s.message(), " for --family ", FamilyName(family)));
    }
    values.push_back({&o, field, *std::move(value)});
  }
  return values;
}

void ApplyGivenOptions(const std::vector<GivenValue>& values, TrainingConfig* config) {
  for (const GivenValue& v : values) v.field->set(config, v.value);
}

absl::Status ApplyGivenOptionsToEitherFamily(const GivenOptions& given, TrainingConfig* config) {
  for (const auto& [name, text] : given) {
    const GivenOptions one = {{name, text}};
    absl::Status first_error;
    bool taken = false;
    for (Family family : {Family::kPointCloud, Family::kGaussian}) {
      absl::StatusOr<std::vector<GivenValue>> values = ResolveGivenOptions(one, family);
      if (values.ok()) {
        ApplyGivenOptions(*values, config);
        taken = true;
      } else if (first_error.ok()) {
        first_error = values.status();
      }
    }
    if (!taken) return first_error;
  }
  return absl::OkStatus();
}

}  // namespace wfm::model
