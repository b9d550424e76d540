#include "repository/file_lock.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/io/atomic_file.h"
#include "repository/fs_util.h"

namespace wfm::repository {

absl::StatusOr<std::optional<FileLock>> FileLock::TryAcquire(const std::string& path,
                                                             absl::string_view holder,
                                                             bool create_new) {
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | (create_new ? O_EXCL : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " exists"));
    return model::io::ErrnoStatus(errno, "open", path);
  }
  FileLock lock(fd);
  struct flock range = {};
  range.l_type = F_WRLCK;
  range.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  if (::fcntl(fd, F_OFD_SETLK, &range) != 0) {
    if (errno == EAGAIN || errno == EACCES) return std::optional<FileLock>();
    return model::io::ErrnoStatus(errno, "lock", path);
  }
  // Who holds it: for the others' messages only, so a failed write is no
  // failure of the claim.
  if (::ftruncate(fd, 0) == 0) {
    const std::string text(holder);
    (void)!::pwrite(fd, text.data(), text.size(), 0);
  }
  return std::optional<FileLock>(std::move(lock));
}

std::string FileLock::ReadHolder(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  return text.ok() ? *text : "";
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void FileLock::Release() {
  // Closing the file's only open description drops its lock.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool FileLock::Names(const std::string& path) const {
  struct stat held, named;
  if (fd_ < 0 || ::fstat(fd_, &held) != 0 || ::stat(path.c_str(), &named) != 0) return false;
  return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

std::string ProcessIdentity() {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "unknown host", " pid ", ::getpid());
}

}  // namespace wfm::repository
