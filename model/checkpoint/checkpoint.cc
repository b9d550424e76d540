#include "model/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include <ATen/ATen.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/io/atomic_file.h"
#include "model/io/json_depth.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the checkpoint format stores tensor data little-endian; this "
              "build copies it as it lies in memory");

namespace wfm::model::checkpoint {
namespace {

using nlohmann::json;

struct DtypeInfo {
  absl::string_view name;
  at::ScalarType type;
  uint64_t item_bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"float32", at::kFloat, 4}, {"float64", at::kDouble, 8}, {"int64", at::kLong, 8},
    {"int32", at::kInt, 4},     {"bool", at::kBool, 1},      {"uint8", at::kByte, 1},
};

const DtypeInfo* FindDtype(at::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.type == type) return &d;
  }
  return nullptr;
}

const DtypeInfo* FindDtype(absl::string_view name) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string DtypeList() {
  std::vector<absl::string_view> names;
  for (const DtypeInfo& d : kDtypes) names.push_back(d.name);
  return absl::StrJoin(names, ", ");
}

// Only for values bounded by the input size (no overflow).
constexpr uint64_t Align(uint64_t n) { return (n + kAlignment - 1) & ~(kAlignment - 1); }

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t Crc32(const void* data, uint64_t n) {
  if (n == 0) return 0;
  return static_cast<uint32_t>(
      crc32_z(0, static_cast<const Bytef*>(data), static_cast<z_size_t>(n)));
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A JSON value for an error message, cut to at most 64 characters.
std::string Snippet(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = absl::StrCat(text.substr(0, 61), "...");
  return text;
}

absl::Status Corrupt(absl::string_view message) { return absl::DataLossError(message); }

absl::Status TensorError(absl::string_view name, absl::string_view message) {
  return absl::DataLossError(absl::StrCat("tensor '", name, "': ", message));
}

// ---------------------------------------------------------------------------
// Serialize

absl::StatusOr<std::string> SerializeImpl(const Checkpoint& checkpoint) {
  if (!checkpoint.metadata.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata: must be a JSON object, got ", checkpoint.metadata.type_name()));
  }
  if (checkpoint.tensors.size() > kMaxTensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensors: ", checkpoint.tensors.size(), " exceed the limit of ", kMaxTensors));
  }
  std::vector<at::Tensor> data;  // contiguous CPU copies (or the inputs themselves)
  std::vector<uint64_t> offsets;
  data.reserve(checkpoint.tensors.size());
  offsets.reserve(checkpoint.tensors.size());
  json entries = json::array();
  absl::flat_hash_set<absl::string_view> seen;
  uint64_t data_end = 0;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    const std::string quoted = absl::StrCat("tensor '", name, "': ");
    if (name.empty()) return absl::InvalidArgumentError("tensor name: must not be empty");
    if (name.size() > kMaxNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor name '", name.substr(0, 64),
                                                     "...': ", name.size(),
                                                     " bytes exceed the limit of ", kMaxNameBytes));
    }
    try {
      (void)json(name).dump();
    } catch (const json::exception&) {
      return absl::InvalidArgumentError(absl::StrCat("tensor name '", name, "': not valid UTF-8"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(quoted, "name is repeated"));
    }
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(quoted, "undefined"));
    if (tensor.layout() != at::kStrided || tensor.is_quantized()) {
      return absl::InvalidArgumentError(
          absl::StrCat(quoted, "only dense (strided, non-quantized) tensors can be stored"));
    }
    const DtypeInfo* dtype = FindDtype(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(quoted, "dtype ", c10::toString(tensor.scalar_type()),
                       " cannot be stored (supported: ", DtypeList(), ")"));
    }
    if (tensor.dim() > kMaxRank) {
      return absl::InvalidArgumentError(
          absl::StrCat(quoted, "rank ", tensor.dim(), " exceeds the limit of ", kMaxRank));
    }
    at::Tensor x = tensor.detach();
    if (!x.device().is_cpu()) x = x.to(at::kCPU);
    x = x.resolve_neg().contiguous();  // values as read, in row-major order
    const uint64_t nbytes = static_cast<uint64_t>(x.numel()) * dtype->item_bytes;
    const uint64_t offset = Align(data_end);
    data_end = offset + nbytes;
    entries.push_back(json{{"name", name},
                           {"dtype", std::string(dtype->name)},
                           {"shape", x.sizes().vec()},
                           {"offset", offset},
                           {"nbytes", nbytes},
                           {"crc32", Crc32(x.data_ptr(), nbytes)}});
    data.push_back(std::move(x));
    offsets.push_back(offset);
  }

  std::string header;
  try {
    header = json{{"metadata", checkpoint.metadata}, {"tensors", std::move(entries)}}.dump();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("metadata: cannot be encoded: ", e.what()));
  }
  if (header.size() > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header: ", header.size(), " bytes of JSON exceed the limit of ", kMaxHeaderBytes));
  }
  if (io::JsonTooDeep(header, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata: nested deeper than the limit of ", kMaxJsonDepth - 1, " levels"));
  }

  const uint64_t data_start = Align(kPrefixBytes + header.size());
  const uint64_t data_size = Align(data_end);
  const uint64_t file_size = data_start + data_size + kTrailerBytes;
  std::string out(file_size, '\0');
  char* p = out.data();
  std::memcpy(p, kMagic, 8);
  PutU32(p + 8, kFormatVersion);
  PutU32(p + 12, 0);
  PutU64(p + 16, header.size());
  PutU64(p + 24, file_size);
  std::memcpy(p + kPrefixBytes, header.data(), header.size());
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t nbytes = data[i].nbytes();
    if (nbytes > 0) std::memcpy(p + data_start + offsets[i], data[i].data_ptr(), nbytes);
  }
  const uint64_t trailer = data_start + data_size;
  PutU64(p + trailer, file_size);
  PutU32(p + trailer + 8, Crc32(p, trailer + 8));
  std::memcpy(p + trailer + 12, kEndMagic, 8);
  return out;
}

// ---------------------------------------------------------------------------
// Parse

struct TensorSpec {
  std::string name;
  const DtypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};

// `value` as an unsigned integer <= `max`; `what` names the field.
absl::StatusOr<uint64_t> UnsignedField(const json& value, absl::string_view what, uint64_t max) {
  if (!value.is_number_unsigned()) {
    return Corrupt(absl::StrCat(what, ": must be a non-negative integer, got ", Snippet(value)));
  }
  const uint64_t v = value.get<uint64_t>();
  if (v > max) return Corrupt(absl::StrCat(what, ": ", v, " exceeds ", max));
  return v;
}

absl::Status CheckKeys(const json& object, const std::vector<absl::string_view>& keys,
                       absl::string_view what) {
  if (!object.is_object()) {
    return Corrupt(absl::StrCat(what, ": must be a JSON object, got ", object.type_name()));
  }
  for (const absl::string_view key : keys) {
    if (!object.contains(key)) return Corrupt(absl::StrCat(what, ": missing key '", key, "'"));
  }
  if (object.size() != keys.size()) {
    for (const auto& item : object.items()) {
      bool known = false;
      for (const absl::string_view key : keys) known = known || item.key() == key;
      if (!known) return Corrupt(absl::StrCat(what, ": unknown key '", item.key(), "'"));
    }
  }
  return absl::OkStatus();
}

// One header entry, checked against the data section [data, data + data_size)
// and the packing rule (the entry must start at `expected_offset`).
absl::StatusOr<TensorSpec> ParseEntry(const json& entry, size_t index,
                                      absl::flat_hash_set<std::string>& names,
                                      uint64_t expected_offset, const char* data,
                                      uint64_t data_size) {
  TensorSpec spec;
  const std::string where = absl::StrCat("tensor #", index);
  if (!entry.is_object()) return Corrupt(absl::StrCat(where, ": must be a JSON object"));
  const auto name = entry.find("name");
  if (name == entry.end() || !name->is_string()) {
    return Corrupt(absl::StrCat(where, ": 'name' must be a string"));
  }
  spec.name = name->get<std::string>();
  if (spec.name.empty()) return Corrupt(absl::StrCat(where, ": empty name"));
  if (spec.name.size() > kMaxNameBytes) {
    return Corrupt(absl::StrCat(where, ": name of ", spec.name.size(),
                                " bytes exceeds the limit of ", kMaxNameBytes));
  }
  const std::string quoted = absl::StrCat("tensor '", spec.name, "'");
  WFM_RETURN_IF_ERROR(
      CheckKeys(entry, {"name", "dtype", "shape", "offset", "nbytes", "crc32"}, quoted));
  if (!names.insert(spec.name).second) return TensorError(spec.name, "name is repeated");

  const json& dtype = entry.at("dtype");
  if (dtype.is_string()) spec.dtype = FindDtype(dtype.get_ref<const std::string&>());
  if (spec.dtype == nullptr) {
    return TensorError(spec.name, absl::StrCat("unknown dtype ", Snippet(dtype),
                                               " (this build reads ", DtypeList(), ")"));
  }

  const json& shape = entry.at("shape");
  if (!shape.is_array()) return TensorError(spec.name, "'shape' must be an array");
  if (shape.size() > static_cast<size_t>(kMaxRank)) {
    return TensorError(spec.name,
                       absl::StrCat("rank ", shape.size(), " exceeds the limit of ", kMaxRank));
  }
  uint64_t numel = 1;
  for (const json& dim : shape) {
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      return TensorError(spec.name, absl::StrCat("negative dimension ", Snippet(dim), " in shape ",
                                                 Snippet(shape)));
    }
    WFM_ASSIGN_OR_RETURN(const uint64_t size,
                         UnsignedField(dim, absl::StrCat(quoted, ": shape ", Snippet(shape)),
                                       static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
    spec.shape.push_back(static_cast<int64_t>(size));
    if (__builtin_mul_overflow(numel, size, &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(spec.name, absl::StrCat("shape ", Snippet(shape),
                                                 " has more elements than an int64 holds"));
    }
  }
  uint64_t expected_nbytes = 0;
  if (__builtin_mul_overflow(numel, spec.dtype->item_bytes, &expected_nbytes)) {
    return TensorError(spec.name, absl::StrCat("shape ", Snippet(shape), " of ", spec.dtype->name,
                                               " overflows a byte count"));
  }
  WFM_ASSIGN_OR_RETURN(spec.nbytes,
                       UnsignedField(entry.at("nbytes"), absl::StrCat(quoted, ": nbytes"),
                                     std::numeric_limits<uint64_t>::max()));
  if (spec.nbytes != expected_nbytes) {
    return TensorError(spec.name, absl::StrCat("nbytes ", spec.nbytes, " does not match shape ",
                                               ShapeText(spec.shape), " of ", spec.dtype->name,
                                               " (", expected_nbytes, " bytes)"));
  }
  WFM_ASSIGN_OR_RETURN(spec.offset,
                       UnsignedField(entry.at("offset"), absl::StrCat(quoted, ": offset"),
                                     std::numeric_limits<uint64_t>::max()));
  if (spec.offset != expected_offset) {
    return TensorError(
        spec.name,
        absl::StrCat("offset ", spec.offset, ", expected ", expected_offset,
                     " (tensors are packed in header order, ", kAlignment, "-byte aligned)"));
  }
  if (spec.offset > data_size || spec.nbytes > data_size - spec.offset) {
    return TensorError(spec.name,
                       absl::StrCat("bytes [", spec.offset, ", ", spec.offset, " + ", spec.nbytes,
                                    ") lie outside the data section of ", data_size, " bytes"));
  }
  WFM_ASSIGN_OR_RETURN(const uint64_t crc,
                       UnsignedField(entry.at("crc32"), absl::StrCat(quoted, ": crc32"),
                                     std::numeric_limits<uint32_t>::max()));
  const char* bytes = data + spec.offset;
  const uint32_t actual = Crc32(bytes, spec.nbytes);
  if (actual != crc) {
    return TensorError(spec.name, absl::StrCat("checksum mismatch (stored ", absl::Hex(crc),
                                               ", computed ", absl::Hex(actual), ")"));
  }
  if (spec.dtype->type == at::kBool) {
    for (uint64_t i = 0; i < spec.nbytes; ++i) {
      if (static_cast<unsigned char>(bytes[i]) > 1) {
        return TensorError(
            spec.name,
            absl::StrCat("bool value ", static_cast<int>(static_cast<unsigned char>(bytes[i])),
                         " at element ", i, " (must be 0 or 1)"));
      }
    }
  }
  return spec;
}

bool AllZero(const char* begin, const char* end) {
  for (const char* p = begin; p < end; ++p) {
    if (*p != 0) return false;
  }
  return true;
}

absl::StatusOr<Checkpoint> ParseImpl(absl::string_view bytes) {
  const uint64_t size = bytes.size();
  const char* const p = bytes.data();
  // Fixed prefix.
  if (size < 8) {
    if (std::memcmp(p, kMagic, size) != 0) {
      return absl::InvalidArgumentError("not a wfm checkpoint (bad magic)");
    }
    return Corrupt(
        absl::StrCat("truncated (expected at least ", kPrefixBytes, " bytes, got ", size, ")"));
  }
  if (std::memcmp(p, kMagic, 8) != 0) {
    return absl::InvalidArgumentError("not a wfm checkpoint (bad magic)");
  }
  if (size < kPrefixBytes) {
    return Corrupt(
        absl::StrCat("truncated (expected at least ", kPrefixBytes, " bytes, got ", size, ")"));
  }
  const uint32_t version = GetU32(p + 8);
  if (version != kFormatVersion) {
    return absl::UnimplementedError(absl::StrCat("unsupported format version ", version,
                                                 " (this build reads ", kFormatVersion, ")"));
  }
  const uint32_t flags = GetU32(p + 12);
  if (flags != 0) {
    return absl::UnimplementedError(absl::StrCat("unsupported flags 0x", absl::Hex(flags),
                                                 " (format version ", kFormatVersion,
                                                 " defines none)"));
  }
  const uint64_t file_size = GetU64(p + 24);
  if (size < file_size) {
    return Corrupt(absl::StrCat("truncated (expected ", file_size, " bytes, got ", size, ")"));
  }
  if (size > file_size) {
    return Corrupt(absl::StrCat(size - file_size,
                                " unexpected bytes after the end of the checkpoint (expected ",
                                file_size, " bytes, got ", size, ")"));
  }
  const uint64_t header_size = GetU64(p + 16);
  if (header_size > kMaxHeaderBytes) {
    return Corrupt(
        absl::StrCat("header length ", header_size, " exceeds the limit of ", kMaxHeaderBytes));
  }
  const uint64_t data_start = Align(kPrefixBytes + header_size);
  if (file_size < data_start + kTrailerBytes) {
    return Corrupt(absl::StrCat("header length ", header_size, " does not fit in a file of ",
                                file_size, " bytes"));
  }
  const uint64_t trailer = file_size - kTrailerBytes;
  const uint64_t data_size = trailer - data_start;
  // Trailer and checksum.
  if (std::memcmp(p + trailer + 12, kEndMagic, 8) != 0) {
    return Corrupt("bad end marker (truncated or corrupt file)");
  }
  if (GetU64(p + trailer) != file_size) {
    return Corrupt(absl::StrCat("trailer file length ", GetU64(p + trailer),
                                " disagrees with the prefix's ", file_size));
  }
  const uint32_t stored_crc = GetU32(p + trailer + 8);
  const uint32_t crc = Crc32(p, trailer + 8);
  if (stored_crc != crc) {
    return Corrupt(absl::StrCat("checksum mismatch (stored ", absl::Hex(stored_crc), ", computed ",
                                absl::Hex(crc), ")"));
  }
  if (data_size % kAlignment != 0) {
    return Corrupt(
        absl::StrCat("data section of ", data_size, " bytes is not a multiple of ", kAlignment));
  }
  if (!AllZero(p + kPrefixBytes + header_size, p + data_start)) {
    return Corrupt("non-zero padding after the header");
  }

  // Header.
  const absl::string_view header_text(p + kPrefixBytes, header_size);
  if (io::JsonTooDeep(header_text, kMaxJsonDepth)) {
    return Corrupt(absl::StrCat("header: JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  json header;
  try {
    header = json::parse(header_text.begin(), header_text.end());
  } catch (const json::exception& e) {
    return Corrupt(absl::StrCat("header: invalid JSON: ", e.what()));
  }
  WFM_RETURN_IF_ERROR(CheckKeys(header, {"metadata", "tensors"}, "header"));
  json& metadata = header["metadata"];
  if (!metadata.is_object()) {
    return Corrupt(absl::StrCat("metadata: must be a JSON object, got ", metadata.type_name()));
  }
  const json& entries = header["tensors"];
  if (!entries.is_array()) {
    return Corrupt(absl::StrCat("header: 'tensors' must be an array, got ", entries.type_name()));
  }
  if (entries.size() > kMaxTensors) {
    return Corrupt(
        absl::StrCat("header: ", entries.size(), " tensors exceed the limit of ", kMaxTensors));
  }

  // Tensors: check every entry before allocating any.
  const char* const data = p + data_start;
  std::vector<TensorSpec> specs;
  specs.reserve(entries.size());
  absl::flat_hash_set<std::string> names;
  uint64_t end = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    WFM_ASSIGN_OR_RETURN(TensorSpec spec,
                         ParseEntry(entries[i], i, names, Align(end), data, data_size));
    if (!AllZero(data + end, data + spec.offset)) {
      return TensorError(spec.name, "non-zero padding before the tensor's data");
    }
    end = spec.offset + spec.nbytes;
    specs.push_back(std::move(spec));
  }
  if (Align(end) != data_size) {
    return Corrupt(
        absl::StrCat("data section of ", data_size, " bytes, but the tensors end at ", end));
  }
  if (!AllZero(data + end, data + data_size)) {
    return Corrupt("non-zero padding after the last tensor");
  }

  Checkpoint checkpoint;
  checkpoint.metadata = std::move(metadata);
  checkpoint.tensors.reserve(specs.size());
  for (TensorSpec& spec : specs) {
    at::Tensor t = at::empty(spec.shape, at::TensorOptions().dtype(spec.dtype->type));
    if (spec.nbytes > 0) std::memcpy(t.data_ptr(), data + spec.offset, spec.nbytes);
    checkpoint.tensors.emplace_back(std::move(spec.name), std::move(t));
  }
  return checkpoint;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io::ErrnoStatus(errno, "open", path);
  std::string bytes;
  absl::Status status = absl::OkStatus();
  struct stat info;
  if (fstat(fd, &info) != 0) {
    status = io::ErrnoStatus(errno, "stat", path);
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  } else {
    bytes.resize(static_cast<size_t>(info.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = read(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        status = io::ErrnoStatus(errno, "read", path);
        break;
      }
      if (n == 0) break;  // the file shrank: parse what is there (it reports truncation)
      done += static_cast<size_t>(n);
    }
    bytes.resize(done);
  }
  close(fd);
  WFM_RETURN_IF_ERROR(status);
  return bytes;
}

absl::Status WithPath(const absl::Status& status, absl::string_view path) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

}  // namespace

absl::string_view DtypeName(at::ScalarType dtype) {
  const DtypeInfo* info = FindDtype(dtype);
  return info == nullptr ? absl::string_view() : info->name;
}

absl::StatusOr<std::string> Serialize(const Checkpoint& checkpoint) {
  return GuardTorch("serialize checkpoint", [&] { return SerializeImpl(checkpoint); });
}

absl::StatusOr<Checkpoint> Parse(absl::string_view bytes) {
  return GuardTorch("parse checkpoint", [&] { return ParseImpl(bytes); });
}

absl::Status Write(const std::string& path, const Checkpoint& checkpoint) {
  absl::StatusOr<std::string> bytes = Serialize(checkpoint);
  if (!bytes.ok()) return WithPath(bytes.status(), path);
  return io::WriteFileAtomically(path, *bytes);
}

absl::StatusOr<Checkpoint> Read(const std::string& path) {
  absl::StatusOr<std::string> bytes = GuardTorch("read checkpoint", [&] { return ReadFile(path); });
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Checkpoint> checkpoint = Parse(*bytes);
  if (!checkpoint.ok()) return WithPath(checkpoint.status(), path);
  return checkpoint;
}

}  // namespace wfm::model::checkpoint
