#include "model/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"

namespace wfm::model::io {
namespace {

struct SplitPath {
  std::string folder;    // "." when the path has no slash
  std::string basename;  // may be empty (path ends in '/')
};

SplitPath Split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::string UniqueTempPath(const SplitPath& split) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }();
  const uint64_t n = counter.fetch_add(1);
  const std::string name = absl::StrCat(".", split.basename, ".tmp-", getpid(), "-", n, "-",
                                        absl::Hex((salt + n * 0x9E3779B97F4A7C15ull) >> 16));
  return split.folder == "/" ? "/" + name : split.folder + "/" + name;
}

absl::Status FsyncPath(const std::string& path, bool directory) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return ErrnoStatus(errno, "open for fsync", path);
  if (fsync(fd) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(error, "fsync", path);
  }
  if (close(fd) != 0) return ErrnoStatus(errno, "close", path);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view contents, const std::string& path) {
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ErrnoStatus(int error, absl::string_view what, absl::string_view path) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EISDIR:
    case EEXIST:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status WriteAtomically(
    const std::string& path,
    const std::function<absl::Status(const std::string& temp_path)>& write) {
  const SplitPath split = Split(path);
  if (split.basename.empty() || split.basename == "." || split.basename == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("output path '", path, "' does not name a file"));
  }
  struct stat folder_stat;
  if (stat(split.folder.c_str(), &folder_stat) != 0) {
    return ErrnoStatus(errno, "output folder", split.folder);
  }
  if (!S_ISDIR(folder_stat.st_mode)) {
    return absl::NotFoundError(absl::StrCat("output folder ", split.folder, ": not a directory"));
  }
  const std::string temp = UniqueTempPath(split);
  absl::Status status = write(temp);
  if (status.ok()) status = FsyncPath(temp, /*directory=*/false);
  if (status.ok() && rename(temp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, "rename to", path);
  }
  if (!status.ok()) {
    unlink(temp.c_str());  // may not exist (write failed early): fine
    return status;
  }
  // The rename is durable once the folder entry is.
  return FsyncPath(split.folder, /*directory=*/true);
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  return WriteAtomically(path, [&](const std::string& temp) -> absl::Status {
    const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return ErrnoStatus(errno, "create", temp);
    absl::Status status = WriteAll(fd, contents, temp);
    if (close(fd) != 0 && status.ok()) status = ErrnoStatus(errno, "close", temp);
    return status;
  });
}

}  // namespace wfm::model::io
