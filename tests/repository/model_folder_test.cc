// repository/model_folder: writing <root>/<name>/model.wfm so that a reader
// scanning <root> sees a model folder complete or not at all.
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

TEST(ModelFolderTest, ANewFolderIsStagedAndRenamedIntoPlace) {
  testing::TempDir dir;
  const std::string root = dir.path() + "/models";  // created on demand
  Writer writer;
  ASSERT_TRUE(WriteModelFolder(root, "m", std::ref(writer)).ok());
  ASSERT_EQ(writer.paths.size(), 1u);
  // The file was written inside a staging folder, never at its final path.
  EXPECT_NE(writer.paths[0], ModelFilePath(root, "m"));
  EXPECT_EQ(fs::path(writer.paths[0]).filename(), "model.wfm");
  EXPECT_EQ(fs::path(writer.paths[0]).parent_path().filename().string().rfind(kStagingPrefix, 0),
            0u);
  EXPECT_EQ(ModelFilePath(root, "m"), root + "/m/model.wfm");
  EXPECT_EQ(Read(ModelFilePath(root, "m")), "model");
  EXPECT_EQ(Entries(root), std::vector<std::string>{"m"});
}

TEST(ModelFolderTest, AnExistingFolderGetsItsFileReplacedInPlace) {
  testing::TempDir dir;
  Writer first;
  ASSERT_TRUE(WriteModelFolder(dir.path(), "m", std::ref(first)).ok());
  Writer second;
  second.content = "newer";
  ASSERT_TRUE(WriteModelFolder(dir.path(), "m", std::ref(second)).ok());
  ASSERT_EQ(second.paths, std::vector<std::string>{ModelFilePath(dir.path(), "m")});
  EXPECT_EQ(Read(ModelFilePath(dir.path(), "m")), "newer");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"m"});
}

TEST(ModelFolderTest, AFailedWriteLeavesNothingBehind) {
  testing::TempDir dir;
  const absl::Status failed = WriteModelFolder(dir.path(), "m", [](const std::string& path) {
    std::ofstream(path) << "half";
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_TRUE(absl::IsResourceExhausted(failed));
  EXPECT_EQ(failed.message(), "disk full");
  EXPECT_TRUE(Entries(dir.path()).empty());
}

TEST(ModelFolderTest, AFolderPublishedMeanwhileIsAlreadyExists) {
  testing::TempDir dir;
  // Another writer publishes the folder while this one writes its staging copy.
  const absl::Status raced = WriteModelFolder(dir.path(), "m", [&](const std::string& path) {
    std::ofstream(path) << "mine";
    EXPECT_TRUE(MakeDirs(dir.path() + "/m").ok());
    std::ofstream(ModelFilePath(dir.path(), "m")) << "theirs";
    return absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsAlreadyExists(raced)) << raced;
  EXPECT_EQ(Read(ModelFilePath(dir.path(), "m")), "theirs");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"m"});
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
