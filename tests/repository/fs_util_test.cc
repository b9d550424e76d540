// repository/fs_util: folders, file stamps and listings, and the staging /
// publish / remove / recover steps of the on-disk stores, on a real
// temporary folder.
#include "repository/fs_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/testing/process.h"
#include "tests/testing/status.h"
#include "tests/testing/temp_dir.h"

namespace wfm::repository {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::wfm::testing::ForkedHolder;
using ::wfm::testing::ReadFile;
using ::wfm::testing::TempDir;
using ::wfm::testing::WriteFile;

// A published folder "<parent>/<name>" holding one file "id" with `id`.
void MakeFolder(const std::string& path, const std::string& id) {
  ASSERT_TRUE(MakeDirs(path).ok());
  ASSERT_TRUE(WriteFile(path + "/id", id));
}

TEST(FsUtilTest, MakeDirsCreatesNestedFoldersAndAcceptsExistingOnes) {
  TempDir dir;
  const std::string nested = dir.File("a/b/c");
  WFM_ASSERT_OK(MakeDirs(nested));
  EXPECT_TRUE(std::filesystem::is_directory(nested));
  WFM_ASSERT_OK(MakeDirs(nested));  // again: OK
  ASSERT_TRUE(WriteFile(dir.File("file"), "x"));
  const absl::Status s = MakeDirs(dir.File("file"));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir.File("file")));
}

TEST(FsUtilTest, RemoveTreeRemovesEverythingAndAcceptsAMissingPath) {
  TempDir dir;
  MakeFolder(dir.File("t/u"), "1");
  ASSERT_TRUE(WriteFile(dir.File("t/f"), "2"));
  WFM_ASSERT_OK(RemoveTree(dir.File("t")));
  EXPECT_FALSE(Exists(dir.File("t")));
  WFM_ASSERT_OK(RemoveTree(dir.File("t")));
  WFM_ASSERT_OK(RemoveTree(dir.File("never")));
}

TEST(FsUtilTest, FsyncDirNeedsAFolder) {
  TempDir dir;
  WFM_ASSERT_OK(FsyncDir(dir.path()));
  const absl::Status missing = FsyncDir(dir.File("missing"));
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()),
              MatchesRegex("open folder .*/missing: No such file or directory"));
  ASSERT_TRUE(WriteFile(dir.File("file"), "x"));
  EXPECT_TRUE(absl::IsNotFound(FsyncDir(dir.File("file"))));  // ENOTDIR
}

TEST(FsUtilTest, FileSizeAndExists) {
  TempDir dir;
  ASSERT_TRUE(WriteFile(dir.File("f"), std::string(1234, 'z')));
  WFM_ASSERT_OK_AND_ASSIGN(const int64_t size, FileSize(dir.File("f")));
  EXPECT_EQ(size, 1234);
  EXPECT_TRUE(absl::IsNotFound(FileSize(dir.File("g")).status()));
  const absl::Status folder = FileSize(dir.path()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(folder)) << folder;
  EXPECT_THAT(std::string(folder.message()), HasSubstr("not a regular file"));
  EXPECT_TRUE(Exists(dir.File("f")));
  EXPECT_TRUE(Exists(dir.path()));
  EXPECT_FALSE(Exists(dir.File("g")));
  // A dangling symbolic link exists (lstat): a name that is taken.
  ASSERT_EQ(::symlink(dir.File("nowhere").c_str(), dir.File("link").c_str()), 0);
  EXPECT_TRUE(Exists(dir.File("link")));
}

TEST(FsUtilTest, StampsChangeWithARenameOverOrAWriteInPlace) {
  TempDir dir;
  const std::string path = dir.File("f");
  ASSERT_TRUE(WriteFile(path, "one"));
  WFM_ASSERT_OK_AND_ASSIGN(const FileStamp first, StatFile(path));
  WFM_ASSERT_OK_AND_ASSIGN(const FileStamp again, StatFile(path));
  EXPECT_EQ(first, again);
  EXPECT_EQ(first.size, 3);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(first.inode, static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(first.device, static_cast<uint64_t>(st.st_dev));
  // Replaced by a rename (an atomic write): another inode, same size.
  ASSERT_TRUE(WriteFile(dir.File("g"), "two"));
  ASSERT_EQ(::rename(dir.File("g").c_str(), path.c_str()), 0);
  WFM_ASSERT_OK_AND_ASSIGN(const FileStamp renamed, StatFile(path));
  EXPECT_NE(renamed, first);
  EXPECT_NE(renamed.inode, first.inode);
  // Rewritten in place with another length: same inode, another size.
  ASSERT_TRUE(WriteFile(path, "three"));
  WFM_ASSERT_OK_AND_ASSIGN(const FileStamp rewritten, StatFile(path));
  EXPECT_EQ(rewritten.inode, renamed.inode);
  EXPECT_EQ(rewritten.size, 5);
  EXPECT_NE(rewritten, renamed);
  EXPECT_TRUE(absl::IsNotFound(StatFile(dir.File("none")).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(StatFile(dir.path()).status()));
}

TEST(FsUtilTest, ListDirIsSortedAndHoldsHiddenEntries) {
  TempDir dir;
  for (const char* name : {"b", ".hidden", "a", "C"}) ASSERT_TRUE(WriteFile(dir.File(name), ""));
  ASSERT_TRUE(MakeDirs(dir.File("folder")).ok());
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<std::string> names, ListDir(dir.path()));
  EXPECT_THAT(names, ElementsAre(".hidden", "C", "a", "b", "folder"));
  const absl::Status missing = ListDir(dir.File("missing")).status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), HasSubstr("list folder"));
}

TEST(FsUtilTest, RandomSuffixesAreSixteenHexDigitsAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string s = RandomSuffix();
    ASSERT_THAT(s, MatchesRegex("[0-9a-f]{16}"));
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(FsUtilTest, ReadFileToStringReadsBytesAndNamesAMissingFile) {
  TempDir dir;
  const std::string bytes("a\0b\nc", 5);
  ASSERT_TRUE(WriteFile(dir.File("f"), bytes));
  WFM_ASSERT_OK_AND_ASSIGN(const std::string read, ReadFileToString(dir.File("f")));
  EXPECT_EQ(read, bytes);
  const absl::Status missing = ReadFileToString(dir.File("g")).status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), HasSubstr(dir.File("g")));
}

TEST(FsUtilTest, StagingFoldersAreHiddenUniqueAndLockedWhileTheyLive) {
  TempDir dir;
  {
    WFM_ASSERT_OK_AND_ASSIGN(const StagingDir a, MakeStagingDir(dir.path(), "set"));
    WFM_ASSERT_OK_AND_ASSIGN(const StagingDir b, MakeStagingDir(dir.path(), "set"));
    EXPECT_NE(a.path(), b.path());
    EXPECT_THAT(a.path(), MatchesRegex(".*/\\.~staging-set-[0-9a-f]{16}"));
    EXPECT_TRUE(std::filesystem::is_directory(a.path()));
    EXPECT_THAT(TempDir::ListDir(a.path()), IsEmpty());
    // Its lock file, of the same suffix, is held (by another description:
    // a clean-up in this process is kept out too).
    const std::string lock = dir.File(std::string(kLockPrefix) + a.suffix());
    ASSERT_TRUE(Exists(lock));
    absl::StatusOr<std::optional<FileLock>> taken = FileLock::TryAcquire(lock, "another");
    ASSERT_TRUE(taken.ok()) << taken.status();
    EXPECT_FALSE(taken->has_value());
    ASSERT_TRUE(WriteFile(b.path() + "/f", "x"));
  }
  // Gone with its lock file when it was not published.
  EXPECT_THAT(dir.List(), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(MakeStagingDir(dir.File("missing"), "set").status()));
}

TEST(FsUtilTest, PublishDirRenamesIntoPlaceAndRefusesAnExistingNameUnlessOverwriting) {
  TempDir dir;
  {
    WFM_ASSERT_OK_AND_ASSIGN(const StagingDir first, MakeStagingDir(dir.path(), "m"));
    ASSERT_TRUE(WriteFile(first.path() + "/id", "first"));
    WFM_ASSERT_OK(PublishDir(first, dir.path(), "m", /*overwrite=*/false));
  }
  EXPECT_EQ(ReadFile(dir.File("m/id")), "first");
  EXPECT_THAT(dir.List(), ElementsAre("m"));

  WFM_ASSERT_OK_AND_ASSIGN(const StagingDir second, MakeStagingDir(dir.path(), "m"));
  ASSERT_TRUE(WriteFile(second.path() + "/id", "second"));
  const absl::Status refused = PublishDir(second, dir.path(), "m", /*overwrite=*/false);
  EXPECT_TRUE(absl::IsAlreadyExists(refused)) << refused;
  EXPECT_EQ(refused.message(), "'m' already exists");
  EXPECT_EQ(ReadFile(dir.File("m/id")), "first");
  EXPECT_TRUE(Exists(second.path()));  // left to its owner

  WFM_ASSERT_OK(PublishDir(second, dir.path(), "m", /*overwrite=*/true));
  EXPECT_EQ(ReadFile(dir.File("m/id")), "second");
  // The old folder is gone, and no trash folder is left.
  EXPECT_THAT(dir.List(), ElementsAre(std::string(kLockPrefix) + second.suffix(), "m"));
}

TEST(FsUtilTest, RemovePublishedDirRemovesAtOnceAndNamesAMissingOne) {
  TempDir dir;
  MakeFolder(dir.File("m"), "1");
  MakeFolder(dir.File("keep"), "2");
  WFM_ASSERT_OK(RemovePublishedDir(dir.path(), "m"));
  EXPECT_THAT(dir.List(), ElementsAre("keep"));
  const absl::Status missing = RemovePublishedDir(dir.path(), "m");
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_EQ(missing.message(), "'m' does not exist");
}

TEST(FsUtilTest, RecoverDirsCleansUpWhatACrashLeft) {
  TempDir dir;
  const std::string suffix = "-0123456789abcdef";
  MakeFolder(dir.File("published"), "live");
  MakeFolder(dir.File(std::string(kStagingPrefix) + "new" + suffix), "partial");
  MakeFolder(dir.File(std::string(kDeletedPrefix) + "old" + suffix), "deleted");
  // An overwrite interrupted between its two renames: "lost" is missing,
  // its old version waits under a trash name and comes back.
  MakeFolder(dir.File(std::string(kTrashPrefix) + "lost" + suffix), "restored");
  // A trash folder whose name is published again is only removed.
  MakeFolder(dir.File(std::string(kTrashPrefix) + "published" + suffix), "stale");
  // Other hidden entries are not the stores' and stay.
  ASSERT_TRUE(WriteFile(dir.File(".other"), "x"));
  RecoverDirs(dir.path());
  EXPECT_THAT(dir.List(), ElementsAre(".other", "lost", "published"));
  EXPECT_EQ(ReadFile(dir.File("lost/id")), "restored");
  EXPECT_EQ(ReadFile(dir.File("published/id")), "live");
  // A missing folder is not an error.
  RecoverDirs(dir.File("missing"));
}

TEST(FsUtilTest, RecoverDirsRemovesWhatADeadWritersFreeLockLeftAndLeavesHeldOnes) {
  TempDir dir;
  const std::string dead = "0123456789abcdef";
  MakeFolder(dir.File(std::string(kStagingPrefix) + "new-" + dead), "partial");
  MakeFolder(dir.File(std::string(kTrashPrefix) + "lost-" + dead), "restored");
  ASSERT_TRUE(WriteFile(dir.File(std::string(kLockPrefix) + dead), "a dead writer"));
  // A lock file alone: its writer died before making a folder.
  ASSERT_TRUE(WriteFile(dir.File(std::string(kLockPrefix) + "fedcba9876543210"), "x"));
  // A live writer (this process, another open file description), between
  // the two renames of an overwrite: its trash folder is not restored.
  WFM_ASSERT_OK_AND_ASSIGN(const StagingDir live, MakeStagingDir(dir.path(), "m"));
  ASSERT_TRUE(WriteFile(live.path() + "/id", "writing"));
  MakeFolder(dir.File(std::string(kTrashPrefix) + "m-" + live.suffix()), "old m");
  RecoverDirs(dir.path());
  const std::string lock = std::string(kLockPrefix) + live.suffix();
  EXPECT_THAT(dir.List(), ElementsAre(lock, std::string(kStagingPrefix) + "m-" + live.suffix(),
                                      std::string(kTrashPrefix) + "m-" + live.suffix(), "lost"));
  EXPECT_EQ(ReadFile(dir.File("lost/id")), "restored");
  EXPECT_EQ(ReadFile(live.path() + "/id"), "writing");
}

// A writer in another process: its staging folder survives a clean-up while
// it lives, and is removed by the next one after a SIGKILL.
TEST(FsUtilTest, RecoverDirsLeavesAnotherProcesssStagingFolderUntilItIsKilled) {
  TempDir dir;
  // Kept in the child's copy of `staging` until it is killed.
  std::optional<StagingDir> staging;
  ForkedHolder child;
  ASSERT_TRUE(child.Start([&] {
    absl::StatusOr<StagingDir> made = MakeStagingDir(dir.path(), "m");
    if (made.ok()) staging = std::move(*made);
    return staging.has_value() && WriteFile(staging->path() + "/id", "child");
  }));
  const std::vector<std::string> held = dir.List();
  ASSERT_EQ(held.size(), 2u);  // the lock file and the staging folder
  RecoverDirs(dir.path());
  EXPECT_EQ(dir.List(), held);
  ASSERT_TRUE(child.Kill());
  EXPECT_EQ(dir.List(), held);  // what the killed writer left
  RecoverDirs(dir.path());
  EXPECT_THAT(dir.List(), IsEmpty());
}

}  // namespace
}  // namespace wfm::repository
