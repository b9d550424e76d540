// client/isolated.h: work in a child process; its result, its errors, its
// crashes and its hangs as seen by the parent.
#include "client/isolated.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/time/clock.h"

namespace wfm::client {
namespace {

using ::testing::HasSubstr;

TEST(IsolatedTest, ReturnsTheChildsBytes) {
  std::string big(3 << 20, '\0');  // larger than a pipe's buffer
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 1);
  absl::StatusOr<std::string> result =
      RunIsolated([&]() -> absl::StatusOr<std::string> { return big; }, absl::Seconds(60), "big");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, big);
  result = RunIsolated([]() -> absl::StatusOr<std::string> { return std::string(); },
                       absl::Seconds(60), "empty");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "");
}

TEST(IsolatedTest, RunsInAnotherProcess) {
  const pid_t parent = getpid();
  absl::StatusOr<std::string> result = RunIsolated(
      []() -> absl::StatusOr<std::string> { return std::to_string(getpid()); }, absl::Seconds(60),
      "pid");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(*result, std::to_string(parent));
}

TEST(IsolatedTest, KeepsTheChildsErrorCodeAndMessage) {
  absl::StatusOr<std::string> result = RunIsolated(
      []() -> absl::StatusOr<std::string> {
        return absl::NotFoundError("cells.h5ad: obsm/spatial: not found");
      },
      absl::Seconds(60), "read");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), "cells.h5ad: obsm/spatial: not found");
}

TEST(IsolatedTest, ACrashIsDataLossNamingTheSignal) {
  absl::StatusOr<std::string> result = RunIsolated(
      []() -> absl::StatusOr<std::string> { std::abort(); }, absl::Seconds(60), "x.h5ad: reading");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(result.status().message(), HasSubstr("x.h5ad: reading: the reader crashed (signal 6"));
  // An abnormal exit without a result counts as a crash too.
  result = RunIsolated([]() -> absl::StatusOr<std::string> { _exit(7); }, absl::Seconds(60), "x");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(result.status().message(), HasSubstr("exit status 7"));
}

TEST(IsolatedTest, AHangIsStoppedAtTheTimeout) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> result = RunIsolated(
      []() -> absl::StatusOr<std::string> {
        for (;;) pause();
      },
      absl::Milliseconds(300), "x.h5ad: reading");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("gave up after 300ms"));
  // The child was killed, not waited for.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

}  // namespace
}  // namespace wfm::client
