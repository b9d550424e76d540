// .npy/.npz reading against numpy-written fixtures, writing checked by numpy
// itself, corrupt inputs, and atomic replacement of the output file.
#include "model/io/npz.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "model/io/npy.h"
#include "tests/model/io/io_test_util.h"

namespace wfm::model::io {
namespace {

using namespace ::wfm::model::io::testing;  // NOLINT(build/namespaces): the io test helpers

// The dtype a numpy dtype string is read as.
DType DTypeOfNumpy(const std::string& descr) {
  const char kind = descr[1];
  const int size = descr.size() > 2 ? std::stoi(descr.substr(2)) : 0;
  switch (kind) {
    case 'b':
      return DType::kBool;
    case 'f':
      return size == 4 ? DType::kFloat32 : DType::kFloat64;
    case 'U':
    case 'S':
      return DType::kString;
    case 'i':
      return size == 1   ? DType::kInt8
             : size == 2 ? DType::kInt16
             : size == 4 ? DType::kInt32
                         : DType::kInt64;
    default:
      return size == 1   ? DType::kUInt8
             : size == 2 ? DType::kUInt16
             : size == 4 ? DType::kUInt32
                         : DType::kUInt64;
  }
}

// Exact comparison of an array with {"dtype", "shape", "values"} from
// expected.json.
void ExpectMatches(const Array& array, const nlohmann::json& want, const std::string& name) {
  SCOPED_TRACE(name);
  ASSERT_EQ(array.dtype(), DTypeOfNumpy(want["dtype"].get<std::string>()))
      << DTypeName(array.dtype()) << " vs " << want["dtype"];
  EXPECT_EQ(array.shape(), want["shape"].get<std::vector<int64_t>>());
  const nlohmann::json& values = want["values"];
  ASSERT_EQ(array.size(), static_cast<int64_t>(values.size()));
  for (int64_t i = 0; i < array.size(); ++i) {
    SCOPED_TRACE(i);
    switch (array.dtype()) {
      case DType::kFloat32:
        EXPECT_EQ(array.values<float>()[i], static_cast<float>(values[i].get<double>()));
        break;
      case DType::kFloat64:
        EXPECT_EQ(array.values<double>()[i], values[i].get<double>());
        break;
      case DType::kString:
        EXPECT_EQ(array.values<std::string>()[i], values[i].get<std::string>());
        break;
      case DType::kBool:
        EXPECT_EQ(array.values<uint8_t>()[i], values[i].get<bool>() ? 1 : 0);
        break;
      case DType::kUInt64:
        EXPECT_EQ(array.values<uint64_t>()[i], values[i].get<uint64_t>());
        break;
      default: {
        auto ints = array.ToInt64();
        ASSERT_TRUE(ints.ok()) << ints.status();
        EXPECT_EQ((*ints)[i], values[i].get<int64_t>());
      }
    }
  }
}

TEST(ReadNpzTest, ReadsEveryDtypeNumpyWrites) {
  auto arrays = ReadNpz(FixturePath("all_dtypes.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  const nlohmann::json& want = Expected()["npz"]["all_dtypes.npz"];
  ASSERT_EQ(arrays->size(), want.size());
  for (const auto& [name, spec] : want.items()) {
    ASSERT_EQ(arrays->count(name), 1u) << name;
    ExpectMatches(arrays->at(name), spec, name);
  }
}

TEST(ReadNpzTest, FortranOrderBecomesCOrder) {
  auto arrays = ReadNpz(FixturePath("all_dtypes.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  // numpy: np.arange(24).reshape(2, 3, 4) in any memory order; element
  // [i, j, k] = 12 i + 4 j + k.
  const Array& f = arrays->at("fortran");
  ASSERT_EQ(f.shape(), (std::vector<int64_t>{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f.values<float>()[i], static_cast<float>(i));
}

TEST(ReadNpzTest, UnicodeAndBytesBecomeUtf8) {
  auto arrays = ReadNpz(FixturePath("all_dtypes.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  EXPECT_THAT(arrays->at("unicode").values<std::string>(),
              ElementsAre("\xce\xb2-cell", "na\xc3\xafve T", "", "NK"));
  EXPECT_THAT(arrays->at("bytes").values<std::string>(), ElementsAre("alpha", "b", ""));
  EXPECT_THAT(arrays->at("big_endian").values<float>(), ElementsAre(1.5f, -2.25f, 1e30f));
}

TEST(ReadNpzTest, ReadsDeflatedMembers) {
  auto arrays = ReadNpz(FixturePath("clouds_compressed.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  const nlohmann::json& want = Expected()["npz"]["clouds_compressed.npz"];
  ExpectMatches(arrays->at("points"), want["points"], "points");
  ExpectMatches(arrays->at("offsets"), want["offsets"], "offsets");
}

TEST(ReadNpzTest, MissingFileIsNotFound) {
  auto arrays = ReadNpz("/nonexistent/folder/x.npz");
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kNotFound) << arrays.status();
  EXPECT_THAT(arrays.status().message(), HasSubstr("/nonexistent/folder/x.npz"));
}

TEST(ReadNpzTest, TruncatedArchiveIsRejected) {
  TempDir dir;
  const std::string bytes = ReadBytes(FixturePath("clouds_int_labels.npz"));
  for (size_t keep : {bytes.size() / 2, bytes.size() - 10, size_t{4}}) {
    SCOPED_TRACE(keep);
    const std::string path = dir.File("truncated.npz");
    WriteBytes(path, bytes.substr(0, keep));
    auto arrays = ReadNpz(path);
    EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument) << arrays.status();
    EXPECT_THAT(arrays.status().message(), HasSubstr("truncated or corrupt"));
    EXPECT_THAT(arrays.status().message(), HasSubstr(path));
  }
}

TEST(ReadNpzTest, CorruptMemberDataFailsTheCrcCheck) {
  TempDir dir;
  std::string bytes = ReadBytes(FixturePath("clouds_int_labels.npz"));
  // The first member (points.npy) is stored: its data starts after the
  // 30-byte local header, the name and the 128-byte .npy header.
  const size_t data = 30 + std::string("points.npy").size() + 128;
  ASSERT_EQ(bytes.substr(30, 10), "points.npy");
  bytes[data + 5] ^= 0x5A;
  const std::string path = dir.File("corrupt.npz");
  WriteBytes(path, bytes);
  auto arrays = ReadNpz(path);
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument) << arrays.status();
  EXPECT_THAT(arrays.status().message(), HasSubstr("CRC"));
  EXPECT_THAT(arrays.status().message(), HasSubstr("points.npy"));
}

TEST(ReadNpzTest, NotAZipFileIsRejected) {
  TempDir dir;
  const std::string path = dir.File("text.npz");
  WriteBytes(path, "this is not a zip archive, just some text that is long enough");
  auto arrays = ReadNpz(path);
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(arrays.status().message(), HasSubstr("not a valid .npz"));
}

TEST(ReadNpzTest, ObjectArraysAreRejected) {
  auto arrays = ReadNpz(FixturePath("bad_object_array.npz"));
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(arrays.status().message(), HasSubstr("points.npy"));
  EXPECT_THAT(arrays.status().message(), HasSubstr("object array"));
}

TEST(ReadNpzTest, Float16IsAnUnsupportedDtype) {
  auto arrays = ReadNpz(FixturePath("bad_points_f16.npz"));
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(arrays.status().message(), HasSubstr("unsupported dtype '<f2'"));
}

// A version 1.0 .npy file with header dictionary `dict` and raw `data`.
std::string NpyBytes(std::string dict, const std::string& data) {
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  return out + dict + data;
}

TEST(ParseNpyTest, ReadsHandWrittenHeaders) {
  // Python-2-style double quotes, no trailing comma, a 1-tuple shape.
  std::string data(8, '\0');
  data[0] = 1;
  data[4] = 2;
  auto parsed = ParseNpy(NpyBytes("{\"descr\": \"<i4\", \"fortran_order\": False, "
                                  "\"shape\": (2,)}",
                                  data),
                         "x.npy");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->values<int32_t>(), ElementsAre(1, 2));
  auto structured =
      ParseNpy(NpyBytes("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }", data),
               "s.npy");
  EXPECT_THAT(structured.status().message(), HasSubstr("structured dtypes"));
}

TEST(ParseNpyTest, TruncatedDataIsReportedBeforeAllocation) {
  auto full = SerializeNpy(ArrayView::Of({4, 3}, std::vector<float>(12, 1.0f)), "x");
  ASSERT_TRUE(full.ok());
  auto cut = ParseNpy(full->substr(0, full->size() - 8), "x.npy");
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cut.status().message(), HasSubstr("truncated"));
  // A header promising a huge shape fails fast, not with an allocation.
  auto rejected = ParseNpy(
      NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 3), }", ""),
      "huge.npy");
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rejected.status().message(), HasSubstr("truncated"));
}

TEST(ParseNpyTest, HugeStringWidthsAreRejectedWithoutOverflow) {
  // 17 elements of 8888888888888888881 bytes each: the byte count would
  // overflow int64 (found by the npy fuzzer).
  auto wide = ParseNpy(
      NpyBytes("{'descr': '|S8888888888888888881', 'fortran_order': False, 'shape': (17,), }", ""),
      "wide.npy");
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wide.status().message(), HasSubstr("string width must be in [0, 268435456]"));
  auto negative = ParseNpy(
      NpyBytes("{'descr': '<U-3', 'fortran_order': False, 'shape': (2,), }", ""), "neg.npy");
  EXPECT_THAT(negative.status().message(), HasSubstr("string width must be in"));
  // Widths that fit, counts whose product with them does not.
  auto product = ParseNpy(NpyBytes("{'descr': '<U268435456', 'fortran_order': False, "
                                   "'shape': (1099511627776,), }",
                                   ""),
                          "product.npy");
  EXPECT_EQ(product.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(product.status().message(), HasSubstr("is too large (1073741824 bytes per element)"));
}

TEST(ParseNpyTest, ZeroWidthStringArraysAreCapped) {
  // Zero-width strings take no bytes in the file: their count is capped, or a
  // 150-byte file could ask for gigabytes of empty strings (found by the npy
  // fuzzer).
  auto empty_strings = ParseNpy(
      NpyBytes("{'descr': '|S', 'fortran_order': True, 'shape': (5, 1195, 1195, 3), }", ""),
      "empty.npy");
  EXPECT_EQ(empty_strings.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty_strings.status().message(),
              HasSubstr("of zero-width strings ('|S') holds more than 65536 elements"));
  auto few_empty = ParseNpy(
      NpyBytes("{'descr': '<U0', 'fortran_order': False, 'shape': (3,), }", ""), "few.npy");
  ASSERT_TRUE(few_empty.ok()) << few_empty.status();
  EXPECT_THAT(few_empty->values<std::string>(), ElementsAre("", "", ""));
}

TEST(ParseNpyTest, CorruptHeaderIsRejected) {
  auto full = SerializeNpy(ArrayView::Of({2}, std::vector<int64_t>{1, 2}), "x");
  ASSERT_TRUE(full.ok());
  std::string bad = *full;
  bad.replace(bad.find("'shape'"), 7, "'shope'");
  auto parsed = ParseNpy(bad, "bad.npy");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("corrupt .npy header"));
  std::string magic = *full;
  magic[1] = 'X';
  EXPECT_THAT(ParseNpy(magic, "m.npy").status().message(), HasSubstr("bad magic"));
}

// Arrays of every writable dtype and their numpy description for the checker.
struct WriteCase {
  NpzArrays arrays;
  nlohmann::json expected;
};

WriteCase MakeWriteCase() {
  WriteCase c;
  auto add = [&](const std::string& name, Array array, const std::string& descr,
                 nlohmann::json values) {
    c.expected[name] = {{"dtype", descr}, {"shape", array.shape()}, {"values", values}};
    c.arrays.emplace(name, std::move(array));
  };
  const std::vector<float> f32 = {1.5f, -0.1f, 3e-38f, std::numeric_limits<float>::max(),
                                  0.0f, 7.0f};
  add("f32", Array::FromFloat32({2, 3}, f32), "<f4", std::vector<double>(f32.begin(), f32.end()));
  const std::vector<double> f64 = {0.1, -2.5e300, 1e-310};
  add("f64", Array::FromFloat64({3}, f64), "<f8", f64);
  const std::vector<int32_t> i32 = {-2147483647 - 1, 0, 2147483647, 5};
  add("i32", Array::FromInt32({2, 2}, i32), "<i4", i32);
  const std::vector<int64_t> i64 = {-(int64_t{1} << 62), 42};
  add("i64", Array::FromInt64({2}, i64), "<i8", i64);
  add("i8", Array::FromStorage(DType::kInt8, {3}, std::vector<int8_t>{-128, 0, 127}), "|i1",
      std::vector<int>{-128, 0, 127});
  add("u16", Array::FromStorage(DType::kUInt16, {2}, std::vector<uint16_t>{0, 65535}), "<u2",
      std::vector<int>{0, 65535});
  add("u64", Array::FromStorage(DType::kUInt64, {1}, std::vector<uint64_t>{1ull << 63}), "<u8",
      std::vector<uint64_t>{1ull << 63});
  add("flags", Array::FromBool({3}, {1, 0, 1}), "|b1", std::vector<bool>{true, false, true});
  const std::vector<std::string> text = {"\xce\xb2-cell", "", "T cell", "\xf0\x9f\xa7\xac"};
  add("labels", Array::FromStrings({4}, text), "<U6", text);
  add("empty", Array::FromFloat32({0, 3}, {}), "<f4", std::vector<double>{});
  add("scalar", Array::FromFloat64({}, {2.25}), "<f8", std::vector<double>{2.25});
  return c;
}

class WriteNpzTest : public ::testing::TestWithParam<bool> {};

TEST_P(WriteNpzTest, NumpyReadsWhatWeWriteAndSoDoWe) {
  TempDir dir;
  const WriteCase c = MakeWriteCase();
  const std::string path = dir.File("out.npz");
  NpzWriteOptions options;
  options.compress = GetParam();
  ASSERT_TRUE(WriteNpz(path, c.arrays, options).ok());
  EXPECT_THAT(dir.List(), ElementsAre("out.npz"));  // no temporary file left

  const std::string expected_path = dir.File("expected.json");
  WriteBytes(expected_path, c.expected.dump());
  const auto result = RunPythonChecker("check_npz.py", {path, expected_path});
  EXPECT_EQ(result.exit_code, 0) << result.output;

  auto back = ReadNpz(path);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const auto& [name, spec] : c.expected.items()) ExpectMatches(back->at(name), spec, name);
}

INSTANTIATE_TEST_SUITE_P(StoredAndDeflated, WriteNpzTest, ::testing::Bool());

TEST(WriteNpzTest, RejectsBadNamesAndText) {
  TempDir dir;
  const std::string path = dir.File("x.npz");
  NpzArrays unnamed;
  unnamed.emplace("", Array::FromInt64({1}, {1}));
  EXPECT_EQ(WriteNpz(path, unnamed).code(), absl::StatusCode::kInvalidArgument);
  NpzArrays bad_text;
  bad_text.emplace("labels", Array::FromStrings({1}, {"\xff\xfe"}));
  const absl::Status status = WriteNpz(path, bad_text);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("not valid UTF-8"));
  EXPECT_TRUE(dir.List().empty());
}

TEST(WriteNpzTest, EmptyArchiveIsAValidZip) {
  TempDir dir;
  const std::string path = dir.File("empty.npz");
  ASSERT_TRUE(WriteNpz(path, NpzArrays()).ok());
  auto back = ReadNpz(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->empty());
}

TEST(NpzAtomicWriteTest, ReplacesAnExistingFileCompletely) {
  TempDir dir;
  const std::string path = dir.File("data.npz");
  NpzArrays old_arrays;
  old_arrays.emplace("a", Array::FromInt64({3}, {1, 2, 3}));
  ASSERT_TRUE(WriteNpz(path, old_arrays).ok());
  NpzArrays new_arrays;
  new_arrays.emplace("b", Array::FromFloat32({2}, {4.0f, 5.0f}));
  ASSERT_TRUE(WriteNpz(path, new_arrays).ok());
  auto back = ReadNpz(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_THAT(back->at("b").values<float>(), ElementsAre(4.0f, 5.0f));
  EXPECT_THAT(dir.List(), ElementsAre("data.npz"));
}

TEST(NpzAtomicWriteTest, MissingFolderFailsWithoutLeavingFiles) {
  TempDir dir;
  NpzArrays arrays;
  arrays.emplace("a", Array::FromInt64({1}, {1}));
  const absl::Status status = WriteNpz(dir.File("no/such/folder/x.npz"), arrays);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_TRUE(dir.List().empty());
}

TEST(NpzAtomicWriteTest, FailedRenameRemovesTheTemporaryFile) {
  TempDir dir;
  // The target is a non-empty folder: everything up to the rename succeeds,
  // the rename fails.
  const std::string target = dir.File("target.npz");
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  WriteBytes(target + "/keep", "x");
  NpzArrays arrays;
  arrays.emplace("a", Array::FromInt64({2}, {1, 2}));
  const absl::Status status = WriteNpz(target, arrays);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("target.npz"));
  EXPECT_THAT(dir.List(), ElementsAre("target.npz"));
}

TEST(NpzAtomicWriteTest, WriteFailingMidwayKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir.File("data.npz");
  NpzArrays old_arrays;
  old_arrays.emplace("old", Array::FromInt64({2}, {7, 8}));
  ASSERT_TRUE(WriteNpz(path, old_arrays).ok());
  const std::string old_bytes = ReadBytes(path);

  // A child process with a 64 KiB file-size limit writes 4 MB: the write
  // fails with EFBIG part-way through (root is subject to RLIMIT_FSIZE too).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit limit = {64 << 10, 64 << 10};
    setrlimit(RLIMIT_FSIZE, &limit);
    NpzArrays big;
    big.emplace("big", Array::FromFloat32({1 << 20}, std::vector<float>(1 << 20, 1.0f)));
    const absl::Status status = WriteNpz(path, big);
    _exit(status.ok() ? 0 : (status.code() == absl::StatusCode::kResourceExhausted ? 2 : 3));
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_NE(WEXITSTATUS(wait_status), 0) << "the limited write must fail";
  EXPECT_EQ(ReadBytes(path), old_bytes);
  EXPECT_THAT(dir.List(), ElementsAre("data.npz"));
}

}  // namespace
}  // namespace wfm::model::io
