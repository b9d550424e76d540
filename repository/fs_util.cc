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
#include <map>
#include <random>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
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

namespace {

constexpr size_t kSuffixDigits = 16;

std::string LockPath(const std::string& parent, absl::string_view suffix) {
  return absl::StrCat(parent, "/", kLockPrefix, suffix);
}

// A lock file of a new random suffix in `parent`, created and locked.
absl::StatusOr<std::pair<std::string, FileLock>> ClaimNewSuffix(const std::string& parent) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::string suffix = RandomSuffix();
    const std::string lock_path = LockPath(parent, suffix);
    absl::StatusOr<std::optional<FileLock>> lock =
        FileLock::TryAcquire(lock_path, ProcessIdentity(), /*create_new=*/true);
    if (absl::IsAlreadyExists(lock.status())) continue;
    WFM_RETURN_IF_ERROR(lock.status());
    // A clean-up took the new file before its lock was, and removes it:
    // another suffix.
    if (!lock->has_value() || !(*lock)->Names(lock_path)) continue;
    return std::make_pair(suffix, std::move(**lock));
  }
  return absl::AbortedError(absl::StrCat(parent, ": cannot claim a temporary name"));
}

// Removes the lock file of a claim, then lets go of it.
void DropClaim(const std::string& lock_path, std::optional<FileLock>* lock) {
  if (!lock->has_value()) return;
  if (::unlink(lock_path.c_str()) != 0 && errno != ENOENT) {
    LogWarning(std::string(model::io::ErrnoStatus(errno, "remove", lock_path).message()));
  }
  lock->reset();
}

bool IsSuffix(absl::string_view s) {
  return s.size() == kSuffixDigits && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

// The suffix of a temporary folder's name ("" when it has none).
std::string SuffixOf(absl::string_view entry, absl::string_view prefix) {
  if (entry.size() <= prefix.size() + kSuffixDigits + 1) return "";
  const absl::string_view suffix = entry.substr(entry.size() - kSuffixDigits);
  if (entry[entry.size() - kSuffixDigits - 1] != '-' || !IsSuffix(suffix)) return "";
  return std::string(suffix);
}

// Clean-up of one temporary folder whose writer is gone.
void RecoverEntry(const std::string& parent, const std::string& entry) {
  const std::string path = absl::StrCat(parent, "/", entry);
  if (absl::StartsWith(entry, kTrashPrefix)) {
    const std::string suffix = SuffixOf(entry, kTrashPrefix);
    if (suffix.empty()) return;  // not one of ours
    const size_t start = std::strlen(kTrashPrefix);
    const std::string name = entry.substr(start, entry.size() - start - kSuffixDigits - 1);
    const std::string target = absl::StrCat(parent, "/", name);
    if (!Exists(target) && ::rename(path.c_str(), target.c_str()) == 0) {
      LogWarning(absl::StrCat("restored ", target, " from an interrupted replacement"));
      return;
    }
  } else {
    LogWarning(absl::StrCat("removing the leftover folder ", path));
  }
  absl::Status s = RemoveTree(path);
  if (!s.ok()) LogWarning(std::string(s.message()));
}

}  // namespace

StagingDir::StagingDir(StagingDir&& other) noexcept
    : path_(std::exchange(other.path_, "")),
      lock_path_(std::exchange(other.lock_path_, "")),
      lock_(std::exchange(other.lock_, std::nullopt)) {}

StagingDir& StagingDir::operator=(StagingDir&& other) noexcept {
  if (this != &other) {
    Close();
    path_ = std::exchange(other.path_, "");
    lock_path_ = std::exchange(other.lock_path_, "");
    lock_ = std::exchange(other.lock_, std::nullopt);
  }
  return *this;
}

std::string StagingDir::suffix() const {
  return path_.size() >= kSuffixDigits ? path_.substr(path_.size() - kSuffixDigits) : "";
}

void StagingDir::Close() {
  if (!path_.empty() && Exists(path_)) {
    absl::Status removed = RemoveTree(path_);
    if (!removed.ok()) LogWarning(std::string(removed.message()));
  }
  DropClaim(lock_path_, &lock_);
  path_.clear();
}

absl::StatusOr<StagingDir> MakeStagingDir(const std::string& parent, absl::string_view name) {
  WFM_ASSIGN_OR_RETURN(auto claim, ClaimNewSuffix(parent));
  std::optional<FileLock> lock(std::move(claim.second));
  const std::string lock_path = LockPath(parent, claim.first);
  const std::string path = absl::StrCat(parent, "/", kStagingPrefix, name, "-", claim.first);
  if (::mkdir(path.c_str(), 0755) != 0) {
    const absl::Status error = model::io::ErrnoStatus(errno, "create folder", path);
    DropClaim(lock_path, &lock);
    return error;
  }
  return StagingDir(path, lock_path, std::move(*lock));
}

absl::Status PublishDir(const StagingDir& staging_dir, const std::string& parent,
                        absl::string_view name, bool overwrite) {
  const std::string& staging = staging_dir.path();
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
  const std::string trash =
      absl::StrCat(parent, "/", kTrashPrefix, name, "-", staging_dir.suffix());
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
  WFM_ASSIGN_OR_RETURN(auto claim, ClaimNewSuffix(parent));
  std::optional<FileLock> lock(std::move(claim.second));
  const std::string lock_path = LockPath(parent, claim.first);
  const std::string trash = absl::StrCat(parent, "/", kDeletedPrefix, name, "-", claim.first);
  if (::rename(target.c_str(), trash.c_str()) != 0) {
    const absl::Status error = model::io::ErrnoStatus(errno, "rename", target);
    DropClaim(lock_path, &lock);
    return error;
  }
  absl::Status synced = FsyncDir(parent);
  absl::Status removed = RemoveTree(trash);
  if (!removed.ok()) LogWarning(absl::StrCat("cannot remove deleted folder: ", removed.message()));
  DropClaim(lock_path, &lock);
  return synced;
}

void RecoverDirs(const std::string& parent) {
  absl::StatusOr<std::vector<std::string>> names = ListDir(parent);
  if (!names.ok()) return;
  // The temporary folders by the suffix of their lock; a lock file alone
  // (its writer died before making a folder, or a clean-up before removing
  // the file) is cleaned up too.
  std::map<std::string, std::vector<std::string>> by_suffix;
  for (const std::string& entry : *names) {
    if (absl::StartsWith(entry, kLockPrefix)) {
      const std::string suffix = entry.substr(std::strlen(kLockPrefix));
      if (IsSuffix(suffix)) by_suffix[suffix];
      continue;
    }
    for (const char* prefix : {kStagingPrefix, kDeletedPrefix, kTrashPrefix}) {
      if (absl::StartsWith(entry, prefix)) by_suffix[SuffixOf(entry, prefix)].push_back(entry);
    }
  }
  for (const auto& [suffix, entries] : by_suffix) {
    // Without a suffix (not named by these functions): no writer to wait for.
    std::optional<FileLock> lock;
    const std::string lock_path = LockPath(parent, suffix);
    if (!suffix.empty()) {
      absl::StatusOr<std::optional<FileLock>> taken =
          FileLock::TryAcquire(lock_path, ProcessIdentity());
      if (!taken.ok()) {
        LogWarning(absl::StrCat("cannot check ", lock_path, ": ", taken.status().message()));
        continue;
      }
      if (!taken->has_value()) {
        if (!entries.empty()) {
          LogInfo(absl::StrCat("leaving ", parent, "/", entries.front(), ": in use by ",
                               FileLock::ReadHolder(lock_path)));
        }
        continue;
      }
      // Removed meanwhile: another clean-up did this one.
      if (!(*taken)->Names(lock_path)) continue;
      lock = std::move(*taken);
    }
    for (const std::string& entry : entries) RecoverEntry(parent, entry);
    DropClaim(lock_path, &lock);
  }
  (void)FsyncDir(parent);
}

}  // namespace wfm::repository
