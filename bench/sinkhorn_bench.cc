// wfm_bench sinkhorn: the batched log-domain Sinkhorn on B random pairs of
// clouds, x ~ N(0, I) and y ~ N(1, 0.25 I) with uniform weights, exactly as
// ../shared/anchors/bench_anchor.py sinkhorn. The timed work is what the
// anchor's torch figure times: cost matrix, max-cost scaling, K iterations and
// the plan. Also reports the exponential floor: the time of the 2·B·N·M·K exps
// those iterations need, measured with the same SIMD exp over B·N·M values.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "bench/bench_util.h"
#include "bench/subcommands.h"
#include "model/ot/lse_kernel.h"
#include "model/ot/sinkhorn.h"

namespace wfm::bench {
namespace {

struct SinkhornArgs {
  int batch = 16;
  int points = 128;
  int dim = 3;
  int iters = 200;
  double eps = 0.002;
  int threads = 1;
  int repeats = 3;
  int seed = 0;
  std::string dtype = "float32";
};

// Seconds for one pass of the vectorised exp over n floats (median of 5).
double ExpPassSeconds(size_t n) {
  const auto& k = model::ot::kernel::BestFloatKernels();
  const size_t padded = (n + 63) / 64 * 64;
  auto alloc = [&] {
    return std::unique_ptr<float, decltype(&std::free)>(
        static_cast<float*>(std::aligned_alloc(64, padded * sizeof(float))), &std::free);
  };
  auto in = alloc(), out = alloc();
  for (size_t i = 0; i < padded; ++i) in.get()[i] = -static_cast<float>(i % 97) * 0.25f;
  return MedianSeconds([&] { k.exp(in.get(), out.get(), padded); }, 5, 2);
}

int RunSinkhorn(const SinkhornArgs& args) {
  SetThreads(args.threads);
  const auto dtype = args.dtype == "float64" ? at::kDouble : at::kFloat;
  at::manual_seed(args.seed);
  const int64_t B = args.batch, N = args.points, D = args.dim;
  const at::Tensor x = at::randn({B, N, D}, at::TensorOptions().dtype(dtype));
  const at::Tensor y = 0.5 * at::randn({B, N, D}, at::TensorOptions().dtype(dtype)) + 1.0;
  const at::Tensor w = at::full({B, N}, 1.0 / N, at::TensorOptions().dtype(dtype));
  model::ot::SinkhornOptions opt;
  opt.epsilon = args.eps;
  opt.iterations = args.iters;

  at::Tensor plan;
  absl::Status failure;
  const double seconds = MedianSeconds(
      [&] {
        auto sol = model::ot::SolveSinkhorn(x, w, y, w, opt);
        if (!sol.ok()) {
          failure = sol.status();
          return;
        }
        plan = sol->Plan();
      },
      args.repeats);
  if (!failure.ok()) {
    std::cerr << "wfm_bench sinkhorn: " << failure << "\n";
    return 1;
  }
  const double exp_pass = ExpPassSeconds(static_cast<size_t>(B * N * N));
  const double floor = exp_pass * 2.0 * args.iters;
  nlohmann::json rec = {
      {"cmd", "sinkhorn"},
      {"batch", B},
      {"points", N},
      {"dim", D},
      {"iters", args.iters},
      {"eps", args.eps},
      {"dtype", args.dtype},
      {"seconds_per_batch", seconds},
      {"row_marginal_err", (plan.sum(2) - w).abs().max().item<double>()},
      {"col_marginal_err", (plan.sum(1) - w).abs().max().item<double>()},
      {"exp_floor_seconds", floor},
      {"floor_fraction", floor / seconds},
      {"exps_per_second", static_cast<double>(B * N * N) / exp_pass},
  };
  Emit(rec);
  return 0;
}

}  // namespace

void AddSinkhornCommand(CLI::App& app) {
  auto args = std::make_shared<SinkhornArgs>();
  CLI::App* cmd = app.add_subcommand("sinkhorn", "batched log-domain Sinkhorn throughput");
  cmd->add_option("--batch", args->batch, "cloud pairs per batch (B)")->capture_default_str();
  cmd->add_option("--points", args->points, "points per cloud (N)")->capture_default_str();
  cmd->add_option("--dim", args->dim, "space dimension (D)")->capture_default_str();
  cmd->add_option("--iters", args->iters, "Sinkhorn iterations (K)")->capture_default_str();
  cmd->add_option("--eps", args->eps, "epsilon relative to the max cost")->capture_default_str();
  cmd->add_option("--threads", args->threads, kThreadsHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--repeats", args->repeats, "timed runs (median)")->capture_default_str();
  cmd->add_option("--seed", args->seed)->capture_default_str();
  cmd->add_option("--dtype", args->dtype)->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
  cmd->callback([args] {
    const int rc = RunSinkhorn(*args);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace wfm::bench
