// File-system steps of the on-disk stores (data sets, models, jobs): folders
// staged under a temporary name and published by rename, so a reader (or a
// restarted server) sees either the old complete folder or the new complete
// one. Every published change is followed by an fsync of the parent folder.
//
// Several processes may share the stores (replicas on one volume), and one's
// start-up clean-up must not take another's work in progress: every
// temporary folder belongs to a lock file "<parent>/.~lock-<suffix>" of the
// same random suffix, created and locked (FileLock) before the folder is
// made and removed only after it is gone. RecoverDirs removes a temporary
// folder only when it can take that lock, i.e. when its writer has died (the
// kernel drops a dead process's lock, SIGKILL included).
#ifndef WFM_REPOSITORY_FS_UTIL_H_
#define WFM_REPOSITORY_FS_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "repository/file_lock.h"

namespace wfm::repository {

// Prefixes of the temporary folders next to published ones. They hold '~',
// which no valid name holds (see names.h), so they never clash with a name;
// the full form is "<prefix><name>-<16 hex digits>", and the lock file of a
// folder is "<kLockPrefix><its 16 hex digits>".
inline constexpr char kStagingPrefix[] = ".~staging-";
inline constexpr char kTrashPrefix[] = ".~trash-";      // replaced by an overwrite
inline constexpr char kDeletedPrefix[] = ".~deleted-";  // being deleted
inline constexpr char kLockPrefix[] = ".~lock-";        // held while its folders exist

// mkdir -p; OK when it exists.
absl::Status MakeDirs(const std::string& path);
// rm -rf; OK when it does not exist.
absl::Status RemoveTree(const std::string& path);
// fsync of a folder (makes renames and creations in it durable).
absl::Status FsyncDir(const std::string& path);
// Size of a regular file; NOT_FOUND when missing.
absl::StatusOr<int64_t> FileSize(const std::string& path);
bool Exists(const std::string& path);
// What identifies one version of a file: a rename over it (atomic replace)
// changes the inode, an in-place write the modification time or size.
struct FileStamp {
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t mtime_ns = 0;
  int64_t size = 0;
  bool operator==(const FileStamp& o) const {
    return device == o.device && inode == o.inode && mtime_ns == o.mtime_ns && size == o.size;
  }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};
// The stamp of a regular file; NOT_FOUND when missing.
absl::StatusOr<FileStamp> StatFile(const std::string& path);
// Names of the entries of a folder (not "." / ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path);
// 16 random hex digits (for unique temporary names).
std::string RandomSuffix();
// The file's content (NOT_FOUND / PERMISSION_DENIED / INTERNAL).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// A staging folder "<parent>/.~staging-<name>-<suffix>" and the lock that
// keeps it from RecoverDirs while it lives. Destroying it removes the folder
// when it is still there (not published), then its lock file.
class StagingDir {
 public:
  StagingDir(StagingDir&& other) noexcept;
  StagingDir& operator=(StagingDir&& other) noexcept;
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  ~StagingDir() { Close(); }

  const std::string& path() const { return path_; }
  // The 16 hex digits that its folder and lock file names end with.
  std::string suffix() const;

 private:
  friend absl::StatusOr<StagingDir> MakeStagingDir(const std::string& parent,
                                                   absl::string_view name);
  StagingDir(std::string path, std::string lock_path, FileLock lock)
      : path_(std::move(path)), lock_path_(std::move(lock_path)), lock_(std::move(lock)) {}
  void Close();

  std::string path_;
  std::string lock_path_;
  std::optional<FileLock> lock_;
};

// A new, empty staging folder "<parent>/.~staging-<name>-<random>", its lock
// taken first.
absl::StatusOr<StagingDir> MakeStagingDir(const std::string& parent, absl::string_view name);

// Publishes the complete folder `staging` as "<parent>/<name>". When that
// exists: ALREADY_EXISTS unless `overwrite`, in which case the two are
// exchanged atomically (renameat2 RENAME_EXCHANGE; where the file system
// lacks it, the old folder is first renamed to a trash name of the staging
// folder's suffix, under its lock) and the old one is removed. On error the
// staging folder is left to `staging`'s destruction.
absl::Status PublishDir(const StagingDir& staging, const std::string& parent,
                        absl::string_view name, bool overwrite);

// Removes "<parent>/<name>" by renaming it to a trash name first (so it
// disappears atomically, under a lock of its own), then deleting it.
// NOT_FOUND when missing.
absl::Status RemovePublishedDir(const std::string& parent, absl::string_view name);

// Start-up clean-up of `parent`, of the temporary folders whose lock is free
// (their writer died) or missing: removes staging and deleted folders; a
// trash folder whose published name is missing is renamed back (an overwrite
// interrupted between its two renames), other trash folders are removed; then
// the lock file. Folders whose lock a live writer holds, in this process or
// another, are left alone. Logs what it does.
void RecoverDirs(const std::string& parent);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_FS_UTIL_H_
