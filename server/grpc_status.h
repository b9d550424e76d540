// The one place absl::Status becomes grpc::Status (TensorFlow Serving's
// grpc_status_util): the same canonical code, the message cut to
// kMaxStatusMessageBytes so a huge message never becomes a huge trailer.
#ifndef WFM_SERVER_GRPC_STATUS_H_
#define WFM_SERVER_GRPC_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace wfm::server {

inline constexpr size_t kMaxStatusMessageBytes = 2048;

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", ... (the metric label).
std::string CodeName(absl::StatusCode code);

// `message` cut to at most `max_bytes` bytes on a UTF-8 character boundary,
// with "... (truncated)" appended when cut.
std::string TruncateMessage(absl::string_view message, size_t max_bytes);

}  // namespace wfm::server

#endif  // WFM_SERVER_GRPC_STATUS_H_
