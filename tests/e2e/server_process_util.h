// The wfm-server binary as a child process for the end-to-end suites that
// kill it (crash consistency) or measure it (load): flags, an optional file
// size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that write() fails with
// EFBIG instead of killing the process), its stderr in a file, the ready
// line, signals, and its memory high-water mark from /proc.
#ifndef WFM_TESTS_E2E_SERVER_PROCESS_UTIL_H_
#define WFM_TESTS_E2E_SERVER_PROCESS_UTIL_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tests/testing/connected.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::testing {

struct ServerProcessOptions {
  std::string data_dir;
  std::string log;                       // the server's stderr goes here
  std::vector<std::string> extra_flags;  // appended to the defaults below
  int64_t file_size_limit = 0;           // RLIMIT_FSIZE in bytes; 0 = unlimited
};

class ChildServer {
 public:
  // Starts build/server/wfm-server --listen 127.0.0.1:0 --metrics-listen
  // 127.0.0.1:0 --data-dir D --threads 1 plus the extra flags.
  explicit ChildServer(ServerProcessOptions options) : options_(std::move(options)) {
    const std::string binary = std::string(WFM_BINARY_DIR) + "/server/wfm-server";
    std::vector<std::string> args = {binary,           "--listen",   "127.0.0.1:0",
                                     "--metrics-listen", "127.0.0.1:0", "--data-dir",
                                     options_.data_dir, "--threads",  "1"};
    args.insert(args.end(), options_.extra_flags.begin(), options_.extra_flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd =
        ::open(options_.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const rlim_t limit = static_cast<rlim_t>(options_.file_size_limit);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      if (log_fd >= 0) ::dup2(log_fd, 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (limit > 0) {
        ::signal(SIGXFSZ, SIG_IGN);  // stays ignored across exec
        const rlimit r{limit, limit};
        ::setrlimit(RLIMIT_FSIZE, &r);
      }
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    if (log_fd >= 0) ::close(log_fd);
  }
  ~ChildServer() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  pid_t pid() const { return pid_; }

  // Waits for the ready line (at most 60 s); empty when it never came.
  std::string WaitReady() {
    for (int i = 0; i < 600; ++i) {
      const std::string log = Log();
      const size_t at = log.find("wfm-server ready: ");
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        const std::string ready = log.substr(at, log.find('\n', at) - at);
        std::smatch m;
        if (std::regex_search(ready, m, std::regex("grpc ([0-9.]+:[0-9]+)"))) address_ = m[1];
        return ready;
      }
      if (Exited()) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "";
  }

  std::string Log() const {
    std::ifstream in(options_.log);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  const std::string& address() const { return address_; }

  // A channel of its own (a separate connection per `id`).
  std::shared_ptr<grpc::Channel> Channel(int id = 0) const {
    grpc::ChannelArguments args;
    args.SetInt("wfm.test.connection", id);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<::wfm::v1::WfmService::Stub> Stub(int id = 0) const {
    return ::wfm::v1::WfmService::NewStub(::wfm::testing::Connected(Channel(id)));
  }

  void Signal(int sig) { ::kill(pid_, sig); }
  // SIGKILL and reap; true when it died of that signal.
  bool Kill() {
    Signal(SIGKILL);
    return Wait(30) == 128 + SIGKILL;
  }
  // The exit status (128 + signal when killed); -1: still running after
  // `seconds`.
  int Wait(int seconds) {
    for (int i = 0; i < seconds * 100; ++i) {
      if (Exited()) return status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  // A "Vm..." field of /proc/<pid>/status in KiB (VmHWM: peak resident set).
  std::optional<int64_t> ProcStatusKiB(const std::string& field) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(field + ":", 0) == 0) {
        std::istringstream value(line.substr(field.size() + 1));
        int64_t kib = 0;
        if (value >> kib) return kib;
      }
    }
    return std::nullopt;
  }

 private:
  bool Exited() {
    if (exited_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exited_;
  }

  const ServerProcessOptions options_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string address_;
};

}  // namespace wfm::testing

#endif  // WFM_TESTS_E2E_SERVER_PROCESS_UTIL_H_
