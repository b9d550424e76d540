#include "server/grpc_status.h"

#include "absl/strings/str_cat.h"

namespace wfm::server {

std::string TruncateMessage(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  constexpr absl::string_view kMark = "... (truncated)";
  size_t keep = max_bytes > kMark.size() ? max_bytes - kMark.size() : 0;
  // Step back over UTF-8 continuation bytes (10xxxxxx).
  while (keep > 0 && (static_cast<unsigned char>(message[keep]) & 0xC0) == 0x80) --keep;
  return absl::StrCat(message.substr(0, keep), kMark);
}

std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateMessage(status.message(), kMaxStatusMessageBytes));
}

}  // namespace wfm::server
