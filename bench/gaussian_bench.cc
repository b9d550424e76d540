// wfm_bench train --gaussian / sample --gaussian: the Bures–Wasserstein family
// on the synthetic Gaussians of ../shared/anchors/bench_anchor.py
// (synthetic_gaussians: C random anisotropic Gaussians, mean ~ U(-1,1)^D,
// covariance R diag(s²) Rᵀ with s ~ U(0.2, 1) and R a random rotation), with
// the anchor's reference configuration: Wishart source, Bures–Wasserstein
// minibatch OT, Riemannian velocity, tangent loss, the separate architecture
// at width E, L layers and MLP M, lr 2e-4 with the anchor's schedule (steps
// + 2 in total, so decay_steps min(1000, (S + 2) / 100)).
//
//   train:  2 warm-up steps, then S timed steps; steps_per_sec and the phase
//           split (noise, minibatch_ot, transport, network).
//   sample: a randomly initialised network generates NS Gaussians with the
//           solver and steps asked for (default: the family's) after a
//           2-step warm-up; samples_per_sec (median of --repeats) and nfe.
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "bench/bench_args.h"
#include "bench/bench_util.h"
#include "bench/synthetic_data.h"
#include "model/sample/gaussian_model.h"
#include "model/train/gaussian_trainer.h"

namespace wfm::bench {

model::GaussianTrainConfig GaussianBenchConfig(const BenchNetwork& net, int64_t batch, double lr,
                                               int64_t total_steps, uint64_t seed) {
  model::GaussianTrainConfig c;
  c.network = net.Config();
  c.optimizer.batch_size = batch;
  c.optimizer.learning_rate = lr;
  c.optimizer.steps = total_steps;
  c.optimizer.seed = seed;
  return c;
}

int RunGaussianTrain(const TrainBenchArgs& a) {
  SetThreads(a.threads);
  const model::io::GaussianSet data = SyntheticGaussians(a.clouds, a.dim, a.seed);
  auto trainer = model::GaussianTrainer::Create(
      data, GaussianBenchConfig(a.net, a.batch, a.lr, a.steps + 2, a.seed), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  const absl::StatusOr<TrainTiming> timing = TimeTrainingSteps(**trainer, a.steps);
  if (!timing.ok()) return Fail(timing.status());
  nlohmann::json rec = TrainRecord(**trainer, *timing);
  rec.update({{"cmd", "train"}, {"mode", "gaussian"}, {"clouds", a.clouds}, {"dim", a.dim},
              {"batch", a.batch}, {"emb", a.net.emb}, {"layers", a.net.layers}, {"mlp", a.net.mlp},
              {"steps", a.steps}, {"lr", a.lr},
              {"decay_steps", (*trainer)->effective_decay_steps()}});
  Emit(rec);
  return 0;
}

int RunGaussianSample(const SampleBenchArgs& a) {
  SetThreads(a.threads);
  const model::io::GaussianSet data = SyntheticGaussians(a.clouds, a.dim, a.seed);
  model::GaussianSampleRequest r;
  r.reference_cov_sign = a.reference_cov_sign;
  const absl::StatusOr<SampleRun> run = TimeUntrainedSampling<model::GaussianTrainer>(
      data, GaussianBenchConfig(a.net, 16, 2e-4, 1, a.seed), r, a);
  if (!run.ok()) return Fail(run.status());
  nlohmann::json rec = {{"cmd", "sample"}, {"mode", "gaussian"}, {"dim", a.dim},
                        {"num", a.num}, {"steps", run->steps}, {"emb", a.net.emb},
                        {"layers", a.net.layers}, {"mlp", a.net.mlp},
                        {"cov_update", a.reference_cov_sign ? "reference" : "corrected"},
                        {"solver", model::OdeSolverName(run->solver)}, {"nfe", run->timing.nfe},
                        {"params", run->parameters},
                        {"sec_total", run->timing.seconds},
                        {"samples_per_sec", a.num / run->timing.seconds},
                        {"cpu_sec_total", run->timing.cpu_seconds}};
  Emit(rec);
  return 0;
}

}  // namespace wfm::bench
