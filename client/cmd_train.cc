// wfm train, watch, cancel, jobs, models, delete-model.
#include <cstdio>
#include <memory>
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

  // models [NAME]
  auto models_name = std::make_shared<std::string>();
  auto models_json = std::make_shared<bool>(false);
  CLI::App* models = app.add_subcommand("models", "list the trained models (or show one)");
  models->add_option("NAME", *models_name, "show this model only");
  models->add_flag("--json", *models_json, "print one JSON document");
  models->callback([&context, models_name, models_json] {
    context.action = [&context, models_name, models_json]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      std::vector<v1::ModelInfo> all;
      if (!models_name->empty()) {
        WFM_ASSIGN_OR_RETURN(const v1::ModelInfo model, client->GetModel(*models_name));
        if (*models_json) {
          PrintJson(ProtoToJson(model));
          return absl::OkStatus();
        }
        all.push_back(model);
      } else {
        WFM_ASSIGN_OR_RETURN(all, client->ListModels());
      }
      if (*models_json) {
        nlohmann::json array = nlohmann::json::array();
        for (const v1::ModelInfo& m : all) array.push_back(ProtoToJson(m));
        PrintJson({{"models", array}});
      } else if (all.empty()) {
        std::printf("no models (train one with: wfm train --dataset D --model M)\n");
      } else {
        std::printf("%s", ModelsTable(all).c_str());
      }
      return absl::OkStatus();
    };
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
