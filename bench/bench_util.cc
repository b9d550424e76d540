#include "bench/bench_util.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "model/nn/cpu_runtime.h"
#include "model/ot/lse_kernel.h"

namespace wfm::bench {

double TimeOnce(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double MedianSeconds(const std::function<void()>& fn, int repeats, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) times.push_back(TimeOnce(fn));
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

void Emit(nlohmann::json record, int threads) {
  double load[1] = {0.0};
  if (getloadavg(load, 1) != 1) load[0] = -1;
  record["threads"] = threads;
  record["cpus"] = std::thread::hardware_concurrency();
  record["loadavg_1min"] = load[0];
  record["simd"] = model::ot::kernel::BestFloatKernels().isa;
  record["torch"] = TORCH_VERSION;
  std::cout << record.dump() << std::endl;
}

void SetThreads(int threads) {
  model::nn::CpuRuntimeOptions options;
  options.threads = std::max(1, threads);
  if (absl::Status s = model::nn::ConfigureCpuRuntime(options); !s.ok()) {
    std::cerr << "wfm_bench: " << s << "\n";
  }
  at::set_num_interop_threads(1);
}

}  // namespace wfm::bench
