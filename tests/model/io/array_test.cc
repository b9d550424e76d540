// The typed array's converting accessors, Python-style number text, UTF-8
// and UCS-4 conversion, and WriteFileAtomically.
#include "model/io/array.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "model/io/atomic_file.h"
#include "model/io/text_codec.h"
#include "tests/model/io/io_test_util.h"

namespace wfm::model::io {
namespace {

using namespace ::wfm::model::io::testing;  // NOLINT(build/namespaces): the io test helpers

TEST(IoArrayTest, IntegerConversions) {
  const Array ints = Array::FromInt32({2, 2}, {1, -2, 3, 4});
  EXPECT_EQ(ints.size(), 4);
  EXPECT_THAT(*ints.ToFloat32(), ElementsAre(1.0f, -2.0f, 3.0f, 4.0f));
  EXPECT_THAT(*ints.ToInt64(), ElementsAre(1, -2, 3, 4));
  EXPECT_THAT(*ints.ToStrings(), ElementsAre("1", "-2", "3", "4"));
  const auto not_bool = ints.ToBool();
  EXPECT_EQ(not_bool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_bool.status().message(), HasSubstr("element 1 (-2.0) of a int32 array"));

  const Array big = Array::FromInt64({1}, {int64_t{1} << 40});
  EXPECT_THAT(big.ToInt32().status().message(), HasSubstr("does not fit in int32"));
  const Array huge =
      Array::FromStorage(DType::kUInt64, {1}, std::vector<uint64_t>{uint64_t{1} << 63});
  EXPECT_THAT(huge.ToInt64().status().message(), HasSubstr("does not fit in int64"));
}

TEST(IoArrayTest, FloatConversions) {
  const Array floats = Array::FromFloat64({4}, {2.0, -0.0, 0.5, 1e20});
  EXPECT_THAT(floats.ToInt64().status().message(), HasSubstr("element 2 (0.5)"));
  EXPECT_THAT(Array::FromFloat64({1}, {1e20}).ToInt64().status().message(),
              HasSubstr("does not fit in int64"));
  EXPECT_THAT(*Array::FromFloat32({2}, {3.0f, -7.0f}).ToInt64(), ElementsAre(3, -7));
  EXPECT_THAT(*floats.ToStrings(), ElementsAre("2.0", "-0.0", "0.5", "1e+20"));
  EXPECT_THAT(*Array::FromFloat64({2}, {0.0, 1.0}).ToBool(), ElementsAre(0, 1));
  EXPECT_THAT(*Array::FromBool({2}, {1, 0}).ToStrings(), ElementsAre("True", "False"));
}

TEST(IoArrayTest, StringConversions) {
  const Array text = Array::FromStrings({3}, {"1", "-2", "30"});
  EXPECT_THAT(*text.ToInt64(), ElementsAre(1, -2, 30));
  EXPECT_THAT(*text.ToFloat64(), ElementsAre(1.0, -2.0, 30.0));
  const Array words = Array::FromStrings({2}, {"1.5", "cell"});
  EXPECT_THAT(words.ToFloat64().status().message(), HasSubstr("'cell'"));
  EXPECT_THAT(*Array::FromStrings({2}, {"True", "false"}).ToBool(), ElementsAre(1, 0));
}

TEST(IoArrayTest, ReshapeAndZeros) {
  const Array zeros = Array::Zeros(DType::kUInt16, {2, 3});
  EXPECT_EQ(zeros.values<uint16_t>().size(), 6u);
  const Array flat = zeros.Reshaped({6});
  EXPECT_EQ(flat.shape(), std::vector<int64_t>{6});
  EXPECT_EQ(Array::FromFloat64({}, {3.0}).size(), 1);  // a scalar
  EXPECT_EQ(ShapeString({3, 4}), "[3, 4]");
}

// The numbers Python's repr() prints, checked by the interpreter itself.
TEST(FormatDoubleTest, MatchesPythonRepr) {
  const std::vector<double> values = {0.1,
                                      2.5,
                                      100.0,
                                      1e16,
                                      1e15,
                                      123456789.0,
                                      1e-05,
                                      1e-4,
                                      0.0001234,
                                      -3.75,
                                      1.0 / 3,
                                      6.02214076e23,
                                      5e-324,
                                      1.7976931348623157e308,
                                      12345678901234567.0};
  std::string literals;
  for (double v : values) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    literals += std::string(buf) + ",";
  }
  const auto python =
      RunPython({"-c", "print(\"\\n\".join(repr(float(x)) for x in [" + literals + "]))"});
  ASSERT_EQ(python.exit_code, 0) << python.output;
  std::vector<std::string> ours;
  for (double v : values) ours.push_back(FormatDouble(v));
  std::string joined;
  for (const std::string& s : ours) joined += s + "\n";
  EXPECT_EQ(joined, python.output);
  EXPECT_EQ(FormatDouble(std::nan("")), "nan");
  EXPECT_EQ(FormatDouble(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(TextCodecTest, Utf8AndUcs4) {
  std::u32string code_points;
  ASSERT_TRUE(Utf8ToUcs4("a\xce\xb2\xe2\x82\xac\xf0\x9f\xa7\xac", &code_points));
  EXPECT_EQ(code_points, (std::u32string{U'a', U'\u03b2', U'\u20ac', U'\U0001F9EC'}));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  std::string utf8;
  const std::string ucs4(
      "\xb2\x03\x00\x00"
      "A\x00\x00\x00"
      "\x00\x00\x00\x00",
      12);
  ASSERT_TRUE(Ucs4ToUtf8(ucs4, /*big_endian=*/false, &utf8));
  EXPECT_EQ(utf8,
            "\xce\xb2"
            "A");
  EXPECT_FALSE(Ucs4ToUtf8(std::string("\x00\x00\x11\x00", 4), false, &utf8));
}

TEST(WriteFileAtomicallyTest, WritesReplacesAndCleansUp) {
  TempDir dir;
  const std::string path = dir.File("model.json");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second, longer").ok());
  EXPECT_EQ(ReadBytes(path), "second, longer");
  EXPECT_THAT(dir.List(), ElementsAre("model.json"));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 0044, 0u) << "new files follow the umask, not mkstemp's 0600";

  EXPECT_EQ(WriteFileAtomically(dir.File("none/x"), "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(WriteFileAtomically(dir.path() + "/", "x").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(mkdir(dir.File("sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileAtomically(dir.File("sub/inner"), "x").ok());
  const absl::Status over_folder = WriteFileAtomically(dir.File("sub"), "x");
  EXPECT_FALSE(over_folder.ok());
  EXPECT_THAT(dir.List(), ElementsAre("model.json", "sub"));
}

}  // namespace
}  // namespace wfm::model::io
