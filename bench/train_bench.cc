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

model::PointCloudTrainConfig PointCloudBenchConfig(const TrainBenchArgs& a) {
  model::PointCloudTrainConfig c;
  c.network = a.net.Config();
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

int RunTrain(const TrainBenchArgs& a) {
  if (a.gaussian) return RunGaussianTrain(a);
  if (a.world_size > 1) return RunDistributedTrain(a);
  SetThreads(a.threads);
  if (!model::ParsePointCloudSource(a.noise).ok()) return Fail(model::ParsePointCloudSource(a.noise).status());
  const auto data = SyntheticClouds(a.clouds, a.points, a.dim, a.seed);
  auto trainer = model::PointCloudTrainer::Create(data, PointCloudBenchConfig(a), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  const absl::StatusOr<TrainTiming> timing = TimeTrainingSteps(**trainer, a.steps);
  if (!timing.ok()) return Fail(timing.status());
  nlohmann::json rec = TrainRecord(**trainer, *timing);
  rec.update({{"cmd", "train"}, {"mode", "pointcloud"}, {"clouds", a.clouds},
              {"points", a.points}, {"dim", a.dim}, {"batch", a.batch}, {"emb", a.net.emb},
              {"layers", a.net.layers}, {"heads", a.net.heads}, {"mlp", a.net.mlp}, {"iters", a.iters},
              {"eps", a.eps}, {"steps", a.steps}, {"lr", a.lr}, {"monge_map", a.monge_map},
              {"minibatch", a.minibatch}, {"noise", a.noise}});
  Emit(rec);
  return 0;
}

int RunSample(const SampleBenchArgs& a) {
  if (a.gaussian) return RunGaussianSample(a);
  SetThreads(a.threads);
  const auto data = SyntheticClouds(a.clouds, a.points, a.dim, a.seed);
  TrainBenchArgs t;
  t.net = a.net;
  t.seed = a.seed;
  t.steps = 1;
  model::CloudSampleRequest r;
  r.points = a.points;
  const absl::StatusOr<SampleRun> run =
      TimeUntrainedSampling<model::PointCloudTrainer>(data, PointCloudBenchConfig(t), r, a);
  if (!run.ok()) return Fail(run.status());
  nlohmann::json rec = {{"cmd", "sample"}, {"mode", "pointcloud"}, {"points", a.points},
                        {"dim", a.dim}, {"num", a.num}, {"steps", run->steps}, {"emb", a.net.emb},
                        {"layers", a.net.layers}, {"heads", a.net.heads}, {"mlp", a.net.mlp},
                        {"solver", model::OdeSolverName(run->solver)}, {"nfe", run->timing.nfe},
                        {"params", run->parameters},
                        {"sec_total", run->timing.seconds},
                        {"samples_per_sec", a.num / run->timing.seconds},
                        {"points_per_sec", a.num * a.points / run->timing.seconds},
                        // CPU time of one run (mean over the repeats, all threads).
                        {"cpu_sec_total", run->timing.cpu_seconds}};
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
  AddNetworkOptions(cmd, &a->net);
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
  AddNetworkOptions(cmd, &a->net);
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
