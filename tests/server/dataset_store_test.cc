#include "server/dataset_store.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/store_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using namespace ::wfm::testing;  // NOLINT(build/namespaces): the store test helpers

class DatasetStoreTest : public DatasetsTest {};

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
