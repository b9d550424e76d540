#include "repository/fs_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "repository/logging.h"

namespace wfm::repository {
namespace {

namespace fs = std::filesystem;

absl::Status FromErrorCode(const std::error_code& ec, absl::string_view what,
                           absl::string_view path) {
  return model::io::ErrnoStatus(ec.value(), what, path);
}

}  // namespace

absl::Status MakeDirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return FromErrorCode(ec, "create folder", path);
  if (!fs::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": exists and is not a folder"));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return FromErrorCode(ec, "remove", path);
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return model::io::ErrnoStatus(errno, "open folder", path);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return model::io::ErrnoStatus(error, "fsync folder", path);
  return absl::OkStatus();
}

absl::StatusOr<FileStamp> StatFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return model::io::ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  FileStamp stamp;
  stamp.device = static_cast<uint64_t>(st.st_dev);
  stamp.inode = static_cast<uint64_t>(st.st_ino);
  stamp.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  stamp.size = static_cast<int64_t>(st.st_size);
  return stamp;
}

absl::StatusOr<int64_t> FileSize(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(const FileStamp stamp, StatFile(path));
  return stamp.size;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) {
  std::error_code ec;
  std::vector<std::string> names;
  fs::directory_iterator it(path, ec);
  if (ec) return FromErrorCode(ec, "list folder", path);
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return FromErrorCode(ec, "list folder", path);
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 gen(std::random_device{}() ^
                                   (static_cast<uint64_t>(::getpid()) << 32));
  return absl::StrFormat("%016x", gen());
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return model::io::ErrnoStatus(errno, "read", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return model::io::ErrnoStatus(EIO, "read", path);
  return buffer.str();
}

absl::StatusOr<std::string> MakeStagingDir(const std::string& parent, absl::string_view name) {
  const std::string path = absl::StrCat(parent, "/", kStagingPrefix, name, "-", RandomSuffix());
  if (::mkdir(path.c_str(), 0755) != 0) return model::io::ErrnoStatus(errno, "create folder", path);
  return path;
}

absl::Status PublishDir(const std::string& staging, const std::string& parent,
                        absl::string_view name, bool overwrite) {
  const std::string target = absl::StrCat(parent, "/", name);
  if (!Exists(target)) {
    if (::rename(staging.c_str(), target.c_str()) != 0) {
      return model::io::ErrnoStatus(errno, "rename to", target);
    }
    return FsyncDir(parent);
  }
  if (!overwrite) {
    return absl::AlreadyExistsError(absl::StrCat("'", name, "' already exists"));
  }
  // Atomic swap: afterwards `staging` holds the old folder.
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
    (void)FsyncDir(parent);
    absl::Status removed = RemoveTree(staging);
    if (!removed.ok()) LogWarning(absl::StrCat("cannot remove replaced folder: ", removed.message()));
    return FsyncDir(parent);
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return model::io::ErrnoStatus(errno, "exchange with", target);
  }
  // No RENAME_EXCHANGE here: old -> trash, new -> target. A crash in between
  // leaves the trash folder, which RecoverDirs renames back.
  const std::string trash = absl::StrCat(parent, "/", kTrashPrefix, name, "-", RandomSuffix());
  if (::rename(target.c_str(), trash.c_str()) != 0) {
    return model::io::ErrnoStatus(errno, "rename", target);
  }
  if (::rename(staging.c_str(), target.c_str()) != 0) {
    const absl::Status error = model::io::ErrnoStatus(errno, "rename to", target);
    ::rename(trash.c_str(), target.c_str());
    return error;
  }
  absl::Status synced = FsyncDir(parent);
  absl::Status removed = RemoveTree(trash);
  if (!removed.ok()) LogWarning(absl::StrCat("cannot remove replaced folder: ", removed.message()));
  return synced;
}

absl::Status RemovePublishedDir(const std::string& parent, absl::string_view name) {
  const std::string target = absl::StrCat(parent, "/", name);
  if (!Exists(target)) return absl::NotFoundError(absl::StrCat("'", name, "' does not exist"));
  const std::string trash = absl::StrCat(parent, "/", kDeletedPrefix, name, "-", RandomSuffix());
  if (::rename(target.c_str(), trash.c_str()) != 0) {
    return model::io::ErrnoStatus(errno, "rename", target);
  }
  absl::Status synced = FsyncDir(parent);
  absl::Status removed = RemoveTree(trash);
  if (!removed.ok()) LogWarning(absl::StrCat("cannot remove deleted folder: ", removed.message()));
  return synced;
}

void RecoverDirs(const std::string& parent) {
  absl::StatusOr<std::vector<std::string>> names = ListDir(parent);
  if (!names.ok()) return;
  constexpr size_t kSuffix = 17;  // "-" + 16 hex digits
  for (const std::string& entry : *names) {
    const std::string path = absl::StrCat(parent, "/", entry);
    if (absl::StartsWith(entry, kStagingPrefix) || absl::StartsWith(entry, kDeletedPrefix)) {
      LogWarning(absl::StrCat("removing the leftover folder ", path));
      absl::Status s = RemoveTree(path);
      if (!s.ok()) LogWarning(std::string(s.message()));
    } else if (absl::StartsWith(entry, kTrashPrefix) &&
               entry.size() > std::strlen(kTrashPrefix) + kSuffix) {
      const std::string name = entry.substr(std::strlen(kTrashPrefix),
                                            entry.size() - std::strlen(kTrashPrefix) - kSuffix);
      const std::string target = absl::StrCat(parent, "/", name);
      if (!Exists(target) && ::rename(path.c_str(), target.c_str()) == 0) {
        LogWarning(absl::StrCat("restored ", target, " from an interrupted replacement"));
      } else {
        absl::Status s = RemoveTree(path);
        if (!s.ok()) LogWarning(std::string(s.message()));
      }
    }
  }
  (void)FsyncDir(parent);
}

}  // namespace wfm::repository
