#include "server/dataset_store.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::ElementsAre;

DatasetHeader CloudHeader(const std::string& name, LabelType labels = LabelType::kNone) {
  DatasetHeader h;
  h.name = name;
  h.kind = DatasetKind::kPointClouds;
  h.dim = 2;
  h.label_type = labels;
  h.description = "test clouds";
  return h;
}

std::unique_ptr<DatasetStore> OpenStore(const std::string& root, int64_t limit = 1 << 30) {
  DatasetStoreOptions options;
  options.root = root;
  options.max_upload_bytes = limit;
  absl::StatusOr<std::unique_ptr<DatasetStore>> store = DatasetStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return std::move(store).value();
}

// Uploads `set` in chunks of `per_chunk` clouds.
absl::StatusOr<DatasetInfo> UploadClouds(DatasetStore& store, const DatasetHeader& header,
                                         const model::io::PointCloudSet& set, int64_t per_chunk) {
  absl::StatusOr<std::unique_ptr<DatasetUpload>> upload = store.BeginUpload(header);
  if (!upload.ok()) return upload.status();
  for (int64_t c = 0; c < set.num_clouds(); c += per_chunk) {
    const int64_t end = std::min(set.num_clouds(), c + per_chunk);
    std::vector<int64_t> sizes;
    for (int64_t i = c; i < end; ++i) sizes.push_back(set.cloud_size(i));
    CloudChunkView chunk;
    chunk.sizes = sizes;
    chunk.points = absl::MakeConstSpan(set.points.data() + set.offsets[c] * set.dim,
                                       (set.offsets[end] - set.offsets[c]) * set.dim);
    if (set.labels.kind == model::io::Labels::Kind::kString) {
      chunk.labels.assign(set.labels.strings.begin() + c, set.labels.strings.begin() + end);
    }
    absl::Status s = (*upload)->AddClouds(chunk);
    if (!s.ok()) return s;
  }
  return (*upload)->Finish();
}

class DatasetStoreTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string root() const { return dir_.path() + "/datasets"; }
};

TEST_F(DatasetStoreTest, StoresCloudsAndReloadsThemAfterARestart) {
  const model::io::PointCloudSet set = testing::Ellipses(10, 1, /*labelled=*/true);
  {
    auto store = OpenStore(root());
    absl::StatusOr<DatasetInfo> info =
        UploadClouds(*store, CloudHeader("shapes", LabelType::kDiscrete), set, 3);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->items, 10);
    EXPECT_EQ(info->points, set.num_points());
    EXPECT_EQ(info->dim, 2);
    EXPECT_THAT(info->label_names, ElementsAre("round", "wide"));
    EXPECT_GT(info->size_bytes, set.num_points() * 8);
    EXPECT_GT(info->created_unix_ms, 0);
    int64_t smallest = 1 << 20, largest = 0;
    for (int64_t c = 0; c < 10; ++c) {
      smallest = std::min(smallest, set.cloud_size(c));
      largest = std::max(largest, set.cloud_size(c));
    }
    EXPECT_EQ(info->min_size, smallest);
    EXPECT_EQ(info->max_size, largest);
  }
  auto store = OpenStore(root());
  ASSERT_EQ(store->List().size(), 1u);
  absl::StatusOr<DatasetInfo> info = store->Get("shapes");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->description, "test clouds");
  EXPECT_EQ(info->label_type, LabelType::kDiscrete);
  absl::StatusOr<std::shared_ptr<const DatasetData>> data = store->Load("shapes");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->clouds().points, set.points);
  EXPECT_EQ((*data)->clouds().offsets, set.offsets);
  EXPECT_EQ((*data)->clouds().labels.strings, set.labels.strings);
  // A second reader shares the loaded data.
  EXPECT_EQ(store->Load("shapes")->get(), data->get());
}

TEST_F(DatasetStoreTest, NamesTheItemAcrossChunks) {
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
  EXPECT_TRUE(fs::is_empty(root()));
}

TEST_F(DatasetStoreTest, RejectsInconsistentCloudChunks) {
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
  s = (*wrong_kind)->AddGaussians(GaussianChunkView{means, means, {}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("a gaussians chunk in a POINT_CLOUDS upload"));
  auto nothing = store->BeginUpload(CloudHeader("u"));
  EXPECT_THAT(std::string((*nothing)->Finish().status().message()), HasSubstr("no clouds"));
}

TEST_F(DatasetStoreTest, ContinuousConditionsAreChecked) {
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

TEST_F(DatasetStoreTest, ValidatesHeaders) {
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
  h.kind = DatasetKind::kSpatialCells;
  h.condition_dim = 2;
  EXPECT_THAT(std::string(store->BeginUpload(h).status().message()),
              HasSubstr("header.label_type"));
  h = CloudHeader("x");
  h.kind = DatasetKind::kGaussians;
  h.dim = 513;
  EXPECT_TRUE(absl::IsInvalidArgument(store->BeginUpload(h).status()));
}

TEST_F(DatasetStoreTest, GaussiansMustBeSymmetricPositiveDefinite) {
  auto store = OpenStore(root());
  DatasetHeader h;
  h.name = "g";
  h.kind = DatasetKind::kGaussians;
  h.dim = 2;
  const std::vector<double> means = {0, 0, 1, 1};
  const std::vector<double> not_pd = {1, 0, 0, 1, 1, 2, 2, 1};  // eigenvalues 3, -1
  auto a = store->BeginUpload(h);
  EXPECT_EQ((*a)->AddGaussians(GaussianChunkView{means, not_pd, {}}).message(),
            "gaussians[1].cov: not positive definite");
  const std::vector<double> asym = {1, 0.5, 0.4, 1, 1, 0, 0, 1};
  auto b = store->BeginUpload(h);
  EXPECT_THAT(std::string((*b)->AddGaussians(GaussianChunkView{means, asym, {}}).message()),
              HasSubstr("gaussians[0].cov: not symmetric"));
  const std::vector<double> nan_mean = {0, std::nan(""), 1, 1};
  const std::vector<double> good = {1, 0, 0, 1, 2, 0.5, 0.5, 1};
  auto c = store->BeginUpload(h);
  EXPECT_EQ((*c)->AddGaussians(GaussianChunkView{nan_mean, good, {}}).message(),
            "gaussians[0].mean: NaN at index 1");
  const std::vector<double> short_covs = {1, 0, 0, 1};
  auto d = store->BeginUpload(h);
  EXPECT_THAT(std::string((*d)->AddGaussians(GaussianChunkView{means, short_covs, {}}).message()),
              HasSubstr("covs holds 4 values for 2 Gaussians"));
  auto e = store->BeginUpload(h);
  ASSERT_TRUE((*e)->AddGaussians(GaussianChunkView{means, good, {}}).ok());
  absl::StatusOr<DatasetInfo> info = (*e)->Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->items, 2);
  auto data = store->Load("g");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((*data)->gaussians().covs, good);
}

TEST_F(DatasetStoreTest, CellsNeedCoordinatesAndConsistentSampleIds) {
  auto store = OpenStore(root());
  DatasetHeader h;
  h.name = "cells";
  h.kind = DatasetKind::kSpatialCells;
  h.dim = 3;
  h.label_type = LabelType::kDiscrete;
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

TEST_F(DatasetStoreTest, EnforcesTheUploadLimit) {
  auto store = OpenStore(root(), /*limit=*/1000);
  const model::io::PointCloudSet set = testing::Ellipses(20, 3);  // > 1000 bytes
  absl::Status s = UploadClouds(*store, CloudHeader("big"), set, 4).status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("1000 bytes"));
  EXPECT_TRUE(UploadClouds(*store, CloudHeader("small"), testing::Ellipses(2, 3, false, 5, 6), 1)
                  .ok());
}

TEST_F(DatasetStoreTest, OverwriteDeleteAndExistence) {
  auto store = OpenStore(root());
  const auto first = testing::Ellipses(4, 1);
  const auto second = testing::Ellipses(6, 2);
  ASSERT_TRUE(UploadClouds(*store, CloudHeader("d"), first, 4).ok());
  absl::Status exists = UploadClouds(*store, CloudHeader("d"), second, 4).status();
  EXPECT_TRUE(absl::IsAlreadyExists(exists)) << exists;
  auto held = store->Load("d");  // a reader of the old version
  ASSERT_TRUE(held.ok());
  DatasetHeader h = CloudHeader("d");
  h.overwrite = true;
  absl::StatusOr<DatasetInfo> replaced = UploadClouds(*store, h, second, 4);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->items, 6);
  EXPECT_EQ((*held)->clouds().num_clouds(), 4);  // unchanged for its holder
  EXPECT_EQ((*store->Load("d"))->clouds().points, second.points);
  EXPECT_EQ(OpenStore(root())->Get("d")->items, 6);
  // Only the published folder remains.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(root())) entries.push_back(e.path().filename());
  EXPECT_THAT(entries, ElementsAre("d"));

  ASSERT_TRUE(store->Delete("d").ok());
  EXPECT_TRUE(absl::IsNotFound(store->Get("d").status()));
  EXPECT_TRUE(absl::IsNotFound(store->Load("d").status()));
  EXPECT_TRUE(absl::IsNotFound(store->Delete("d")));
  EXPECT_TRUE(fs::is_empty(root()));
}

TEST_F(DatasetStoreTest, SkipsCorruptFoldersAndCleansLeftovers) {
  {
    auto store = OpenStore(root());
    ASSERT_TRUE(UploadClouds(*store, CloudHeader("good"), testing::Ellipses(3, 1), 3).ok());
    ASSERT_TRUE(UploadClouds(*store, CloudHeader("truncated"), testing::Ellipses(3, 2), 3).ok());
    ASSERT_TRUE(UploadClouds(*store, CloudHeader("garbled"), testing::Ellipses(3, 3), 3).ok());
  }
  fs::resize_file(root() + "/truncated/data.npz", 100);
  std::ofstream(root() + "/garbled/dataset.json") << "{not json";
  fs::create_directories(root() + "/no-record");
  fs::create_directories(root() + "/bad name");
  fs::create_directories(root() + "/.~staging-x-0123456789abcdef");
  std::ofstream(root() + "/.~staging-x-0123456789abcdef/data.npz") << "partial";
  auto store = OpenStore(root());
  const std::vector<DatasetInfo> list = store->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "good");
  EXPECT_FALSE(fs::exists(root() + "/.~staging-x-0123456789abcdef"));
  // A corrupt data file behind a valid record is reported, not crashed on.
  fs::resize_file(root() + "/good/data.npz", fs::file_size(root() + "/good/data.npz"));
  std::fstream f(root() + "/good/data.npz", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(60);
  f.write("XXXXXXXXXXXXXXXX", 16);
  f.close();
  absl::Status loaded = OpenStore(root())->Load("good").status();
  EXPECT_TRUE(absl::IsDataLoss(loaded)) << loaded;
}

}  // namespace
}  // namespace wfm::server
