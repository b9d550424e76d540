// Fatal checks of absl::Status / absl::StatusOr results for test bodies and
// void helpers: a failed result ends the test with its status instead of
// being dereferenced. A helper that returns a value cannot use them; it
// returns absl::StatusOr and its caller checks with WFM_ASSERT_OK_AND_ASSIGN.
#ifndef WFM_TESTS_TESTING_STATUS_H_
#define WFM_TESTS_TESTING_STATUS_H_

#include <utility>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define WFM_TESTING_CONCAT_INNER(a, b) a##b
#define WFM_TESTING_CONCAT(a, b) WFM_TESTING_CONCAT_INNER(a, b)

// ASSERT that a Status (or a StatusOr's status) is OK, printing it if not.
#define WFM_ASSERT_OK(expr)                                                  \
  do {                                                                       \
    const auto& wfm_assert_ok_result = (expr);                               \
    ASSERT_TRUE(::wfm::testing::internal::StatusOf(wfm_assert_ok_result).ok()) \
        << #expr << ": " << ::wfm::testing::internal::StatusOf(wfm_assert_ok_result); \
  } while (false)

// `lhs = *rexpr` after ASSERTing that the StatusOr `rexpr` is OK; `lhs` may
// declare a variable (`WFM_ASSERT_OK_AND_ASSIGN(auto model, MakeModel());`).
#define WFM_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  WFM_ASSERT_OK_AND_ASSIGN_IMPL(WFM_TESTING_CONCAT(wfm_status_or_, __LINE__), lhs, rexpr)

#define WFM_ASSERT_OK_AND_ASSIGN_IMPL(result, lhs, rexpr)           \
  auto result = (rexpr);                                            \
  ASSERT_TRUE(result.ok()) << #rexpr << ": " << result.status();    \
  lhs = *std::move(result)

namespace wfm::testing::internal {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

}  // namespace wfm::testing::internal

#endif  // WFM_TESTS_TESTING_STATUS_H_
