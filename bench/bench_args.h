// Flags of the wfm_bench train and sample subcommands (the same spellings and
// defaults as ../shared/anchors/bench_anchor.py train / sample), shared by the
// point-cloud and Gaussian implementations.
#ifndef WFM_BENCH_BENCH_ARGS_H_
#define WFM_BENCH_BENCH_ARGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/bench_util.h"
#include "model/config/config.h"
#include "model/sample/ode_solver.h"

namespace wfm::bench {

// The size of the benchmarked velocity network (Gaussian networks have no
// heads); the defaults are the anchor's.
struct BenchNetwork {
  int64_t emb = 128;
  int64_t layers = 3;
  int64_t heads = 4;
  int64_t mlp = 256;

  // As the trainers' network configuration (width, heads, layers, MLP
  // hidden width; dropout and architecture at their defaults).
  model::NetworkConfig Config() const { return {emb, heads, layers, mlp}; }
};

// The flags of a network's size: --emb, --layers, --heads and --mlp.
inline void AddNetworkOptions(CLI::App* cmd, BenchNetwork* net) {
  cmd->add_option("--emb", net->emb, "embedding width")->capture_default_str();
  cmd->add_option("--layers", net->layers)->capture_default_str();
  cmd->add_option("--heads", net->heads)->capture_default_str();
  cmd->add_option("--mlp", net->mlp, "MLP hidden width")->capture_default_str();
}

struct TrainBenchArgs {
  int64_t clouds = 256;   // training-set size C
  int64_t points = 128;   // points per cloud N
  int64_t dim = 3;        // D
  int64_t batch = 16;
  BenchNetwork net;
  int64_t iters = 200;    // Sinkhorn iterations
  double eps = 0.002;
  int64_t steps = 10;     // timed steps (after 2 warm-up steps)
  double lr = 2e-4;
  std::string monge_map = "rounded_matching";
  std::string minibatch = "chamfer";
  std::string noise = "chol_normal";
  int threads = 1;
  uint64_t seed = 0;
  bool gaussian = false;
  int64_t world_size = 1;  // > 1: data-parallel over that many local processes
};

// The trainers' configurations for these flags (train_bench.cc, with
// `steps` timed steps after 2 warm-up steps; gaussian_bench.cc).
model::PointCloudTrainConfig PointCloudBenchConfig(const TrainBenchArgs& a);
model::GaussianTrainConfig GaussianBenchConfig(const BenchNetwork& net, int64_t batch, double lr,
                                               int64_t total_steps, uint64_t seed);

struct SampleBenchArgs {
  int64_t clouds = 256;   // training-set size (for the data statistics)
  int64_t points = 128;
  int64_t dim = 3;
  int64_t num = 16;       // samples generated
  int64_t steps = 0;      // integration steps (adaptive: the step cap); 0 = the family's default
  std::string solver;     // ODE solver name; empty = the family's default
  double rtol = 1e-3;     // adaptive solver tolerances
  double atol = 1e-4;
  BenchNetwork net;
  int repeats = 1;
  int threads = 1;
  uint64_t seed = 0;
  bool gaussian = false;
  bool reference_cov_sign = false;  // Gaussian sampler: the reference's sign
};

// The solver flags onto a sampling request of either family: INVALID_ARGUMENT
// naming the flag for an unknown solver or bad tolerances.
template <typename Request>
absl::Status ApplySolver(const SampleBenchArgs& a, Request* r) {
  if (a.steps > 0) r->steps = a.steps;
  // The tolerances' flags have defaults; only the adaptive solver takes them.
  const bool adaptive = a.solver == "adaptive";
  return model::ApplyOdeChoice(a.solver, adaptive ? std::optional<double>(a.rtol) : std::nullopt,
                               adaptive ? std::optional<double>(a.atol) : std::nullopt, r);
}

// What the sample subcommand measured: the request's steps and solver (after
// the flags), the network's parameter count and the timing.
struct SampleRun {
  int64_t steps = 0;
  model::OdeSolver solver{};
  int64_t parameters = 0;
  SampleTiming timing;
};

// Times `r` (a.num samples, seed a.seed, the solver flags applied) on the
// model of a new trainer of `config` on `data`: a randomly initialised
// network, as the anchor's sample benchmark.
template <typename Trainer, typename Data, typename Config, typename Request>
absl::StatusOr<SampleRun> TimeUntrainedSampling(const Data& data, const Config& config, Request r,
                                                const SampleBenchArgs& a) {
  auto trainer = Trainer::Create(data, config, "synthetic");
  if (!trainer.ok()) return trainer.status();
  auto model = (*trainer)->MakeModel();
  if (!model.ok()) return model.status();
  r.num_samples = a.num;
  r.seed = a.seed;
  if (absl::Status s = ApplySolver(a, &r); !s.ok()) return s;
  absl::StatusOr<SampleTiming> timing = TimeSampling(**model, r, a.repeats);
  if (!timing.ok()) return timing.status();
  return SampleRun{r.steps, r.solver, (*model)->parameter_count(), *timing};
}

// Gaussian implementations (bench/gaussian_bench.cc): print one JSON line,
// return the process exit code.
int RunGaussianTrain(const TrainBenchArgs& args);
int RunGaussianSample(const SampleBenchArgs& args);

}  // namespace wfm::bench

#endif  // WFM_BENCH_BENCH_ARGS_H_
