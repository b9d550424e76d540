#include "repository/names.h"

#include "absl/strings/str_cat.h"

namespace wfm::repository {

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a name is required"));
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": name is ", name.size(),
                                                   " characters long, the limit is ",
                                                   kMaxNameLength));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(field, ": name '", name, "' is reserved"));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      // Never echo control bytes or invalid UTF-8 back: print the byte.
      const bool printable = c >= 0x20 && c < 0x7f;
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": name may only hold letters, digits, '.', '_' and '-' (found ",
          printable ? absl::StrCat("'", std::string(1, c), "'")
                    : absl::StrCat("byte 0x", absl::Hex(static_cast<unsigned char>(c))),
          ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace wfm::repository
