#include "tests/testing/wait.h"

#include "absl/time/clock.h"

namespace wfm::testing {

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(interval);
  }
  return true;
}

}  // namespace wfm::testing
