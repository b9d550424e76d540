// WFM_IO_CHECK: aborts on a broken programmer contract (never on bad input,
// which becomes an absl::Status). Debian's Abseil (20220623) has no
// absl/log/check.h, and model/io must not pull in LibTorch's checks.
#ifndef WFM_MODEL_IO_CHECK_H_
#define WFM_MODEL_IO_CHECK_H_

#include <cstdio>
#include <cstdlib>

// `message` is a C string or anything with .c_str() via WFM_IO_CHECK_MSG.
#define WFM_IO_CHECK(condition, message)                                                    \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, __LINE__, #condition, \
                   (message));                                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)

#endif  // WFM_MODEL_IO_CHECK_H_
