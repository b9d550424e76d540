#include "bench/bench_util.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "model/common/cpu_features.h"
#include "model/nn/cpu_runtime.h"

namespace wfm::bench {

int Fail(const absl::Status& s) {
  std::cerr << "wfm_bench: " << s << "\n";
  return 1;
}

double TimeOnce(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double ProcessCpuSeconds() {
  rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0.0;
  auto seconds = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double MedianSeconds(const std::function<void()>& fn, int repeats, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) times.push_back(TimeOnce(fn));
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

namespace {

double LoadAverage() {
  double load[1] = {0.0};
  return getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

// The 1-minute load average when the run started (SetThreads), so that the
// run's own threads do not count.
double& LoadAtStart() {
  static double load = LoadAverage();
  return load;
}

}  // namespace

void Emit(nlohmann::json record) {
  const model::nn::CpuRuntimeInfo cpu = model::nn::CurrentCpuRuntime();
  const model::cpu::CpuTopology& t = cpu.topology;
  record["threads"] = cpu.threads;
  record["default_threads"] = cpu.default_threads;
  record["topology"] = {{"online_cpus", t.online_cpus},
                        {"affinity_cpus", t.affinity_cpus},
                        {"physical_cores", t.physical_cores},
                        {"smt_siblings", t.smt_siblings},
                        {"quota_cpus", t.quota_cpus.has_value() ? nlohmann::json(*t.quota_cpus)
                                                                : nlohmann::json(nullptr)}};
  record["omp_wait_policy"] = cpu.omp_wait_policy;
  record["blas_threads"] = cpu.blas_threads;
  record["cpus"] = t.online_cpus;
  record["loadavg_1min"] = LoadAtStart();
  record["simd"] = model::cpu::IsaName(model::cpu::BestIsa());
  record["torch"] = TORCH_VERSION;
  std::cout << record.dump() << std::endl;
}

void SetThreads(int threads) {
  LoadAtStart();
  model::nn::CpuRuntimeOptions options;
  options.threads = std::max(0, threads);
  if (absl::Status s = model::nn::ConfigureCpuRuntime(options); !s.ok()) {
    std::cerr << "wfm_bench: " << s << "\n";
  }
  static const bool interop = [] {
    at::set_num_interop_threads(1);
    return true;
  }();
  (void)interop;
}

}  // namespace wfm::bench
