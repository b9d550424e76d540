// The wfm checkpoint: ONE versioned file holding everything needed to serve or
// resume a trained model — named tensors (module parameters and buffers, and
// optionally the optimizer state, see module_state.h and adam_state.h) and a
// JSON metadata object (family, full training config, label vocabulary, data
// statistics, training summary, creation time: its content is decided by the
// trainers; this layer stores any JSON object).
//
// Byte layout, format version 1 (all integers little-endian):
//
//   offset      size  field
//   0           8     magic "WFMCKPT\0"
//   8           4     u32 format version = 1
//   12          4     u32 flags = 0 (version 1 defines no flags)
//   16          8     u64 header length H (<= kMaxHeaderBytes)
//   24          8     u64 file length L (the whole file, trailer included)
//   32          H     header: UTF-8 JSON (below), nesting depth <= kMaxJsonDepth
//   32+H        ..    zero bytes up to D = align64(32 + H)
//   D           S     tensor data (below); S is a multiple of 64
//   D+S         8     u64 file length L (again)
//   D+S+8       4     u32 CRC-32 (IEEE 802.3, as zlib's crc32) of bytes [0, D+S+8)
//   D+S+12      8     end magic "WFMEND\0\0"
//   L = D + S + 20
//
// Header: {"metadata": {...}, "tensors": [entry, ...]} with exactly these two
// keys; each entry has exactly the keys
//   "name"    non-empty string of at most kMaxNameBytes bytes, unique in the file
//   "dtype"   "float32" | "float64" | "int64" | "int32" | "bool" | "uint8"
//   "shape"   array of at most kMaxRank non-negative integers ([] = a scalar)
//   "offset"  byte offset of the tensor's data from D
//   "nbytes"  numel × item size (exact, overflow-checked)
//   "crc32"   CRC-32 of the tensor's nbytes data bytes
// Entries are in file order, at most kMaxTensors of them. Tensors are packed
// in that order: offset_0 = 0, offset_i = align64(offset_{i-1} + nbytes_{i-1}),
// S = align64(end of the last tensor) (0 without tensors); each tensor's data
// is its values in row-major (C-contiguous) order, little-endian, bool as one
// byte 0 or 1. Every gap (header padding, tensor padding) is zero. There is
// exactly one valid encoding of a given content, so Serialize is deterministic.
//
// A reader rejects anything else: the checks run on lengths first (before any
// allocation), then the whole-file checksum, then the header, then each
// tensor, so corrupt input never makes it allocate more than the input's size
// or read outside the input. Any change to this layout bumps kFormatVersion
// and keeps a reader for the old version (tests/fixtures/checkpoint/ holds a
// version-1 file that must keep loading, and read_checkpoint.py, an independent
// Python reader of this layout).
//
// Status codes of Parse / Read:
//   INVALID_ARGUMENT  not a wfm checkpoint (bad magic)
//   kUnimplemented    a format version or flags this build does not read
//   DATA_LOSS         truncated, checksum mismatch, or any inconsistent field
//                     ("tensor 'x': ..." names the tensor)
//   NOT_FOUND / PERMISSION_DENIED / INTERNAL (Read)  the file cannot be read
// Read and Write prefix every message with the path:
//   "model.wfm: not a wfm checkpoint (bad magic)".
#ifndef WFM_MODEL_CHECKPOINT_CHECKPOINT_H_
#define WFM_MODEL_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/json_depth.h"

namespace wfm::model::checkpoint {

inline constexpr char kMagic[8] = {'W', 'F', 'M', 'C', 'K', 'P', 'T', '\0'};
inline constexpr char kEndMagic[8] = {'W', 'F', 'M', 'E', 'N', 'D', '\0', '\0'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kPrefixBytes = 32;   // magic .. file length
inline constexpr uint64_t kTrailerBytes = 20;  // file length, CRC-32, end magic
inline constexpr uint64_t kAlignment = 64;     // of the data section and of every tensor
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{64} << 20;  // 64 MiB
inline constexpr uint64_t kMaxTensors = 1000000;
inline constexpr int64_t kMaxRank = 8;
inline constexpr uint64_t kMaxNameBytes = 4096;
inline constexpr int kMaxJsonDepth = io::kMaxJsonDepth;  // nesting of the header, metadata included

// Ordered named tensors, as stored. Names are unique within a checkpoint.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct Checkpoint {
  // A JSON object. Non-finite numbers are stored as null (JSON has no NaN).
  nlohmann::json metadata = nlohmann::json::object();
  // Any of the dtypes listed above, any device and memory layout (stored as
  // contiguous CPU data), rank <= kMaxRank. Parse returns contiguous CPU
  // tensors that own their memory (no aliasing of the input bytes).
  NamedTensors tensors;
};

// The file bytes of `checkpoint`. INVALID_ARGUMENT names the offending field
// when the metadata is not an object or holds invalid UTF-8, a tensor is
// undefined, sparse or quantized, has an unsupported dtype or rank, a name is
// empty, too long or repeated, or a limit above is exceeded.
absl::StatusOr<std::string> Serialize(const Checkpoint& checkpoint);

// The checkpoint encoded by `bytes` (see the status codes above). Safe on
// arbitrary input: it never crashes or reads out of bounds, and never sizes an
// allocation from an unchecked length field. Tensor memory never exceeds
// bytes.size(); the parsed JSON header (at most kMaxHeaderBytes of text) can
// take a few dozen times its text size in the worst case ("[{},{},...]").
absl::StatusOr<Checkpoint> Parse(absl::string_view bytes);

// Serializes `checkpoint` and writes it to `path` atomically (temporary file in
// the same folder, fsync, rename, fsync of the folder): afterwards `path` holds
// either its old content or the complete new file, and no temporary file is
// left behind on failure. The folder must exist (NOT_FOUND otherwise).
absl::Status Write(const std::string& path, const Checkpoint& checkpoint);

// Reads and parses the file at `path`.
absl::StatusOr<Checkpoint> Read(const std::string& path);

// The stored dtype names: "float32", ... ; empty for any other dtype.
absl::string_view DtypeName(at::ScalarType dtype);

}  // namespace wfm::model::checkpoint

#endif  // WFM_MODEL_CHECKPOINT_CHECKPOINT_H_
