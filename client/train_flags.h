// `wfm train` flags and their translation into a StartTrainingRequest. The
// training options come from the option table (model/config/options.h,
// option_flags.h); flags that are not given stay unset in the request, so
// the server's defaults apply (DESIGN.md: the reference's values, sized so a
// small model trains in about a minute on CPU).
#ifndef WFM_CLIENT_TRAIN_FLAGS_H_
#define WFM_CLIENT_TRAIN_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "model/config/option_flags.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::client {

struct TrainFlags {
  std::string dataset;
  std::string model;
  std::string family;  // "pointcloud" | "gaussian"; "" = from the data set's kind
  bool overwrite = false;
  std::string init_from;  // "NAME" or "NAME:V": fine-tune from that model (version)
  bool watch = false;
  bool json = false;
  // Every training option given, by name ("monge-map" -> "argmax").
  model::GivenOptions options;
};

// Registers every flag of `wfm train` on `command` (types, and the ranges
// both families share, are checked while parsing: a bad value is a usage
// error).
void AddTrainFlags(CLI::App* command, TrainFlags* flags);

// The request for family `family` ("pointcloud" or "gaussian").
// InvalidArgument for a flag of the other family (e.g. --monge-map with
// gaussian) or a value that family does not take (--noise wishart for point
// clouds), naming the flag.
absl::StatusOr<v1::StartTrainingRequest> BuildTrainingRequest(const TrainFlags& flags,
                                                              const std::string& family);

// --init-from NAME[:V] into the request's init_from_model and
// init_from_version (V an integer >= 1; without it, 0: the current version).
// InvalidArgument naming the flag for an empty name or a bad version.
absl::Status SetInitFrom(const std::string& value, v1::StartTrainingRequest* request);

// "on"/"true"/"yes"/"1" -> true, "off"/"false"/"no"/"0" -> false.
absl::StatusOr<bool> ParseOnOff(const std::string& value, const std::string& flag);

}  // namespace wfm::client

#endif  // WFM_CLIENT_TRAIN_FLAGS_H_
