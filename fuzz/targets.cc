#include "fuzz/targets.h"

#include <hdf5.h>
#include <zlib.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/util.h"
#include "model/checkpoint/checkpoint.h"
#include "model/io/array.h"
#include "model/io/h5ad.h"
#include "model/io/json_depth.h"
#include "model/io/npy.h"
#include "model/io/npz.h"
#include "model/io/point_sets.h"

namespace wfm::fuzz {
namespace {

namespace io = ::wfm::model::io;
namespace ckpt = ::wfm::model::checkpoint;

// ---------------------------------------------------------------- arrays

bool SameArray(const io::Array& a, const io::Array& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == io::DType::kString) {
    return a.values<std::string>() == b.values<std::string>();
  }
  const size_t n = static_cast<size_t>(a.size()) * static_cast<size_t>(io::DTypeSize(a.dtype()));
  return n == 0 || std::memcmp(a.raw_data(), b.raw_data(), n) == 0;
}

// What every reader of an Array may call; failures are fine, crashes are not.
void ExerciseArray(const io::Array& array) {
  (void)array.ToFloat32();
  (void)array.ToFloat64();
  (void)array.ToInt64();
  (void)array.ToInt32();
  (void)array.ToBool();
  if (array.size() <= 4096) (void)array.ToStrings();
  (void)io::ShapeString(array.shape());
}

// ---------------------------------------------------------------- checkpoint

constexpr uint64_t Align64(uint64_t n) {
  return (n + ckpt::kAlignment - 1) & ~(ckpt::kAlignment - 1);
}

void PutU32(std::string& s, size_t at, uint32_t v) { std::memcpy(s.data() + at, &v, 4); }
void PutU64(std::string& s, size_t at, uint64_t v) { std::memcpy(s.data() + at, &v, 8); }
uint64_t GetU64(const std::string& s, size_t at) {
  uint64_t v;
  std::memcpy(&v, s.data() + at, 8);
  return v;
}

uint32_t Crc32(const char* p, size_t n) {
  return n == 0 ? 0 : static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(p), n));
}

// `bytes` with a valid prefix (magic, version, flags, file length) and
// trailer (file length, whole-file CRC, end magic); empty when too short.
std::string FixFileFields(std::string bytes) {
  const size_t size = bytes.size();
  if (size < ckpt::kPrefixBytes + ckpt::kTrailerBytes) return std::string();
  std::memcpy(bytes.data(), ckpt::kMagic, 8);
  PutU32(bytes, 8, ckpt::kFormatVersion);
  PutU32(bytes, 12, 0);
  PutU64(bytes, 24, size);
  const size_t trailer = size - ckpt::kTrailerBytes;
  PutU64(bytes, trailer, size);
  std::memcpy(bytes.data() + trailer + 12, ckpt::kEndMagic, 8);
  PutU32(bytes, trailer + 8, Crc32(bytes.data(), trailer + 8));
  return bytes;
}

// `bytes` (with valid file fields) whose header's tensor entries carry the
// CRC-32 of the data they point at; the header is re-encoded and the data
// section moved behind it. Empty when the header is not a JSON object with
// a tensor array.
std::string FixTensorCrcs(const std::string& bytes) {
  const size_t size = bytes.size();
  if (size < ckpt::kPrefixBytes + ckpt::kTrailerBytes) return std::string();
  const uint64_t header_size = GetU64(bytes, 16);
  if (header_size > size - ckpt::kPrefixBytes - ckpt::kTrailerBytes) return std::string();
  const uint64_t data_start = Align64(ckpt::kPrefixBytes + header_size);
  if (data_start > size - ckpt::kTrailerBytes) return std::string();
  const absl::string_view text(bytes.data() + ckpt::kPrefixBytes, header_size);
  if (model::io::JsonTooDeep(text, ckpt::kMaxJsonDepth)) return std::string();
  nlohmann::json header = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (!header.is_object() || !header.contains("tensors") || !header["tensors"].is_array()) {
    return std::string();
  }
  const char* data = bytes.data() + data_start;
  const uint64_t data_size = size - ckpt::kTrailerBytes - data_start;
  for (nlohmann::json& entry : header["tensors"]) {
    if (!entry.is_object()) continue;
    const auto offset = entry.find("offset");
    const auto nbytes = entry.find("nbytes");
    if (offset == entry.end() || nbytes == entry.end() || !offset->is_number_unsigned() ||
        !nbytes->is_number_unsigned()) {
      continue;
    }
    const uint64_t o = offset->get<uint64_t>(), n = nbytes->get<uint64_t>();
    if (o > data_size || n > data_size - o) continue;
    entry["crc32"] = Crc32(data + o, n);
  }
  std::string text_out;
  try {
    text_out = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception&) {
    return std::string();
  }
  const uint64_t new_start = Align64(ckpt::kPrefixBytes + text_out.size());
  std::string out(new_start + data_size + ckpt::kTrailerBytes, '\0');
  PutU64(out, 16, text_out.size());
  std::memcpy(out.data() + ckpt::kPrefixBytes, text_out.data(), text_out.size());
  if (data_size > 0) std::memcpy(out.data() + new_start, data, data_size);
  return FixFileFields(std::move(out));
}

void ParseCheckpoint(absl::string_view bytes) {
  absl::StatusOr<ckpt::Checkpoint> parsed = ckpt::Parse(bytes);
  if (!parsed.ok()) return;
  // A parsed checkpoint re-encodes, and the encoding is a fixed point.
  absl::StatusOr<std::string> first = ckpt::Serialize(*parsed);
  if (!first.ok()) {
    Fail(absl::StrCat("parsed checkpoint does not serialize: ", first.status().ToString()));
  }
  absl::StatusOr<ckpt::Checkpoint> again = ckpt::Parse(*first);
  if (!again.ok()) {
    Fail(absl::StrCat("re-serialized checkpoint does not parse: ", again.status().ToString()));
  }
  absl::StatusOr<std::string> second = ckpt::Serialize(*again);
  if (!second.ok() || *second != *first) Fail("checkpoint serialization is not a fixed point");
}

}  // namespace

int FuzzNpy(const uint8_t* data, size_t size) {
  absl::StatusOr<io::Array> array = io::ParseNpy(Bytes(data, size), "fuzz.npy");
  if (!array.ok()) return 0;
  ExerciseArray(*array);
  absl::StatusOr<std::string> encoded = io::SerializeNpy(io::ArrayView::Of(*array), "fuzz.npy");
  if (!encoded.ok()) {
    // Only byte strings that are not UTF-8 may fail to re-encode.
    if (array->dtype() != io::DType::kString) {
      Fail(absl::StrCat("parsed numeric array does not re-encode: ", encoded.status().ToString()));
    }
    return 0;
  }
  absl::StatusOr<io::Array> again = io::ParseNpy(*encoded, "again.npy");
  if (!again.ok()) {
    Fail(absl::StrCat("re-encoded array does not parse: ", again.status().ToString()));
  }
  if (!SameArray(*array, *again)) Fail("re-encoded array differs");
  return 0;
}

int FuzzNpz(const uint8_t* data, size_t size) {
  const std::string path = WriteScratchFile("input.npz", Bytes(data, size));
  absl::StatusOr<io::NpzArrays> arrays = io::ReadNpz(path);
  if (arrays.ok()) {
    for (const auto& [name, array] : *arrays) ExerciseArray(array);
    (void)io::DetectNpzKind(*arrays, "input.npz");
    const auto labels = arrays->find("labels");
    if (labels != arrays->end()) (void)io::LabelsFromArray(labels->second, "input.npz");
  }
  absl::StatusOr<io::PointCloudSet> clouds = io::ReadPointCloudsNpz(path);
  if (clouds.ok() && !io::ValidatePointCloudSet(*clouds, "clouds").ok()) {
    Fail("a loaded point-cloud set does not validate");
  }
  absl::StatusOr<io::GaussianSet> gaussians = io::ReadGaussiansNpz(path);
  if (gaussians.ok() && !io::ValidateGaussianSet(*gaussians, "gaussians").ok()) {
    Fail("a loaded Gaussian set does not validate");
  }
  return 0;
}

int FuzzH5ad(const uint8_t* data, size_t size) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::string path = WriteScratchFile("input.h5ad", Bytes(data, size));
  {
    absl::StatusOr<io::H5adFile> file = io::H5adFile::Open(path);
    if (file.ok()) {
      (void)file->n_obs();
      (void)file->n_vars();
      (void)file->ReadX();
      (void)file->ReadFeatures("X");
      (void)file->ReadFeatures("bogus");
      if (absl::StatusOr<std::vector<std::string>> keys = file->ObsmKeys(); keys.ok()) {
        for (const std::string& key : *keys) {
          (void)file->ReadObsm(key);
          (void)file->ReadObsmArray(key);
          (void)file->ReadFeatures(absl::StrCat("obsm:", key));
        }
      }
      if (absl::StatusOr<std::vector<std::string>> columns = file->ObsColumns(); columns.ok()) {
        for (const std::string& name : *columns) {
          absl::StatusOr<io::ObsColumn> column = file->ReadObsColumn(name);
          if (!column.ok()) continue;
          (void)column->size();
          (void)column->ToStrings();
          (void)io::ObsColumnToLabels(*column, name);
        }
      }
      (void)file->ObsNames();
      (void)file->VarNames();
    }
  }
  if (io::OpenHdf5ObjectCount() != 0) Fail("HDF5 objects left open after the file was closed");
  // HDF5 keeps freed blocks on its free lists; release them so that memory
  // stays bounded over millions of inputs (the fuzzer's RSS limit).
  H5garbage_collect();
  return 0;
}

int FuzzCheckpoint(const uint8_t* data, size_t size) {
  const absl::string_view bytes = Bytes(data, size);
  ParseCheckpoint(bytes);
  std::string fixed = FixFileFields(std::string(bytes));
  if (fixed.empty()) return 0;
  ParseCheckpoint(fixed);
  const std::string crcs = FixTensorCrcs(fixed);
  if (!crcs.empty()) ParseCheckpoint(crcs);
  return 0;
}

}  // namespace wfm::fuzz
