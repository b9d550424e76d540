// The log of wfm's programs (wfm-server, wfm-train): one line per event on
// stderr,
//   "2024-05-01T12:00:00.123Z INFO  message"
// filtered by a process-wide level (--log-level). Thread-safe; lines never
// interleave. Secrets (tokens, keys) are never passed here.
#ifndef WFM_REPOSITORY_LOGGING_H_
#define WFM_REPOSITORY_LOGGING_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug" | "info" | "warning" | "error" (case-insensitive).
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// Writes `message` when `level` is at or above the current level.
void Log(LogLevel level, absl::string_view message);

inline void LogDebug(absl::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

}  // namespace wfm

#endif  // WFM_REPOSITORY_LOGGING_H_
