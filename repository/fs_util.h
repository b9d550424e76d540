// File-system steps of the on-disk stores (data sets, models, jobs): folders
// staged under a temporary name and published by rename, so a reader (or a
// restarted server) sees either the old complete folder or the new complete
// one. Every published change is followed by an fsync of the parent folder.
#ifndef WFM_REPOSITORY_FS_UTIL_H_
#define WFM_REPOSITORY_FS_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

// Prefixes of the temporary folders next to published ones. They hold '~',
// which no valid name holds (see names.h), so they never clash with a name;
// the full form is "<prefix><name>-<16 hex digits>".
inline constexpr char kStagingPrefix[] = ".~staging-";
inline constexpr char kTrashPrefix[] = ".~trash-";      // replaced by an overwrite
inline constexpr char kDeletedPrefix[] = ".~deleted-";  // being deleted

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

// A new, empty staging folder "<parent>/.~staging-<name>-<random>".
absl::StatusOr<std::string> MakeStagingDir(const std::string& parent, absl::string_view name);

// Publishes the complete folder `staging` as "<parent>/<name>". When that
// exists: ALREADY_EXISTS unless `overwrite`, in which case the two are
// exchanged atomically (renameat2 RENAME_EXCHANGE; where the file system
// lacks it, the old folder is first renamed to a trash name) and the old one
// is removed. On error `staging` is left for the caller to remove.
absl::Status PublishDir(const std::string& staging, const std::string& parent,
                        absl::string_view name, bool overwrite);

// Removes "<parent>/<name>" by renaming it to a trash name first (so it
// disappears atomically), then deleting it. NOT_FOUND when missing.
absl::Status RemovePublishedDir(const std::string& parent, absl::string_view name);

// Start-up clean-up of `parent`: removes leftover staging and deleted
// folders; a trash folder whose published name is missing is renamed back (an
// overwrite interrupted between its two renames), other trash folders are
// removed. Logs what it does.
void RecoverDirs(const std::string& parent);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_FS_UTIL_H_
