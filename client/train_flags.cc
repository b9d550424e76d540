#include "client/train_flags.h"

#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

template <typename T>
CLI::Option* Opt(CLI::App* app, const std::string& name, std::optional<T>* out,
                 const std::string& description) {
  return app->add_option_function<T>(name, [out](const T& v) { *out = v; }, description);
}

absl::Status NotFor(const std::string& flag, const std::string& family) {
  return absl::InvalidArgumentError(absl::StrCat(
      flag, " does not apply to --family ", family, " (it is a ",
      family == "gaussian" ? "pointcloud" : "gaussian", " option)"));
}

absl::Status CheckChoice(const std::string& flag, const std::string& value,
                         const std::vector<std::string>& choices, const std::string& family) {
  for (const std::string& c : choices) {
    if (c == value) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", value, ": not a choice for --family ",
                                                 family, "; choose one of ",
                                                 absl::StrJoin(choices, ", ")));
}

}  // namespace

absl::StatusOr<bool> ParseOnOff(const std::string& value, const std::string& flag) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
  if (v == "off" || v == "false" || v == "no" || v == "0") return false;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " ", value, ": expected on or off"));
}

void AddTrainFlags(CLI::App* c, TrainFlags* f) {
  c->add_option("--dataset", f->dataset, "data set to train on")->required();
  c->add_option("--model", f->model, "name of the model to create")->required();
  c->add_option("--family", f->family,
                "pointcloud | gaussian (default: gaussian for GAUSSIANS data sets, "
                "pointcloud otherwise)")
      ->check(CLI::IsMember({"pointcloud", "gaussian"}));
  c->add_flag("--overwrite", f->overwrite, "replace a model of the same name when done");
  c->add_flag("--watch", f->watch,
              "follow the job with a progress bar; exit non-zero unless it succeeds");
  c->add_flag("--json", f->json, "print the job as one JSON document");

  const std::string kOpt = "Optimisation";
  Opt(c, "--steps", &f->steps, "training steps")->check(CLI::PositiveNumber)->group(kOpt);
  Opt(c, "--batch", &f->batch, "samples per step")->check(CLI::PositiveNumber)->group(kOpt);
  Opt(c, "--lr", &f->lr, "learning rate")->check(CLI::PositiveNumber)->group(kOpt);
  Opt(c, "--decay-steps", &f->decay_steps, "lr decays by --decay-rate every this many steps (0 = constant)")
      ->check(CLI::NonNegativeNumber)->group(kOpt);
  Opt(c, "--decay-rate", &f->decay_rate, "learning-rate decay factor")
      ->check(CLI::Range(0.0, 1.0))->group(kOpt);
  Opt(c, "--grad-clip", &f->grad_clip, "gradient norm clip (0 = none)")
      ->check(CLI::NonNegativeNumber)->group(kOpt);
  Opt(c, "--seed", &f->seed, "random seed of the job")->group(kOpt);

  const std::string kNet = "Network";
  Opt(c, "--emb", &f->emb, "embedding width")->check(CLI::PositiveNumber)->group(kNet);
  Opt(c, "--layers", &f->layers, "blocks / layers")->check(CLI::PositiveNumber)->group(kNet);
  Opt(c, "--heads", &f->heads, "attention heads (pointcloud; divides --emb)")
      ->check(CLI::PositiveNumber)->group(kNet);
  Opt(c, "--mlp", &f->mlp, "hidden width of the MLPs")->check(CLI::PositiveNumber)->group(kNet);
  Opt(c, "--dropout", &f->dropout, "dropout rate in [0, 1) (pointcloud)")
      ->check(CLI::Range(0.0, 0.999999))->group(kNet);
  Opt(c, "--architecture", &f->architecture, "gaussian: separate | joint")
      ->check(CLI::IsMember({"separate", "joint"}))->group(kNet);

  const std::string kData = "Data";
  Opt(c, "--k", &f->k, "niche size: nearest spatial neighbours (SPATIAL_CELLS data sets)")
      ->check(CLI::PositiveNumber)->group(kData);
  Opt(c, "--holdout", &f->holdout, "fraction of items held out for evaluate --split heldout")
      ->check(CLI::Range(0.0, 0.999999))->group(kData);
  Opt(c, "--checkpoint-every", &f->checkpoint_every, "steps between checkpoints (0 = at the end)")
      ->check(CLI::NonNegativeNumber)->group(kData);
  Opt(c, "--source-dataset", &f->source_dataset,
      "data set of source clouds / Gaussians (--noise given_random | given_matched)")
      ->group(kData);

  const std::string kFlow = "Flow matching";
  Opt(c, "--noise", &f->noise,
      "source: pointcloud uniform | normal | chol_normal | meta_normal | given_random | "
      "given_matched; gaussian wishart | given_random | given_matched")
      ->group(kFlow);
  Opt(c, "--minibatch-ot", &f->minibatch_ot, "on | off: re-pair noise and data by OT per batch")
      ->group(kFlow);
  Opt(c, "--minibatch-eps", &f->minibatch_eps, "ε of the minibatch OT")
      ->check(CLI::PositiveNumber)->group(kFlow);
  Opt(c, "--minibatch-cost", &f->minibatch_cost,
      "pointcloud: chamfer | entropic | euclidean | frechet")
      ->check(CLI::IsMember({"chamfer", "entropic", "euclidean", "frechet"}))->group(kFlow);
  Opt(c, "--monge-map", &f->monge_map,
      "pointcloud: entropic | argmax | rounded_matching | sample | euclidean")
      ->check(CLI::IsMember({"entropic", "argmax", "rounded_matching", "sample", "euclidean"}))
      ->group(kFlow);
  Opt(c, "--eps", &f->eps, "pointcloud: Sinkhorn ε, relative to each pair's max cost")
      ->check(CLI::PositiveNumber)->group(kFlow);
  Opt(c, "--sinkhorn-iters", &f->sinkhorn_iters,
      "pointcloud: Sinkhorn iterations (0 = until --sinkhorn-tol)")
      ->check(CLI::NonNegativeNumber)->group(kFlow);
  Opt(c, "--sinkhorn-tol", &f->sinkhorn_tol, "pointcloud: Sinkhorn marginal tolerance")
      ->check(CLI::PositiveNumber)->group(kFlow);
  Opt(c, "--guidance", &f->guidance, "pointcloud: default guidance γ for sampling (> 1 turns on --p-uncond)")
      ->check(CLI::NonNegativeNumber)->group(kFlow);
  Opt(c, "--p-uncond", &f->p_uncond, "pointcloud: probability of dropping the label in training")
      ->check(CLI::Range(0.0, 1.0))->group(kFlow);
  Opt(c, "--subsample-points", &f->subsample_points, "pointcloud: points drawn per cloud (0 = all)")
      ->check(CLI::NonNegativeNumber)->group(kFlow);
  Opt(c, "--source-subsample-points", &f->source_subsample_points,
      "pointcloud: points drawn per source cloud (0 = all)")
      ->check(CLI::NonNegativeNumber)->group(kFlow);
  Opt(c, "--df-scale", &f->df_scale, "Wishart degrees-of-freedom scale (pointcloud meta_normal, gaussian wishart)")
      ->check(CLI::PositiveNumber)->group(kFlow);
  Opt(c, "--velocity", &f->velocity, "gaussian: riemannian | euclidean")
      ->check(CLI::IsMember({"riemannian", "euclidean"}))->group(kFlow);
  Opt(c, "--loss", &f->loss, "gaussian: tangent | euclidean")
      ->check(CLI::IsMember({"tangent", "euclidean"}))->group(kFlow);
  Opt(c, "--mean-scale", &f->mean_scale, "gaussian: scale of the source means")
      ->check(CLI::PositiveNumber)->group(kFlow);
  Opt(c, "--cov-scale", &f->cov_scale, "gaussian: scale of the source covariances")
      ->check(CLI::PositiveNumber)->group(kFlow);
}

absl::StatusOr<v1::StartTrainingRequest> BuildTrainingRequest(const TrainFlags& f,
                                                              const std::string& family) {
  if (family != "pointcloud" && family != "gaussian") {
    return absl::InvalidArgumentError(
        absl::StrCat("--family ", family, ": choose pointcloud or gaussian"));
  }
  const bool pc = family == "pointcloud";
  // Flags of the other family.
  const std::vector<std::pair<const char*, bool>> pointcloud_only = {
      {"--monge-map", f.monge_map.has_value()},
      {"--eps", f.eps.has_value()},
      {"--sinkhorn-iters", f.sinkhorn_iters.has_value()},
      {"--sinkhorn-tol", f.sinkhorn_tol.has_value()},
      {"--minibatch-cost", f.minibatch_cost.has_value()},
      {"--guidance", f.guidance.has_value()},
      {"--p-uncond", f.p_uncond.has_value()},
      {"--subsample-points", f.subsample_points.has_value()},
      {"--source-subsample-points", f.source_subsample_points.has_value()},
      {"--heads", f.heads.has_value()},
      {"--dropout", f.dropout.has_value()}};
  const std::vector<std::pair<const char*, bool>> gaussian_only = {
      {"--velocity", f.velocity.has_value()},
      {"--loss", f.loss.has_value()},
      {"--architecture", f.architecture.has_value()},
      {"--mean-scale", f.mean_scale.has_value()},
      {"--cov-scale", f.cov_scale.has_value()}};
  for (const auto& [flag, given] : pc ? gaussian_only : pointcloud_only) {
    if (given) return NotFor(flag, family);
  }

  v1::StartTrainingRequest request;
  request.set_dataset(f.dataset);
  request.set_model(f.model);
  request.set_overwrite(f.overwrite);
  v1::TrainingConfig& config = *request.mutable_config();
  config.set_family(pc ? v1::FAMILY_POINTCLOUD : v1::FAMILY_GAUSSIAN);

  v1::OptimizerConfig& opt = *config.mutable_optimizer();
  if (f.steps) opt.set_steps(*f.steps);
  if (f.batch) opt.set_batch_size(*f.batch);
  if (f.lr) opt.set_learning_rate(*f.lr);
  if (f.decay_steps) opt.set_decay_steps(*f.decay_steps);
  if (f.decay_rate) opt.set_decay_rate(*f.decay_rate);
  if (f.grad_clip) opt.set_grad_clip_norm(*f.grad_clip);
  if (f.seed) opt.set_seed(*f.seed);

  v1::NetworkConfig& net = *config.mutable_network();
  if (f.emb) net.set_width(*f.emb);
  if (f.heads) net.set_heads(*f.heads);
  if (f.layers) net.set_layers(*f.layers);
  if (f.mlp) net.set_mlp_hidden(*f.mlp);
  if (f.dropout) net.set_dropout(*f.dropout);
  if (f.architecture) net.set_architecture(*f.architecture);

  if (f.k) config.set_niche_size(*f.k);
  if (f.checkpoint_every) config.set_checkpoint_every(*f.checkpoint_every);
  if (f.holdout) config.set_holdout_fraction(*f.holdout);

  std::optional<bool> minibatch;
  if (f.minibatch_ot) {
    WFM_ASSIGN_OR_RETURN(minibatch, ParseOnOff(*f.minibatch_ot, "--minibatch-ot"));
  }
  if (pc) {
    v1::PointCloudOptions& p = *config.mutable_pointcloud();
    if (f.monge_map) p.set_monge_map(*f.monge_map);
    if (f.eps) p.set_epsilon(*f.eps);
    if (f.sinkhorn_iters) p.set_sinkhorn_iterations(*f.sinkhorn_iters);
    if (f.sinkhorn_tol) p.set_sinkhorn_tolerance(*f.sinkhorn_tol);
    if (minibatch) p.set_minibatch_ot(*minibatch);
    if (f.minibatch_cost) p.set_minibatch_cost(*f.minibatch_cost);
    if (f.minibatch_eps) p.set_minibatch_epsilon(*f.minibatch_eps);
    if (f.noise) {
      WFM_RETURN_IF_ERROR(CheckChoice("--noise", *f.noise,
                                      {"uniform", "normal", "chol_normal", "meta_normal",
                                       "given_random", "given_matched"},
                                      family));
      p.set_noise(*f.noise);
    }
    if (f.df_scale) p.set_noise_df_scale(*f.df_scale);
    if (f.guidance) p.set_guidance(*f.guidance);
    if (f.p_uncond) p.set_p_uncond(*f.p_uncond);
    if (f.subsample_points) p.set_subsample_points(*f.subsample_points);
    if (f.source_subsample_points) p.set_source_subsample_points(*f.source_subsample_points);
    if (f.source_dataset) p.set_source_dataset(*f.source_dataset);
  } else {
    v1::GaussianOptions& g = *config.mutable_gaussian();
    if (minibatch) g.set_minibatch_ot(*minibatch);
    if (f.minibatch_eps) g.set_minibatch_epsilon(*f.minibatch_eps);
    if (f.velocity) g.set_velocity(*f.velocity);
    if (f.loss) g.set_loss(*f.loss);
    if (f.noise) {
      WFM_RETURN_IF_ERROR(
          CheckChoice("--noise", *f.noise, {"wishart", "given_random", "given_matched"}, family));
      g.set_noise(*f.noise);
    }
    if (f.df_scale) g.set_degrees_of_freedom_scale(*f.df_scale);
    if (f.mean_scale) g.set_mean_scale_factor(*f.mean_scale);
    if (f.cov_scale) g.set_cov_scale_factor(*f.cov_scale);
    if (f.source_dataset) g.set_source_dataset(*f.source_dataset);
  }
  if (f.source_dataset && (!f.noise || f.noise->rfind("given_", 0) != 0)) {
    return absl::InvalidArgumentError(
        "--source-dataset needs --noise given_random or --noise given_matched");
  }
  return request;
}

}  // namespace wfm::client
