// wfm-train: one rank of a data-parallel training run (see train_run.h and
// data_parallel.h). Start world-size processes with the same flags and a
// different rank each; rank 0 hosts the rendezvous and writes the model.
//
//   wfm-train --world-size 2 --rank 0 --master-addr 10.0.0.5 --master-port 29500
//       --data-dir /data --dataset shapes --model shapes-big --steps 20000 --batch 64
//
// WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT (and GLOO_SOCKET_IFNAME) are read
// first; flags given explicitly win. Exit status: 0 done, 1 failed (one line
// "wfm-train: rank R: <why>" on stderr), 2 bad flags. A failing rank exits
// at once, without waiting for its peers.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "model/nn/cpu_runtime.h"
#include "model/config/config.h"
#include "model/distributed/data_parallel.h"
#include "repository/logging.h"
#include "train/train_run.h"

namespace {

using wfm::model::distributed::DistributedOptions;
using wfm::train::TrainRunOptions;

// Training flags that are unset unless given (the model layer's defaults
// apply otherwise); the spellings are the `wfm train` ones.
struct TrainFlags {
  std::optional<std::string> family;
  std::optional<int64_t> steps, batch, decay_steps, emb, layers, heads, mlp, sinkhorn_iters,
      subsample_points, source_subsample_points;
  std::optional<double> lr, decay_rate, grad_clip, dropout, eps, sinkhorn_tol, minibatch_eps,
      guidance, p_uncond, df_scale, mean_scale, cov_scale;
  std::optional<uint64_t> seed;
  std::optional<std::string> architecture, noise, minibatch_ot, minibatch_cost, monge_map,
      velocity, loss;
};

template <typename T>
CLI::Option* Opt(CLI::App& app, const std::string& name, std::optional<T>* out,
                 const std::string& description) {
  return app.add_option_function<T>(name, [out](const T& v) { *out = v; }, description);
}

absl::StatusOr<bool> OnOff(const std::string& value, const std::string& flag) {
  if (value == "on" || value == "true" || value == "1") return true;
  if (value == "off" || value == "false" || value == "0") return false;
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", value, ": expected on or off"));
}

absl::Status OnlyFor(const TrainFlags& f, const char* flag, bool given, const char* family) {
  if (given && f.family.has_value() && *f.family != family) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " does not apply to --family ", *f.family, " (it is a ", family,
                     " option)"));
  }
  return absl::OkStatus();
}

// Applies the flags to both families' configurations (the family may only be
// known once the data are read).
absl::Status ApplyTrainFlags(const TrainFlags& f, int64_t checkpoint_every, TrainRunOptions* o) {
  if (f.family.has_value()) {
    absl::StatusOr<wfm::model::Family> family = wfm::model::ParseFamily(*f.family);
    if (!family.ok()) return family.status();
    o->family = *family;
  }
  for (wfm::model::OptimizerConfig* opt :
       {&o->config.pointcloud.optimizer, &o->config.gaussian.optimizer}) {
    if (f.steps) opt->steps = *f.steps;
    if (f.batch) opt->batch_size = *f.batch;
    if (f.lr) opt->learning_rate = *f.lr;
    if (f.decay_steps) opt->decay_steps = *f.decay_steps;
    if (f.decay_rate) opt->decay_rate = *f.decay_rate;
    if (f.grad_clip) opt->grad_clip_norm = *f.grad_clip;
    if (f.seed) opt->seed = *f.seed;
  }
  for (wfm::model::NetworkConfig* net :
       {&o->config.pointcloud.network, &o->config.gaussian.network}) {
    if (f.emb) net->width = *f.emb;
    if (f.layers) net->layers = *f.layers;
    if (f.mlp) net->mlp_hidden = *f.mlp;
  }
  o->config.pointcloud.checkpoint_every = checkpoint_every;
  o->config.gaussian.checkpoint_every = checkpoint_every;

  const char* kPc = "pointcloud";
  const char* kGa = "gaussian";
  for (const auto& [flag, given, family] : std::initializer_list<std::tuple<const char*, bool, const char*>>{
           {"--heads", f.heads.has_value(), kPc},
           {"--dropout", f.dropout.has_value(), kPc},
           {"--eps", f.eps.has_value(), kPc},
           {"--sinkhorn-iters", f.sinkhorn_iters.has_value(), kPc},
           {"--sinkhorn-tol", f.sinkhorn_tol.has_value(), kPc},
           {"--monge-map", f.monge_map.has_value(), kPc},
           {"--minibatch-cost", f.minibatch_cost.has_value(), kPc},
           {"--guidance", f.guidance.has_value(), kPc},
           {"--p-uncond", f.p_uncond.has_value(), kPc},
           {"--subsample-points", f.subsample_points.has_value(), kPc},
           {"--source-subsample-points", f.source_subsample_points.has_value(), kPc},
           {"--architecture", f.architecture.has_value(), kGa},
           {"--velocity", f.velocity.has_value(), kGa},
           {"--loss", f.loss.has_value(), kGa},
           {"--mean-scale", f.mean_scale.has_value(), kGa},
           {"--cov-scale", f.cov_scale.has_value(), kGa}}) {
    if (absl::Status s = OnlyFor(f, flag, given, family); !s.ok()) return s;
  }
  wfm::model::PointCloudTrainConfig& pc = o->config.pointcloud;
  if (f.heads) pc.network.heads = *f.heads;
  if (f.dropout) pc.network.dropout = *f.dropout;
  if (f.eps) pc.epsilon = *f.eps;
  if (f.sinkhorn_iters) pc.sinkhorn_iterations = *f.sinkhorn_iters;
  if (f.sinkhorn_tol) pc.sinkhorn_tolerance = *f.sinkhorn_tol;
  if (f.monge_map) pc.monge_map = *f.monge_map;
  if (f.minibatch_cost) pc.minibatch_cost = *f.minibatch_cost;
  if (f.guidance) pc.guidance = *f.guidance;
  if (f.p_uncond) pc.p_uncond = *f.p_uncond;
  if (f.subsample_points) pc.subsample_points = *f.subsample_points;
  if (f.source_subsample_points) pc.source_subsample_points = *f.source_subsample_points;
  if (f.df_scale) pc.noise_df_scale = *f.df_scale;
  wfm::model::GaussianTrainConfig& ga = o->config.gaussian;
  if (f.architecture) ga.network.architecture = *f.architecture;
  if (f.velocity) ga.velocity = *f.velocity;
  if (f.loss) ga.loss = *f.loss;
  if (f.mean_scale) ga.mean_scale_factor = *f.mean_scale;
  if (f.cov_scale) ga.cov_scale_factor = *f.cov_scale;
  if (f.df_scale) ga.degrees_of_freedom_scale = *f.df_scale;
  if (f.minibatch_eps) {
    pc.minibatch_epsilon = *f.minibatch_eps;
    ga.minibatch_epsilon = *f.minibatch_eps;
  }
  if (f.minibatch_ot) {
    absl::StatusOr<bool> on = OnOff(*f.minibatch_ot, "--minibatch-ot");
    if (!on.ok()) return on.status();
    pc.minibatch_ot = *on;
    ga.minibatch_ot = *on;
  }
  if (f.noise) {
    // The source names differ by family: each config takes the one it knows.
    absl::StatusOr<wfm::model::PointCloudSource> ps = wfm::model::ParsePointCloudSource(*f.noise);
    absl::StatusOr<wfm::model::GaussianSource> gs = wfm::model::ParseGaussianSource(*f.noise);
    const bool gaussian = o->family.has_value() && *o->family == wfm::model::Family::kGaussian;
    const bool pointcloud = o->family.has_value() && *o->family == wfm::model::Family::kPointCloud;
    if (!ps.ok() && !gs.ok()) return ps.status();
    if (pointcloud && !ps.ok()) return ps.status();
    if (gaussian && !gs.ok()) return gs.status();
    if (ps.ok()) pc.source = *ps;
    if (gs.ok()) ga.source = *gs;
  }
  return absl::OkStatus();
}

[[noreturn]] void Fail(int64_t rank, const absl::Status& status) {
  wfm::LogError(absl::StrCat("wfm-train: rank ", rank, ": ", status.message(), " [",
                                     absl::StatusCodeToString(status.code()), "]"));
  std::fflush(nullptr);
  // Peers may be gone or stuck: leave without running destructors that
  // could wait for them.
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wfm-train: one rank of a data-parallel WFM training run (c10d, Gloo)"};
  TrainRunOptions o;
  TrainFlags f;
  DistributedOptions d;
  std::optional<int64_t> world_size, rank;
  std::optional<std::string> master_addr;
  std::optional<int> master_port;
  double timeout_seconds = 60.0;
  int64_t checkpoint_every = 500;
  int threads = 0;
  std::string log_level = "info";

  const std::string kDist = "Distributed";
  Opt(app, "--world-size", &world_size, "processes in the run [$WORLD_SIZE, else 1]")
      ->check(CLI::PositiveNumber)->group(kDist);
  Opt(app, "--rank", &rank, "this process's rank, 0..world-size-1 [$RANK, else 0]")
      ->check(CLI::NonNegativeNumber)->group(kDist);
  Opt(app, "--master-addr", &master_addr, "host of rank 0's rendezvous store [$MASTER_ADDR, else 127.0.0.1]")
      ->group(kDist);
  Opt(app, "--master-port", &master_port, "port of the rendezvous store [$MASTER_PORT, else 29500]")
      ->check(CLI::Range(1, 65535))->group(kDist);
  app.add_option("--gloo-interface", d.gloo_interface,
                 "network interface for Gloo [$GLOO_SOCKET_IFNAME]")->group(kDist);
  app.add_option("--gloo-hostname", d.gloo_hostname,
                 "address or host name for Gloo (e.g. the pod IP)")->group(kDist);
  app.add_option("--timeout-seconds", timeout_seconds,
                 "longest wait for the rendezvous and for any collective")
      ->check(CLI::PositiveNumber)->capture_default_str()->group(kDist);

  const std::string kIo = "Data and model";
  app.add_option("--data", o.data_file, ".npz of point clouds or Gaussians to train on")->group(kIo);
  app.add_option("--dataset", o.dataset, "data set of the --data-dir repository to train on")->group(kIo);
  app.add_option("--data-dir", o.data_dir, "the server's data folder (datasets/, models/)")->group(kIo);
  app.add_option("--source-data", o.source_file, ".npz of source clouds / Gaussians (--noise given_*)")->group(kIo);
  app.add_option("--source-dataset", o.config.source_dataset, "data set of source clouds / Gaussians")->group(kIo);
  app.add_option("--model", o.model, "model name: rank 0 writes <data-dir>/models/<model>/model.wfm")->group(kIo);
  app.add_option("--out", o.out, "write the checkpoint to this file instead")->group(kIo);
  app.add_flag("--overwrite", o.overwrite, "replace an existing model")->group(kIo);
  app.add_flag("--resume", o.resume, "continue from the existing checkpoint (if any)")->group(kIo);
  app.add_option("--k", o.config.niche_size, "niche size (SPATIAL_CELLS data sets)")
      ->capture_default_str()->group(kIo);
  app.add_option("--holdout", o.config.holdout_fraction, "fraction of items held out (as the server)")
      ->capture_default_str()->group(kIo);
  app.add_option("--checkpoint-every", checkpoint_every, "steps between checkpoints (0: at the end)")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group(kIo);

  const std::string kOpt = "Training";
  Opt(app, "--family", &f.family, "pointcloud | gaussian (default: from the data)")
      ->check(CLI::IsMember({"pointcloud", "gaussian"}))->group(kOpt);
  Opt(app, "--steps", &f.steps, "training steps")->check(CLI::PositiveNumber)->group(kOpt);
  Opt(app, "--batch", &f.batch, "global batch (split evenly over the ranks)")
      ->check(CLI::PositiveNumber)->group(kOpt);
  Opt(app, "--lr", &f.lr, "learning rate")->check(CLI::PositiveNumber)->group(kOpt);
  Opt(app, "--decay-steps", &f.decay_steps, "learning-rate decay period (0: constant)")->group(kOpt);
  Opt(app, "--decay-rate", &f.decay_rate, "learning-rate decay factor")->group(kOpt);
  Opt(app, "--grad-clip", &f.grad_clip, "gradient norm clip (0: none)")->group(kOpt);
  Opt(app, "--seed", &f.seed, "seed of the run (the same on every rank)")->group(kOpt);
  Opt(app, "--emb", &f.emb, "embedding width")->group(kOpt);
  Opt(app, "--layers", &f.layers, "blocks / layers")->group(kOpt);
  Opt(app, "--heads", &f.heads, "attention heads (pointcloud)")->group(kOpt);
  Opt(app, "--mlp", &f.mlp, "hidden width of the MLPs")->group(kOpt);
  Opt(app, "--dropout", &f.dropout, "dropout rate (pointcloud)")->group(kOpt);
  Opt(app, "--architecture", &f.architecture, "gaussian: separate | joint")->group(kOpt);
  Opt(app, "--noise", &f.noise, "source: uniform | normal | chol_normal | meta_normal | wishart | given_random | given_matched")
      ->group(kOpt);
  Opt(app, "--minibatch-ot", &f.minibatch_ot, "on | off")->group(kOpt);
  Opt(app, "--minibatch-eps", &f.minibatch_eps, "ε of the minibatch OT")->group(kOpt);
  Opt(app, "--minibatch-cost", &f.minibatch_cost, "chamfer | entropic | euclidean | frechet")->group(kOpt);
  Opt(app, "--monge-map", &f.monge_map, "entropic | argmax | rounded_matching | sample | euclidean")
      ->group(kOpt);
  Opt(app, "--eps", &f.eps, "Sinkhorn ε, relative to each pair's max cost")->group(kOpt);
  Opt(app, "--sinkhorn-iters", &f.sinkhorn_iters, "Sinkhorn iterations (0: until --sinkhorn-tol)")->group(kOpt);
  Opt(app, "--sinkhorn-tol", &f.sinkhorn_tol, "Sinkhorn marginal tolerance")->group(kOpt);
  Opt(app, "--guidance", &f.guidance, "default guidance γ for sampling")->group(kOpt);
  Opt(app, "--p-uncond", &f.p_uncond, "probability of dropping the label in training")->group(kOpt);
  Opt(app, "--subsample-points", &f.subsample_points, "points drawn per cloud (0: all)")->group(kOpt);
  Opt(app, "--source-subsample-points", &f.source_subsample_points, "points per source cloud")->group(kOpt);
  Opt(app, "--df-scale", &f.df_scale, "Wishart degrees-of-freedom scale")->group(kOpt);
  Opt(app, "--velocity", &f.velocity, "gaussian: riemannian | euclidean")->group(kOpt);
  Opt(app, "--loss", &f.loss, "gaussian: tangent | euclidean")->group(kOpt);
  Opt(app, "--mean-scale", &f.mean_scale, "gaussian: scale of the source means")->group(kOpt);
  Opt(app, "--cov-scale", &f.cov_scale, "gaussian: scale of the source covariances")->group(kOpt);

  const std::string kRun = "Run";
  app.add_option("--threads", threads,
                 "compute threads of this rank (0: one per physical core, at most the CPU quota)")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group(kRun);
  app.add_option("--trace", o.trace_file, "per-step JSON lines of this rank (loss, parameter digest, times)")
      ->group(kRun);
  app.add_option("--check-sync-every", o.check_sync_every,
                 "steps between cross-rank parameter checks (0: never)")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group(kRun);
  app.add_option("--log-every", o.log_every, "steps between progress lines of rank 0 (0: never)")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group(kRun);
  app.add_option("--log-level", log_level, "debug | info | warning | error")
      ->capture_default_str()->group(kRun);
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<wfm::LogLevel> level = wfm::ParseLogLevel(log_level);
  if (!level.ok()) {
    std::fprintf(stderr, "wfm-train: --log-level %s: %s\n", log_level.c_str(),
                 std::string(level.status().message()).c_str());
    return 2;
  }
  wfm::SetLogLevel(*level);

  if (absl::Status s = wfm::model::distributed::ApplyEnvironment(&d); !s.ok()) Fail(d.rank, s);
  if (world_size) d.world_size = *world_size;
  if (rank) d.rank = *rank;
  if (master_addr) d.master_addr = *master_addr;
  if (master_port) d.master_port = *master_port;
  d.timeout = absl::Seconds(timeout_seconds);
  if (absl::Status s = wfm::model::distributed::ValidateDistributedOptions(d); !s.ok()) {
    Fail(d.rank, s);
  }
  if (absl::Status s = ApplyTrainFlags(f, checkpoint_every, &o); !s.ok()) Fail(d.rank, s);
  if (absl::Status s = wfm::train::ValidateTrainRunOptions(o, d.world_size); !s.ok()) {
    Fail(d.rank, s);
  }

  wfm::model::nn::CpuRuntimeOptions cpu;
  cpu.threads = threads;  // 0: the default policy (model/nn/cpu_runtime.h)
  if (absl::Status s = wfm::model::nn::ConfigureCpuRuntime(cpu); !s.ok()) Fail(d.rank, s);

  wfm::LogInfo(absl::StrCat("wfm-train: rank ", d.rank, " of ", d.world_size,
                                    d.world_size > 1 ? absl::StrCat(", rendezvous at ", d.master_addr,
                                                                    ":", d.master_port)
                                                     : std::string()));
  absl::StatusOr<std::unique_ptr<wfm::model::distributed::DataParallel>> dp =
      wfm::model::distributed::DataParallel::Connect(d);
  if (!dp.ok()) Fail(d.rank, dp.status());
  absl::StatusOr<wfm::train::TrainRunResult> result = wfm::train::RunTraining(o, **dp);
  if (!result.ok()) Fail(d.rank, result.status());
  const double share =
      result->seconds > 0 ? result->gradients.seconds / result->seconds : 0.0;
  wfm::LogInfo(absl::StrCat(
      "wfm-train: rank ", d.rank, " done: step ", result->steps, ", loss ", result->final_loss,
      ", ", result->seconds, " s, gradient all-reduce ", 100.0 * share, "% of it",
      d.rank == 0 ? absl::StrCat(", model written to ", result->checkpoint) : std::string()));
  return 0;
}
