// Names of stored things (data sets, models): [A-Za-z0-9._-]{1,64}, and
// neither "." nor "..", so a name is always one safe path component below
// --data-dir.
#ifndef WFM_REPOSITORY_NAMES_H_
#define WFM_REPOSITORY_NAMES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

inline constexpr size_t kMaxNameLength = 64;

// OK when `name` follows the rule; otherwise INVALID_ARGUMENT naming `field`
// ("model: name 'a b' may only hold letters, digits, '.', '_' and '-'").
absl::Status ValidateName(absl::string_view field, absl::string_view name);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_NAMES_H_
