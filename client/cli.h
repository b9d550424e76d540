// The `wfm` command-line tool (DESIGN.md, "Command-line tool").
//
//   wfm [--server host:port] [--token T | --token-file F] [--tls-ca FILE] COMMAND ...
//
// Exit status: 0 success; 1 a local failure (bad file, cannot write); 2 bad
// usage (unknown flag, missing argument); 3 the training job ended FAILED or
// CANCELLED (train --watch, watch); 4 the server is not SERVING (health);
// 10 + the gRPC status code for an error the server returned (13
// INVALID_ARGUMENT, 15 NOT_FOUND, 16 ALREADY_EXISTS, 18 RESOURCE_EXHAUSTED,
// 19 FAILED_PRECONDITION, 24 UNAVAILABLE, 26 UNAUTHENTICATED, ...). Every
// failure prints exactly one line on stderr: "wfm: error: <message>".
#ifndef WFM_CLIENT_CLI_H_
#define WFM_CLIENT_CLI_H_

#include "absl/status/status.h"

namespace wfm::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitJobFailed = 3;
inline constexpr int kExitNotServing = 4;
inline constexpr int kExitRpcBase = 10;

// The exit status for a command's result (see above).
int ExitCodeFor(const absl::Status& status);
// `status` tagged to exit with `code` (ExitCodeFor returns it).
absl::Status WithExitCode(absl::Status status, int code);
// The one-line error message for `status` (newlines folded, the server's
// errors marked with their code, hints for unreachable servers and missing
// tokens), without the "wfm: error: " prefix.
std::string ErrorLine(const absl::Status& status, const std::string& server);

// Runs the tool; returns the exit status.
int RunCli(int argc, char** argv);

}  // namespace wfm::client

#endif  // WFM_CLIENT_CLI_H_
