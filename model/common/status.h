// Status helpers shared by every layer of wfm.
//
// Debian's Abseil (20220623) ships absl::Status and absl::StatusOr but not
// status_macros.h, so the two propagation macros are defined here, once.
#ifndef WFM_MODEL_COMMON_STATUS_H_
#define WFM_MODEL_COMMON_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// when it is not OK.
#define WFM_RETURN_IF_ERROR(expr)                    \
  do {                                               \
    ::absl::Status wfm_status_ = (expr);             \
    if (!wfm_status_.ok()) return wfm_status_;       \
  } while (false)

#define WFM_STATUS_CONCAT_INNER_(a, b) a##b
#define WFM_STATUS_CONCAT_(a, b) WFM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise moves the value into `lhs`, which may be a
// declaration (`auto x`, `const Foo& y`) or an existing variable.
#define WFM_ASSIGN_OR_RETURN(lhs, rexpr)                                      \
  WFM_ASSIGN_OR_RETURN_IMPL_(WFM_STATUS_CONCAT_(wfm_statusor_, __LINE__), lhs, \
                             rexpr)

#define WFM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // WFM_MODEL_COMMON_STATUS_H_
