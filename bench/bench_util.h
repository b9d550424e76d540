// Helpers shared by the wfm_bench subcommands.
#ifndef WFM_BENCH_BENCH_UTIL_H_
#define WFM_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

namespace wfm::bench {

// Seconds elapsed while running fn once.
double TimeOnce(const std::function<void()>& fn);

// CPU seconds this process has used (all threads, user and system).
double ProcessCpuSeconds();

// Runs fn `warmup` times untimed, then `repeats` times; returns the median.
double MedianSeconds(const std::function<void()>& fn, int repeats, int warmup = 1);

// Adds the run's context and prints the record as one JSON line on stdout:
// "threads" (the intra-op threads in force), "default_threads" (whether they
// came from the default policy, --threads 0), "topology" (online and
// affinity logical CPUs, physical cores, SMT siblings per core, cgroup CPU
// quota or null), "omp_wait_policy", "blas_threads", "cpus" (logical CPUs
// online), "loadavg_1min" (before the run), "simd" and "torch".
void Emit(nlohmann::json record);

// Help of every subcommand's --threads flag.
inline constexpr char kThreadsHelp[] =
    "intra-op threads; 0 = the default policy (one per physical core, at most the CPU quota), "
    "as wfm-server --threads 0";

// Applies the process's CPU policy (model/nn/cpu_runtime.h) with `threads`
// intra-op threads (0 = the default policy, as wfm-server's --threads 0) and
// one inter-op thread. Records the load average first.
void SetThreads(int threads);

}  // namespace wfm::bench

#endif  // WFM_BENCH_BENCH_UTIL_H_
