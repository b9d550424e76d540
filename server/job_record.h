// A training job's record: what it asks for and where it stands
// (JobStatus, as the API reports it), stored as <data-dir>/jobs/<id>.json
// (atomic writes) at every state change and while it runs; a job's periodic
// checkpoints live in <data-dir>/jobs/<id>/. No gRPC here.
#ifndef WFM_SERVER_JOB_RECORD_H_
#define WFM_SERVER_JOB_RECORD_H_

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config/config.h"

namespace wfm::server {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
// "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED".
std::string JobStateName(JobState state);
absl::StatusOr<JobState> ParseJobState(absl::string_view name);
inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// What a training run asks for, with every default filled in.
struct TrainingRequest {
  std::string dataset;
  std::string model;
  model::TrainingConfig config;
  bool overwrite = false;
  // Fine-tuning: the stored model whose weights training starts from (empty:
  // a freshly initialised network), its version (0 = the current one), and
  // that model's creation time when the job was queued (the job refuses a
  // model replaced since).
  std::string init_from_model;
  int64_t init_from_version = 0;
  int64_t init_from_created_unix_ms = 0;
};

// A snapshot of a job.
struct JobStatus {
  std::string id;
  TrainingRequest request;
  JobState state = JobState::kQueued;
  int64_t step = 0;
  int64_t total_steps = 0;
  double loss = 0.0;
  double steps_per_second = 0.0;
  double eta_seconds = 0.0;
  std::string error;  // FAILED / CANCELLED: why
  int64_t created_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  int64_t checkpoint_step = 0;  // last periodic checkpoint (0 = none)
  // Resumptions after server restarts, and the step the last one continued
  // from (0: it started afresh, having no checkpoint yet).
  int64_t resumes = 0;
  int64_t resumed_from_step = 0;
  // Set while a job stopped by a server shutdown waits, QUEUED, for the next
  // start to resume it: "by server shutdown at step N". Cleared when it runs.
  std::string interrupted;
  // Increases with every published update (Watch waits for a newer one).
  int64_t version = 0;
};

// Job ids are "job-<n>", n counting from 1.
inline constexpr char kJobPrefix[] = "job-";
// The number in "job-<n>", or 0.
int64_t JobNumber(absl::string_view id);

// The record as stored and back. From JSON: DATA_LOSS for another format or
// bad fields; non-finite numbers are stored as null and read back as 0.
nlohmann::json JobRecordToJson(const JobStatus& status);
absl::StatusOr<JobStatus> JobRecordFromJson(const nlohmann::json& j);

// Whether the entry `name` of the jobs folder is a record ("job-<n>.json").
bool IsJobRecordFile(absl::string_view name);
// Writes `status` as <root>/<id>.json (atomic write); a failure is logged
// ("cannot record job <id>: ...") and returned.
absl::Status WriteJobRecord(const std::string& root, const JobStatus& status);
// Reads a record file (DATA_LOSS when it is not valid JSON or not a record).
absl::StatusOr<JobStatus> ReadJobRecord(const std::string& path);

// Removes the temporary files that writes of job `id`'s record and
// checkpoints interrupted by a crash left in `root` and in its job folder;
// logs each. Only for a job no live process writes (one just claimed): on a
// data folder several servers share, another job's temporary file may be a
// write in progress.
void RemoveLeftoverTemps(const std::string& root, const std::string& id);

}  // namespace wfm::server

#endif  // WFM_SERVER_JOB_RECORD_H_
