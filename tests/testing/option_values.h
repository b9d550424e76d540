// Test helpers over the training-option table (model/config/options.h).
#ifndef WFM_TESTS_TESTING_OPTION_VALUES_H_
#define WFM_TESTS_TESTING_OPTION_VALUES_H_

#include <cmath>
#include <string>
#include <variant>

#include "model/config/options.h"

namespace wfm::testing {

// A value of `field` that passes its own rule and differs from its default
// (integers are doubled where they can be, so widths stay even).
inline model::OptionValue NonDefaultValue(const model::OptionField& field) {
  const model::OptionValue def = field.get(model::TrainingConfig{});
  const model::OptionRule& rule = field.rule;
  if (const auto* b = std::get_if<bool>(&def)) return !*b;
  if (const auto* s = std::get_if<std::string>(&def)) {
    for (const std::string& c : rule.choices) {
      if (c != *s) return c;
    }
    return *s + "-other";
  }
  if (const auto* i = std::get_if<int64_t>(&def)) {
    for (int64_t candidate : {*i * 2, *i + 3, *i + 1, *i - 1}) {
      if (candidate != *i && rule.Check(candidate).ok()) return candidate;
    }
    return *i;
  }
  if (const auto* u = std::get_if<uint64_t>(&def)) return *u + 12345;
  const double d = std::get<double>(def);
  for (double candidate : {d * 0.37 + 0.01, d * 1.7, d + 0.123, d * 0.5}) {
    if (candidate != d && rule.Check(candidate).ok()) return candidate;
  }
  return d;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_OPTION_VALUES_H_
