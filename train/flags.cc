#include "train/flags.h"

#include <vector>

#include "model/common/status.h"

namespace wfm::train {
namespace {

template <typename T>
CLI::Option* Optional(CLI::App* app, const std::string& name, std::optional<T>* out,
                      const std::string& description) {
  return app->add_option_function<T>(
      name, [out](const T& v) { *out = v; }, description);
}

}  // namespace

void AddTrainCommandFlags(CLI::App* app, TrainCommand* c) {
  TrainRunOptions& o = c->run;
  const std::string kDist = "Distributed";
  Optional(app, "--world-size", &c->world_size, "processes in the run [$WORLD_SIZE, else 1]")
      ->check(CLI::PositiveNumber)
      ->group(kDist);
  Optional(app, "--rank", &c->rank, "this process's rank, 0..world-size-1 [$RANK, else 0]")
      ->check(CLI::NonNegativeNumber)
      ->group(kDist);
  Optional(app, "--master-addr", &c->master_addr,
           "host of rank 0's rendezvous store [$MASTER_ADDR, else 127.0.0.1]")
      ->group(kDist);
  Optional(app, "--master-port", &c->master_port,
           "port of the rendezvous store [$MASTER_PORT, else 29500]")
      ->check(CLI::Range(1, 65535))
      ->group(kDist);
  app->add_option("--gloo-interface", c->distributed.gloo_interface,
                  "network interface for Gloo [$GLOO_SOCKET_IFNAME]")
      ->group(kDist);
  app->add_option("--gloo-hostname", c->distributed.gloo_hostname,
                  "address or host name for Gloo (e.g. the pod IP)")
      ->group(kDist);
  app->add_option("--timeout-seconds", c->timeout_seconds,
                  "longest wait for the rendezvous and for any collective")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(kDist);

  const std::string kIo = "Data and model";
  app->add_option("--data", o.data_file, ".npz of point clouds or Gaussians to train on")
      ->group(kIo);
  app->add_option("--dataset", o.dataset, "data set of the --data-dir repository to train on")
      ->group(kIo);
  app->add_option("--data-dir", o.data_dir, "the server's data folder (datasets/, models/)")
      ->group(kIo);
  app->add_option("--source-data", o.source_file,
                  ".npz of source clouds / Gaussians (--noise given_*)")
      ->group(kIo);
  app->add_option("--model", o.model,
                  "model name: rank 0 publishes a new version, "
                  "<data-dir>/models/<model>/<V>/model.wfm (checkpoints meanwhile: "
                  "<data-dir>/train/<model>.wfm)")
      ->group(kIo);
  app->add_option("--out", o.out, "write the checkpoint to this file instead")->group(kIo);
  app->add_flag("--overwrite", o.overwrite,
                "replace the --out file, or every version of the --model by the new one "
                "(version 1)")
      ->group(kIo);
  app->add_flag("--resume", o.resume,
                "continue from the last checkpoint (if any): the --out file; for --model an "
                "interrupted run's, else the model's latest version")
      ->group(kIo);

  Optional(app, "--family", &c->family, "pointcloud | gaussian (default: from the data)")
      ->check(CLI::IsMember({"pointcloud", "gaussian"}));
  // Every training option; --batch is the global batch, split evenly over
  // the ranks, and --checkpoint-every defaults to 500 here.
  model::AddTrainingOptionFlags(app, &c->options);

  const std::string kRun = "Run";
  app->add_option("--threads", c->threads,
                  "compute threads of this rank (0: one per physical core, at most the CPU quota)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(kRun);
  app->add_option("--trace", o.trace_file,
                  "per-step JSON lines of this rank (loss, parameter digest, times)")
      ->group(kRun);
  app->add_option("--check-sync-every", o.check_sync_every,
                  "steps between cross-rank parameter checks (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(kRun);
  app->add_option("--log-every", o.log_every, "steps between progress lines of rank 0 (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(kRun);
  app->add_option("--log-level", c->log_level, "debug | info | warning | error")
      ->capture_default_str()
      ->group(kRun);
}

absl::Status ApplyTrainingFlags(TrainCommand* c) {
  model::TrainingConfig& config = c->run.config;
  config.pointcloud.checkpoint_every = kDefaultCheckpointEvery;
  config.gaussian.checkpoint_every = kDefaultCheckpointEvery;
  if (!c->family.has_value()) {
    return model::ApplyGivenOptionsToEitherFamily(c->options, &config);
  }
  WFM_ASSIGN_OR_RETURN(const model::Family family, model::ParseFamily(*c->family));
  c->run.family = family;
  WFM_ASSIGN_OR_RETURN(const std::vector<model::GivenValue> values,
                       model::ResolveGivenOptions(c->options, family));
  model::ApplyGivenOptions(values, &config);
  return absl::OkStatus();
}

}  // namespace wfm::train
