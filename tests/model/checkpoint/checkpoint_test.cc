#include "model/checkpoint/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/checkpoint/v1_small.h"
#include "tests/testing/temp_dir.h"

namespace wfm::model::checkpoint {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using ::wfm::testing::TempDir;

std::string ReadBytes(const std::string& path) { return ::wfm::testing::ReadFile(path); }
void WriteBytes(const std::string& path, const std::string& bytes) {
  ::wfm::testing::WriteFile(path, bytes);
}

uint64_t U64At(const std::string& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
uint32_t U32At(const std::string& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
void SetU64(std::string& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void SetU32(std::string& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

uint32_t ZlibCrc(const char* data, size_t n) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data), n));
}

// Recomputes the whole-file CRC (after a deliberate edit), taking the file
// length from the prefix.
void Reseal(std::string& b) {
  const size_t trailer = b.size() - kTrailerBytes;
  SetU32(b, trailer + 8, ZlibCrc(b.data(), trailer + 8));
}

uint64_t Align64(uint64_t n) { return (n + 63) / 64 * 64; }

// A file with the given header text and data section, with a valid prefix,
// padding, trailer and whole-file CRC: the inner checks are what is tested.
std::string Assemble(const std::string& header, const std::string& data) {
  const uint64_t data_start = Align64(32 + header.size());
  const uint64_t size = data_start + data.size() + 20;
  std::string b(size, '\0');
  std::memcpy(b.data(), "WFMCKPT\0", 8);
  SetU32(b, 8, 1);
  SetU32(b, 12, 0);
  SetU64(b, 16, header.size());
  SetU64(b, 24, size);
  std::memcpy(b.data() + 32, header.data(), header.size());
  std::memcpy(b.data() + data_start, data.data(), data.size());
  SetU64(b, size - 20, size);
  std::memcpy(b.data() + size - 8, "WFMEND\0\0", 8);
  Reseal(b);
  return b;
}

json Entry(const std::string& name, const std::string& dtype, json shape, uint64_t offset,
           uint64_t nbytes, const std::string& data) {
  return json{{"name", name},     {"dtype", dtype},   {"shape", std::move(shape)},
              {"offset", offset}, {"nbytes", nbytes}, {"crc32", ZlibCrc(data.data(), data.size())}};
}

std::string Header(const json& tensors, const json& metadata = json::object()) {
  return json{{"metadata", metadata}, {"tensors", tensors}}.dump();
}

// Two float32 tensors "a" [2] (offset 0) and "b" [3] (offset 64), as bytes.
struct TwoTensors {
  std::string a_bytes, b_bytes, data;
  TwoTensors() {
    const float a[2] = {1.5f, -2.0f};
    const float b[3] = {0.25f, 8.0f, -1.0f};
    a_bytes.assign(reinterpret_cast<const char*>(a), 8);
    b_bytes.assign(reinterpret_cast<const char*>(b), 12);
    data = std::string(128, '\0');
    std::memcpy(data.data(), a_bytes.data(), 8);
    std::memcpy(data.data() + 64, b_bytes.data(), 12);
  }
  json Entries() const {
    return json::array(
        {Entry("a", "float32", {2}, 0, 8, a_bytes), Entry("b", "float32", {3}, 64, 12, b_bytes)});
  }
};

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

Checkpoint SmallCheckpoint() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  Checkpoint c;
  c.metadata = {{"family", "gaussian"}, {"labels", {"a", "b"}}, {"loss", 0.5}};
  c.tensors.emplace_back("w", at::randn({4, 3}, gen, at::TensorOptions().dtype(at::kFloat)));
  c.tensors.emplace_back("steps", at::arange(5, at::TensorOptions().dtype(at::kLong)));
  c.tensors.emplace_back("mask", at::tensor(std::vector<int64_t>{1, 0, 1}).to(at::kBool));
  return c;
}

std::string SerializeOrDie(const Checkpoint& c) {
  absl::StatusOr<std::string> bytes = Serialize(c);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

void ExpectSameCheckpoint(const Checkpoint& got, const Checkpoint& want) {
  EXPECT_EQ(got.metadata, want.metadata);
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (size_t i = 0; i < want.tensors.size(); ++i) {
    EXPECT_EQ(got.tensors[i].first, want.tensors[i].first);
    EXPECT_TRUE(SameBytes(got.tensors[i].second, want.tensors[i].second)) << want.tensors[i].first;
  }
}

// ---------------------------------------------------------------------------
// Round trip and layout

TEST(CheckpointTest, RoundTripKeepsEveryDtypeValueAndOrder) {
  const Checkpoint want = testing::V1SmallCheckpoint();
  const std::string bytes = SerializeOrDie(want);
  absl::StatusOr<Checkpoint> got = Parse(bytes);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameCheckpoint(*got, want);
  for (const auto& [name, t] : got->tensors) {
    EXPECT_TRUE(t.is_contiguous()) << name;
    EXPECT_TRUE(t.device().is_cpu()) << name;
  }
}

TEST(CheckpointTest, StoresNonContiguousTensorsByValue) {
  Checkpoint c;
  const at::Tensor base = at::arange(12, at::TensorOptions().dtype(at::kDouble)).reshape({3, 4});
  c.tensors.emplace_back("t", base.t());  // [4, 3] view, not contiguous
  c.tensors.emplace_back("s", base.index({at::indexing::Slice(), 1}));  // stride 4
  absl::StatusOr<Checkpoint> got = Parse(SerializeOrDie(c));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(at::equal(got->tensors[0].second, base.t()));
  EXPECT_EQ(got->tensors[0].second.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(
      at::equal(got->tensors[1].second, at::tensor(std::vector<double>{1, 5, 9}, at::kDouble)));
}

TEST(CheckpointTest, ParsedTensorsOwnTheirMemory) {
  std::string bytes = SerializeOrDie(SmallCheckpoint());
  absl::StatusOr<Checkpoint> got = Parse(bytes);
  ASSERT_TRUE(got.ok()) << got.status();
  const at::Tensor w = got->tensors[0].second.clone();
  std::fill(bytes.begin(), bytes.end(), '\x7f');
  bytes = std::string();  // the input is gone
  EXPECT_TRUE(at::equal(got->tensors[0].second, w));
}

TEST(CheckpointTest, LayoutMatchesTheDocumentedFormat) {
  const Checkpoint c = SmallCheckpoint();
  const std::string b = SerializeOrDie(c);
  ASSERT_GE(b.size(), 52u);
  EXPECT_EQ(b.substr(0, 8), std::string("WFMCKPT\0", 8));
  EXPECT_EQ(U32At(b, 8), 1u);
  EXPECT_EQ(U32At(b, 12), 0u);
  const uint64_t header_size = U64At(b, 16);
  EXPECT_EQ(U64At(b, 24), b.size());
  const uint64_t data_start = Align64(32 + header_size);
  const uint64_t trailer = b.size() - 20;
  EXPECT_EQ(U64At(b, trailer), b.size());
  EXPECT_EQ(U32At(b, trailer + 8), ZlibCrc(b.data(), trailer + 8));
  EXPECT_EQ(b.substr(trailer + 12), std::string("WFMEND\0\0", 8));
  EXPECT_EQ(data_start % 64, 0u);
  EXPECT_EQ((trailer - data_start) % 64, 0u);

  const json header = json::parse(b.substr(32, header_size));
  EXPECT_EQ(header.at("metadata"), c.metadata);
  const json& entries = header.at("tensors");
  ASSERT_EQ(entries.size(), 3u);
  uint64_t expected_offset = 0;
  const char* names[] = {"w", "steps", "mask"};
  const char* dtypes[] = {"float32", "int64", "bool"};
  for (size_t i = 0; i < 3; ++i) {
    const json& e = entries[i];
    EXPECT_EQ(e.at("name"), names[i]);
    EXPECT_EQ(e.at("dtype"), dtypes[i]);
    const uint64_t offset = e.at("offset").get<uint64_t>();
    const uint64_t nbytes = e.at("nbytes").get<uint64_t>();
    EXPECT_EQ(offset, expected_offset);
    EXPECT_EQ(offset % 64, 0u);
    const at::Tensor& t = c.tensors[i].second;
    EXPECT_EQ(nbytes, t.nbytes());
    EXPECT_EQ(e.at("shape").get<std::vector<int64_t>>(), t.sizes().vec());
    EXPECT_EQ(std::memcmp(b.data() + data_start + offset, t.data_ptr(), nbytes), 0);
    EXPECT_EQ(e.at("crc32").get<uint32_t>(), ZlibCrc(b.data() + data_start + offset, nbytes));
    expected_offset = Align64(offset + nbytes);
  }
  EXPECT_EQ(trailer - data_start, expected_offset);
}

TEST(CheckpointTest, SerializeIsDeterministic) {
  EXPECT_EQ(SerializeOrDie(SmallCheckpoint()), SerializeOrDie(SmallCheckpoint()));
}

TEST(CheckpointTest, EmptyCheckpointRoundTrips) {
  Checkpoint empty;
  const std::string b = SerializeOrDie(empty);
  EXPECT_EQ(b.size(), Align64(32 + U64At(b, 16)) + 20);
  absl::StatusOr<Checkpoint> got = Parse(b);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->metadata, json::object());
  EXPECT_TRUE(got->tensors.empty());
}

TEST(CheckpointTest, NonFiniteMetadataNumbersBecomeNull) {
  Checkpoint c;
  c.metadata = {{"loss", std::nan("")}, {"ok", 1.5}};
  absl::StatusOr<Checkpoint> got = Parse(SerializeOrDie(c));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->metadata.at("loss").is_null());
  EXPECT_EQ(got->metadata.at("ok"), 1.5);
}

// ---------------------------------------------------------------------------
// Serialize rejects what the format cannot hold

absl::Status SerializeStatus(const Checkpoint& c) { return Serialize(c).status(); }

TEST(CheckpointTest, SerializeRejectsBadInput) {
  const at::Tensor f = at::zeros({2});
  {
    Checkpoint c;
    c.metadata = json::array();
    EXPECT_THAT(std::string(SerializeStatus(c).message()),
                HasSubstr("metadata: must be a JSON object"));
  }
  {
    Checkpoint c;
    c.tensors = {{"x", f}, {"x", f}};
    EXPECT_EQ(SerializeStatus(c).message(), "tensor 'x': name is repeated");
  }
  {
    Checkpoint c;
    c.tensors = {{"", f}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()), HasSubstr("must not be empty"));
  }
  {
    Checkpoint c;
    c.tensors = {{std::string(kMaxNameBytes + 1, 'n'), f}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()), HasSubstr("exceed the limit of 4096"));
  }
  {
    Checkpoint c;
    c.tensors = {{"bad\xff", f}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()), HasSubstr("not valid UTF-8"));
  }
  {
    Checkpoint c;
    c.tensors = {{"u", at::Tensor()}};
    EXPECT_EQ(SerializeStatus(c).message(), "tensor 'u': undefined");
  }
  {
    Checkpoint c;
    c.tensors = {{"h", at::zeros({2}, at::kHalf)}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()),
                HasSubstr("tensor 'h': dtype Half cannot be stored"));
  }
  {
    Checkpoint c;
    c.tensors = {{"r", at::zeros(std::vector<int64_t>(9, 1))}};
    EXPECT_EQ(SerializeStatus(c).message(), "tensor 'r': rank 9 exceeds the limit of 8");
  }
  {
    Checkpoint c;
    c.metadata = {{"text", "bad\xc3"}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()),
                HasSubstr("metadata: cannot be encoded"));
  }
  {
    Checkpoint c;
    json deep = 1;
    for (int i = 0; i < kMaxJsonDepth; ++i) deep = json::array({deep});
    c.metadata = {{"deep", deep}};
    EXPECT_THAT(std::string(SerializeStatus(c).message()), HasSubstr("nested deeper"));
  }
  {
    Checkpoint c;
    c.tensors = {{"x", f}, {"x", f}};
    EXPECT_EQ(SerializeStatus(c).code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CheckpointTest, DeepestAllowedMetadataRoundTrips) {
  Checkpoint c;
  json deep = 1;
  for (int i = 0; i < kMaxJsonDepth - 3; ++i) deep = json::array({deep});
  c.metadata = {{"deep", deep}};  // header object + metadata object + 97 arrays = 99 levels
  absl::StatusOr<Checkpoint> got = Parse(SerializeOrDie(c));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->metadata, c.metadata);
}

// ---------------------------------------------------------------------------
// Corruption

TEST(CheckpointTest, EverySingleByteChangeIsDetected) {
  const std::string good = SerializeOrDie(SmallCheckpoint());
  ASSERT_TRUE(Parse(good).ok());
  int checked = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (const unsigned char mask : {0x01, 0x80, 0xff, 0x5a}) {
      std::string bad = good;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      const absl::Status status = Parse(bad).status();
      ASSERT_FALSE(status.ok()) << "byte " << i << " ^ " << int{mask} << " went unnoticed";
      ASSERT_TRUE(status.code() == absl::StatusCode::kDataLoss ||
                  status.code() == absl::StatusCode::kInvalidArgument ||
                  status.code() == absl::StatusCode::kUnimplemented)
          << status;
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(good.size()) * 4);
}

TEST(CheckpointTest, EveryTruncationIsDetected) {
  const std::string good = SerializeOrDie(SmallCheckpoint());
  for (size_t n = 0; n < good.size(); ++n) {
    const absl::Status status = Parse(absl::string_view(good.data(), n)).status();
    ASSERT_EQ(status.code(), absl::StatusCode::kDataLoss) << n << ": " << status;
    const std::string expected =
        n < 32 ? absl::StrCat("truncated (expected at least 32 bytes, got ", n, ")")
               : absl::StrCat("truncated (expected ", good.size(), " bytes, got ", n, ")");
    ASSERT_EQ(status.message(), expected);
  }
}

TEST(CheckpointTest, AppendedBytesAreDetected) {
  const std::string good = SerializeOrDie(SmallCheckpoint());
  const absl::Status status = Parse(good + "x").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("1 unexpected bytes after the end"));
}

TEST(CheckpointTest, BadMagic) {
  for (const std::string& bytes : {std::string("PK\x03\x04 this is a zip file, not a checkpoint"),
                                   std::string("WFMCKPX\0rest", 12), std::string("x")}) {
    const absl::Status status = Parse(bytes).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), "not a wfm checkpoint (bad magic)");
  }
}

TEST(CheckpointTest, FutureVersionAndUnknownFlags) {
  std::string b = SerializeOrDie(SmallCheckpoint());
  SetU32(b, 8, 7);
  absl::Status status = Parse(b).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(status.message(), "unsupported format version 7 (this build reads 1)");
  b = SerializeOrDie(SmallCheckpoint());
  SetU32(b, 12, 2);
  status = Parse(b).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(status.message()), HasSubstr("unsupported flags 0x2"));
}

TEST(CheckpointTest, ChecksumMismatch) {
  std::string b = SerializeOrDie(SmallCheckpoint());
  b[b.size() - 30] ^= 1;  // inside the data section's last padding or data
  const absl::Status status = Parse(b).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), StartsWith("checksum mismatch"));
}

// Prefix and trailer fields edited with the CRC recomputed.
TEST(CheckpointTest, InconsistentLengthFields) {
  const std::string good = SerializeOrDie(SmallCheckpoint());
  {
    std::string b = good;
    SetU64(b, 16, kMaxHeaderBytes + 1);
    EXPECT_THAT(std::string(Parse(b).status().message()),
                HasSubstr("exceeds the limit of 67108864"));
  }
  {
    std::string b = good;
    SetU64(b, 16, b.size());
    Reseal(b);
    EXPECT_THAT(std::string(Parse(b).status().message()), HasSubstr("does not fit in a file of"));
  }
  {
    std::string b = good;
    SetU64(b, b.size() - 20, 12345);
    Reseal(b);
    EXPECT_EQ(Parse(b).status().message(),
              absl::StrCat("trailer file length 12345 disagrees with the prefix's ", b.size()));
  }
  {
    std::string b = good;
    b[b.size() - 3] = 'X';
    EXPECT_EQ(Parse(b).status().message(), "bad end marker (truncated or corrupt file)");
  }
  {
    // A byte in the zero padding between the header and the data section.
    const std::string header = Header(json::array());
    ASSERT_NE((32 + header.size()) % 64, 0u);
    std::string b = Assemble(header, "");
    ASSERT_TRUE(Parse(b).ok());
    b[32 + header.size()] = 'x';
    Reseal(b);
    EXPECT_EQ(Parse(b).status().message(), "non-zero padding after the header");
  }
}

// Header-level and tensor-level checks, each on a file whose outer structure
// and checksum are valid.
struct BadHeaderCase {
  std::string label;
  std::string header;
  std::string data;
  std::string message;  // expected substring
};

std::vector<BadHeaderCase> BadHeaderCases() {
  const TwoTensors two;
  const std::string a = two.a_bytes;
  std::vector<BadHeaderCase> cases;
  auto add = [&](std::string label, std::string header, std::string data, std::string message) {
    cases.push_back({std::move(label), std::move(header), std::move(data), std::move(message)});
  };
  auto with_a = [&](json entry) { return Header(json::array({std::move(entry)})); };
  std::string a64 = a + std::string(56, '\0');
  json e = Entry("a", "float32", {2}, 0, 8, a);
  // The header of `e` with its `key` set to `value`.
  auto a_with = [&](const std::string& key, json value) {
    json x = e;
    x[key] = std::move(value);
    return with_a(x);
  };

  add("not json", "{\"metadata\": {", "", "header: invalid JSON");
  add("not an object", "[]", "", "header: must be a JSON object, got array");
  add("missing tensors", R"({"metadata": {}})", "", "header: missing key 'tensors'");
  add("unknown key", R"({"metadata": {}, "tensors": [], "x": 1})", "", "header: unknown key 'x'");
  add("metadata not object", R"({"metadata": 3, "tensors": []})", "",
      "metadata: must be a JSON object, got number");
  add("tensors not array", R"({"metadata": {}, "tensors": {}})", "",
      "'tensors' must be an array, got object");
  add("entry not object", Header(json::array({1})), "", "tensor #0: must be a JSON object");
  {
    json x = e;
    x.erase("name");
    add("missing name", with_a(x), a64, "tensor #0: 'name' must be a string");
  }
  add("name not string", a_with("name", 5), a64, "tensor #0: 'name' must be a string");
  add("empty name", a_with("name", ""), a64, "tensor #0: empty name");
  add("long name", a_with("name", std::string(kMaxNameBytes + 1, 'n')), a64,
      "bytes exceeds the limit of 4096");
  {
    json x = e;
    x.erase("crc32");
    add("missing crc", with_a(x), a64, "tensor 'a': missing key 'crc32'");
  }
  add("unknown entry key", a_with("extra", true), a64, "tensor 'a': unknown key 'extra'");
  add("unknown dtype", a_with("dtype", "float16"), a64,
      "tensor 'a': unknown dtype \"float16\" (this build reads float32, float64, int64, "
      "int32, bool, uint8)");
  add("dtype not string", a_with("dtype", 4), a64, "tensor 'a': unknown dtype 4");
  add("shape not array", a_with("shape", "2"), a64, "tensor 'a': 'shape' must be an array");
  add("rank 9", a_with("shape", std::vector<int>(9, 1)), a64,
      "tensor 'a': rank 9 exceeds the limit of 8");
  add("negative dim", a_with("shape", {-2}), a64,
      "tensor 'a': negative dimension -2 in shape [-2]");
  add("float dim", a_with("shape", {2.0}), a64, "must be a non-negative integer, got 2.0");
  add("absurd shape", a_with("shape", {uint64_t{1} << 40, uint64_t{1} << 40}), a64,
      "has more elements than an int64 holds");
  {
    json x = e;
    x["shape"] = {uint64_t{1} << 31, uint64_t{1} << 31};
    x["dtype"] = "float64";
    add("byte count overflow", with_a(x), a64, "overflows a byte count");
  }
  add("huge nbytes", a_with("nbytes", uint64_t{1} << 62), a64,
      "nbytes 4611686018427387904 does not match shape [2] of float32 (8 bytes)");
  add("negative nbytes", a_with("nbytes", -8), a64,
      "nbytes: must be a non-negative integer, got -8");
  {
    // A huge tensor whose byte count is consistent: rejected before allocating.
    json x = e;
    x["shape"] = {uint64_t{1} << 34};
    x["nbytes"] = uint64_t{1} << 36;
    add("huge consistent tensor", with_a(x), a64,
        "tensor 'a': bytes [0, 0 + 68719476736) lie outside the data section of 64 bytes");
  }
  {
    json x = Entry("a", "float32", {32}, 0, 128, std::string(128, '\0'));
    add("past the data section", with_a(x), a64, "lie outside the data section of 64 bytes");
  }
  add("offset out of range", a_with("offset", uint64_t{1} << 63), a64,
      "tensor 'a': offset 9223372036854775808, expected 0");
  add("negative offset", a_with("offset", -64), a64, "offset: must be a non-negative integer");
  {
    json entries = two.Entries();
    entries[1]["offset"] = 8;
    add("misaligned offset", Header(entries), two.data,
        "tensor 'b': offset 8, expected 64 (tensors are packed in header order, 64-byte aligned)");
  }
  {
    json entries = two.Entries();
    entries[1]["name"] = "a";
    add("duplicate names", Header(entries), two.data, "tensor 'a': name is repeated");
  }
  add("tensor crc", a_with("crc32", ZlibCrc(a.data(), 8) ^ 1), a64,
      "tensor 'a': checksum mismatch");
  add("crc too large", a_with("crc32", uint64_t{1} << 40), a64,
      "crc32: 1099511627776 exceeds 4294967295");
  {
    const std::string bools("\x01\x02\x00", 3);
    add("bool value", with_a(Entry("m", "bool", {3}, 0, 3, bools)), bools + std::string(61, '\0'),
        "tensor 'm': bool value 2 at element 1 (must be 0 or 1)");
  }
  add("data section too long", with_a(e), a64 + std::string(64, '\0'),
      "data section of 128 bytes, but the tensors end at 8");
  add("data section too short", Header(json::array()), a64,
      "data section of 64 bytes, but the tensors end at 0");
  {
    std::string data = two.data;
    data[30] = 1;
    add("padding between tensors", Header(two.Entries()), data,
        "tensor 'b': non-zero padding before the tensor's data");
  }
  {
    std::string data = a64;
    data[63] = 1;
    add("padding after the last tensor", with_a(e), data, "non-zero padding after the last tensor");
  }
  {
    std::string deep = "1";
    for (int i = 0; i < 150; ++i) deep = "[" + deep + "]";
    add("deep nesting", R"({"metadata": {"x": )" + deep + R"(}, "tensors": []})", "",
        "header: JSON nested deeper than 100 levels");
  }
  {
    std::string nested_strings =
        R"({"metadata": {"x": ")" + std::string(200, '[') + R"("}, "tensors": 5})";
    add("brackets inside strings do not count", nested_strings, "",
        "'tensors' must be an array, got number");
  }
  add("invalid utf-8", "{\"metadata\": {\"x\": \"\xff\"}, \"tensors\": []}", "",
      "header: invalid JSON");
  return cases;
}

TEST(CheckpointTest, BadHeadersGiveClearErrors) {
  for (const BadHeaderCase& c : BadHeaderCases()) {
    SCOPED_TRACE(c.label);
    const absl::Status status = Parse(Assemble(c.header, c.data)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

TEST(CheckpointTest, AssembledValidFileParses) {
  // The builder used by the bad-header cases makes valid files from valid parts.
  const TwoTensors two;
  absl::StatusOr<Checkpoint> got = Parse(Assemble(Header(two.Entries()), two.data));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->tensors.size(), 2u);
  EXPECT_TRUE(
      at::equal(got->tensors[1].second, at::tensor(std::vector<float>{0.25f, 8.0f, -1.0f})));
}

// Random edits of the header with the checksum recomputed, so they reach the
// header and tensor checks: Parse must answer (ok or an error), never crash.
// Edits that keep the file valid (a digit of a value, say) must parse into a
// checkpoint that serializes back to a valid file.
TEST(CheckpointTest, ResealedRandomHeaderEditsNeverCrash) {
  const std::string good = SerializeOrDie(testing::V1SmallCheckpoint());
  const uint64_t header_size = U64At(good, 16);
  const std::string alphabet = "0123456789-+.eE[]{},:\"\\ntfalsru\x00\xff";
  std::mt19937_64 rng(20240101);
  int accepted = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::string b = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = 32 + rng() % header_size;
      b[at] = alphabet[rng() % alphabet.size()];
    }
    Reseal(b);
    absl::StatusOr<Checkpoint> got = Parse(b);
    if (!got.ok()) {
      ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
      continue;
    }
    ++accepted;
    ASSERT_TRUE(Parse(SerializeOrDie(*got)).ok());
  }
  EXPECT_LT(accepted, 20000);
}

TEST(CheckpointTest, TooManyTensors) {
  std::string header = R"({"metadata": {}, "tensors": [)";
  header.reserve(header.size() + 3 * (kMaxTensors + 1) + 4);
  for (uint64_t i = 0; i <= kMaxTensors; ++i) header += i == 0 ? "{}" : ",{}";
  header += "]}";
  const absl::Status status = Parse(Assemble(header, "")).status();
  EXPECT_EQ(status.message(), "header: 1000001 tensors exceed the limit of 1000000");
}

// ---------------------------------------------------------------------------
// Files

TEST(CheckpointFileTest, WriteThenReadRoundTrips) {
  TempDir dir;
  const Checkpoint want = testing::V1SmallCheckpoint();
  ASSERT_TRUE(Write(dir.File("model.wfm"), want).ok());
  EXPECT_THAT(dir.List(), ElementsAre("model.wfm"));
  absl::StatusOr<Checkpoint> got = Read(dir.File("model.wfm"));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameCheckpoint(*got, want);
  EXPECT_EQ(ReadBytes(dir.File("model.wfm")), SerializeOrDie(want));
}

TEST(CheckpointFileTest, WriteIntoMissingFolderFailsCleanly) {
  TempDir dir;
  const absl::Status status = Write(dir.File("no/such/folder/model.wfm"), SmallCheckpoint());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("no/such/folder"));
  EXPECT_TRUE(dir.List().empty());
}

TEST(CheckpointFileTest, OverwriteLeavesTheCompleteNewFile) {
  TempDir dir;
  const std::string path = dir.File("model.wfm");
  ASSERT_TRUE(Write(path, SmallCheckpoint()).ok());
  const Checkpoint second = testing::V1SmallCheckpoint();
  ASSERT_TRUE(Write(path, second).ok());
  absl::StatusOr<Checkpoint> got = Read(path);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameCheckpoint(*got, second);
  EXPECT_THAT(dir.List(), ElementsAre("model.wfm"));
}

TEST(CheckpointFileTest, FailedRenameLeavesNoTemporaryFile) {
  TempDir dir;
  // The target is a non-empty folder: the temporary file is written, the
  // rename over the folder fails, and the temporary must be removed.
  const std::string target = dir.File("model.wfm");
  std::filesystem::create_directory(target);
  WriteBytes(target + "/keep", "x");
  const absl::Status status = Write(target, SmallCheckpoint());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("model.wfm"));
  EXPECT_THAT(dir.List(), ElementsAre("model.wfm"));
  EXPECT_THAT(TempDir::ListDir(target), ElementsAre("keep"));
}

TEST(CheckpointFileTest, UnserializableCheckpointWritesNothing) {
  TempDir dir;
  const std::string path = dir.File("model.wfm");
  ASSERT_TRUE(Write(path, SmallCheckpoint()).ok());
  const std::string before = ReadBytes(path);
  Checkpoint bad;
  bad.tensors = {{"x", at::zeros({1}, at::kHalf)}};
  const absl::Status status = Write(path, bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith(path + ": tensor 'x': dtype Half"));
  EXPECT_EQ(ReadBytes(path), before);
  EXPECT_THAT(dir.List(), ElementsAre("model.wfm"));
}

TEST(CheckpointFileTest, ReadErrorsNameThePath) {
  TempDir dir;
  const std::string path = dir.File("model.wfm");
  absl::Status status = Read(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));

  WriteBytes(path, "PK\x03\x04 not a checkpoint at all");
  status = Read(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), path + ": not a wfm checkpoint (bad magic)");

  const std::string good = SerializeOrDie(SmallCheckpoint());
  WriteBytes(path, good.substr(0, 100));
  status = Read(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(),
            absl::StrCat(path, ": truncated (expected ", good.size(), " bytes, got 100)"));

  status = Read(dir.path()).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(dir.path()));
}

// ---------------------------------------------------------------------------
// The committed version-1 fixture (format compatibility)

std::string FixturePath() {
  return std::string(WFM_SOURCE_DIR) + "/tests/fixtures/checkpoint/v1_small.wfm";
}

TEST(CheckpointFixtureTest, Version1FileStillLoads) {
  absl::StatusOr<Checkpoint> got = Read(FixturePath());
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameCheckpoint(*got, testing::V1SmallCheckpoint());
  EXPECT_EQ(got->metadata.at("labels").at(2), "Müller glia");
}

TEST(CheckpointFixtureTest, Version1ModelComputesTheHandComputedOutput) {
  absl::StatusOr<Checkpoint> got = Read(FixturePath());
  ASSERT_TRUE(got.ok()) << got.status();
  torch::nn::Sequential net(torch::nn::Linear(2, 3), torch::nn::Tanh(), torch::nn::Linear(3, 1));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.fill_(0.0);
    for (const auto& [name, t] : got->tensors) {
      if (name.rfind("model.", 0) != 0) continue;
      net->named_parameters()[name.substr(6)].copy_(t);
    }
  }
  const at::Tensor x = at::tensor(std::vector<float>{1.0f, 2.0f}).reshape({1, 2});
  const float y = net->forward(x).item<float>();
  // y = w2 · tanh(W1 x + b1) + b2, in double.
  const std::vector<float> w1 = testing::V1SmallW1(), b1 = testing::V1SmallB1(),
                           w2 = testing::V1SmallW2(), b2 = testing::V1SmallB2();
  double expected = b2[0];
  for (int i = 0; i < 3; ++i) {
    expected += w2[i] * std::tanh(w1[2 * i] * 1.0 + w1[2 * i + 1] * 2.0 + b1[i]);
  }
  EXPECT_NEAR(y, expected, 1e-6);
}

TEST(CheckpointFixtureTest, WriterStillProducesTheVersion1Bytes) {
  // Fails when the writer's output changes: that needs a format version bump
  // (and a new fixture), not a silent change of version-1 files.
  EXPECT_EQ(SerializeOrDie(testing::V1SmallCheckpoint()), ReadBytes(FixturePath()));
}

TEST(CheckpointFixtureTest, FixtureIsSmall) {
  EXPECT_LT(ReadBytes(FixturePath()).size(), 20u * 1024u);
}

}  // namespace
}  // namespace wfm::model::checkpoint
