#include "train/train_run.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/checkpoint/checkpoint.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/io/npz.h"
#include "model/io/point_sets.h"
#include "model/train/gaussian_trainer.h"
#include "model/train/pointcloud_trainer.h"
#include "repository/dataset_record.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "repository/model_folder.h"
#include "repository/names.h"
#include "repository/training_data.h"

namespace wfm::train {

using model::distributed::CommStats;
using model::distributed::DataParallel;
using model::distributed::TensorDigest;
using repository::DatasetData;
using repository::DatasetInfo;
using repository::DatasetKind;
using repository::DatasetKindName;
using repository::Exists;
using repository::ValidateName;

namespace {

using Clock = std::chrono::steady_clock;
using model::Family;
using model::io::GaussianSet;
using model::io::PointCloudSet;

constexpr size_t kRecentLosses = 100;  // as the trainers' summary

// A data set of the repository, read as the server reads it.
absl::StatusOr<std::shared_ptr<const DatasetData>> LoadDataset(const std::string& data_dir,
                                                               const std::string& name) {
  WFM_RETURN_IF_ERROR(ValidateName("dataset", name));
  const std::string folder = absl::StrCat(data_dir, "/datasets/", name);
  if (!Exists(folder)) {
    return absl::NotFoundError(absl::StrCat("data set '", name, "' not found in ", data_dir));
  }
  WFM_ASSIGN_OR_RETURN(const DatasetInfo info, repository::ReadDatasetRecord(folder, name));
  return repository::ReadDatasetFolder(folder, info);
}

// An .npz file of point clouds or Gaussians as a data set named by its path.
absl::StatusOr<std::shared_ptr<const DatasetData>> LoadFile(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(model::io::NpzArrays arrays, model::io::ReadNpz(path));
  WFM_ASSIGN_OR_RETURN(const model::io::NpzKind kind, model::io::DetectNpzKind(arrays, path));
  auto data = std::make_shared<DatasetData>();
  data->info.name = path;
  if (kind == model::io::NpzKind::kPointClouds) {
    WFM_ASSIGN_OR_RETURN(PointCloudSet set, model::io::PointCloudsFromArrays(std::move(arrays), path));
    data->info.kind = DatasetKind::kPointClouds;
    data->info.items = set.num_clouds();
    data->data = std::move(set);
  } else {
    WFM_ASSIGN_OR_RETURN(GaussianSet set, model::io::GaussiansFromArrays(std::move(arrays), path));
    data->info.kind = DatasetKind::kGaussians;
    data->info.items = set.num_gaussians();
    data->data = std::move(set);
  }
  return std::shared_ptr<const DatasetData>(std::move(data));
}

// <data-dir>/train/<model>.wfm: the periodic checkpoints of a run publishing
// into the repository, until its final one is published as a version.
std::string WorkingCheckpointPath(const std::string& data_dir, const std::string& model) {
  return absl::StrCat(data_dir, "/train/", model, ".wfm");
}

// Everything a rank trains on.
struct Prepared {
  model::TrainingConfig config;  // with the family to train
  repository::TrainingInputs inputs;
  // Where the periodic checkpoints go: --out, or the run's working
  // checkpoint <data-dir>/train/<model>.wfm.
  std::string output;
  // Publishing into a repository: versions of <models_root>/<model>.
  std::string models_root;
  // The checkpoint to continue from ("": start afresh), and whether it is a
  // published version of the model.
  std::string resume_from;
  bool resumes_version = false;
};

absl::StatusOr<Prepared> Prepare(const TrainRunOptions& o, int64_t rank) {
  Prepared p;
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const DatasetData> data,
                       o.data_file.empty() ? LoadDataset(o.data_dir, o.dataset)
                                           : LoadFile(o.data_file));
  const DatasetInfo& info = data->info;
  p.config = o.config;
  p.config.family = o.family.value_or(info.kind == DatasetKind::kGaussians ? Family::kGaussian
                                                                           : Family::kPointCloud);
  const Family family = p.config.family;
  if (!repository::KindFits(family, info.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--family ", model::FamilyName(family), ": ", info.name, " holds ",
        DatasetKindName(info.kind), "; ", model::FamilyName(family), " models train on ",
        DatasetKindName(repository::FamilyKind(family)), " or SPATIAL_CELLS data"));
  }
  p.config = repository::ConfigForData(std::move(p.config), info.kind);
  if (repository::HoldoutCount(info.items, p.config.holdout_fraction) >= info.items) {
    return absl::InvalidArgumentError("--holdout: leaves nothing to train on");
  }
  const bool has_source = !o.source_file.empty() || !p.config.source_dataset.empty();
  if (repository::UsesGivenSource(p.config) != has_source) {
    return absl::InvalidArgumentError(
        has_source ? "--source-data / --source-dataset: only with --noise given_random or given_matched"
                   : "--noise given_random / given_matched: needs --source-data or --source-dataset");
  }
  std::shared_ptr<const DatasetData> source;
  if (has_source) {
    WFM_ASSIGN_OR_RETURN(source, o.source_file.empty()
                                     ? LoadDataset(o.data_dir, p.config.source_dataset)
                                     : LoadFile(o.source_file));
  }
  WFM_ASSIGN_OR_RETURN(p.inputs, repository::MakeTrainingInputs(*data, source.get(), p.config));

  if (!o.out.empty()) {
    p.output = o.out;
    const bool exists = Exists(p.output);
    if (rank == 0 && exists && !o.resume && !o.overwrite) {
      return absl::AlreadyExistsError(absl::StrCat(
          p.output, " already exists (pass --overwrite to replace it or --resume to continue it)"));
    }
    if (o.resume && exists) p.resume_from = p.output;
  } else {
    WFM_RETURN_IF_ERROR(ValidateName("model", o.model));
    p.models_root = absl::StrCat(o.data_dir, "/models");
    p.output = WorkingCheckpointPath(o.data_dir, o.model);
    if (o.resume && Exists(p.output)) {
      p.resume_from = p.output;  // an interrupted run
    } else if (o.resume) {
      // A finished run: its model's latest version (the first layout's file
      // included) holds the optimizer state too.
      absl::StatusOr<std::vector<repository::StoredVersion>> versions =
          repository::ListModelVersions(p.models_root, o.model);
      if (versions.ok() && !versions->empty()) {
        p.resume_from = versions->back().path;
        p.resumes_version = true;
      }
    } else if (rank == 0 && Exists(p.output)) {
      LogInfo(absl::StrCat("starting afresh: the checkpoint of an interrupted run, ", p.output,
                           ", will be replaced (pass --resume to continue it)"));
    }
  }
  if (o.resume && p.resume_from.empty()) {
    LogInfo(absl::StrCat("rank ", rank, ": nothing to resume ",
                         p.models_root.empty() ? "at " + p.output : "for model " + o.model,
                         "; starting afresh"));
  } else if (rank == 0 && !p.resume_from.empty()) {
    LogInfo(absl::StrCat("resuming from ", p.resume_from));
  }
  return p;
}

// Writes `ckpt` where rank 0 writes; returns the path. Checkpoints go to
// p.output atomically; into a repository, the final one is published as a
// version of the model (as a server's training job publishes it) and the
// run's working checkpoint is removed.
absl::StatusOr<std::string> WriteCheckpoint(const Prepared& p, const TrainRunOptions& o,
                                            const model::checkpoint::Checkpoint& ckpt,
                                            bool final) {
  const auto write = [&](const std::string& path) { return model::checkpoint::Write(path, ckpt); };
  if (p.models_root.empty() || !final) {
    if (!p.models_root.empty()) {
      WFM_RETURN_IF_ERROR(repository::MakeDirs(p.output.substr(0, p.output.rfind('/'))));
    }
    WFM_RETURN_IF_ERROR(write(p.output));
    return p.output;
  }
  WFM_ASSIGN_OR_RETURN(const int64_t version,
                       repository::PublishModel(p.models_root, o.model, o.overwrite, write));
  LogInfo(absl::StrCat(o.overwrite ? "replaced model '" : "published model '", o.model,
                       "' version ", version));
  // Published: the working checkpoint is done with (a crash before this
  // line leaves it, and a --resume would publish its state once more).
  WFM_RETURN_IF_ERROR(repository::RemoveTree(p.output));
  return repository::ModelVersionPath(p.models_root, o.model, version);
}

std::string Hex(uint64_t v) { return absl::StrFormat("%016x", v); }

// The ranks' shared training loop, for either trainer.
template <typename Trainer>
absl::StatusOr<TrainRunResult> Drive(Trainer& trainer, const TrainRunOptions& o,
                                     const Prepared& p, DataParallel& dp) {
  const int64_t rank = dp.rank();
  std::vector<at::Tensor> params = trainer.network()->parameters();
  std::vector<at::Tensor> state = params;
  for (const at::Tensor& b : trainer.network()->buffers()) state.push_back(b);

  // The same starting point everywhere.
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> starts,
                       dp.AllGather(trainer.step(), "the starting step"));
  for (int64_t r = 1; r < dp.world_size(); ++r) {
    if (starts[r] != starts[0]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rank ", r, " starts at step ", starts[r], " but rank 0 at step ", starts[0],
          ": the ranks resumed from different checkpoints"));
    }
  }
  WFM_RETURN_IF_ERROR(dp.Broadcast(state));

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> trace(nullptr, &std::fclose);
  if (!o.trace_file.empty()) {
    trace.reset(std::fopen(o.trace_file.c_str(), "w"));
    if (trace == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--trace ", o.trace_file, ": cannot be created"));
    }
  }

  std::deque<double> recent;
  double last_loss = 0.0;
  absl::Status hook_error;
  std::atomic<bool> stop{false};
  auto last_time = Clock::now();
  double last_reduce = dp.gradient_stats().seconds;
  const auto start = Clock::now();

  model::TrainHooks hooks;
  hooks.cancel = &stop;
  hooks.reduce_gradients = dp.GradientReducer(params);
  // With --time-budget every rank stops once any rank's budget is spent.
  hooks.agree_to_stop = [&dp](bool spent) -> absl::StatusOr<bool> {
    WFM_ASSIGN_OR_RETURN(const double any, dp.Mean(spent ? 1.0 : 0.0, "the time budget"));
    return any > 0;
  };
  hooks.on_progress = [&](const model::TrainProgress& progress) {
    if (!hook_error.ok()) return;
    absl::Status s = [&]() -> absl::Status {
      const auto now = Clock::now();
      const double step_seconds = std::chrono::duration<double>(now - last_time).count();
      const double reduce_seconds = dp.gradient_stats().seconds - last_reduce;
      last_time = now;
      last_reduce = dp.gradient_stats().seconds;
      WFM_ASSIGN_OR_RETURN(last_loss, dp.Mean(progress.loss, "the loss"));
      recent.push_back(last_loss);
      if (recent.size() > kRecentLosses) recent.pop_front();
      const bool last = progress.step == progress.total_steps;
      const bool check = o.check_sync_every > 0 &&
                         (progress.step % o.check_sync_every == 0 || last);
      uint64_t digest = 0;
      if (check || trace != nullptr) digest = TensorDigest(params);
      if (check) {
        WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> digests,
                             dp.AllGather(static_cast<int64_t>(digest), "the parameter digests"));
        for (int64_t r = 1; r < dp.world_size(); ++r) {
          if (digests[r] != digests[0]) {
            return absl::InternalError(absl::StrCat(
                "the parameters of rank ", r, " differ from rank 0's after step ", progress.step,
                " (digest ", Hex(static_cast<uint64_t>(digests[r])), " vs ",
                Hex(static_cast<uint64_t>(digests[0])), ")"));
          }
        }
      }
      if (trace != nullptr) {
        double param_sum = 0.0;
        for (const at::Tensor& t : params) param_sum += t.detach().sum().item<double>();
        const nlohmann::json line = {{"rank", rank},
                                     {"step", progress.step},
                                     {"loss", last_loss},
                                     {"local_loss", progress.loss},
                                     {"digest", Hex(digest)},
                                     {"param_sum", param_sum},
                                     {"step_seconds", step_seconds},
                                     {"reduce_seconds", reduce_seconds}};
        const std::string text = line.dump() + "\n";
        if (std::fwrite(text.data(), 1, text.size(), trace.get()) != text.size() ||
            std::fflush(trace.get()) != 0) {
          return absl::InternalError(absl::StrCat("--trace ", o.trace_file, ": write failed"));
        }
      }
      if (rank == 0 && o.log_every > 0 && (progress.step % o.log_every == 0 || last)) {
        const CommStats& g = dp.gradient_stats();
        const double share = progress.elapsed_seconds > 0 ? g.seconds / progress.elapsed_seconds : 0;
        LogInfo(absl::StrFormat(
            "step %d/%d loss %.6g, %.2f steps/s, gradient all-reduce %.1f%% of the time",
            progress.step, progress.total_steps, last_loss, progress.steps_per_second,
            100.0 * share));
      }
      return absl::OkStatus();
    }();
    if (!s.ok()) {
      hook_error = std::move(s);
      stop.store(true);
    }
  };

  auto make_checkpoint = [&]() -> absl::StatusOr<model::checkpoint::Checkpoint> {
    WFM_ASSIGN_OR_RETURN(model::checkpoint::Checkpoint ckpt, trainer.MakeCheckpoint(true));
    ckpt.metadata["server"] = p.inputs.origin.ToJson();
    // The summary's losses are rank 0's share; report the global ones.
    if (ckpt.metadata.contains("summary") && ckpt.metadata["summary"].is_object() &&
        !recent.empty()) {
      ckpt.metadata["summary"]["final_loss"] = last_loss;
      ckpt.metadata["summary"]["recent_loss"] =
          std::accumulate(recent.begin(), recent.end(), 0.0) / static_cast<double>(recent.size());
    }
    return ckpt;
  };
  std::string written_path;  // rank 0's last checkpoint
  auto save = [&](absl::string_view what, bool final) -> absl::Status {
    absl::Status written;
    if (rank == 0) {
      written = [&]() -> absl::Status {
        WFM_ASSIGN_OR_RETURN(const model::checkpoint::Checkpoint ckpt, make_checkpoint());
        WFM_ASSIGN_OR_RETURN(written_path, WriteCheckpoint(p, o, ckpt, final));
        return absl::OkStatus();
      }();
    }
    return dp.Agree(written, what);
  };
  hooks.on_checkpoint = [&](int64_t step) -> absl::Status {
    WFM_RETURN_IF_ERROR(save(absl::StrCat("the checkpoint at step ", step), /*final=*/false));
    if (rank == 0) LogInfo(absl::StrCat("checkpoint at step ", step, " written to ", p.output));
    return absl::OkStatus();
  };

  const absl::Status trained = trainer.Train(hooks);
  if (!hook_error.ok()) return hook_error;
  WFM_RETURN_IF_ERROR(trained);
  TrainRunResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (p.resumes_version && trainer.step() == starts[0]) {
    // A finished run resumed with no step left (a retried --resume): its
    // version stands, and is not published a second time.
    if (rank == 0) {
      LogInfo(absl::StrCat("nothing to train: ", p.resume_from, " is at step ", trainer.step(),
                           " already"));
    }
    written_path = p.resume_from;
  } else {
    WFM_RETURN_IF_ERROR(save("the final checkpoint", /*final=*/true));
  }
  result.steps = trainer.step();
  result.final_loss = last_loss;
  result.checkpoint = written_path;
  result.gradients = dp.gradient_stats();
  return result;
}

}  // namespace

absl::Status ValidateTrainRunOptions(const TrainRunOptions& o, int64_t world_size) {
  if (o.data_file.empty() == o.dataset.empty()) {
    return absl::InvalidArgumentError("--data / --dataset: give exactly one of them");
  }
  if (!o.dataset.empty() && o.data_dir.empty()) {
    return absl::InvalidArgumentError("--dataset: needs --data-dir (the repository holding it)");
  }
  if (!o.config.source_dataset.empty() && o.data_dir.empty()) {
    return absl::InvalidArgumentError("--source-dataset: needs --data-dir");
  }
  if (!o.config.source_dataset.empty() && !o.source_file.empty()) {
    return absl::InvalidArgumentError("--source-data / --source-dataset: give at most one");
  }
  if (o.out.empty() && (o.data_dir.empty() || o.model.empty())) {
    return absl::InvalidArgumentError("--model with --data-dir, or --out: where to write the model");
  }
  if (o.overwrite && o.resume) {
    return absl::InvalidArgumentError("--overwrite / --resume: give at most one");
  }
  if (o.check_sync_every < 0) {
    return absl::InvalidArgumentError("--check-sync-every: must be >= 0");
  }
  if (o.log_every < 0) return absl::InvalidArgumentError("--log-every: must be >= 0");
  if (o.config.niche_size < 1) return absl::InvalidArgumentError("--k: must be >= 1");
  if (!(o.config.holdout_fraction >= 0.0 && o.config.holdout_fraction < 1.0)) {
    return absl::InvalidArgumentError("--holdout: must be in [0, 1)");
  }
  const bool gaussian = o.family.has_value() && *o.family == Family::kGaussian;
  const int64_t batch =
      gaussian ? o.config.gaussian.optimizer.batch_size : o.config.pointcloud.optimizer.batch_size;
  if (batch < 1 || batch % world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch ", batch,
                                                   ": the global batch must split evenly over ",
                                                   world_size, " ranks"));
  }
  return gaussian ? model::ValidateGaussianTrainConfig(o.config.gaussian)
                  : model::ValidatePointCloudTrainConfig(o.config.pointcloud);
}

absl::StatusOr<TrainRunResult> RunTraining(const TrainRunOptions& o, DataParallel& dp) {
  const int64_t rank = dp.rank();
  const model::DistributedRole role{rank, dp.world_size()};

  // Each rank prepares on its own, then they agree, so a rank that cannot
  // read its data stops all of them with its message.
  absl::StatusOr<Prepared> prepared = Prepare(o, rank);
  WFM_RETURN_IF_ERROR(dp.Agree(prepared.status(), "preparing the data"));
  Prepared& p = *prepared;

  const bool resume = !p.resume_from.empty();
  absl::StatusOr<model::checkpoint::Checkpoint> resume_from;
  if (resume) resume_from = model::checkpoint::Read(p.resume_from);

  const repository::TrainingInputs& in = p.inputs;
  const std::string& dataset = in.origin.dataset;  // as the model's summary names it
  if (p.config.family == Family::kPointCloud) {
    const PointCloudSet* source = in.source_clouds_or_null();
    absl::StatusOr<std::unique_ptr<model::PointCloudTrainer>> trainer =
        resume
            ? (resume_from.ok() ? model::PointCloudTrainer::Resume(
                                      in.clouds, *resume_from, source,
                                      p.config.pointcloud.optimizer.steps, role)
                                : resume_from.status())
            : model::PointCloudTrainer::Create(in.clouds, p.config.pointcloud, dataset, source,
                                               role);
    WFM_RETURN_IF_ERROR(dp.Agree(trainer.status(), "creating the trainer"));
    if (rank == 0) {
      LogInfo(absl::StrCat("training pointcloud model on ", in.clouds.num_clouds(), " clouds, ",
                           dp.world_size(), " rank(s), global batch ",
                           (*trainer)->config().optimizer.batch_size, ", from step ",
                           (*trainer)->step(), " to ", (*trainer)->total_steps()));
    }
    return Drive(**trainer, o, p, dp);
  }
  const GaussianSet* source = in.source_gaussians_or_null();
  absl::StatusOr<std::unique_ptr<model::GaussianTrainer>> trainer =
      resume
          ? (resume_from.ok() ? model::GaussianTrainer::Resume(in.gaussians, *resume_from, source,
                                                               p.config.gaussian.optimizer.steps,
                                                               role)
                              : resume_from.status())
          : model::GaussianTrainer::Create(in.gaussians, p.config.gaussian, dataset, source, role);
  WFM_RETURN_IF_ERROR(dp.Agree(trainer.status(), "creating the trainer"));
  if (rank == 0) {
    LogInfo(absl::StrCat("training gaussian model on ", in.gaussians.num_gaussians(),
                         " Gaussians, ", dp.world_size(), " rank(s), global batch ",
                         (*trainer)->config().optimizer.batch_size, ", from step ",
                         (*trainer)->step(), " to ", (*trainer)->total_steps()));
  }
  return Drive(**trainer, o, p, dp);
}

}  // namespace wfm::train
