// The NumPy .npy format (versions 1.0, 2.0 and 3.0): one array per file.
//
// Reading supports the dtypes of Array: bool (|b1), signed and unsigned
// integers of 1–8 bytes, float32, float64, unicode strings (<U n, UCS-4, read
// as UTF-8) and byte strings (|S n, trailing NULs stripped as numpy does),
// little- or big-endian, C or Fortran order (converted to C order). Object
// arrays (pickles), structured, complex, float16 and datetime dtypes are
// rejected with InvalidArgument naming the dtype.
//
// Writing produces version 1.0 (2.0 for headers over 64 KiB) little-endian
// C-order files that numpy.load reads; strings are written as <U n with n the
// longest string's length in code points.
#ifndef WFM_MODEL_IO_NPY_H_
#define WFM_MODEL_IO_NPY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/array.h"

namespace wfm::model::io {

// A sequential byte source.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to `n` bytes into `dst`; returns how many were read, which is
  // less than `n` only at the end of the data.
  virtual absl::StatusOr<size_t> Read(void* dst, size_t n) = 0;
};

// Reads one .npy array from `in`. `name` prefixes every error message (e.g.
// "clouds.npz: points"). `available_bytes` (when >= 0) is the number of bytes
// `in` holds; a header that promises more data is rejected before any large
// allocation.
absl::StatusOr<Array> ReadNpy(ByteReader& in, absl::string_view name, int64_t available_bytes = -1);

// Parses a complete .npy file held in memory.
absl::StatusOr<Array> ParseNpy(absl::string_view bytes, absl::string_view name);

// Reads a .npy file from disk.
absl::StatusOr<Array> ReadNpyFile(const std::string& path);

// An encoded .npy: `header` (magic, version, length, dictionary, padding)
// followed by `size` bytes at `data`. For numeric arrays `data` points into
// the viewed array (no copy); for strings it points into `owned`.
struct EncodedNpy {
  std::string header;
  const void* data = nullptr;
  size_t size = 0;
  std::string owned;
};

// Encodes `array` ("name" prefixes errors: invalid UTF-8 in a string).
// Moving an EncodedNpy keeps `data` valid only for numeric arrays; call
// EncodeNpy where the result stays.
absl::Status EncodeNpy(const ArrayView& array, absl::string_view name, EncodedNpy* out);

// The whole .npy file as one string (copies the data).
absl::StatusOr<std::string> SerializeNpy(const ArrayView& array, absl::string_view name);

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_NPY_H_
