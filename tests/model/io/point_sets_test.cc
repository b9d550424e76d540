// The point-cloud and Gaussian .npz layouts: numpy-written fixtures read
// exactly, every validation rule rejected with a message naming file, array
// and rule, and writes checked by numpy.
#include "model/io/point_sets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/model/io/io_test_util.h"

namespace wfm::model::io {
namespace {

using namespace ::wfm::model::io::testing;  // NOLINT(build/namespaces): the io test helpers

const nlohmann::json& Npz(const std::string& name) { return Expected()["npz"][name]; }

void ExpectCloudsMatch(const PointCloudSet& set, const std::string& fixture) {
  const nlohmann::json& want = Npz(fixture);
  EXPECT_EQ(set.dim, want["points"]["shape"][1].get<int64_t>());
  EXPECT_EQ(set.points, Floats(want["points"]["values"]));
  EXPECT_EQ(set.offsets, want["offsets"]["values"].get<std::vector<int64_t>>());
}

TEST(ReadPointCloudsTest, IntegerLabels) {
  auto set = ReadPointCloudsNpz(FixturePath("clouds_int_labels.npz"));
  ASSERT_TRUE(set.ok()) << set.status();
  ExpectCloudsMatch(*set, "clouds_int_labels.npz");
  EXPECT_EQ(set->num_clouds(), 4);
  ASSERT_EQ(set->labels.kind, Labels::Kind::kInteger);
  EXPECT_THAT(set->labels.integers, ElementsAre(2, 0, 1, 2));
}

TEST(ReadPointCloudsTest, UnicodeAndByteStringLabels) {
  auto unicode = ReadPointCloudsNpz(FixturePath("clouds_str_labels.npz"));
  ASSERT_TRUE(unicode.ok()) << unicode.status();
  ExpectCloudsMatch(*unicode, "clouds_str_labels.npz");
  ASSERT_EQ(unicode->labels.kind, Labels::Kind::kString);
  EXPECT_THAT(unicode->labels.strings, ElementsAre("astrocyte", "\xce\xb2-cell", "astrocyte"));

  auto bytes = ReadPointCloudsNpz(FixturePath("clouds_bytes_labels.npz"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_EQ(bytes->labels.kind, Labels::Kind::kString);
  EXPECT_THAT(bytes->labels.strings, ElementsAre("left", "right", "left"));
}

TEST(ReadPointCloudsTest, ContinuousLabels) {
  auto set = ReadPointCloudsNpz(FixturePath("clouds_continuous.npz"));
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->labels.kind, Labels::Kind::kContinuous);
  EXPECT_EQ(set->labels.width, 3);
  EXPECT_TRUE(set->labels.rank2);
  EXPECT_EQ(set->labels.values, Floats(Npz("clouds_continuous.npz")["labels"]["values"]));

  auto one = ReadPointCloudsNpz(FixturePath("clouds_continuous_1d.npz"));
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->labels.kind, Labels::Kind::kContinuous);
  EXPECT_EQ(one->labels.width, 1);
  EXPECT_FALSE(one->labels.rank2);
  EXPECT_THAT(one->labels.values, ElementsAre(0.25f, -1.0f, 3.5f));
}

TEST(ReadPointCloudsTest, CompressedAndFortranOrder) {
  auto compressed = ReadPointCloudsNpz(FixturePath("clouds_compressed.npz"));
  ASSERT_TRUE(compressed.ok()) << compressed.status();
  ExpectCloudsMatch(*compressed, "clouds_compressed.npz");
  EXPECT_TRUE(compressed->labels.empty());
  auto fortran = ReadPointCloudsNpz(FixturePath("clouds_fortran.npz"));
  ASSERT_TRUE(fortran.ok()) << fortran.status();
  ExpectCloudsMatch(*fortran, "clouds_fortran.npz");  // expected values are C order
}

TEST(ReadGaussiansTest, Float64AndFloat32) {
  auto set = ReadGaussiansNpz(FixturePath("gaussians.npz"));
  ASSERT_TRUE(set.ok()) << set.status();
  const nlohmann::json& want = Npz("gaussians.npz");
  EXPECT_EQ(set->dim, 3);
  EXPECT_EQ(set->means, want["means"]["values"].get<std::vector<double>>());
  EXPECT_EQ(set->covs, want["covs"]["values"].get<std::vector<double>>());
  EXPECT_THAT(set->labels.integers, ElementsAre(1, 0, 1, 1));

  auto f32 = ReadGaussiansNpz(FixturePath("gaussians_f32.npz"));
  ASSERT_TRUE(f32.ok()) << f32.status();
  // float32 values widened to double exactly.
  const std::vector<float> covs = Floats(Npz("gaussians_f32.npz")["covs"]["values"]);
  ASSERT_EQ(f32->covs.size(), covs.size());
  for (size_t i = 0; i < covs.size(); ++i) EXPECT_EQ(f32->covs[i], static_cast<double>(covs[i]));
  EXPECT_THAT(f32->labels.strings, ElementsAre("a", "b", "a", "c"));
}

TEST(DetectNpzKindTest, FromArraysPresent) {
  auto clouds = ReadNpz(FixturePath("clouds_int_labels.npz"));
  ASSERT_TRUE(clouds.ok());
  EXPECT_EQ(*DetectNpzKind(*clouds, "c"), NpzKind::kPointClouds);
  auto gaussians = ReadNpz(FixturePath("gaussians.npz"));
  ASSERT_TRUE(gaussians.ok());
  EXPECT_EQ(*DetectNpzKind(*gaussians, "g"), NpzKind::kGaussians);
  auto other = ReadNpz(FixturePath("all_dtypes.npz"));
  ASSERT_TRUE(other.ok());
  auto kind = DetectNpzKind(*other, "all_dtypes.npz");
  EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kind.status().message(),
              AllOf(HasSubstr("all_dtypes.npz"), HasSubstr("neither point clouds"),
                    HasSubstr("arrays found: big_endian, big_endian_i32, bool")));
  auto wrong = ReadGaussiansNpz(FixturePath("clouds_int_labels.npz"));
  EXPECT_THAT(wrong.status().message(), HasSubstr("not Gaussians"));
}

struct BadFile {
  std::string file;
  std::vector<std::string> words;
};

class NpzBadFileTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(NpzBadFileTest, IsRejectedWithAClearMessage) {
  const BadFile& bad = GetParam();
  const std::string path = FixturePath(bad.file);
  auto arrays = ReadNpz(path);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  auto kind = DetectNpzKind(*arrays, path);
  ASSERT_TRUE(kind.ok()) << kind.status();
  const absl::Status status = *kind == NpzKind::kPointClouds ? ReadPointCloudsNpz(path).status()
                                                             : ReadGaussiansNpz(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(bad.file));
  for (const std::string& word : bad.words) EXPECT_THAT(status.message(), HasSubstr(word));
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, NpzBadFileTest,
    ::testing::Values(
        BadFile{"bad_missing_offsets.npz", {"array 'offsets' is missing"}},
        BadFile{"bad_offsets_not_monotone.npz",
                {"offsets[2] = 3 < offsets[1] = 5", "non-decreasing"}},
        BadFile{"bad_offsets_end.npz", {"offsets[3]", "must end at the number of points"}},
        BadFile{"bad_empty_cloud.npz", {"cloud 1 is empty"}},
        BadFile{"bad_nan_points.npz", {"points[4, 1] = nan", "must be finite"}},
        BadFile{"bad_labels_length.npz", {"labels: 2 labels for 3 clouds"}},
        BadFile{"bad_covs_not_spd.npz", {"covs[2]: not positive definite"}},
        BadFile{"bad_covs_not_symmetric.npz", {"covs[1]: not symmetric", "covs[1, 0, 2]"}}),
    [](const ::testing::TestParamInfo<BadFile>& info) {
      std::string name = info.param.file.substr(4, info.param.file.size() - 8);
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(ValidateGaussianSetTest, SingularCovarianceIsNotPositiveDefinite) {
  GaussianSet set;
  set.dim = 2;
  set.means = {0, 0, 1, 1};
  set.covs = {1, 0, 0, 1,   // identity: fine
              1, 1, 1, 1};  // rank one: PSD but singular
  const absl::Status status = ValidateGaussianSet(set, "mem");
  EXPECT_THAT(status.message(), HasSubstr("covs[1]: not positive definite"));
  set.covs[7] = 1.0 + 1e-9;  // now positive definite (det = 1e-9)
  EXPECT_TRUE(ValidateGaussianSet(set, "mem").ok());
}

PointCloudSet SmallClouds() {
  PointCloudSet set;
  set.dim = 2;
  set.points = {0.5f, -1.0f, 2.0f, 3.25f, 1e-3f, 7.0f, -8.0f, 0.0f, 9.5f, 1.0f};
  set.offsets = {0, 2, 5};
  return set;
}

TEST(WritePointCloudsTest, NumpyReadsTheContractLayout) {
  TempDir dir;
  PointCloudSet set = SmallClouds();
  set.labels = Labels::FromStrings({"\xce\xb2-cell", "T"});
  const std::string path = dir.File("clouds.npz");
  ASSERT_TRUE(WritePointCloudsNpz(path, set).ok());

  nlohmann::json expected;
  expected["points"] = {{"dtype", "<f4"},
                        {"shape", {5, 2}},
                        {"values", std::vector<double>(set.points.begin(), set.points.end())}};
  expected["offsets"] = {{"dtype", "<i8"}, {"shape", {3}}, {"values", set.offsets}};
  expected["labels"] = {{"dtype", "<U6"}, {"shape", {2}}, {"values", set.labels.strings}};
  WriteBytes(dir.File("expected.json"), expected.dump());
  const auto result = RunPythonChecker("check_npz.py", {path, dir.File("expected.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;

  auto back = ReadPointCloudsNpz(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->points, set.points);
  EXPECT_EQ(back->offsets, set.offsets);
  EXPECT_EQ(back->labels.strings, set.labels.strings);
}

TEST(WritePointCloudsTest, ContinuousLabelsKeepTheirRank) {
  TempDir dir;
  for (const bool rank2 : {false, true}) {
    PointCloudSet set = SmallClouds();
    set.labels = Labels::FromContinuous({0.5f, -2.0f}, 1, rank2);
    const std::string path = dir.File(rank2 ? "r2.npz" : "r1.npz");
    NpzWriteOptions options;
    options.compress = true;
    ASSERT_TRUE(WritePointCloudsNpz(path, set, options).ok());
    auto arrays = ReadNpz(path);
    ASSERT_TRUE(arrays.ok());
    EXPECT_EQ(arrays->at("labels").shape(),
              rank2 ? std::vector<int64_t>({2, 1}) : std::vector<int64_t>({2}));
    auto back = ReadPointCloudsNpz(path);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->labels.rank2, rank2);
    EXPECT_THAT(back->labels.values, ElementsAre(0.5f, -2.0f));
  }
}

TEST(WritePointCloudsTest, InvalidSetsAreNotWritten) {
  TempDir dir;
  PointCloudSet set = SmallClouds();
  set.points[3] = std::numeric_limits<float>::infinity();
  const absl::Status status = WritePointCloudsNpz(dir.File("x.npz"), set);
  EXPECT_THAT(status.message(), HasSubstr("points[1, 1] = inf"));
  set = SmallClouds();
  set.labels = Labels::FromIntegers({1, 2, 3});
  EXPECT_THAT(WritePointCloudsNpz(dir.File("x.npz"), set).message(),
              HasSubstr("3 labels for 2 clouds"));
  EXPECT_TRUE(dir.List().empty());
}

TEST(WriteGaussiansTest, RoundTripThroughNumpy) {
  TempDir dir;
  GaussianSet set;
  set.dim = 2;
  set.means = {0.1, -0.2, 3.0, 4.0};
  set.covs = {2.0, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 1e-3};
  set.labels = Labels::FromIntegers({7, -1});
  const std::string path = dir.File("g.npz");
  ASSERT_TRUE(WriteGaussiansNpz(path, set).ok());
  nlohmann::json expected;
  expected["means"] = {{"dtype", "<f8"}, {"shape", {2, 2}}, {"values", set.means}};
  expected["covs"] = {{"dtype", "<f8"}, {"shape", {2, 2, 2}}, {"values", set.covs}};
  expected["labels"] = {{"dtype", "<i8"}, {"shape", {2}}, {"values", set.labels.integers}};
  WriteBytes(dir.File("expected.json"), expected.dump());
  const auto result = RunPythonChecker("check_npz.py", {path, dir.File("expected.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  auto back = ReadGaussiansNpz(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->means, set.means);
  EXPECT_EQ(back->covs, set.covs);
  EXPECT_EQ(back->labels.integers, set.labels.integers);
}

TEST(LabelsTest, TakeAndText) {
  const Labels strings = Labels::FromStrings({"a", "b", "c"});
  EXPECT_THAT(strings.Take({2, 0, 2}).strings, ElementsAre("c", "a", "c"));
  const Labels vectors = Labels::FromContinuous({1, 2, 3, 4, 5, 6}, 2);
  const Labels taken = vectors.Take({2, 0});
  EXPECT_THAT(taken.values, ElementsAre(5, 6, 1, 2));
  EXPECT_EQ(taken.width, 2);
  EXPECT_EQ(vectors.Text(1), "[3.0, 4.0]");
  EXPECT_EQ(Labels::FromIntegers({-4}).Text(0), "-4");
}

}  // namespace
}  // namespace wfm::model::io
