// Exclusive claims shared by the processes that use one data folder (two
// wfm-server replicas on a shared volume): an advisory lock on a whole file,
// taken without waiting and held until the FileLock is released or
// destroyed, or its process dies (the kernel drops it then, SIGKILL
// included). It is an open-file-description lock (fcntl F_OFD_SETLK):
// two FileLocks conflict within one process as across processes, closing
// another descriptor of the file does not drop it, and NFSv4 and other file
// systems with POSIX locks carry it between machines. The holder writes who
// it is into the file, for the others to name it. Lock files are never
// removed while their claims matter, so a waiting claimant never locks a
// file that another one has replaced.
#ifndef WFM_REPOSITORY_FILE_LOCK_H_
#define WFM_REPOSITORY_FILE_LOCK_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

class FileLock {
 public:
  // Opens `path` (created when missing; with `create_new` it must not exist
  // yet: ALREADY_EXISTS, which makes the file a reservation of its name too)
  // and takes its lock; nullopt when another holder has it. The holder then
  // writes `holder` into the file.
  static absl::StatusOr<std::optional<FileLock>> TryAcquire(const std::string& path,
                                                            absl::string_view holder,
                                                            bool create_new = false);
  // What the present (or last) holder wrote into `path` ("" when nothing).
  static std::string ReadHolder(const std::string& path);

  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { Release(); }

  // Drops the lock (the file stays).
  void Release();

  // Whether `path` still names the locked file: false once it was removed
  // or replaced (a claimant that removes lock files checks this after
  // taking one, since it may have opened a file that was removed before
  // its lock was taken).
  bool Names(const std::string& path) const;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// "<host name> pid <pid>": who this process is, as a claim's holder text (in
// Kubernetes the host name is the pod's name).
std::string ProcessIdentity();

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_FILE_LOCK_H_
