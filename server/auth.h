// Bearer-token authentication (--auth-token-file): every RPC except gRPC
// health checking must carry the metadata "authorization: Bearer <token>".
// The token is compared in constant time and never logged. No gRPC here:
// the server's credentials (auth_credentials.h) call Check() with the
// metadata of each call before any request message is read, and the
// service calls it again with what it received.
#ifndef WFM_SERVER_AUTH_H_
#define WFM_SERVER_AUTH_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::server {

// true when a and b are equal; the time taken depends only on the lengths,
// never on where the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

class TokenAuth {
 public:
  // No authentication: Check() always succeeds.
  TokenAuth() = default;

  // The token is the file's content with surrounding whitespace removed; it
  // must be non-empty, printable ASCII without spaces (INVALID_ARGUMENT),
  // NOT_FOUND / PERMISSION_DENIED when the file cannot be read.
  static absl::StatusOr<TokenAuth> FromFile(const std::string& path);
  // Same rules for a token given directly.
  static absl::StatusOr<TokenAuth> FromToken(absl::string_view token);

  bool enabled() const { return token_.has_value(); }

  // Whether a call of the gRPC method `path` ("/package.Service/Method")
  // needs a token: all but gRPC health checking (grpc.health.v1.Health).
  static bool RequiresToken(absl::string_view path);

  // `authorization`: the metadata value, or nullopt when the call carried
  // none. UNAUTHENTICATED (without echoing what was sent) unless it is
  // "Bearer <token>" (the scheme is case-insensitive).
  absl::Status Check(std::optional<absl::string_view> authorization) const;

 private:
  std::optional<std::string> token_;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_AUTH_H_
