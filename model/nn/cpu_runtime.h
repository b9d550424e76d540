// Process-wide CPU settings the networks' speed depends on. Call once at
// start-up (server main, benchmarks), before worker threads start.
//
//  * threads: ATen's intra-op pool and OpenBLAS's own pool (OpenBLAS does not
//    follow at::set_num_threads and otherwise starts one thread per core).
//  * retain_freed_memory: glibc returns freed heap memory to the OS as soon as
//    more than a few MiB are free at the top of the heap, and serves large
//    blocks with fresh mmaps, so every network call page-faults its
//    activations in again (measured ~2500 faults and ~10% of a point-cloud
//    forward at B=16, N=128). Raising M_MMAP_THRESHOLD to its maximum (32 MiB)
//    and M_TRIM_THRESHOLD keeps the memory mapped; the process then holds on
//    to its peak heap.
#ifndef WFM_MODEL_NN_CPU_RUNTIME_H_
#define WFM_MODEL_NN_CPU_RUNTIME_H_

#include "absl/status/status.h"

namespace wfm::model::nn {

struct CpuRuntimeOptions {
  int threads = 1;  // >= 1
  bool retain_freed_memory = true;
};

// INVALID_ARGUMENT when threads < 1. The malloc settings apply only with
// glibc (elsewhere they are skipped).
absl::Status ConfigureCpuRuntime(const CpuRuntimeOptions& options);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_CPU_RUNTIME_H_
