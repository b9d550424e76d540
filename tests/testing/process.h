// Child processes for tests: a program started with arguments (no shell),
// an environment of this process's with additions and removals, stdin from
// /dev/null, stdout and stderr captured (and copied to a log file when asked)
// by a reader thread, and its end observed by a waiter thread, so that tests
// wait on events (a line of output, the exit) with a deadline instead of
// sleeping. RunProcess runs one to its end.
#ifndef WFM_TESTS_TESTING_PROCESS_H_
#define WFM_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace wfm::testing {

struct ProcessOptions {
  std::vector<std::string> args;            // args[0]: the program's path (PATH is not searched)
  std::map<std::string, std::string> env;   // set in the child's environment
  std::vector<std::string> unset_env;       // removed from it
  std::string log;                          // when set, stdout and stderr also go to this file
  // RLIMIT_FSIZE in bytes (0: none), with SIGXFSZ ignored so that a write
  // past it fails with EFBIG instead of killing the process.
  int64_t file_size_limit = 0;
};

class ChildProcess {
 public:
  explicit ChildProcess(ProcessOptions options);
  // SIGKILL unless it has exited; reaps it.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // false when it could not be started; error() says why.
  bool started() const { return pid_ > 0; }
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }

  // What it printed so far: stdout, stderr, and both in the order read.
  std::string Stdout() const;
  std::string Stderr() const;
  std::string Output() const;

  // Waits until the output holds `text` followed by the end of its line;
  // returns that part of the line (from `text` on, without the newline).
  // nullopt when the output ended (the process exited) or `timeout` passed
  // first.
  std::optional<std::string> WaitForOutput(const std::string& text, absl::Duration timeout);

  // The exit code (128 + the signal when a signal ended it) once it has
  // exited and its output is read; nullopt while it runs after `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  // The signal that ended it (0: it exited, or it runs).
  int TermSignal() const;

  // Sends `sig` while it has not been reaped (never to a recycled pid).
  void Signal(int sig);
  // SIGKILL and wait (30 s at most); true when SIGKILL ended it.
  bool Kill();

  // A field of /proc/<pid>/status in KiB ("VmHWM": peak resident set);
  // nullopt when it cannot be read.
  std::optional<int64_t> ProcStatusKiB(const std::string& field) const;

 private:
  void ReadOutput(int out_fd, int err_fd);
  void AwaitExit();

  pid_t pid_ = -1;
  std::string error_;
  int log_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: ends the reader thread

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::string out_, err_, all_;  // guarded by mu_
  bool output_ended_ = false;    // guarded by mu_
  bool exited_ = false;          // guarded by mu_
  int status_ = -1;              // guarded by mu_: exit code or 128 + signal
  int signal_ = 0;               // guarded by mu_
  bool reaped_ = false;          // guarded by mu_

  std::thread reader_;
  std::thread waiter_;
};

struct ProcessResult {
  int exit_code = -1;  // -1: it could not start or a signal ended it
  std::string out;
  std::string err;

  // Non-empty lines of stderr.
  std::vector<std::string> ErrLines() const;
};

// Runs the program to its end and collects what it printed.
ProcessResult RunProcess(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env = {},
                         const std::vector<std::string>& unset_env = {});

// A forked copy of this process that runs `setup` (taking locks, say) and
// then waits to be killed: what a live other process holds, and what it
// leaves when SIGKILL ends it.
class ForkedHolder {
 public:
  ForkedHolder() = default;
  // SIGKILL unless it was killed; reaps it.
  ~ForkedHolder();
  ForkedHolder(const ForkedHolder&) = delete;
  ForkedHolder& operator=(const ForkedHolder&) = delete;

  // Forks and returns once `setup` has run in the child: what it returned
  // (false also when the fork failed; nothing is left running then).
  bool Start(const std::function<bool()>& setup);
  // SIGKILLs and reaps it: whether that SIGKILL ended it.
  bool Kill();

 private:
  pid_t pid_ = -1;
};

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_PROCESS_H_
