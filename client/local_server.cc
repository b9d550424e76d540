#include "client/local_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace wfm::client {
namespace {

constexpr size_t kKeptLines = 200;

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// "0.0.0.0:123" / "[::]:123" -> "127.0.0.1:123".
std::string Connectable(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return std::string(address);
  const absl::string_view host = address.substr(0, colon);
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) {
    return absl::StrCat("127.0.0.1", address.substr(colon));
  }
  return std::string(address);
}

// The address after `key ` in a ready line, up to a comma or space.
std::string AddressAfter(absl::string_view line, absl::string_view key) {
  const std::string needle = absl::StrCat(key, " ");
  size_t at = line.find(needle);
  while (at != absl::string_view::npos && at > 0 && line[at - 1] != ' ' && line[at - 1] != ':' &&
         line[at - 1] != ',') {
    at = line.find(needle, at + 1);
  }
  if (at == absl::string_view::npos) return "";
  absl::string_view rest = line.substr(at + needle.size());
  const size_t end = rest.find_first_of(", \t");
  return std::string(rest.substr(0, end));
}

}  // namespace

absl::StatusOr<ReadyLine> ParseReadyLine(absl::string_view line) {
  if (!absl::StrContains(line, "ready")) {
    return absl::InvalidArgumentError(absl::StrCat("not a ready line: ", line));
  }
  ReadyLine ready;
  const std::string grpc = AddressAfter(line, "grpc");
  if (grpc.empty() || grpc.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("ready line without a grpc address: ", line));
  }
  ready.grpc = Connectable(grpc);
  const std::string metrics = AddressAfter(line, "metrics");
  if (!metrics.empty()) ready.metrics = Connectable(metrics);
  return ready;
}

absl::StatusOr<std::string> FindServerBinary(absl::string_view explicit_path) {
  if (!explicit_path.empty()) {
    const std::string path(explicit_path);
    if (!IsExecutableFile(path)) {
      return absl::NotFoundError(absl::StrCat("server binary ", path, ": not an executable file"));
    }
    return path;
  }
  std::vector<std::string> tried;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& candidate :
         {absl::StrCat(dir, "/wfm-server"), absl::StrCat(dir, "/../server/wfm-server")}) {
      if (IsExecutableFile(candidate)) return candidate;
      tried.push_back(candidate);
    }
  }
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      const std::string candidate = absl::StrCat(dir, "/wfm-server");
      if (IsExecutableFile(candidate)) return candidate;
    }
  }
  tried.push_back("wfm-server on PATH");
  return absl::NotFoundError(absl::StrCat("cannot find wfm-server (tried ",
                                          absl::StrJoin(tried, ", "),
                                          "); build it or pass --server-bin"));
}

absl::StatusOr<std::unique_ptr<LocalServer>> LocalServer::Start(const LocalServerOptions& options) {
  if (!IsExecutableFile(options.binary)) {
    return absl::NotFoundError(
        absl::StrCat("server binary ", options.binary, ": not an executable file"));
  }
  std::vector<std::string> args = {options.binary, "--listen", options.listen, "--metrics-listen",
                                   options.metrics_listen};
  if (!options.data_dir.empty()) {
    args.push_back("--data-dir");
    args.push_back(options.data_dir);
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    if (null_fd >= 0) close(null_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execv(argv[0], argv.data());
    const char message[] = "wfm-server: exec failed\n";
    (void)!write(2, message, sizeof(message) - 1);
    _exit(127);
  }
  close(fds[1]);
  if (null_fd >= 0) close(null_fd);

  std::unique_ptr<LocalServer> server(new LocalServer());
  server->pid_ = pid;
  server->echo_ = options.echo_output;
  const int read_fd = fds[0];
  server->reader_ = std::thread([s = server.get(), read_fd] { s->ReadOutput(read_fd); });

  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(
                            static_cast<int64_t>(options.ready_timeout_seconds * 1000));
  std::string ready_line;
  bool eof = false;
  {
    LocalServer& s = *server;
    MutexLock lock(&s.mu_);
    while (s.ready_line_.empty() && !s.eof_) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      s.cv_.WaitWithTimeout(&s.mu_, absl::FromChrono(deadline - now));
    }
    ready_line = s.ready_line_;
    eof = s.eof_;
  }
  if (ready_line.empty()) {
    absl::Status stopped = server->Stop(5);
    std::vector<std::string> lines = absl::StrSplit(server->RecentOutput(), '\n', absl::SkipEmpty());
    if (lines.size() > 8) lines.erase(lines.begin(), lines.end() - 8);
    const std::string output = absl::StrJoin(lines, " | ");
    const std::string why =
        eof ? absl::StrCat("exited before it was ready (",
                           stopped.ok() ? "status 0" : std::string(stopped.message()), ")")
            : absl::StrCat("printed no ready line within ", options.ready_timeout_seconds, " s");
    return absl::UnavailableError(
        absl::StrCat("wfm-server ", why,
                     output.empty() ? "" : absl::StrCat("; its last output: ", output)));
  }
  absl::StatusOr<ReadyLine> ready = ParseReadyLine(ready_line);
  if (!ready.ok()) {
    server->Stop(5).IgnoreError();
    return ready.status();
  }
  server->ready_ = *std::move(ready);
  return server;
}

void LocalServer::ReadOutput(int fd) {
  std::string pending;
  char buffer[4096];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, n);
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (echo_) std::fprintf(stderr, "[wfm-server] %s\n", line.c_str());
      MutexLock lock(&mu_);
      if (ready_line_.empty() && absl::StrContains(line, "ready") &&
          ParseReadyLine(line).ok()) {
        ready_line_ = line;
        cv_.SignalAll();
      }
      lines_.push_back(std::move(line));
      if (lines_.size() > kKeptLines) lines_.pop_front();
    }
  }
  close(fd);
  MutexLock lock(&mu_);
  if (!pending.empty()) lines_.push_back(std::move(pending));
  eof_ = true;
  cv_.SignalAll();
}

absl::Status LocalServer::ExitStatus(int wait_status) const {
  if (WIFEXITED(wait_status)) {
    if (WEXITSTATUS(wait_status) == 0) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("wfm-server exited with status ", WEXITSTATUS(wait_status)));
  }
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return absl::InternalError(absl::StrCat("wfm-server was killed by signal ", sig, " (",
                                            strsignal(sig), ")"));
  }
  return absl::InternalError("wfm-server ended in an unknown way");
}

bool LocalServer::Running() {
  if (exited_) return false;
  int wait_status = 0;
  const pid_t r = waitpid(pid_, &wait_status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    stop_status_ = ExitStatus(wait_status);
    return false;
  }
  return r == 0;
}

absl::Status LocalServer::Stop(double grace_seconds) {
  if (pid_ > 0 && Running()) {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
    while (Running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited_) {
      kill(pid_, SIGKILL);
      int wait_status = 0;
      while (waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
      }
      exited_ = true;
      stop_status_ = absl::DeadlineExceededError(absl::StrCat(
          "wfm-server did not stop within ", grace_seconds, " s of SIGTERM; killed"));
    }
  }
  if (reader_.joinable()) reader_.join();
  return stop_status_;
}

LocalServer::~LocalServer() { Stop().IgnoreError(); }

std::string LocalServer::RecentOutput() const {
  MutexLock lock(&mu_);
  return absl::StrJoin(lines_, "\n");
}

}  // namespace wfm::client
