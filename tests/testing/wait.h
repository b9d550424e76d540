// Waiting for a condition that no event announces: polls it until it holds
// or a deadline passes. Tests wait on events (a condition variable, a line
// of output, a process's exit) where there is one; this is for states only
// visible by asking (a job's step, a metric, a file).
#ifndef WFM_TESTS_TESTING_WAIT_H_
#define WFM_TESTS_TESTING_WAIT_H_

#include <functional>

#include "absl/time/time.h"

namespace wfm::testing {

// Calls `condition` every `interval` until it returns true (then true) or
// `timeout` has passed (then false, after one last call).
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(10));

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_WAIT_H_
