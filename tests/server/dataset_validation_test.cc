// server/dataset_validation: the checks of an upload's header and chunks,
// called directly and through the store's uploads (what a client sees).
#include "server/dataset_validation.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/store_test_util.h"

namespace wfm::server {
namespace {

using namespace ::wfm::testing;  // NOLINT(build/namespaces): the store test helpers

class DatasetValidationTest : public DatasetsTest {};

TEST_F(DatasetValidationTest, NamesTheItemAcrossChunks) {
  auto store = OpenStore(root());
  model::io::PointCloudSet set = testing::Ellipses(6, 2);
  // Cloud 4 (second chunk of 3), point 2, second coordinate.
  set.points[(set.offsets[4] + 2) * 2 + 1] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = UploadClouds(*store, CloudHeader("bad"), set, 3).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "clouds[4].points: NaN at point 2");
  set.points[(set.offsets[4] + 2) * 2 + 1] = std::numeric_limits<float>::infinity();
  s = UploadClouds(*store, CloudHeader("bad"), set, 2).status();
  EXPECT_EQ(s.message(), "clouds[4].points: infinity at point 2");
  EXPECT_TRUE(store->List().empty());
  // Nothing is left on disk by failed uploads.
  EXPECT_TRUE(std::filesystem::is_empty(root()));
}

TEST_F(DatasetValidationTest, RejectsInconsistentCloudChunks) {
  auto store = OpenStore(root());
  auto upload = store->BeginUpload(CloudHeader("x", LabelType::kDiscrete));
  ASSERT_TRUE(upload.ok());
  const std::vector<int64_t> sizes = {2, 3};
  const std::vector<float> points(9, 0.5f);  // 4.5 points of dim 2
  CloudChunkView chunk{sizes, points, {"a", "b"}, {}};
  absl::Status s = (*upload)->AddClouds(chunk);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("chunk 0: points holds 9 values"));
  // The upload stays failed.
  EXPECT_EQ((*upload)->Finish().status(), s);

  auto labels = store->BeginUpload(CloudHeader("y", LabelType::kDiscrete));
  const std::vector<float> ten(10, 0.5f);
  s = (*labels)->AddClouds(CloudChunkView{sizes, ten, {"a"}, {}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("1 labels for 2 clouds"));
  auto empty_label = store->BeginUpload(CloudHeader("y2", LabelType::kDiscrete));
  s = (*empty_label)->AddClouds(CloudChunkView{sizes, ten, {"a", ""}, {}});
  EXPECT_EQ(s.message(), "clouds[1].label: empty");
  auto unlabelled = store->BeginUpload(CloudHeader("z"));
  s = (*unlabelled)->AddClouds(CloudChunkView{sizes, ten, {"a", "b"}, {}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("label_type is none"));
  auto zero = store->BeginUpload(CloudHeader("w"));
  const std::vector<int64_t> bad_sizes = {0, 5};
  s = (*zero)->AddClouds(CloudChunkView{bad_sizes, ten, {}, {}});
  EXPECT_EQ(s.message(), "clouds[0].size: must be >= 1, got 0");
  auto wrong_kind = store->BeginUpload(CloudHeader("v"));
  const std::vector<double> means = {0, 0};
  s = (*wrong_kind)->AddGaussians(GaussianChunkView{means, means, {}, {}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("a gaussians chunk in a POINT_CLOUDS upload"));
  auto nothing = store->BeginUpload(CloudHeader("u"));
  EXPECT_THAT(std::string((*nothing)->Finish().status().message()), HasSubstr("no clouds"));
}

TEST_F(DatasetValidationTest, ContinuousConditionsAreChecked) {
  auto store = OpenStore(root());
  DatasetHeader h = CloudHeader("cond", LabelType::kContinuous);
  h.condition_dim = 2;
  auto upload = store->BeginUpload(h);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::vector<int64_t> sizes = {2, 3};
  const std::vector<float> points(10, 0.25f);
  const std::vector<float> three = {1, 2, 3};
  EXPECT_THAT(std::string((*upload)->AddClouds(CloudChunkView{sizes, points, {}, three}).message()),
              HasSubstr("conditions holds 3 values for 2 clouds of condition_dim 2"));
  auto again = store->BeginUpload(h);
  const std::vector<float> nan = {1, 2, 3, std::nanf("")};
  EXPECT_EQ((*again)->AddClouds(CloudChunkView{sizes, points, {}, nan}).message(),
            "clouds[1].condition: NaN at index 1");
  auto good = store->BeginUpload(h);
  const std::vector<float> four = {1, 2, 3, 4};
  ASSERT_TRUE((*good)->AddClouds(CloudChunkView{sizes, points, {}, four}).ok());
  absl::StatusOr<DatasetInfo> info = (*good)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->condition_dim, 2);
  auto data = store->Load("cond");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->clouds().labels.values, four);
}

TEST_F(DatasetValidationTest, ValidatesHeaders) {
  auto store = OpenStore(root());
  DatasetHeader h = CloudHeader("bad name");
  EXPECT_THAT(std::string(store->BeginUpload(h).status().message()), HasSubstr("header.name"));
  h = CloudHeader("x");
  h.dim = 0;
  EXPECT_THAT(std::string(store->BeginUpload(h).status().message()), HasSubstr("header.dim"));
  h = CloudHeader("x");
  h.condition_dim = 3;
  EXPECT_THAT(std::string(store->BeginUpload(h).status().message()),
              HasSubstr("header.condition_dim"));
  h = CloudHeader("x", LabelType::kContinuous);
  EXPECT_THAT(std::string(store->BeginUpload(h).status().message()),
              HasSubstr("header.condition_dim"));
  h.kind = DatasetKind::kGaussians;  // Gaussians take condition vectors too
  h.condition_dim = 2;
  EXPECT_TRUE(store->BeginUpload(h).ok());
  h = CloudHeader("x");
  h.kind = DatasetKind::kGaussians;
  h.dim = 513;
  EXPECT_TRUE(absl::IsInvalidArgument(store->BeginUpload(h).status()));
}

// A header of `kind` and dim 1 with condition vectors of 3 values: a
// categorical "type" (T, B) and a numeric "age".
DatasetHeader ConditionedHeader(const std::string& name, DatasetKind kind) {
  DatasetHeader h = StoreHeader(name, kind, 1);
  h.label_type = LabelType::kContinuous;
  h.condition_dim = 3;
  h.condition_columns = {{"type", ConditionKind::kCategorical, {"T", "B"}, 2, 0},
                         {"age", ConditionKind::kNumeric, {}, 1, 2}};
  return h;
}

// Cells with condition vectors and their encoding: checked, stored across
// chunks, read back with the data set (record and data.npz).
TEST_F(DatasetValidationTest, CellConditionsAndTheirColumnsAreStored) {
  auto store = OpenStore(root());
  DatasetHeader h = ConditionedHeader("cc", DatasetKind::kSpatialCells);
  auto upload = store->BeginUpload(h);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::vector<float> features = {1, 2}, coords = {0, 0, 1, 1};
  const std::vector<float> first = {1, 0, 30, 0, 1, 70};
  ASSERT_TRUE((*upload)->AddCells(CellChunkView{features, coords, {}, {}, first}).ok());
  const std::vector<float> one = {5}, xy = {2, 2}, second = {0, 1, 50};
  ASSERT_TRUE((*upload)->AddCells(CellChunkView{one, xy, {}, {}, second}).ok());
  absl::StatusOr<DatasetInfo> info = (*upload)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  auto data = store->Load("cc");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->info.condition_columns, h.condition_columns);
  EXPECT_EQ((*data)->cells().labels.width, 3);
  EXPECT_EQ((*data)->cells().labels.values,
            (std::vector<float>{1, 0, 30, 0, 1, 70, 0, 1, 50}));

  h.name = "cc2";
  h.condition_columns[1].offset = 1;
  EXPECT_EQ(store->BeginUpload(h).status().message(),
            "header.condition_columns[1].offset: 1; must be 2 (the widths of the columns before "
            "it)");
}

// Gaussians with condition vectors and their encoding: checked, stored
// across chunks, read back as the set's continuous labels.
TEST_F(DatasetValidationTest, GaussianConditionsAndTheirColumnsAreStored) {
  auto store = OpenStore(root());
  const DatasetHeader h = ConditionedHeader("gc", DatasetKind::kGaussians);
  auto upload = store->BeginUpload(h);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::vector<double> means = {0, 1}, covs = {1, 2};
  const std::vector<float> first = {1, 0, 30, 0, 1, 70};
  ASSERT_TRUE((*upload)->AddGaussians(GaussianChunkView{means, covs, {}, first}).ok());
  const std::vector<double> mean = {5}, cov = {0.5};
  const std::vector<float> bad = {0, 1, std::nanf("")};
  EXPECT_EQ((*upload)->AddGaussians(GaussianChunkView{mean, cov, {}, bad}).message(),
            "gaussians[2].condition: NaN at index 2");
  auto again = store->BeginUpload(h);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->AddGaussians(GaussianChunkView{means, covs, {}, first}).ok());
  const std::vector<float> second = {0, 1, 50};
  EXPECT_THAT(std::string((*again)->AddGaussians(GaussianChunkView{mean, cov, {}, {}}).message()),
              HasSubstr("chunk 1: conditions holds 0 values for 1 gaussians of condition_dim 3"));
  auto good = store->BeginUpload(h);
  ASSERT_TRUE((*good)->AddGaussians(GaussianChunkView{means, covs, {}, first}).ok());
  ASSERT_TRUE((*good)->AddGaussians(GaussianChunkView{mean, cov, {}, second}).ok());
  absl::StatusOr<DatasetInfo> info = (*good)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->items, 3);
  auto data = store->Load("gc");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->info.label_type, LabelType::kContinuous);
  EXPECT_EQ((*data)->info.condition_columns, h.condition_columns);
  EXPECT_EQ((*data)->gaussians().labels.width, 3);
  EXPECT_EQ((*data)->gaussians().labels.values,
            (std::vector<float>{1, 0, 30, 0, 1, 70, 0, 1, 50}));
}

TEST_F(DatasetValidationTest, GaussiansMustBeSymmetricPositiveDefinite) {
  auto store = OpenStore(root());
  const DatasetHeader h = StoreHeader("g", DatasetKind::kGaussians, 2);
  const std::vector<double> means = {0, 0, 1, 1};
  const std::vector<double> not_pd = {1, 0, 0, 1, 1, 2, 2, 1};  // eigenvalues 3, -1
  auto a = store->BeginUpload(h);
  EXPECT_EQ((*a)->AddGaussians(GaussianChunkView{means, not_pd, {}, {}}).message(),
            "gaussians[1].cov: not positive definite");
  const std::vector<double> asym = {1, 0.5, 0.4, 1, 1, 0, 0, 1};
  auto b = store->BeginUpload(h);
  EXPECT_THAT(std::string((*b)->AddGaussians(GaussianChunkView{means, asym, {}, {}}).message()),
              HasSubstr("gaussians[0].cov: not symmetric"));
  const std::vector<double> nan_mean = {0, std::nan(""), 1, 1};
  const std::vector<double> good = {1, 0, 0, 1, 2, 0.5, 0.5, 1};
  auto c = store->BeginUpload(h);
  EXPECT_EQ((*c)->AddGaussians(GaussianChunkView{nan_mean, good, {}, {}}).message(),
            "gaussians[0].mean: NaN at index 1");
  const std::vector<double> short_covs = {1, 0, 0, 1};
  auto d = store->BeginUpload(h);
  EXPECT_THAT(
      std::string((*d)->AddGaussians(GaussianChunkView{means, short_covs, {}, {}}).message()),
      HasSubstr("covs holds 4 values for 2 Gaussians"));
  auto e = store->BeginUpload(h);
  ASSERT_TRUE((*e)->AddGaussians(GaussianChunkView{means, good, {}, {}}).ok());
  absl::StatusOr<DatasetInfo> info = (*e)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->items, 2);
  auto data = store->Load("g");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((*data)->gaussians().covs, good);
}

TEST_F(DatasetValidationTest, CellsNeedCoordinatesAndConsistentSampleIds) {
  auto store = OpenStore(root());
  DatasetHeader h = StoreHeader("cells", DatasetKind::kSpatialCells, 3, LabelType::kDiscrete);
  const testing::Cells cells = testing::RandomCells(2, 10, 3, 5);
  auto bad = store->BeginUpload(h);
  const std::vector<float> coords_3d(30, 1.0f);
  EXPECT_THAT(std::string((*bad)->AddCells(CellChunkView{absl::MakeConstSpan(cells.features).subspan(0, 30),
                                                      coords_3d, {}, std::vector<std::string>(10, "l")})
                              .message()),
              HasSubstr("coords must be [cells, 2]"));
  auto upload = store->BeginUpload(h);
  auto chunk = [&](int64_t first, int64_t n, bool ids) {
    CellChunkView v;
    v.features = absl::MakeConstSpan(cells.features).subspan(first * 3, n * 3);
    v.coords = absl::MakeConstSpan(cells.coords).subspan(first * 2, n * 2);
    if (ids) v.sample_ids.assign(cells.sample_ids.begin() + first, cells.sample_ids.begin() + first + n);
    v.labels.assign(cells.labels.begin() + first, cells.labels.begin() + first + n);
    return v;
  };
  ASSERT_TRUE((*upload)->AddCells(chunk(0, 12, true)).ok());
  EXPECT_THAT(std::string((*upload)->AddCells(chunk(12, 8, false)).message()),
              HasSubstr("sample_ids missing but earlier chunks gave them"));
  auto good = store->BeginUpload(h);
  ASSERT_TRUE((*good)->AddCells(chunk(0, 12, true)).ok());
  ASSERT_TRUE((*good)->AddCells(chunk(12, 8, true)).ok());
  absl::StatusOr<DatasetInfo> info = (*good)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->items, 20);
  EXPECT_EQ(info->samples, 2);
  EXPECT_THAT(info->label_names, ElementsAre("left", "right"));
  auto reopened = OpenStore(root());
  auto data = reopened->Load("cells");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->cells().features, cells.features);
  EXPECT_EQ((*data)->cells().coords, cells.coords);
  EXPECT_EQ((*data)->cells().sample_ids, cells.sample_ids);
  EXPECT_EQ((*data)->cells().labels.strings, cells.labels);
}

TEST(DatasetValidationFunctionsTest, ChunksAreCheckedAgainstTheHeaderAndTheirPlace) {
  const DatasetHeader h = CloudHeader("x", LabelType::kDiscrete);
  EXPECT_TRUE(ValidateDatasetHeader(h).ok());
  EXPECT_TRUE(CheckChunkKind(h, 0, DatasetKind::kPointClouds).ok());
  EXPECT_EQ(CheckChunkKind(h, 3, DatasetKind::kSpatialCells).message(),
            "chunk 3: a cells chunk in a POINT_CLOUDS upload");
  const std::vector<int64_t> sizes = {2, 3};
  std::vector<float> points(10, 0.5f);
  const CloudChunkView chunk{sizes, points, {"a", "b"}, {}};
  // 10 floats, 2 sizes and the label texts.
  EXPECT_EQ(ChunkBytes(chunk), 10 * 4 + 2 * 8 + 2);
  EXPECT_TRUE(ValidateCloudChunk(h, 0, 0, chunk).ok());
  // Items are named by their place in the whole upload.
  points[2 * 2 + 1] = std::numeric_limits<float>::quiet_NaN();  // cloud 1, point 0
  EXPECT_EQ(ValidateCloudChunk(h, 4, 7, chunk).message(), "clouds[8].points: NaN at point 0");

  const DatasetHeader g = StoreHeader("g", DatasetKind::kGaussians, 2);
  const std::vector<double> means = {0, 0};
  const std::vector<double> spd = {2, 1, 1, 2};
  const std::vector<double> singular = {1, 1, 1, 1};
  EXPECT_EQ(ChunkBytes(GaussianChunkView{means, spd, {}, {}}), 6 * 8);
  EXPECT_TRUE(ValidateGaussianChunk(g, 0, 0, GaussianChunkView{means, spd, {}, {}}).ok());
  EXPECT_EQ(ValidateGaussianChunk(g, 1, 5, GaussianChunkView{means, singular, {}, {}}).message(),
            "gaussians[5].cov: not positive definite");

  const DatasetHeader c = StoreHeader("c", DatasetKind::kSpatialCells, 1);
  const std::vector<float> features = {1, 2};
  const std::vector<float> coords = {0, 0, 1, 1};
  const CellChunkView with_ids{features, coords, {"s", "s"}, {}, {}};
  const CellChunkView without_ids{features, coords, {}, {}, {}};
  EXPECT_EQ(ChunkBytes(with_ids), 6 * 4 + 2);
  EXPECT_TRUE(ValidateCellChunk(c, 0, 0, /*had_sample_ids=*/false, with_ids).ok());
  EXPECT_TRUE(ValidateCellChunk(c, 1, 2, /*had_sample_ids=*/true, with_ids).ok());
  EXPECT_THAT(std::string(ValidateCellChunk(c, 1, 2, /*had_sample_ids=*/true, without_ids).message()),
              HasSubstr("sample_ids missing but earlier chunks gave them"));
  EXPECT_THAT(std::string(ValidateCellChunk(c, 1, 2, /*had_sample_ids=*/false, with_ids).message()),
              HasSubstr("sample_ids given but earlier chunks gave none"));
}

TEST(DatasetValidationFunctionsTest, HeadersNameTheFieldAndTheRule) {
  DatasetHeader h = CloudHeader("x");
  h.dim = 100001;
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.dim: must be in [1, 100000] for POINT_CLOUDS, got 100001");
  h = CloudHeader("x", LabelType::kContinuous);
  h.condition_dim = 4097;
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.condition_dim: must be in [1, 4096] for continuous labels, got 4097");
  h = CloudHeader("x");
  h.description.assign(4097, 'd');
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.description: 4097 bytes, the limit is 4096");
  h = CloudHeader("..");
  EXPECT_THAT(std::string(ValidateDatasetHeader(h).message()), HasSubstr("header.name"));
}

TEST(DatasetValidationFunctionsTest, FeatureNamesAreNoneOrOnePerDimensionUniqueAndBounded) {
  DatasetHeader h = CloudHeader("x");  // dim 2
  EXPECT_TRUE(ValidateDatasetHeader(h).ok());
  h.feature_names = {"Actb", "Gapdh"};
  EXPECT_TRUE(ValidateDatasetHeader(h).ok());
  h.feature_names = {"Actb"};
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.feature_names: 1 names for dim 2; give one per dimension or none");
  h.feature_names = {"Actb", "Gapdh", "Cd3e"};
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.feature_names: 3 names for dim 2; give one per dimension or none");
  h.feature_names = {"Actb", ""};
  EXPECT_EQ(ValidateDatasetHeader(h).message(), "header.feature_names[1]: empty");
  h.feature_names = {std::string(256, 'g'), "y"};
  EXPECT_TRUE(ValidateDatasetHeader(h).ok());
  h.feature_names = {"y", std::string(257, 'g')};
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.feature_names[1]: 257 bytes, the limit is 256");
  h.feature_names = {"Actb", "Actb"};
  EXPECT_EQ(ValidateDatasetHeader(h).message(),
            "header.feature_names[1]: 'Actb' repeats header.feature_names[0]; names must be unique");
}

}  // namespace
}  // namespace wfm::server
