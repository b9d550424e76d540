#include "server/job_record.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/json_depth.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "repository/training_data.h"

namespace wfm::server {
namespace {

constexpr char kRecordFormat[] = "wfm.job";
constexpr int kRecordVersion = 1;

// A file an atomic write leaves behind when the process dies between creating
// its temporary file and renaming it (model/io/atomic_file.cc names them
// ".<file>.tmp-<pid>-<n>-<hex>").
bool IsLeftoverTemp(absl::string_view entry) {
  return absl::StartsWith(entry, ".") && absl::StrContains(entry, ".tmp-");
}

// Removes the leftover temporary files of `folder` whose names start with
// `prefix`. Logs what it removes.
void RemoveLeftoverTempsIn(const std::string& folder, absl::string_view prefix) {
  absl::StatusOr<std::vector<std::string>> entries = repository::ListDir(folder);
  if (!entries.ok()) return;
  bool removed = false;
  for (const std::string& entry : *entries) {
    if (!IsLeftoverTemp(entry) || !absl::StartsWith(entry, prefix)) continue;
    const std::string path = absl::StrCat(folder, "/", entry);
    LogWarning(absl::StrCat("removing the leftover temporary file ", path));
    if (absl::Status s = repository::RemoveTree(path); !s.ok()) {
      LogWarning(std::string(s.message()));
    }
    removed = true;
  }
  if (removed) (void)repository::FsyncDir(folder);
}

nlohmann::json RequestToJson(const TrainingRequest& r) {
  const model::TrainingConfig& c = r.config;
  nlohmann::json j = {{"dataset", r.dataset},
                      {"model", r.model},
                      {"family", model::FamilyName(c.family)},
                      {"source_dataset", c.source_dataset},
                      {"niche_size", c.niche_size},
                      {"holdout_fraction", c.holdout_fraction},
                      {"overwrite", r.overwrite}};
  if (!r.init_from_model.empty()) {
    j["init_from"] = {{"model", r.init_from_model},
                      {"version", r.init_from_version},
                      {"created_unix_ms", r.init_from_created_unix_ms}};
  }
  j["config"] = c.family == model::Family::kPointCloud ? model::ToJson(c.pointcloud)
                                                       : model::ToJson(c.gaussian);
  return j;
}

absl::StatusOr<TrainingRequest> RequestFromJson(const nlohmann::json& j) {
  TrainingRequest r;
  model::TrainingConfig& c = r.config;
  r.dataset = j.at("dataset").get<std::string>();
  r.model = j.at("model").get<std::string>();
  WFM_ASSIGN_OR_RETURN(c.family, model::ParseFamily(j.at("family").get<std::string>()));
  c.source_dataset = j.value("source_dataset", "");
  c.niche_size = j.value("niche_size", repository::kDefaultNicheSize);
  c.holdout_fraction = j.value("holdout_fraction", 0.0);
  r.overwrite = j.value("overwrite", false);
  if (j.contains("init_from")) {
    const nlohmann::json& init = j.at("init_from");
    r.init_from_model = init.at("model").get<std::string>();
    r.init_from_version = init.value("version", int64_t{0});
    r.init_from_created_unix_ms = init.value("created_unix_ms", int64_t{0});
  }
  if (c.family == model::Family::kPointCloud) {
    WFM_ASSIGN_OR_RETURN(c.pointcloud, model::PointCloudTrainConfigFromJson(j.at("config")));
  } else {
    WFM_ASSIGN_OR_RETURN(c.gaussian, model::GaussianTrainConfigFromJson(j.at("config")));
  }
  return r;
}

}  // namespace

nlohmann::json JobRecordToJson(const JobStatus& s) {
  return {{"format", kRecordFormat},
          {"version", kRecordVersion},
          {"id", s.id},
          {"request", RequestToJson(s.request)},
          {"state", JobStateName(s.state)},
          {"step", s.step},
          {"total_steps", s.total_steps},
          {"loss", s.loss},
          {"steps_per_second", s.steps_per_second},
          {"eta_seconds", s.eta_seconds},
          {"error", s.error},
          {"created_unix_ms", s.created_unix_ms},
          {"started_unix_ms", s.started_unix_ms},
          {"finished_unix_ms", s.finished_unix_ms},
          {"checkpoint_step", s.checkpoint_step},
          {"resumes", s.resumes},
          {"resumed_from_step", s.resumed_from_step},
          {"interrupted", s.interrupted}};
}

absl::StatusOr<JobStatus> JobRecordFromJson(const nlohmann::json& j) {
  try {
    if (j.at("format").get<std::string>() != kRecordFormat) {
      return absl::DataLossError("not a wfm job record");
    }
    JobStatus s;
    s.id = j.at("id").get<std::string>();
    WFM_ASSIGN_OR_RETURN(s.request, RequestFromJson(j.at("request")));
    WFM_ASSIGN_OR_RETURN(s.state, ParseJobState(j.at("state").get<std::string>()));
    s.step = j.value("step", int64_t{0});
    s.total_steps = j.value("total_steps", int64_t{0});
    // Non-finite numbers are stored as null.
    auto number = [&](const char* key) {
      return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
    };
    s.loss = number("loss");
    s.steps_per_second = number("steps_per_second");
    s.eta_seconds = number("eta_seconds");
    s.error = j.value("error", "");
    s.created_unix_ms = j.value("created_unix_ms", int64_t{0});
    s.started_unix_ms = j.value("started_unix_ms", int64_t{0});
    s.finished_unix_ms = j.value("finished_unix_ms", int64_t{0});
    s.checkpoint_step = j.value("checkpoint_step", int64_t{0});
    s.resumes = j.value("resumes", int64_t{0});
    s.resumed_from_step = j.value("resumed_from_step", int64_t{0});
    s.interrupted = j.value("interrupted", std::string());
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("job record: ", e.what()));
  }
}

int64_t JobNumber(absl::string_view id) {
  int64_t n = 0;
  if (!absl::ConsumePrefix(&id, kJobPrefix) || !absl::SimpleAtoi(id, &n)) return 0;
  return n;
}

std::string JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued: return "QUEUED";
    case JobState::kRunning: return "RUNNING";
    case JobState::kSucceeded: return "SUCCEEDED";
    case JobState::kFailed: return "FAILED";
    case JobState::kCancelled: return "CANCELLED";
  }
  return "?";
}

absl::StatusOr<JobState> ParseJobState(absl::string_view name) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled}) {
    if (name == JobStateName(s)) return s;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown job state '", name, "'"));
}

bool IsJobRecordFile(absl::string_view name) {
  return absl::StartsWith(name, kJobPrefix) && absl::EndsWith(name, ".json");
}

absl::Status WriteJobRecord(const std::string& root, const JobStatus& status) {
  absl::Status s = model::io::WriteFileAtomically(absl::StrCat(root, "/", status.id, ".json"),
                                                  JobRecordToJson(status).dump(2) + "\n");
  if (!s.ok()) LogError(absl::StrCat("cannot record job ", status.id, ": ", s.message()));
  return s;
}

absl::StatusOr<JobStatus> ReadJobRecord(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(const std::string text, repository::ReadFileToString(path));
  if (model::io::JsonTooDeep(text)) return absl::DataLossError("JSON nested too deeply");
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError("not valid JSON");
  return JobRecordFromJson(j);
}

void RemoveLeftoverTemps(const std::string& root, const std::string& id) {
  RemoveLeftoverTempsIn(root, absl::StrCat(".", id, ".json.tmp-"));
  RemoveLeftoverTempsIn(absl::StrCat(root, "/", id), ".");
}

}  // namespace wfm::server
