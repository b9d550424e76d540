#include "server/auth.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace wfm::server {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walk the longer length and fold every difference (and the length
  // difference) into one accumulator: no early exit.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

absl::StatusOr<TokenAuth> TokenAuth::FromToken(absl::string_view token) {
  token = absl::StripAsciiWhitespace(token);
  if (token.empty()) return absl::InvalidArgumentError("auth token: the token is empty");
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(
          "auth token: the token may only hold printable ASCII characters without spaces");
    }
  }
  TokenAuth auth;
  auth.token_ = std::string(token);
  return auth;
}

absl::StatusOr<TokenAuth> TokenAuth::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string what = absl::StrCat("auth-token-file ", path, ": ", std::strerror(error));
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(what);
    return absl::NotFoundError(what);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<TokenAuth> auth = FromToken(buffer.str());
  if (!auth.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("auth-token-file ", path, ": ",
                                                   auth.status().message()));
  }
  return auth;
}

bool TokenAuth::RequiresToken(absl::string_view path) {
  return !absl::StartsWith(path, "/grpc.health.v1.Health/");
}

absl::Status TokenAuth::Check(std::optional<absl::string_view> authorization) const {
  if (!token_.has_value()) return absl::OkStatus();
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata (this server requires a token)");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("authorization metadata must read 'Bearer <token>'");
  }
  value = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  if (!ConstantTimeEquals(value, *token_)) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

}  // namespace wfm::server
