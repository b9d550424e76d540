#include "tests/testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace wfm::testing {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// The child's environment: ours without the removed and replaced names,
// then the added ones.
std::vector<std::string> ChildEnvironment(const ProcessOptions& options) {
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    bool drop = options.env.count(key) > 0;
    for (const std::string& name : options.unset_env) drop = drop || key == name;
    if (!drop) entries.push_back(entry);
  }
  for (const auto& [key, value] : options.env) entries.push_back(key + "=" + value);
  return entries;
}

// now + timeout, at most a year ahead (an infinite timeout would overflow).
std::chrono::steady_clock::time_point Deadline(absl::Duration timeout) {
  return std::chrono::steady_clock::now() +
         absl::ToChronoNanoseconds(std::min(timeout, absl::Hours(24 * 365)));
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildProcess::ChildProcess(ProcessOptions options) {
  if (options.args.empty()) {
    error_ = "no program given";
    return;
  }
  // Everything the child needs is made before fork: between fork and exec
  // only async-signal-safe calls.
  std::vector<std::string> args = options.args;
  std::vector<std::string> env = ChildEnvironment(options);
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp = Pointers(env);
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    error_ = absl::StrCat("pipe: ", std::strerror(errno));
    for (int fd : {null_fd, out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0],
                   exec_pipe[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return;
  }
  const rlim_t limit = static_cast<rlim_t>(options.file_size_limit);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(null_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (limit > 0) {
      ::signal(SIGXFSZ, SIG_IGN);  // stays ignored across exec
      const rlimit r{limit, limit};
      ::setrlimit(RLIMIT_FSIZE, &r);
    }
    ::execve(argv[0], argv.data(), envp.data());
    const int error = errno;
    (void)!::write(exec_pipe[1], &error, sizeof(error));
    ::_exit(127);
  }
  ::close(null_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  if (pid < 0) {
    error_ = absl::StrCat("fork: ", std::strerror(errno));
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::close(exec_pipe[0]);
    return;
  }
  // The exec pipe closes on a successful exec; a failed one sends errno.
  int exec_error = 0;
  ssize_t n;
  while ((n = ::read(exec_pipe[0], &exec_error, sizeof(exec_error))) < 0 && errno == EINTR) {
  }
  ::close(exec_pipe[0]);
  if (n > 0) {
    error_ = absl::StrCat("cannot run ", options.args[0], ": ", std::strerror(exec_error));
    ::waitpid(pid, nullptr, 0);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return;
  }
  pid_ = pid;
  if (!options.log.empty()) {
    log_fd_ = ::open(options.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  reader_ = std::thread([this, o = out_pipe[0], e = err_pipe[0]] { ReadOutput(o, e); });
  waiter_ = std::thread([this] { AwaitExit(); });
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  bool exited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    exited = exited_;
  }
  if (!exited) Signal(SIGKILL);
  waiter_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  // The output may stay open in processes the child started: stop reading.
  const uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  reader_.join();
  CloseFd(stop_fd_);
  CloseFd(log_fd_);
}

void ChildProcess::ReadOutput(int out_fd, int err_fd) {
  pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  std::string* sinks[2] = {&out_, &err_};
  int open_fds = 2;
  bool stopping = false;
  char buffer[8192];
  while (open_fds > 0) {
    // Once stopping, only what is already there is read.
    const int ready = ::poll(fds, 3, stopping ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ready == 0) break;  // stopping and drained
    if (fds[2].revents != 0) {
      stopping = true;
      fds[2].fd = -1;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      if (log_fd_ >= 0) (void)!::write(log_fd_, buffer, static_cast<size_t>(n));
      std::lock_guard<std::mutex> lock(mu_);
      sinks[i]->append(buffer, static_cast<size_t>(n));
      all_.append(buffer, static_cast<size_t>(n));
      changed_.notify_all();
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd >= 0) ::close(fds[i].fd);
  }
  std::lock_guard<std::mutex> lock(mu_);
  output_ended_ = true;
  changed_.notify_all();
}

void ChildProcess::AwaitExit() {
  // WNOWAIT leaves the child a zombie, so its pid is not reused before the
  // destructor reaps it and Signal() can never hit another process.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) != 0 &&
         errno == EINTR) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  exited_ = true;
  if (info.si_code == CLD_EXITED) {
    status_ = info.si_status;
  } else {
    signal_ = info.si_status;
    status_ = 128 + info.si_status;
  }
  changed_.notify_all();
}

std::string ChildProcess::Stdout() const {
  std::lock_guard<std::mutex> lock(mu_);
  return out_;
}

std::string ChildProcess::Stderr() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

std::string ChildProcess::Output() const {
  std::lock_guard<std::mutex> lock(mu_);
  return all_;
}

std::optional<std::string> ChildProcess::WaitForOutput(const std::string& text,
                                                       absl::Duration timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Deadline(timeout);
  std::unique_lock<std::mutex> lock(mu_);
  std::optional<std::string> line;
  changed_.wait_until(lock, deadline, [&] {
    const size_t at = all_.find(text);
    if (at != std::string::npos) {
      const size_t end = all_.find('\n', at);
      if (end != std::string::npos) {
        line = all_.substr(at, end - at);
        return true;
      }
    }
    return output_ended_;
  });
  return line;
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Deadline(timeout);
  std::unique_lock<std::mutex> lock(mu_);
  if (!changed_.wait_until(lock, deadline, [&] { return exited_; })) return std::nullopt;
  // What it printed last is read before the exit is reported (unless a
  // process it started keeps the output open past the deadline).
  changed_.wait_until(lock, deadline, [&] { return output_ended_; });
  return status_;
}

int ChildProcess::TermSignal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return signal_;
}

void ChildProcess::Signal(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

bool ChildProcess::Kill() {
  Signal(SIGKILL);
  const std::optional<int> status = Wait(absl::Seconds(30));
  return status.has_value() && TermSignal() == SIGKILL;
}

std::optional<int64_t> ChildProcess::ProcStatusKiB(const std::string& field) const {
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

std::vector<std::string> ProcessResult::ErrLines() const {
  return absl::StrSplit(err, '\n', absl::SkipEmpty());
}

ProcessResult RunProcess(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env,
                         const std::vector<std::string>& unset_env) {
  ProcessOptions options;
  options.args = args;
  options.env = env;
  options.unset_env = unset_env;
  ChildProcess child(std::move(options));
  ProcessResult result;
  if (!child.started()) {
    result.err = child.error();
    return result;
  }
  const std::optional<int> status = child.Wait(absl::InfiniteDuration());
  result.exit_code = status.has_value() && child.TermSignal() == 0 ? *status : -1;
  result.out = child.Stdout();
  result.err = child.Stderr();
  return result;
}

ForkedHolder::~ForkedHolder() { (void)Kill(); }

bool ForkedHolder::Start(const std::function<bool()>& setup) {
  int ready[2];
  if (::pipe(ready) != 0) return false;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(ready[0]);
    const char answer = setup() ? 'y' : 'n';
    (void)!::write(ready[1], &answer, 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char answer = 0;
  const bool read = pid_ > 0 && ::read(ready[0], &answer, 1) == 1;
  ::close(ready[0]);
  if (read && answer == 'y') return true;
  (void)Kill();
  return false;
}

bool ForkedHolder::Kill() {
  if (pid_ <= 0) return false;
  const pid_t pid = std::exchange(pid_, -1);
  ::kill(pid, SIGKILL);
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

}  // namespace wfm::testing
