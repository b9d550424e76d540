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

// Runs fn `warmup` times untimed, then `repeats` times; returns the median.
double MedianSeconds(const std::function<void()>& fn, int repeats, int warmup = 1);

// Adds the run's context (threads, cpus, load average, SIMD kernel, torch
// version) and prints the record as one JSON line on stdout.
void Emit(nlohmann::json record, int threads);

// Sets LibTorch's and OpenBLAS's threads (one inter-op thread) and the
// process's CPU runtime settings (model/nn/cpu_runtime.h).
void SetThreads(int threads);

}  // namespace wfm::bench

#endif  // WFM_BENCH_BENCH_UTIL_H_
