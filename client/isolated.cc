#include "client/isolated.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace wfm::client {
namespace {

// The child's message: one byte (1: ok, 0: error), then for ok the bytes, for
// an error the status code (4 bytes) and the message.
constexpr char kOk = 1;
constexpr char kError = 0;

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

[[noreturn]] void RunChild(int fd, const std::function<absl::StatusOr<std::string>()>& work) {
  std::string message;
  {
    absl::StatusOr<std::string> result = work();
    if (result.ok()) {
      message.reserve(result->size() + 1);
      message.push_back(kOk);
      message += *result;
    } else {
      message.push_back(kError);
      const int32_t code = static_cast<int32_t>(result.status().code());
      message.append(reinterpret_cast<const char*>(&code), sizeof(code));
      const absl::string_view text = result.status().message();
      message.append(text.data(), text.size());
    }
  }
  _exit(WriteAll(fd, message.data(), message.size()) ? 0 : 3);
}

std::string Describe(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return absl::StrCat("signal ", sig, " (", strsignal(sig), ")");
  }
  return absl::StrCat("exit status ", WEXITSTATUS(wait_status));
}

}  // namespace

absl::StatusOr<std::string> RunIsolated(const std::function<absl::StatusOr<std::string>()>& work,
                                        absl::Duration timeout, absl::string_view what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat(what, ": pipe: ", strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat(what, ": fork: ", strerror(err)));
  }
  if (pid == 0) {
    close(fds[0]);
    // A parent that stopped reading (timed out) must not leave the child
    // blocked or killed by SIGPIPE before it is reaped: write() then fails.
    signal(SIGPIPE, SIG_IGN);
    RunChild(fds[1], work);
  }
  close(fds[1]);

  std::string received;
  bool timed_out = false;
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[1 << 16];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int64_t wait_ms = absl::ToInt64Milliseconds(left) + 1;
    const int ready = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait_ms, 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // re-checks the deadline
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of file: the child is done (or dead)
    received.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": gave up after ", absl::FormatDuration(timeout),
        " (the reader was stopped; a corrupt file can make libhdf5 loop)"));
  }
  const bool exited_cleanly = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
  if (!exited_cleanly || received.empty()) {
    return absl::DataLossError(absl::StrCat(
        what, ": the reader crashed (", Describe(wait_status),
        "); the file is corrupt or not one libhdf5 can read safely"));
  }
  if (received[0] == kOk) return received.substr(1);
  int32_t code = static_cast<int32_t>(absl::StatusCode::kInternal);
  if (received.size() >= 1 + sizeof(code)) std::memcpy(&code, received.data() + 1, sizeof(code));
  const std::string message =
      received.size() > 1 + sizeof(code) ? received.substr(1 + sizeof(code)) : std::string();
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

}  // namespace wfm::client
