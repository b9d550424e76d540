// Helpers shared by the wfm_bench subcommands.
#ifndef WFM_BENCH_BENCH_UTIL_H_
#define WFM_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wfm::bench {

// Prints "wfm_bench: <status>" on stderr; returns the exit code 1.
int Fail(const absl::Status& s);

// Seconds elapsed while running fn once.
double TimeOnce(const std::function<void()>& fn);

// CPU seconds this process has used (all threads, user and system).
double ProcessCpuSeconds();

// Runs fn `warmup` times untimed, then `repeats` times; returns the median.
double MedianSeconds(const std::function<void()>& fn, int repeats, int warmup = 1);

// What TimeTrainingSteps measured: the seconds of the timed steps and each
// step's loss.
struct TrainTiming {
  double seconds = 0.0;
  std::vector<double> losses;
};

// Times trainer.Step() (either family): 2 warm-up steps, the phase times
// reset, then `steps` timed steps (>= 1).
template <typename Trainer>
absl::StatusOr<TrainTiming> TimeTrainingSteps(Trainer& trainer, int64_t steps) {
  if (steps < 1) return absl::InvalidArgumentError("--steps: must be >= 1");
  for (int i = 0; i < 2; ++i) {
    if (auto s = trainer.Step(); !s.ok()) return s.status();
  }
  trainer.ResetPhaseTimes();
  absl::Status failure;
  TrainTiming t;
  t.seconds = TimeOnce([&] {
    for (int64_t i = 0; i < steps && failure.ok(); ++i) {
      auto loss = trainer.Step();
      if (!loss.ok()) failure = loss.status();
      if (loss.ok()) t.losses.push_back(*loss);
    }
  });
  if (!failure.ok()) return failure;
  return t;
}

// The fields every training record has: sec_per_step, steps_per_sec,
// final_loss, mean_loss, params and phase_sec_per_step (noise, minibatch_ot,
// transport, network: the trainer's phase times per step).
template <typename Trainer>
nlohmann::json TrainRecord(Trainer& trainer, const TrainTiming& t) {
  const auto& ph = trainer.phase_times();
  const double n = static_cast<double>(std::max<int64_t>(ph.steps, 1));
  int64_t params = 0;
  for (const auto& p : trainer.network()->parameters()) params += p.numel();
  const double steps = static_cast<double>(t.losses.size());
  double sum = 0.0;
  for (double l : t.losses) sum += l;
  return {{"params", params},
          {"sec_per_step", t.seconds / steps},
          {"steps_per_sec", steps / t.seconds},
          {"final_loss", t.losses.back()},
          {"mean_loss", sum / steps},
          {"phase_sec_per_step",
           {{"noise", ph.noise / n}, {"minibatch_ot", ph.pairing / n},
            {"transport", ph.transport / n}, {"network", ph.network / n}}}};
}

// What TimeSampling measured: the median seconds of one run, its CPU seconds
// (mean over the repeats, all threads) and its network evaluations.
struct SampleTiming {
  double seconds = 0.0;
  double cpu_seconds = 0.0;
  int64_t nfe = 0;
};

// Times model.Sample({r}) (either family): a 2-step warm-up, then `repeats`
// runs at r's own step count.
template <typename Model, typename Request>
absl::StatusOr<SampleTiming> TimeSampling(Model& model, Request r, int repeats) {
  const int64_t steps = r.steps;
  r.steps = 2;
  if (auto s = model.Sample({r}); !s.ok()) return s.status();
  r.steps = steps;
  absl::Status failure;
  SampleTiming t;
  const double cpu0 = ProcessCpuSeconds();
  t.seconds = MedianSeconds(
      [&] {
        auto s = model.Sample({r});
        if (!s.ok()) failure = s.status();
        if (s.ok()) t.nfe = (*s)[0].evaluations;
      },
      repeats, 0);
  t.cpu_seconds = (ProcessCpuSeconds() - cpu0) / std::max(1, repeats);
  if (!failure.ok()) return failure;
  return t;
}

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
