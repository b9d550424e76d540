// The nesting guard for JSON that wfm reads from files or requests
// (checkpoint headers, data set and job records): nlohmann::json parses and
// destroys documents recursively, so a document nested thousands of levels
// deep would overflow the stack. Check the text first; every reader that
// parses untrusted JSON calls this one function.
#ifndef WFM_MODEL_IO_JSON_DEPTH_H_
#define WFM_MODEL_IO_JSON_DEPTH_H_

#include "absl/strings/string_view.h"

namespace wfm::model::io {

// The deepest nesting wfm's JSON readers accept (arrays and objects).
inline constexpr int kMaxJsonDepth = 100;

// Whether `text` nests arrays / objects deeper than `max_depth`: a linear scan
// that ignores brackets inside strings; the text need not be valid JSON.
bool JsonTooDeep(absl::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_JSON_DEPTH_H_
