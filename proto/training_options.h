// The API side of the training-option table (model/config/options.h):
// wfm.v1.TrainingConfig fields read and written by the table's paths, whole
// configurations converted both ways, and the DescribeTrainingOptions reply.
// Shared by the server (requests, replies) and the client (flags into
// requests), so neither maps an option by hand.
#ifndef WFM_PROTO_TRAINING_OPTIONS_H_
#define WFM_PROTO_TRAINING_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config/options.h"
#include "wfm/v1/types.pb.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::api {

model::Family FamilyFromProto(v1::Family family);  // FAMILY_GAUSSIAN -> kGaussian, else kPointCloud
v1::Family FamilyToProto(model::Family family);

// The value of the field at `path` (e.g. "network.width") when it is set: an
// optional field that is present, or a plain string (source_dataset) that is
// not empty. INTERNAL when the path or its type does not match the proto (a
// table error the tests rule out).
absl::StatusOr<std::optional<model::OptionValue>> GetConfigField(const v1::TrainingConfig& config,
                                                                 const std::string& path,
                                                                 model::OptionType type);
// Sets the field at `path` to `value` (of the field's type), creating the
// messages along the path.
absl::Status SetConfigField(const std::string& path, const model::OptionValue& value,
                            v1::TrainingConfig* config);

// A request's configuration with the model layer's defaults for every unset
// field (checkpoint_every: `default_checkpoint_every`), validated.
// INVALID_ARGUMENT naming the field: "config.family: required ...",
// "config.gaussian: options of the gaussian family given for a pointcloud
// model", "config.pointcloud.noise: unknown 'pink' ...",
// "config.network.width: must be in [2, 4096], got 1".
absl::StatusOr<model::TrainingConfig> TrainingConfigFromProto(const v1::TrainingConfig& config,
                                                              int64_t default_checkpoint_every);
// Every field of `config.family` (the effective configuration).
void TrainingConfigToProto(const model::TrainingConfig& config, v1::TrainingConfig* out);

// The whole table.
void DescribeTrainingOptions(v1::DescribeTrainingOptionsResponse* out);

}  // namespace wfm::api

#endif  // WFM_PROTO_TRAINING_OPTIONS_H_
