// repository/dataset_record: the stored data set's record (dataset.json) and
// data (data.npz), on a real temporary folder.
#include "repository/dataset_record.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/io/npz.h"
#include "repository/fs_util.h"
#include "tests/server/server_test_util.h"

namespace wfm::repository {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

DatasetInfo SampleInfo() {
  DatasetInfo info;
  info.name = "shapes";
  info.kind = DatasetKind::kPointClouds;
  info.dim = 2;
  info.label_type = LabelType::kDiscrete;
  info.items = 5;
  info.points = 70;
  info.min_size = 12;
  info.max_size = 16;
  info.label_names = {"round", "wide"};
  info.size_bytes = 1234;
  info.created_unix_ms = 1700000000123;
  info.description = "five ellipses";
  info.feature_names = {"x", "y"};
  return info;
}

// Every field of a record, to compare records as a whole.
auto Fields(const DatasetInfo& i) {
  return std::tie(i.name, i.kind, i.dim, i.label_type, i.condition_dim, i.items, i.points,
                  i.min_size, i.max_size, i.samples, i.spatial_dim, i.label_names, i.size_bytes,
                  i.created_unix_ms, i.description, i.feature_names, i.condition_columns);
}

// Writes `set` as <folder>/data.npz and its record, as the store does.
DatasetInfo StoreClouds(const std::string& folder, const model::io::PointCloudSet& set) {
  EXPECT_TRUE(MakeDirs(folder).ok());
  const std::string data = folder + "/" + kDatasetDataFile;
  EXPECT_TRUE(model::io::WritePointCloudsNpz(data, set).ok());
  DatasetInfo info = SampleInfo();
  info.items = set.num_clouds();
  info.points = set.num_points();
  info.size_bytes = static_cast<int64_t>(fs::file_size(data));
  EXPECT_TRUE(WriteDatasetRecord(folder, info).ok());
  return info;
}

TEST(DatasetRecordTest, KindAndLabelTypeNamesRoundTrip) {
  for (DatasetKind k :
       {DatasetKind::kPointClouds, DatasetKind::kGaussians, DatasetKind::kSpatialCells}) {
    absl::StatusOr<DatasetKind> back = ParseDatasetKind(DatasetKindName(k));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, k);
  }
  EXPECT_EQ(DatasetKindName(DatasetKind::kSpatialCells), "SPATIAL_CELLS");
  for (LabelType t : {LabelType::kNone, LabelType::kDiscrete, LabelType::kContinuous}) {
    absl::StatusOr<LabelType> back = ParseLabelType(LabelTypeName(t));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, t);
  }
  EXPECT_EQ(ParseDatasetKind("CLOUDS").status().message(),
            "kind: unknown data set kind 'CLOUDS'");
  EXPECT_EQ(ParseLabelType("maybe").status().message(),
            "label_type: unknown label type 'maybe'");
}

TEST(DatasetRecordTest, JsonKeepsEveryFieldAndRejectsOtherRecords) {
  const DatasetInfo info = SampleInfo();
  const nlohmann::json j = DatasetRecordToJson(info);
  EXPECT_EQ(j["format"], "wfm.dataset");
  EXPECT_EQ(j["kind"], "POINT_CLOUDS");
  EXPECT_EQ(j["data_file"], "data.npz");
  absl::StatusOr<DatasetInfo> back = DatasetRecordFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(Fields(*back), Fields(info));

  // Records written before feature names have none; a count other than dim
  // is a broken record.
  nlohmann::json unnamed = j;
  unnamed.erase("feature_names");
  absl::StatusOr<DatasetInfo> without = DatasetRecordFromJson(unnamed);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_TRUE(without->feature_names.empty());
  nlohmann::json short_names = j;
  short_names["feature_names"] = {"x"};
  EXPECT_EQ(DatasetRecordFromJson(short_names).status().message(),
            "record: 1 feature names for dim 2");

  nlohmann::json other = j;
  other["format"] = "wfm.job";
  EXPECT_TRUE(absl::IsInvalidArgument(DatasetRecordFromJson(other).status()));
  nlohmann::json newer = j;
  newer["version"] = 2;
  EXPECT_TRUE(absl::IsUnimplemented(DatasetRecordFromJson(newer).status()));
  nlohmann::json missing = j;
  missing.erase("items");
  EXPECT_TRUE(absl::IsDataLoss(DatasetRecordFromJson(missing).status()));
  nlohmann::json empty = j;
  empty["items"] = 0;
  EXPECT_EQ(DatasetRecordFromJson(empty).status().message(), "record: bad dim or items");
}

TEST(DatasetRecordTest, ConditionColumnsRoundTripAndBrokenOnesAreDataLoss) {
  DatasetInfo info = SampleInfo();
  info.label_type = LabelType::kContinuous;
  info.label_names.clear();
  info.condition_dim = 4;
  info.condition_columns = {{"type", ConditionKind::kCategorical, {"T", "B"}, 2, 0},
                            {"age", ConditionKind::kNumeric, {}, 1, 2},
                            {"pca", ConditionKind::kObsm, {}, 1, 3}};
  EXPECT_EQ(info.condition_columns[2].Key(), "obsm:pca");
  const nlohmann::json j = DatasetRecordToJson(info);
  EXPECT_EQ(j["condition_columns"][0]["kind"], "categorical");
  absl::StatusOr<DatasetInfo> back = DatasetRecordFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->condition_columns, info.condition_columns);
  // Records written before condition encodings have none.
  nlohmann::json old = j;
  old.erase("condition_columns");
  ASSERT_TRUE(DatasetRecordFromJson(old).ok());
  EXPECT_TRUE(DatasetRecordFromJson(old)->condition_columns.empty());
  // A record whose encoding breaks the rules is broken.
  nlohmann::json wide = j;
  wide["condition_dim"] = 5;
  EXPECT_TRUE(absl::IsDataLoss(DatasetRecordFromJson(wide).status()));
  EXPECT_THAT(std::string(DatasetRecordFromJson(wide).status().message()),
              HasSubstr("the widths add up to 4, not condition_dim 5"));
  nlohmann::json kind = j;
  kind["condition_columns"][1]["kind"] = "ordinal";
  EXPECT_TRUE(absl::IsDataLoss(DatasetRecordFromJson(kind).status()));

  // An obs column and an obsm key of the same name are different columns.
  std::vector<ConditionColumn> columns = {{"pca", ConditionKind::kNumeric, {}, 1, 0},
                                          {"pca", ConditionKind::kObsm, {}, 2, 1}};
  EXPECT_TRUE(CheckConditionColumns(columns, 3, "c").ok());
  columns[1].kind = ConditionKind::kNumeric;
  columns[1].width = 1;
  EXPECT_EQ(CheckConditionColumns(columns, 2, "c").message(),
            "c[1].name: 'pca' repeats c[0]; columns must be unique");
}

TEST(DatasetRecordTest, ReadsAFolderBackAndChecksItAgainstTheRecord) {
  testing::TempDir dir;
  const std::string folder = dir.path() + "/shapes";
  const model::io::PointCloudSet set = testing::Ellipses(5, 2, /*labelled=*/true);
  const DatasetInfo info = StoreClouds(folder, set);

  absl::StatusOr<DatasetInfo> record = ReadDatasetRecord(folder, "shapes");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->items, 5);
  EXPECT_EQ(record->size_bytes, info.size_bytes);
  absl::StatusOr<std::shared_ptr<const DatasetData>> data = ReadDatasetFolder(folder, *record);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->info.name, "shapes");
  EXPECT_EQ((*data)->clouds().points, set.points);
  EXPECT_EQ((*data)->clouds().offsets, set.offsets);
  EXPECT_EQ((*data)->clouds().labels.strings, set.labels.strings);

  // The record must name the folder, and the data file have its size.
  absl::Status renamed = ReadDatasetRecord(folder, "other").status();
  EXPECT_TRUE(absl::IsDataLoss(renamed));
  EXPECT_EQ(renamed.message(), "dataset.json names 'shapes', not the folder's name");
  std::ofstream(folder + "/data.npz", std::ios::app) << "x";
  absl::Status grown = ReadDatasetRecord(folder, "shapes").status();
  EXPECT_TRUE(absl::IsDataLoss(grown));
  EXPECT_THAT(std::string(grown.message()), HasSubstr("the record says"));

  // Data that do not match the record are lost data; a missing file a
  // deleted data set.
  StoreClouds(folder, set);
  DatasetInfo wrong = *record;
  wrong.items = 6;
  absl::Status mismatch = ReadDatasetFolder(folder, wrong).status();
  EXPECT_TRUE(absl::IsDataLoss(mismatch));
  EXPECT_THAT(std::string(mismatch.message()), HasSubstr("holds 5 clouds of dim 2"));
  fs::remove(folder + "/data.npz");
  absl::Status gone = ReadDatasetFolder(folder, *record).status();
  EXPECT_TRUE(absl::IsNotFound(gone));
  EXPECT_EQ(gone.message(), "data set 'shapes' was deleted");
  EXPECT_TRUE(absl::IsNotFound(ReadDatasetRecord(folder, "shapes").status()));
}

TEST(DatasetRecordTest, BrokenRecordFilesAreDataLoss) {
  testing::TempDir dir;
  const std::string folder = dir.path() + "/shapes";
  StoreClouds(folder, testing::Ellipses(3, 1));
  std::ofstream(folder + "/dataset.json", std::ios::trunc) << "{not json";
  absl::Status broken = ReadDatasetRecord(folder, "shapes").status();
  EXPECT_TRUE(absl::IsDataLoss(broken));
  EXPECT_EQ(broken.message(), "dataset.json is not valid JSON");
  std::ofstream(folder + "/dataset.json", std::ios::trunc)
      << std::string(1000000, '{') << std::string(1000000, '}');
  EXPECT_EQ(ReadDatasetRecord(folder, "shapes").status().message(),
            "dataset.json is nested too deeply");
}

}  // namespace
}  // namespace wfm::repository
