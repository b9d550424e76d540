// NumPy .npz archives: a zip file with one .npy member per array, as written
// by numpy.savez (members stored) and numpy.savez_compressed (deflated).
#ifndef WFM_MODEL_IO_NPZ_H_
#define WFM_MODEL_IO_NPZ_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/io/array.h"

namespace wfm::model::io {

// Arrays by name (the member name without ".npy").
using NpzArrays = std::map<std::string, Array>;

// Reads every "<name>.npy" member of the archive at `path` (members with
// other names are ignored, as numpy.load leaves them as raw bytes). Errors:
// NotFound (no such file), InvalidArgument for a file that is not a zip
// archive, is truncated, has a CRC mismatch, or holds a malformed or
// unsupported .npy member (the message names the file and the member).
absl::StatusOr<NpzArrays> ReadNpz(const std::string& path);

struct NpzWriteOptions {
  // false: members stored as numpy.savez does; true: deflated as
  // numpy.savez_compressed does.
  bool compress = false;
};

// Writes the arrays as "<name>.npy" members, atomically (temporary file in
// the same folder, fsync, rename; on failure no temporary file remains and
// `path` is untouched). Names must be non-empty and unique.
absl::Status WriteNpz(const std::string& path,
                      const std::vector<std::pair<std::string, ArrayView>>& arrays,
                      const NpzWriteOptions& options = {});
absl::Status WriteNpz(const std::string& path, const NpzArrays& arrays,
                      const NpzWriteOptions& options = {});

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_NPZ_H_
