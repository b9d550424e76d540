// repository/model_folder: publishing versions <root>/<name>/<V>/model.wfm so
// that a reader scanning <root> sees a version complete or not at all, next
// to a folder of the first layout (<root>/<name>/model.wfm), and the serving
// policy.
#include "repository/model_folder.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "repository/fs_util.h"
#include "tests/server/server_test_util.h"

namespace wfm::repository {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Entries(const std::string& folder) {
  absl::StatusOr<std::vector<std::string>> entries = ListDir(folder);
  EXPECT_TRUE(entries.ok()) << entries.status();
  return entries.ok() ? *entries : std::vector<std::string>{};
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A writer that records where it was asked to write.
struct Writer {
  std::vector<std::string> paths;
  std::string content = "model";
  absl::Status operator()(const std::string& path) {
    paths.push_back(path);
    std::ofstream(path) << content;
    return absl::OkStatus();
  }
};

TEST(ModelFolderTest, ANewModelIsStagedAndRenamedIntoPlaceAsVersionOne) {
  testing::TempDir dir;
  const std::string root = dir.path() + "/models";  // created on demand
  Writer writer;
  absl::StatusOr<int64_t> version = PublishModel(root, "m", /*overwrite=*/false, std::ref(writer));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);
  ASSERT_EQ(writer.paths.size(), 1u);
  // The file was written inside a staging folder, never at its final path.
  EXPECT_EQ(fs::path(writer.paths[0]).filename(), "model.wfm");
  EXPECT_EQ(fs::path(writer.paths[0]).parent_path().filename().string().rfind(kStagingPrefix, 0),
            0u);
  EXPECT_EQ(ModelVersionPath(root, "m", 1), root + "/m/1/model.wfm");
  EXPECT_EQ(Read(ModelVersionPath(root, "m", 1)), "model");
  // No staging folder or lock file stays.
  EXPECT_EQ(Entries(root), std::vector<std::string>{"m"});
  EXPECT_EQ(Entries(root + "/m"), std::vector<std::string>{"1"});
}

// A folder of the first layout: a new version goes next to its file (which
// stays version 1); an overwrite replaces both by version 1.
TEST(ModelFolderTest, PublishAddsAVersionToTheFirstLayoutAndOverwriteReplacesEverything) {
  testing::TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.path() + "/m").ok());
  std::ofstream(ModelFilePath(dir.path(), "m")) << "first layout";
  Writer second;
  second.content = "second";
  absl::StatusOr<int64_t> version =
      PublishModel(dir.path(), "m", /*overwrite=*/false, std::ref(second));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 2);
  EXPECT_EQ(Entries(dir.path() + "/m"), (std::vector<std::string>{"2", "model.wfm"}));
  absl::StatusOr<std::vector<StoredVersion>> versions = ListModelVersions(dir.path(), "m");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].path, ModelFilePath(dir.path(), "m"));
  EXPECT_EQ(Read((*versions)[1].path), "second");

  // A failed overwrite leaves the model as it was.
  const absl::Status failed =
      PublishModel(dir.path(), "m", /*overwrite=*/true, [](const std::string& path) {
        std::ofstream(path) << "half";
        return absl::ResourceExhaustedError("disk full");
      }).status();
  EXPECT_TRUE(absl::IsResourceExhausted(failed)) << failed;
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"m"});
  EXPECT_EQ(Entries(dir.path() + "/m"), (std::vector<std::string>{"2", "model.wfm"}));

  Writer newer;
  newer.content = "newer";
  version = PublishModel(dir.path(), "m", /*overwrite=*/true, std::ref(newer));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"m"});
  EXPECT_EQ(Entries(dir.path() + "/m"), std::vector<std::string>{"1"});
  EXPECT_EQ(Read(ModelVersionPath(dir.path(), "m", 1)), "newer");
}

// Versions: the next number above every stored one; a number another writer
// takes meanwhile moves this one higher; the staging folder never stays.
TEST(ModelFolderTest, VersionsArePublishedUnderTheNextFreeNumber) {
  testing::TempDir dir;
  Writer writer;
  absl::StatusOr<int64_t> first = PublishModelVersion(dir.path(), "m", std::ref(writer));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(Read(ModelVersionPath(dir.path(), "m", 1)), "model");
  ASSERT_EQ(writer.paths.size(), 1u);
  EXPECT_NE(writer.paths[0], ModelVersionPath(dir.path(), "m", 1));  // staged
  const absl::StatusOr<int64_t> raced =
      PublishModelVersion(dir.path(), "m", [&](const std::string& path) {
        std::ofstream(path) << "mine";
        EXPECT_TRUE(MakeDirs(dir.path() + "/m/2").ok());
        std::ofstream(ModelVersionPath(dir.path(), "m", 2)) << "theirs";
        return absl::OkStatus();
      });
  ASSERT_TRUE(raced.ok()) << raced.status();
  EXPECT_EQ(*raced, 3);
  EXPECT_EQ(Read(ModelVersionPath(dir.path(), "m", 2)), "theirs");
  EXPECT_EQ(Read(ModelVersionPath(dir.path(), "m", 3)), "mine");
  EXPECT_EQ(Entries(dir.path() + "/m"), (std::vector<std::string>{"1", "2", "3"}));
  absl::StatusOr<std::vector<StoredVersion>> versions = ListModelVersions(dir.path(), "m");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  EXPECT_EQ(versions->back().version, 3);
  const absl::Status failed = PublishModelVersion(dir.path(), "m", [](const std::string&) {
                                return absl::InternalError("disk full");
                              }).status();
  EXPECT_EQ(failed.message(), "disk full");
  EXPECT_EQ(Entries(dir.path() + "/m"), (std::vector<std::string>{"1", "2", "3"}));
  ASSERT_TRUE(RemoveModelVersion(dir.path(), "m", 2).ok());
  EXPECT_TRUE(absl::IsNotFound(RemoveModelVersion(dir.path(), "m", 2)));
  EXPECT_EQ(Entries(dir.path() + "/m"), (std::vector<std::string>{"1", "3"}));
}

TEST(ModelFolderTest, VersionNamesAndTheServingPolicy) {
  EXPECT_EQ(ParseVersion("1"), 1);
  EXPECT_EQ(ParseVersion("1000000000000"), kMaxModelVersion);
  for (const char* bad : {"", "0", "01", "-1", "1a", "1000000000001", "model.wfm", ".~x"}) {
    EXPECT_FALSE(ParseVersion(bad).has_value()) << bad;
  }
  testing::TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.path() + "/m").ok());
  EXPECT_TRUE(*ReadServingPolicy(dir.path(), "m") == ServingPolicy{});
  ASSERT_TRUE(WriteServingPolicy(dir.path(), "m", {3, 2}).ok());
  EXPECT_TRUE(*ReadServingPolicy(dir.path(), "m") == (ServingPolicy{3, 2}));
  ASSERT_TRUE(WriteServingPolicy(dir.path(), "m", {}).ok());
  EXPECT_EQ(Entries(dir.path() + "/m"), std::vector<std::string>{});
  std::ofstream(dir.path() + "/m/serving.json") << "{\"pinned_version\": -1}";
  EXPECT_TRUE(absl::IsDataLoss(ReadServingPolicy(dir.path(), "m").status()));
}

}  // namespace
}  // namespace wfm::repository
