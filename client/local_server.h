// A wfm-server child process on this machine, for `wfm demo` and the
// end-to-end tests: started with free ports (127.0.0.1:0) and a data folder,
// considered up once it prints its ready line
//
//   wfm-server ready: grpc 127.0.0.1:43121, metrics 127.0.0.1:40111, ...
//
// (on stdout or stderr; both are read through one pipe), and stopped with
// SIGTERM (SIGKILL after a grace period). The child also gets SIGTERM when
// the thread that started it exits (PR_SET_PDEATHSIG), so call Start from a
// thread that outlives the server, such as the main thread.
#ifndef WFM_CLIENT_LOCAL_SERVER_H_
#define WFM_CLIENT_LOCAL_SERVER_H_

#include <sys/types.h>

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/common/mutex.h"

namespace wfm::client {

struct LocalServerOptions {
  std::string binary;                        // path of wfm-server
  std::string data_dir;                      // --data-dir (created by the server)
  std::string listen = "127.0.0.1:0";        // --listen
  std::string metrics_listen = "127.0.0.1:0";  // --metrics-listen
  std::vector<std::string> extra_args;       // appended to the command line
  double ready_timeout_seconds = 120;
  bool echo_output = false;  // copy the server's output lines to stderr
};

// The addresses in a ready line ("grpc HOST:PORT, metrics HOST:PORT"), with a
// wildcard host (0.0.0.0, [::]) replaced by 127.0.0.1. InvalidArgument when
// `line` is not a ready line.
struct ReadyLine {
  std::string grpc;
  std::string metrics;  // empty when the line has none
};
absl::StatusOr<ReadyLine> ParseReadyLine(absl::string_view line);

// The wfm-server to start: `explicit_path` when given (it must be an
// executable file), otherwise the first executable of: next to this program
// (<dir of /proc/self/exe>/wfm-server), the build tree's
// <dir>/../server/wfm-server, and wfm-server on PATH. NotFound lists the
// places tried.
absl::StatusOr<std::string> FindServerBinary(absl::string_view explicit_path);

class LocalServer {
 public:
  static absl::StatusOr<std::unique_ptr<LocalServer>> Start(const LocalServerOptions& options);
  ~LocalServer();  // Stop() when still running

  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  const std::string& grpc_address() const { return ready_.grpc; }
  const std::string& metrics_address() const { return ready_.metrics; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then waits up to `grace_seconds` (SIGKILL after that). OK when
  // the server exited with status 0; Internal naming the exit status or
  // signal otherwise. Idempotent: later calls return the first result.
  absl::Status Stop(double grace_seconds = 30);
  // Whether the process is still running (reaps it when it has exited).
  bool Running();
  // The last lines the server printed (at most 200), newline-separated.
  std::string RecentOutput() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  LocalServer() = default;
  void ReadOutput(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ExitStatus(int wait_status) const;

  pid_t pid_ = -1;
  bool exited_ = false;
  absl::Status stop_status_;
  ReadyLine ready_;
  bool echo_ = false;
  std::thread reader_;
  mutable Mutex mu_;
  CondVar cv_;  // a ready line or the end of the output
  std::deque<std::string> lines_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  std::string ready_line_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wfm::client

#endif  // WFM_CLIENT_LOCAL_SERVER_H_
