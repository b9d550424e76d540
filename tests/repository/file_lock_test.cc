// repository/file_lock: claims that exclude each other within a process and
// across processes (a forked holder), name their holder, and are released
// when the holder lets go or is killed (SIGKILL).
#include "repository/file_lock.h"

#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/process.h"
#include "tests/testing/status.h"
#include "tests/testing/temp_dir.h"

namespace wfm::repository {
namespace {

using ::testing::MatchesRegex;
using ::wfm::testing::ForkedHolder;
using ::wfm::testing::TempDir;

// Takes the lock, asserting that the call worked; whether it was free.
bool Take(const std::string& path, const std::string& holder, std::optional<FileLock>* out) {
  absl::StatusOr<std::optional<FileLock>> lock = FileLock::TryAcquire(path, holder);
  EXPECT_TRUE(lock.ok()) << lock.status();
  if (!lock.ok()) return false;
  *out = std::move(*lock);
  return out->has_value();
}

TEST(FileLockTest, ExcludesASecondClaimUntilReleasedAndNamesItsHolder) {
  TempDir dir;
  const std::string path = dir.path() + "/job-1.lock";
  std::optional<FileLock> first, second;
  ASSERT_TRUE(Take(path, "server a", &first));
  EXPECT_EQ(FileLock::ReadHolder(path), "server a");
  EXPECT_FALSE(Take(path, "server b", &second));
  // Reading the holder (another descriptor of the file, opened and closed)
  // does not drop the lock.
  EXPECT_FALSE(Take(path, "server b", &second));
  first->Release();
  ASSERT_TRUE(Take(path, "server b", &second));
  EXPECT_EQ(FileLock::ReadHolder(path), "server b");
  // Moving a claim keeps it; destroying it releases it.
  std::optional<FileLock> moved = std::move(second);
  EXPECT_FALSE(Take(path, "server c", &first));
  moved.reset();
  EXPECT_TRUE(Take(path, "server c", &first));
}

TEST(FileLockTest, CreateNewReservesTheName) {
  TempDir dir;
  const std::string path = dir.path() + "/job-2.lock";
  absl::StatusOr<std::optional<FileLock>> made = FileLock::TryAcquire(path, "a", true);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(made->has_value());
  made->reset();
  // Released, but the name stays taken for create_new.
  EXPECT_EQ(FileLock::TryAcquire(path, "b", true).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(FileLock::TryAcquire(dir.path() + "/missing/x.lock", "b").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(ProcessIdentity(), MatchesRegex(".+ pid [0-9]+"));
}

TEST(FileLockTest, AnotherProcessesClaimExcludesUntilItIsKilled) {
  TempDir dir;
  const std::string path = dir.path() + "/job-3.lock";
  // The holder (kept in the child's copy of `held` until it is killed).
  std::optional<FileLock> held;
  ForkedHolder child;
  ASSERT_TRUE(child.Start([&] {
    absl::StatusOr<std::optional<FileLock>> lock = FileLock::TryAcquire(path, "the child");
    if (lock.ok()) held = std::move(*lock);
    return held.has_value();
  }));
  std::optional<FileLock> mine;
  EXPECT_FALSE(Take(path, "the parent", &mine));
  EXPECT_EQ(FileLock::ReadHolder(path), "the child");
  ASSERT_TRUE(child.Kill());
  // The kernel released the dead holder's claim.
  EXPECT_TRUE(Take(path, "the parent", &mine));
  EXPECT_EQ(FileLock::ReadHolder(path), "the parent");
}

}  // namespace
}  // namespace wfm::repository
