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

model::GaussianTrainConfig GaussianBenchConfig(int64_t emb, int64_t layers, int64_t mlp, int64_t batch,
                                       double lr, int64_t total_steps, uint64_t seed) {
  model::GaussianTrainConfig c;
  c.network.width = emb;
  c.network.layers = layers;
  c.network.mlp_hidden = mlp;
  c.optimizer.batch_size = batch;
  c.optimizer.learning_rate = lr;
  c.optimizer.steps = total_steps;
  c.optimizer.seed = seed;
  return c;
}

// As the anchor's synthetic_gaussians (same distributions; another random
// stream).
model::io::GaussianSet SyntheticGaussians(int64_t count, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), s(0.2, 1.0);
  std::normal_distribution<double> z(0.0, 1.0);
  model::io::GaussianSet set;
  set.dim = d;
  for (int64_t c = 0; c < count; ++c) {
    for (int64_t k = 0; k < d; ++k) set.means.push_back(u(rng));
    // A random rotation: Gram-Schmidt on a Gaussian matrix (rows q_i).
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
    std::vector<double> scale(d);
    for (double& v : scale) v = s(rng);
    // cov = Σ_j s_j² q_j q_jᵀ.
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t b = 0; b < d; ++b) {
        double v = 0;
        for (int64_t j = 0; j < d; ++j) v += scale[j] * scale[j] * q[j * d + a] * q[j * d + b];
        set.covs.push_back(v);
      }
    }
  }
  return set;
}

namespace {

int Fail(const absl::Status& s) {
  std::cerr << "wfm_bench: " << s << "\n";
  return 1;
}

}  // namespace

int RunGaussianTrain(const TrainBenchArgs& a) {
  SetThreads(a.threads);
  if (a.steps < 1) return Fail(absl::InvalidArgumentError("--steps: must be >= 1"));
  const model::io::GaussianSet data = SyntheticGaussians(a.clouds, a.dim, a.seed);
  auto trainer = model::GaussianTrainer::Create(
      data, GaussianBenchConfig(a.emb, a.layers, a.mlp, a.batch, a.lr, a.steps + 2, a.seed), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  for (int i = 0; i < 2; ++i) {
    if (auto s = (*trainer)->Step(); !s.ok()) return Fail(s.status());
  }
  (*trainer)->ResetPhaseTimes();
  std::vector<double> losses;
  absl::Status failure;
  const double seconds = TimeOnce([&] {
    for (int64_t i = 0; i < a.steps && failure.ok(); ++i) {
      auto loss = (*trainer)->Step();
      if (!loss.ok()) failure = loss.status();
      losses.push_back(loss.ok() ? *loss : NAN);
    }
  });
  if (!failure.ok()) return Fail(failure);
  const model::PhaseTimes& ph = (*trainer)->phase_times();
  const double n = static_cast<double>(std::max<int64_t>(ph.steps, 1));
  int64_t params = 0;
  for (const auto& p : (*trainer)->network()->parameters()) params += p.numel();
  nlohmann::json rec = {
      {"cmd", "train"}, {"mode", "gaussian"}, {"clouds", a.clouds}, {"dim", a.dim},
      {"batch", a.batch}, {"emb", a.emb}, {"layers", a.layers}, {"mlp", a.mlp},
      {"steps", a.steps}, {"lr", a.lr}, {"params", params},
      {"decay_steps", (*trainer)->effective_decay_steps()},
      {"sec_per_step", seconds / a.steps}, {"steps_per_sec", a.steps / seconds},
      {"final_loss", losses.back()},
      {"mean_loss", std::accumulate(losses.begin(), losses.end(), 0.0) / losses.size()},
      {"phase_sec_per_step",
       {{"noise", ph.noise / n}, {"minibatch_ot", ph.pairing / n}, {"transport", ph.transport / n},
        {"network", ph.network / n}}}};
  Emit(rec);
  return 0;
}

int RunGaussianSample(const SampleBenchArgs& a) {
  SetThreads(a.threads);
  const model::io::GaussianSet data = SyntheticGaussians(a.clouds, a.dim, a.seed);
  // A randomly initialised network, as the anchor's sample benchmark.
  auto trainer = model::GaussianTrainer::Create(
      data, GaussianBenchConfig(a.emb, a.layers, a.mlp, 16, 2e-4, 1, a.seed), "synthetic");
  if (!trainer.ok()) return Fail(trainer.status());
  auto model = (*trainer)->MakeModel();
  if (!model.ok()) return Fail(model.status());
  model::GaussianSampleRequest r;
  r.num_samples = a.num;
  r.seed = a.seed;
  r.reference_cov_sign = a.reference_cov_sign;
  if (auto s = ApplySolver(a, &r); !s.ok()) return Fail(s);
  const int64_t steps = r.steps;  // --steps, or the family's default
  r.steps = 2;
  if (auto s = (*model)->Sample({r}); !s.ok()) return Fail(s.status());  // warm-up
  r.steps = steps;
  absl::Status failure;
  int64_t nfe = 0;
  const double seconds = MedianSeconds(
      [&] {
        auto s = (*model)->Sample({r});
        if (!s.ok()) failure = s.status();
        if (s.ok()) nfe = (*s)[0].evaluations;
      },
      a.repeats, 0);
  if (!failure.ok()) return Fail(failure);
  nlohmann::json rec = {{"cmd", "sample"}, {"mode", "gaussian"}, {"dim", a.dim},
                        {"num", a.num}, {"steps", steps}, {"emb", a.emb},
                        {"layers", a.layers}, {"mlp", a.mlp},
                        {"cov_update", a.reference_cov_sign ? "reference" : "corrected"},
                        {"solver", model::OdeSolverName(r.solver)}, {"nfe", nfe},
                        {"params", (*model)->parameter_count()},
                        {"sec_total", seconds}, {"samples_per_sec", a.num / seconds}};
  Emit(rec);
  return 0;
}

}  // namespace wfm::bench
