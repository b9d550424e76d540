// Runs a piece of work in a forked child process, so that a crash or a hang
// inside a third-party library (libhdf5 on a corrupt .h5ad file) becomes an
// error instead of taking the calling process down.
#ifndef WFM_CLIENT_ISOLATED_H_
#define WFM_CLIENT_ISOLATED_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace wfm::client {

// Forks; the child runs `work` and sends back its status or its bytes, then
// leaves with _exit (no destructors, no atexit handlers). Returns what `work`
// returned. When the child dies before finishing (a signal, or an abnormal
// exit such as a sanitizer's report), returns DataLoss naming `what` and the
// signal or exit status; when it runs past `timeout`, it is killed and the
// result is DeadlineExceeded. Internal if the process cannot fork.
//
// The child may only use what is safe after fork() in a process that may have
// other threads: memory allocation and the library being isolated, not gRPC.
absl::StatusOr<std::string> RunIsolated(const std::function<absl::StatusOr<std::string>()>& work,
                                        absl::Duration timeout, absl::string_view what);

}  // namespace wfm::client

#endif  // WFM_CLIENT_ISOLATED_H_
