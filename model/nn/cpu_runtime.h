// The process's CPU policy: how many threads, how they wait, and how work is
// split among them. Every program of wfm (wfm-server, wfm-train, wfm_bench)
// applies it through ConfigureCpuRuntime once at start-up, before worker
// threads start. The policy, and why (measured on a 2-vCPU VM with and
// without other busy processes; README "CPU threads" and "Benchmarks"):
//
//  * Thread count: `threads`, or with 0 the default, one thread per physical
//    core the process may run on, at most its cgroup CPU quota rounded down
//    (cpu::DefaultThreads, model/common/cpu_topology.h). SMT siblings add
//    little floating-point throughput, and threads beyond the quota only
//    make the kernel stop the process for the rest of each quota period.
//  * No spinning: libgomp (ATen's thread pool) lets idle threads spin for
//    300000 iterations (~0.4 ms) after every parallel region unless
//    OMP_WAIT_POLICY or GOMP_SPINCOUNT says otherwise, and it reads them only
//    when it is loaded, before main. A spinning thread takes the
//    floating-point units of its SMT sibling, or the CPU of another busy
//    process, from the thread doing the work (measured: training at 2
//    threads ran at 0.2-0.3× the speed it has with passive waiting, and at
//    0.3-0.5× the speed of 1 thread). Programs that link this file therefore start with
//    OMP_WAIT_POLICY=passive: when neither variable is set, the process
//    re-executes itself with it before any library initialiser runs (from
//    the executable's .preinit_array, ~30 ms). Setting OMP_WAIT_POLICY (or
//    GOMP_SPINCOUNT) yourself keeps your value and skips the re-execution.
//  * No nested parallelism: the BLAS (OpenBLAS, which keeps its own thread
//    pool and does not follow at::set_num_threads) always runs on the
//    calling thread. Parallel work is split by wfm into independent items
//    (whole clouds, row blocks, Sinkhorn pairs) run on ATen's threads
//    (ParallelForEachItem, model/common/parallel.h), each item calling the
//    BLAS single-threaded. The BLAS's own threads would otherwise split every
//    small product of the attention loops and wait for each other.
//  * Small loops stay on their thread: phases made of many small parallel
//    loops (a Gaussian training step's network and draws: ~60 loops of a
//    few thousand values each) run under CallingThreadOnly
//    (model/common/parallel.h), since waking a passive thread costs more
//    than such a loop saves (measured: 2 threads took that step 2× as long
//    as 1).
//  * Dynamic items: each thread takes the next unclaimed item, so a thread
//    slowed by another process (or sharing a core) takes fewer items instead
//    of holding the others back.
//  * retain_freed_memory: glibc returns freed heap memory to the OS as soon as
//    more than a few MiB are free at the top of the heap, and serves large
//    blocks with fresh mmaps, so every network call page-faults its
//    activations in again (measured ~2500 faults and ~10% of a point-cloud
//    forward at B=16, N=128). Raising M_MMAP_THRESHOLD to its maximum (32 MiB)
//    and M_TRIM_THRESHOLD keeps the memory mapped; the process then holds on
//    to its peak heap.
#ifndef WFM_MODEL_NN_CPU_RUNTIME_H_
#define WFM_MODEL_NN_CPU_RUNTIME_H_

#include <string>

#include "absl/status/status.h"
#include "model/common/cpu_topology.h"

namespace wfm::model::nn {

struct CpuRuntimeOptions {
  int threads = 0;  // >= 0; 0 = cpu::DefaultThreads of this process's topology
  bool retain_freed_memory = true;
};

// INVALID_ARGUMENT when threads < 0. The malloc settings apply only with
// glibc (elsewhere they are skipped).
absl::Status ConfigureCpuRuntime(const CpuRuntimeOptions& options);

// What is in force: after ConfigureCpuRuntime its settings, before it the
// process's defaults (threads = ATen's current count).
struct CpuRuntimeInfo {
  int threads = 1;             // ATen intra-op threads
  bool default_threads = true;  // threads came from the default policy
  cpu::CpuTopology topology;
  // OMP_WAIT_POLICY as libgomp read it at start-up ("passive" unless the
  // environment said otherwise; "unset" when the re-execution was not
  // possible, e.g. without /proc).
  std::string omp_wait_policy;
  int blas_threads = 1;  // 1 with OpenBLAS; 0 when another BLAS is loaded
};
CpuRuntimeInfo CurrentCpuRuntime();

// One line for logs: "2 threads (default: 2 physical cores (2 logical CPUs)
// of 2 online, no CPU quota), OpenMP wait policy passive, BLAS 1 thread".
std::string DescribeCpuRuntime(const CpuRuntimeInfo& info);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_CPU_RUNTIME_H_
