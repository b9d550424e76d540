// Helpers shared by the fuzz targets (internal to fuzz/).
#ifndef WFM_FUZZ_UTIL_H_
#define WFM_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace wfm::fuzz {

// An invariant of the code under test failed: prints `what` and aborts, so
// the fuzzer reports the input like a crash.
[[noreturn]] void Fail(absl::string_view what);

// The input as a string_view whose data pointer is never null (libFuzzer may
// pass nullptr with size 0; the readers' real callers never do).
absl::string_view Bytes(const uint8_t* data, size_t size);

// A folder of this process under $TMPDIR (or /tmp), created on first use and
// removed at exit.
const std::string& ScratchPath();

// Writes `bytes` to <ScratchPath()>/<name>, replacing it; returns the path.
std::string WriteScratchFile(absl::string_view name, absl::string_view bytes);

}  // namespace wfm::fuzz

#endif  // WFM_FUZZ_UTIL_H_
