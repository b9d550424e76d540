// wfm train, watch, cancel, jobs, models, delete-model.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/output.h"
#include "client/progress.h"
#include "client/train_flags.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

std::string Summary(const v1::TrainingJob& job) {
  std::string text = absl::StrCat("job ", job.id(), " ", JobStateName(job.state()), ": ",
                                  job.step(), "/", job.total_steps(), " steps");
  if (job.finished_unix_ms() > 0 && job.started_unix_ms() > 0) {
    const double seconds = (job.finished_unix_ms() - job.started_unix_ms()) / 1000.0;
    absl::StrAppend(&text, " in ", FormatDuration(seconds));
  }
  if (job.steps_per_second() > 0) {
    absl::StrAppend(&text, absl::StrFormat(" (%.1f steps/s)", job.steps_per_second()));
  }
  if (job.step() > 0) absl::StrAppend(&text, absl::StrFormat(", loss %.4g", job.loss()));
  if (job.resumes() > 0) {
    absl::StrAppend(&text, "; resumed after a server restart from step ", job.resumed_from_step());
  }
  if (job.state() == v1::SUCCEEDED) absl::StrAppend(&text, "; model '", job.model(), "' is ready");
  return text;
}

// Follows `id` and reports the outcome; used by train --watch and watch.
absl::Status Follow(CliContext& context, Client& client, const std::string& id, bool json) {
  if (context.interactive() && !context.global.quiet) {
    std::fprintf(stderr, "(Ctrl-C stops watching; the job keeps running: wfm cancel %s)\n",
                 id.c_str());
  }
  WFM_ASSIGN_OR_RETURN(const v1::TrainingJob job,
                       FollowJob(client, id, context.interactive(), context.global.quiet));
  if (json) {
    PrintJson(ProtoToJson(job));
  } else {
    std::printf("%s\n", Summary(job).c_str());
  }
  return JobOutcome(job);
}

absl::Status Train(CliContext& context, const TrainFlags& flags) {
  // Flags that cannot fit either family fail before any call.
  if (!flags.family.empty()) {
    WFM_RETURN_IF_ERROR(BuildTrainingRequest(flags, flags.family).status());
  }
  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  std::string family = flags.family;
  if (family.empty()) {
    WFM_ASSIGN_OR_RETURN(const v1::Dataset dataset, client->GetDataset(flags.dataset));
    family = dataset.kind() == v1::GAUSSIANS ? "gaussian" : "pointcloud";
  }
  WFM_ASSIGN_OR_RETURN(const v1::StartTrainingRequest request, BuildTrainingRequest(flags, family));
  WFM_ASSIGN_OR_RETURN(const v1::TrainingJob job, client->StartTraining(request));
  if (flags.watch) {
    if (!flags.json) {
      std::printf("training job %s: model '%s' on data set '%s' (%s, %lld steps)\n",
                  job.id().c_str(), job.model().c_str(), job.dataset().c_str(), family.c_str(),
                  static_cast<long long>(job.total_steps()));
      std::fflush(stdout);
    }
    return Follow(context, *client, job.id(), flags.json);
  }
  if (flags.json) {
    PrintJson(ProtoToJson(job));
  } else {
    std::printf("started training job %s: model '%s' on data set '%s' (%s, %lld steps, %s)\n"
                "follow it with: wfm watch %s\n",
                job.id().c_str(), job.model().c_str(), job.dataset().c_str(), family.c_str(),
                static_cast<long long>(job.total_steps()), JobStateName(job.state()).c_str(),
                job.id().c_str());
  }
  return absl::OkStatus();
}

struct ModelsFlags {
  std::string name;
  bool json = false;
  int64_t version = 0;
  std::optional<int64_t> serve_version;
  std::optional<int64_t> keep_versions;
  std::optional<int64_t> delete_version;
  bool load = false;
  bool unload = false;
};

absl::Status Models(CliContext& context, const ModelsFlags& f) {
  const bool changes = f.serve_version.has_value() || f.keep_versions.has_value() ||
                       f.delete_version.has_value() || f.load || f.unload;
  if (f.name.empty() && (changes || f.version != 0)) {
    return absl::InvalidArgumentError(
        "--version, --serve-version, --keep-versions, --delete-version, --load, --unload: need "
        "a model NAME");
  }
  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  std::vector<v1::ModelInfo> all;
  if (!f.name.empty()) {
    if (f.delete_version.has_value()) {
      WFM_RETURN_IF_ERROR(client->DeleteModel(f.name, *f.delete_version));
      if (!f.json) {
        std::printf("deleted version %lld of model '%s'\n",
                    static_cast<long long>(*f.delete_version), f.name.c_str());
      }
    }
    if (f.serve_version.has_value() || f.keep_versions.has_value() || f.load || f.unload) {
      v1::UpdateModelRequest update;
      update.set_name(f.name);
      if (f.serve_version.has_value()) update.set_serving_version(*f.serve_version);
      if (f.keep_versions.has_value()) update.set_keep_versions(*f.keep_versions);
      if (f.load || f.unload) {
        update.set_residency(f.load ? v1::MODEL_RESIDENCY_LOAD : v1::MODEL_RESIDENCY_UNLOAD);
        update.set_version(f.version);
      }
      WFM_RETURN_IF_ERROR(client->UpdateModel(update).status());
    }
    WFM_ASSIGN_OR_RETURN(const v1::ModelInfo model, client->GetModel(f.name, f.version));
    if (f.json) {
      PrintJson(ProtoToJson(model));
    } else {
      std::printf("%s\n%s", ModelsTable({model}).c_str(), VersionsTable(model).c_str());
    }
    return absl::OkStatus();
  }
  WFM_ASSIGN_OR_RETURN(all, client->ListModels());
  if (f.json) {
    nlohmann::json array = nlohmann::json::array();
    for (const v1::ModelInfo& m : all) array.push_back(ProtoToJson(m));
    PrintJson({{"models", array}});
  } else if (all.empty()) {
    std::printf("no models (train one with: wfm train --dataset D --model M)\n");
  } else {
    std::printf("%s", ModelsTable(all).c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void AddTrainCommands(CLI::App& app, CliContext& context) {
  // train
  auto flags = std::make_shared<TrainFlags>();
  CLI::App* train = app.add_subcommand("train", "start a training job (unset options: server defaults)");
  AddTrainFlags(train, flags.get());
  train->callback([&context, flags] { context.action = [&context, flags] { return Train(context, *flags); }; });

  // watch JOB
  auto watch_id = std::make_shared<std::string>();
  auto watch_json = std::make_shared<bool>(false);
  CLI::App* watch = app.add_subcommand("watch", "follow a training job until it ends");
  watch->add_option("JOB", *watch_id, "job id")->required();
  watch->add_flag("--json", *watch_json, "print the final job as one JSON document");
  watch->callback([&context, watch_id, watch_json] {
    context.action = [&context, watch_id, watch_json]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      return Follow(context, *client, *watch_id, *watch_json);
    };
  });

  // cancel JOB
  auto cancel_id = std::make_shared<std::string>();
  auto cancel_json = std::make_shared<bool>(false);
  CLI::App* cancel = app.add_subcommand("cancel", "cancel a queued or running training job");
  cancel->add_option("JOB", *cancel_id, "job id")->required();
  cancel->add_flag("--json", *cancel_json, "print the job as one JSON document");
  cancel->callback([&context, cancel_id, cancel_json] {
    context.action = [&context, cancel_id, cancel_json]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      WFM_ASSIGN_OR_RETURN(const v1::TrainingJob job, client->CancelTrainingJob(*cancel_id));
      if (*cancel_json) {
        PrintJson(ProtoToJson(job));
      } else {
        std::printf("job %s: %s\n", job.id().c_str(), JobStateName(job.state()).c_str());
      }
      return absl::OkStatus();
    };
  });

  // jobs [ID]
  auto jobs_id = std::make_shared<std::string>();
  auto jobs_json = std::make_shared<bool>(false);
  CLI::App* jobs = app.add_subcommand("jobs", "list training jobs (or show one)");
  jobs->add_option("JOB", *jobs_id, "show this job only");
  jobs->add_flag("--json", *jobs_json, "print one JSON document");
  jobs->callback([&context, jobs_id, jobs_json] {
    context.action = [&context, jobs_id, jobs_json]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      std::vector<v1::TrainingJob> all;
      if (!jobs_id->empty()) {
        WFM_ASSIGN_OR_RETURN(const v1::TrainingJob job, client->GetTrainingJob(*jobs_id));
        if (*jobs_json) {
          PrintJson(ProtoToJson(job));
          return absl::OkStatus();
        }
        all.push_back(job);
      } else {
        WFM_ASSIGN_OR_RETURN(all, client->ListTrainingJobs());
      }
      if (*jobs_json) {
        nlohmann::json array = nlohmann::json::array();
        for (const v1::TrainingJob& j : all) array.push_back(ProtoToJson(j));
        PrintJson({{"jobs", array}});
      } else if (all.empty()) {
        std::printf("no training jobs (start one with: wfm train --dataset D --model M)\n");
      } else {
        std::printf("%s", JobsTable(all).c_str());
      }
      return absl::OkStatus();
    };
  });

  // models [NAME] [--version V] [--serve-version V] [--keep-versions K] [--delete-version V]
  //        [--load | --unload]
  auto mf = std::make_shared<ModelsFlags>();
  CLI::App* models = app.add_subcommand(
      "models", "list the trained models (or show one with its versions, pin, retention)");
  models->add_option("NAME", mf->name, "show this model only");
  models->add_flag("--json", mf->json, "print one JSON document");
  models->add_option("--version", mf->version,
                     "with NAME: describe this version (default: the serving one); with --load / "
                     "--unload: the version they act on")
      ->check(CLI::PositiveNumber);
  AddOptional(models, "--serve-version", &mf->serve_version,
              "with NAME: pin this version as the serving one (rollback); 0 = unpin, the "
              "latest version serves");
  AddOptional(models, "--keep-versions", &mf->keep_versions,
              "with NAME: keep the latest K versions (and the pinned one), deleting older "
              "ones; 0 = the server's --keep-versions");
  AddOptional(models, "--delete-version", &mf->delete_version,
              "with NAME: delete this version (not the pinned one, nor the only one)");
  CLI::Option* load = models->add_flag(
      "--load", mf->load,
      "with NAME: load the weights into the server's memory now (--version V: that version; "
      "default: the serving one), unloading the least recently used beyond its limits");
  models->add_flag("--unload", mf->unload,
                   "with NAME: free the weights from the server's memory (--version V: that "
                   "version; default: every version); the next request loads them again")
      ->excludes(load);
  models->callback([&context, mf] {
    context.action = [&context, mf] { return Models(context, *mf); };
  });

  // delete-model NAME
  auto delete_name = std::make_shared<std::string>();
  CLI::App* del = app.add_subcommand("delete-model", "delete a trained model");
  del->add_option("NAME", *delete_name, "model name")->required();
  del->callback([&context, delete_name] {
    context.action = [&context, delete_name]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      WFM_RETURN_IF_ERROR(client->DeleteModel(*delete_name));
      std::printf("deleted model '%s'\n", delete_name->c_str());
      return absl::OkStatus();
    };
  });
}

}  // namespace wfm::client
