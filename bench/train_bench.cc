// wfm_bench train / sample: training steps/s and sampling throughput on the
// synthetic data of ../shared/anchors/bench_anchor.py (C random anisotropic
// Gaussian blobs of N points: mean ~ U(-1,1)^D, covariance R diag(s²) Rᵀ with
// s ~ U(0.2, 1) and R a random rotation), with the anchor's flags, defaults
// and reference configuration (chol_normal noise, chamfer minibatch OT,
// rounded matching, ε 0.002, dropout 0.1, lr 2e-4). --gaussian runs the
// Bures–Wasserstein family instead (bench/gaussian_bench.cc).
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "bench/bench_args.h"
#include "bench/bench_util.h"
#include "bench/distributed_bench.h"
#include "bench/subcommands.h"
#include "bench/synthetic_data.h"
#include "model/sample/pointcloud_model.h"
#include "model/train/pointcloud_trainer.h"

namespace wfm::bench {

model::io::PointCloudSet SyntheticClouds(int64_t count, int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), s(0.2, 1.0);
  std::normal_distribution<double> z(0.0, 1.0);
  model::io::PointCloudSet set;
  set.dim = d;
  set.offsets.push_back(0);
  for (int64_t c = 0; c < count; ++c) {
    // A random rotation: QR of a Gaussian matrix (Gram-Schmidt).
    std::vector<double> q(d * d);
    for (double& v : q) v = z(rng);
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < i; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += q[i * d + k] * q[j * d + k];
        for (int64_t k = 0; k < d; ++k) q[i * d + k] -= dot * q[j * d + k];
      }
      double norm = 0;
      for (int64_t k = 0; k < d; ++k) norm += q[i * d + k] * q[i * d + k];
      for (int64_t k = 0; k < d; ++k) q[i * d + k] /= std::sqrt(norm);
    }
    std::vector<double> mean(d), scale(d);
    for (double& v : mean) v = u(rng);
    for (double& v : scale) v = s(rng);
    for (int64_t p = 0; p < n; ++p) {
      std::vector<double> e(d);
      for (double& v : e) v = z(rng);
      for (int64_t k = 0; k < d; ++k) {
        double x = mean[k];
        for (int64_t j = 0; j < d; ++j) x += q[j * d + k] * scale[j] * e[j];
        set.points.push_back(static_cast<float>(x));
      }
    }
    set.offsets.push_back(set.offsets.back() + n);
  }
  return set;
}

model::PointCloudTrainConfig PointCloudBenchConfig(const TrainBenchArgs& a) {
  model::PointCloudTrainConfig c;
  c.network.width = a.emb;
  c.network.heads = a.heads;
  c.network.layers = a.layers;
  c.network.mlp_hidden = a.mlp;
  c.optimizer.batch_size = a.batch;
  c.optimizer.learning_rate = a.lr;
  c.optimizer.steps = a.steps + 2;
  c.optimizer.seed = a.seed;
  c.sinkhorn_iterations = a.iters;
  c.epsilon = a.eps;
  c.monge_map = a.monge_map;
  c.minibatch_cost = a.minibatch;
  if (auto s = model::ParsePointCloudSource(a.noise); s.ok()) c.source = *s;
  return c;
}

namespace {

int Fail(const absl::Status& s) {
  std::cerr << "wfm_bench: " << s << "\n";
  return 1;
}

int RunTrain(const TrainBenchArgs& a) {
  if (a.gaussian) return RunGaussianTrain(a);
  if (a.world_size > 1) return RunDistributedTrain(a);
  SetThreads(a.threads);
  if (!model::ParsePointCloudSource(a.noise).ok()) return Fail(model::ParsePointCloudSource(a.noise).status());
  const auto data = SyntheticClouds(a.clouds, a.points, a.dim, a.seed);
  auto trainer = model::PointCloudTrainer::Create(data, PointCloudBenchConfig(a), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  for (int i = 0; i < 2; ++i) {
    if (auto s = (*trainer)->Step(); !s.ok()) return Fail(s.status());
  }
  (*trainer)->ResetPhaseTimes();
  std::vector<double> losses;
  const double seconds = TimeOnce([&] {
    for (int64_t i = 0; i < a.steps; ++i) {
      auto loss = (*trainer)->Step();
      losses.push_back(loss.ok() ? *loss : NAN);
    }
  });
  const model::PhaseTimes& ph = (*trainer)->phase_times();
  const double n = static_cast<double>(std::max<int64_t>(ph.steps, 1));
  int64_t params = 0;
  for (const auto& p : (*trainer)->network()->parameters()) params += p.numel();
  nlohmann::json rec = {
      {"cmd", "train"}, {"mode", "pointcloud"}, {"clouds", a.clouds}, {"points", a.points},
      {"dim", a.dim}, {"batch", a.batch}, {"emb", a.emb}, {"layers", a.layers},
      {"heads", a.heads}, {"mlp", a.mlp}, {"iters", a.iters}, {"eps", a.eps},
      {"steps", a.steps}, {"lr", a.lr}, {"monge_map", a.monge_map},
      {"minibatch", a.minibatch}, {"noise", a.noise}, {"params", params},
      {"sec_per_step", seconds / a.steps}, {"steps_per_sec", a.steps / seconds},
      {"final_loss", losses.back()},
      {"mean_loss", std::accumulate(losses.begin(), losses.end(), 0.0) / losses.size()},
      {"phase_sec_per_step",
       {{"noise", ph.noise / n}, {"minibatch_ot", ph.pairing / n}, {"transport", ph.transport / n},
        {"network", ph.network / n}}}};
  Emit(rec);
  return 0;
}

int RunSample(const SampleBenchArgs& a) {
  if (a.gaussian) return RunGaussianSample(a);
  SetThreads(a.threads);
  const auto data = SyntheticClouds(a.clouds, a.points, a.dim, a.seed);
  TrainBenchArgs t;
  t.emb = a.emb;
  t.layers = a.layers;
  t.heads = a.heads;
  t.mlp = a.mlp;
  t.seed = a.seed;
  t.steps = 1;
  // A randomly initialised network, as the anchor's sample benchmark.
  auto trainer = model::PointCloudTrainer::Create(data, PointCloudBenchConfig(t), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  auto model = (*trainer)->MakeModel();
  if (!model.ok()) return Fail(model.status());
  model::CloudSampleRequest r;
  r.num_samples = a.num;
  r.points = a.points;
  r.seed = a.seed;
  if (auto s = ApplySolver(a, &r); !s.ok()) return Fail(s);
  const int64_t steps = r.steps;  // --steps, or the family's default
  r.steps = 2;
  if (auto s = (*model)->Sample({r}); !s.ok()) return Fail(s.status());  // warm-up
  r.steps = steps;
  absl::Status failure;
  int64_t nfe = 0;
  const double cpu0 = ProcessCpuSeconds();
  const double seconds = MedianSeconds(
      [&] {
        auto s = (*model)->Sample({r});
        if (!s.ok()) failure = s.status();
        if (s.ok()) nfe = (*s)[0].evaluations;
      },
      a.repeats, 0);
  const double cpu_seconds = (ProcessCpuSeconds() - cpu0) / std::max(1, a.repeats);
  if (!failure.ok()) return Fail(failure);
  nlohmann::json rec = {{"cmd", "sample"}, {"mode", "pointcloud"}, {"points", a.points},
                        {"dim", a.dim}, {"num", a.num}, {"steps", steps}, {"emb", a.emb},
                        {"layers", a.layers}, {"heads", a.heads}, {"mlp", a.mlp},
                        {"solver", model::OdeSolverName(r.solver)}, {"nfe", nfe},
                        {"params", (*model)->parameter_count()},
                        {"sec_total", seconds}, {"samples_per_sec", a.num / seconds},
                        {"points_per_sec", a.num * a.points / seconds},
                        // CPU time of one run (mean over the repeats, all threads).
                        {"cpu_sec_total", cpu_seconds}};
  Emit(rec);
  return 0;
}

}  // namespace

void AddTrainCommand(CLI::App& app) {
  auto a = std::make_shared<TrainBenchArgs>();
  CLI::App* cmd = app.add_subcommand("train", "training steps per second");
  cmd->add_option("--clouds", a->clouds, "training-set size (C)")->capture_default_str();
  cmd->add_option("--points", a->points, "points per cloud (N)")->capture_default_str();
  cmd->add_option("--dim", a->dim, "space dimension (D)")->capture_default_str();
  cmd->add_option("--batch", a->batch)->capture_default_str();
  cmd->add_option("--emb", a->emb, "embedding width")->capture_default_str();
  cmd->add_option("--layers", a->layers)->capture_default_str();
  cmd->add_option("--heads", a->heads)->capture_default_str();
  cmd->add_option("--mlp", a->mlp, "MLP hidden width")->capture_default_str();
  cmd->add_option("--iters", a->iters, "Sinkhorn iterations")->capture_default_str();
  cmd->add_option("--eps", a->eps)->capture_default_str();
  cmd->add_option("--steps", a->steps, "timed steps (after 2 warm-up)")->capture_default_str();
  cmd->add_option("--lr", a->lr)->capture_default_str();
  cmd->add_option("--monge-map", a->monge_map)->capture_default_str();
  cmd->add_option("--minibatch", a->minibatch, "minibatch OT cost")->capture_default_str();
  cmd->add_option("--noise", a->noise)->capture_default_str();
  cmd->add_option("--threads", a->threads, kThreadsHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", a->seed)->capture_default_str();
  cmd->add_option("--world-size", a->world_size,
                  "> 1: the same global batch over that many data-parallel processes on "
                  "loopback, against one process")
      ->capture_default_str();
  cmd->add_flag("--gaussian", a->gaussian, "Bures-Wasserstein family instead of point clouds");
  cmd->callback([a] {
    if (const int rc = RunTrain(*a); rc != 0) std::exit(rc);
  });
}

void AddSampleCommand(CLI::App& app) {
  auto a = std::make_shared<SampleBenchArgs>();
  CLI::App* cmd = app.add_subcommand("sample", "generation throughput (random network)");
  cmd->add_option("--clouds", a->clouds, "training-set size")->capture_default_str();
  cmd->add_option("--points", a->points)->capture_default_str();
  cmd->add_option("--dim", a->dim)->capture_default_str();
  cmd->add_option("--num", a->num, "samples generated")->capture_default_str();
  cmd->add_option("--steps", a->steps,
                  "integration steps (adaptive: the step cap); 0 = the family's default")
      ->capture_default_str();
  cmd->add_option("--solver", a->solver,
                  "euler | midpoint | heun | rk4 | adaptive (default: midpoint, Gaussians euler)");
  cmd->add_option("--rtol", a->rtol, "adaptive: relative tolerance")->capture_default_str();
  cmd->add_option("--atol", a->atol, "adaptive: absolute tolerance")->capture_default_str();
  cmd->add_option("--emb", a->emb)->capture_default_str();
  cmd->add_option("--layers", a->layers)->capture_default_str();
  cmd->add_option("--heads", a->heads)->capture_default_str();
  cmd->add_option("--mlp", a->mlp)->capture_default_str();
  cmd->add_option("--repeats", a->repeats)->capture_default_str();
  cmd->add_option("--threads", a->threads, kThreadsHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", a->seed)->capture_default_str();
  cmd->add_flag("--gaussian", a->gaussian, "Bures-Wasserstein family instead of point clouds");
  cmd->add_flag("--reference-cov-sign", a->reference_cov_sign,
                "Gaussian sampler: the reference's covariance update sign");
  cmd->callback([a] {
    if (const int rc = RunSample(*a); rc != 0) std::exit(rc);
  });
}

}  // namespace wfm::bench
