// Atomic file replacement: write to a temporary file in the target's folder,
// fsync it, rename it over the target, fsync the folder. Readers see either
// the old complete file or the new complete file, never a partial one, and a
// failed write leaves no temporary file behind.
#ifndef WFM_MODEL_IO_ATOMIC_FILE_H_
#define WFM_MODEL_IO_ATOMIC_FILE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace wfm::model::io {

// Writes `contents` to `path` atomically.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Runs `write(temp_path)`, which must create the file `temp_path` (it does
// not exist yet; the name is unique, in the folder of `path`, and starts with
// ".<basename>.tmp-"), then makes it durable and renames it to `path`. When
// `write` or any later step fails, the temporary file is removed and the
// error is returned; `path` is untouched.
absl::Status WriteAtomically(
    const std::string& path,
    const std::function<absl::Status(const std::string& temp_path)>& write);

// The errno text as an IO-flavoured status naming `what` and `path`:
// NotFound for ENOENT, PermissionDenied for EACCES/EPERM/EROFS, otherwise
// Internal ("write /x/y.npz: No space left on device").
absl::Status ErrnoStatus(int error, absl::string_view what, absl::string_view path);

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_ATOMIC_FILE_H_
