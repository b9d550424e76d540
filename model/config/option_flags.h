// Command-line flags of the training options (`wfm train`, `wfm-train`): one
// `--NAME` per entry of the option table (options.h), in its help group, with
// the families it applies to, its allowed values and its default in the help.
// Values are kept as the text given; once the family is known,
// ResolveGivenOptions parses and checks them for that family.
#ifndef WFM_MODEL_CONFIG_OPTION_FLAGS_H_
#define WFM_MODEL_CONFIG_OPTION_FLAGS_H_

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config/options.h"

namespace wfm::model {

// Option name ("monge-map") -> the text given on the command line.
using GivenOptions = std::map<std::string, std::string>;

// Registers every option on `app`. A value that is not of the option's type,
// or that breaks a rule every family shares (--steps 0), is a usage error
// while parsing.
void AddTrainingOptionFlags(CLI::App* app, GivenOptions* given);

// A given option, parsed and checked for one family.
struct GivenValue {
  const TrainingOption* option = nullptr;
  const OptionField* field = nullptr;
  OptionValue value;
};

// The given options for `family`, in table order. INVALID_ARGUMENT naming the
// flag for an option of the other family ("--monge-map does not apply to
// --family gaussian (it is a pointcloud option)"), an unknown option, or a
// value the family does not take ("--noise wishart: unknown 'wishart'
// (expected one of uniform, ...)").
absl::StatusOr<std::vector<GivenValue>> ResolveGivenOptions(const GivenOptions& given,
                                                            Family family);

// Stores the values in `config` (config->family should be the family they
// were resolved for).
void ApplyGivenOptions(const std::vector<GivenValue>& values, TrainingConfig* config);

// For programs that learn the family only from the data (wfm-train without
// --family): stores each given value in every family configuration that
// takes it (both family configurations of `config` are then ready), and
// refuses a value only when no family takes it (with that family's error).
absl::Status ApplyGivenOptionsToEitherFamily(const GivenOptions& given, TrainingConfig* config);

}  // namespace wfm::model

#endif  // WFM_MODEL_CONFIG_OPTION_FLAGS_H_
