#include "model/nn/cpu_runtime.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/nn/blas.h"

namespace wfm::model::nn {

absl::Status ConfigureCpuRuntime(const CpuRuntimeOptions& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads (", options.threads, ") must be at least 1"));
  }
  at::set_num_threads(options.threads);
  blas::SetBlasThreads(options.threads);
#if defined(__GLIBC__)
  if (options.retain_freed_memory) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
  return absl::OkStatus();
}

}  // namespace wfm::model::nn
