// The one place where exceptions thrown by LibTorch (c10::Error and friends)
// and the standard library become absl::Status values.
//
// Every public entry point of model/ that runs torch code wraps the body in
// GuardTorch(), so no exception crosses a layer boundary:
//
//   absl::StatusOr<torch::Tensor> Foo(...) {
//     return GuardTorch("Foo", [&] { return torch::matmul(a, b); });
//   }
//
// The callable may return void, absl::Status, absl::StatusOr<T> or a plain T;
// the result is absl::Status for the first two and absl::StatusOr<T> otherwise.
#ifndef WFM_MODEL_COMMON_TORCH_STATUS_H_
#define WFM_MODEL_COMMON_TORCH_STATUS_H_

#include "absl/strings/string_view.h"
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wfm::model {

// Converts the exception being handled (call only inside a catch block) into a
// status whose message starts with `context`:
//   std::bad_alloc, c10::OutOfMemoryError -> RESOURCE_EXHAUSTED
//   c10::LinAlgError (e.g. a failed Cholesky) -> FAILED_PRECONDITION
//   every other c10::Error / std::exception -> INTERNAL
// c10 messages are reported without their C++ back-trace.
absl::Status StatusFromCurrentException(absl::string_view context);

namespace internal {
template <typename T>
struct GuardResult {
  using type = absl::StatusOr<T>;
};
template <>
struct GuardResult<void> {
  using type = absl::Status;
};
template <>
struct GuardResult<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct GuardResult<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};
}  // namespace internal

template <typename F>
auto GuardTorch(absl::string_view context, F&& fn) ->
    typename internal::GuardResult<std::decay_t<std::invoke_result_t<F>>>::type {
  using R = std::decay_t<std::invoke_result_t<F>>;
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<F>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<F>(fn)();
    }
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace wfm::model

#endif  // WFM_MODEL_COMMON_TORCH_STATUS_H_
