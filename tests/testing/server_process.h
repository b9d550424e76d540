// The wfm-server binary as a child process, for the suites that kill it
// (crash consistency, shutdown), restart it or measure it (load): listening
// on 127.0.0.1:0 (free ports, read back from the ready line), its output
// captured (and in a log file when asked), an optional file size limit, and
// channels and stubs to it.
#ifndef WFM_TESTS_TESTING_SERVER_PROCESS_H_
#define WFM_TESTS_TESTING_SERVER_PROCESS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/time/time.h"
#include "tests/testing/process.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::testing {

struct ServerProcessOptions {
  std::string data_dir;
  std::string log;                       // when set, the server's output also goes here
  std::vector<std::string> extra_flags;  // after the defaults below (later flags win)
  int64_t file_size_limit = 0;           // RLIMIT_FSIZE in bytes; 0 = none
  std::string listen = "127.0.0.1:0";    // --listen (a loopback address and port 0: a free one)
  std::map<std::string, std::string> env;  // set in the server's environment
};

class ChildServer {
 public:
  // Starts wfm-server --listen L (127.0.0.1:0 unless options.listen says
  // otherwise) --metrics-listen 127.0.0.1:0 --data-dir D --threads 1 plus
  // the extra flags.
  explicit ChildServer(ServerProcessOptions options);

  // Waits for the ready line ("wfm-server ready: grpc H:P, metrics H:P, ...")
  // and reads the addresses from it; empty when the server ended or the
  // timeout passed first.
  std::string WaitReady(absl::Duration timeout = absl::Seconds(60));

  // What the server printed so far.
  std::string Log() const { return process_.Output(); }
  // "127.0.0.1:port" of gRPC and of /metrics (after WaitReady).
  const std::string& address() const { return address_; }
  const std::string& metrics_address() const { return metrics_address_; }

  // A channel of its own (a separate connection per `id`), not connected yet.
  std::shared_ptr<grpc::Channel> Channel(int id = 0) const;
  // A stub over a connected channel (tests/testing/connected.h).
  std::unique_ptr<::wfm::v1::WfmService::Stub> Stub(int id = 0) const;

  pid_t pid() const { return process_.pid(); }
  void Signal(int sig) { process_.Signal(sig); }
  // SIGKILL and reap; true when it died of that signal.
  bool Kill() { return process_.Kill(); }
  // The exit status (128 + signal when killed); -1: still running after
  // `seconds`.
  int Wait(int seconds);
  std::optional<int64_t> ProcStatusKiB(const std::string& field) const {
    return process_.ProcStatusKiB(field);
  }

 private:
  ChildProcess process_;
  std::string address_;
  std::string metrics_address_;
};

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_SERVER_PROCESS_H_
