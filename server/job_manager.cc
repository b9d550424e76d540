#include "server/job_manager.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/checkpoint/checkpoint.h"
#include "model/common/status.h"
#include "model/train/gaussian_trainer.h"
#include "model/train/pointcloud_trainer.h"
#include "model/train/train_hooks.h"
#include "model/io/atomic_file.h"
#include "repository/file_lock.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "repository/training_data.h"
#include "server/job_validation.h"
#include "server/metrics.h"

namespace wfm::server {

using repository::FileLock;
using repository::KindFits;
using repository::ListDir;
using repository::MakeDirs;
using repository::RemoveTree;
using repository::TrainingInputs;
using repository::UsesGivenSource;

namespace {

// Readers are woken at most this often by progress (state changes always).
constexpr absl::Duration kNotifyInterval = absl::Milliseconds(250);
// A running job's record is rewritten at most this often.
constexpr absl::Duration kPersistInterval = absl::Seconds(5);
// How often a watcher or a cancel of another server's job re-reads its
// record, and how often this server looks for cancel requests of its jobs.
constexpr absl::Duration kRecordPollInterval = absl::Milliseconds(250);
constexpr absl::Duration kCancelPollInterval = absl::Seconds(1);

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

std::string CodeText(const absl::Status& s) {
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", s.message());
}

// A job's folder of periodic checkpoints, and its checkpoint.
std::string CheckpointDir(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/", id);
}
std::string CheckpointPath(const std::string& root, const std::string& id) {
  return absl::StrCat(CheckpointDir(root, id), "/checkpoint.wfm");
}
// A job's record, its claim (held by the server that owns the job) and a
// cancel request for it (written by another server).
std::string RecordPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/", id, ".json");
}
std::string ClaimPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/", id, ".lock");
}
std::string CancelRequestPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/", id, ".cancel");
}

// Whether `id` is a job id ("job-<n>", n >= 1): nothing else names a file.
bool IsJobId(const std::string& id) {
  const int64_t n = JobNumber(id);
  return n > 0 && id == absl::StrCat(kJobPrefix, n);
}

}  // namespace

struct JobManager::Job {
  JobStatus status;
  std::atomic<bool> cancel{false};
  // status, cancel_reason, resuming, suspending, last_notify and last_persist
  // are guarded by the manager's mu_ (annotations cannot name another
  // object's mutex).
  std::string cancel_reason;
  bool resuming = false;  // queued again by a restart
  // Stopped by a server shutdown to resume at the next start (cancel is set
  // too): a final checkpoint, then recorded QUEUED, not CANCELLED.
  bool suspending = false;
  absl::Time last_notify = absl::InfinitePast();
  absl::Time last_persist = absl::InfinitePast();
  Mutex persist_mu;  // one record write at a time, newest last
  // Held while this server owns the job (until it ends or is left queued).
  std::optional<FileLock> claim;
  // Owned by another server on the data folder: the status is its shared
  // record's, as last read; `owner` names the holder of its claim.
  bool foreign = false;
  std::string owner;
  bool cancel_requested = false;  // by another server; being honoured
};

JobManager::JobManager(JobManagerOptions options, DatasetStore* datasets, ModelRegistry* models,
                       Metrics* metrics)
    : options_(std::move(options)),
      identity_(options_.identity.empty() ? repository::ProcessIdentity() : options_.identity),
      datasets_(datasets),
      models_(models),
      metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Open(const JobManagerOptions& options,
                                                              DatasetStore* datasets,
                                                              ModelRegistry* models,
                                                              Metrics* metrics) {
  if (options.root.empty()) return absl::InvalidArgumentError("job manager: root is empty");
  if (options.max_jobs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max-jobs: must be >= 1, got ", options.max_jobs));
  }
  WFM_RETURN_IF_ERROR(MakeDirs(options.root));
  std::unique_ptr<JobManager> manager(new JobManager(options, datasets, models, metrics));
  WFM_RETURN_IF_ERROR(manager->LoadAll());
  for (int i = 0; i < options.max_jobs; ++i) {
    manager->workers_.emplace_back([m = manager.get()] { m->WorkerLoop(); });
  }
  manager->claimer_ = std::thread([m = manager.get()] { m->ClaimLoop(); });
  return manager;
}

JobManager::~JobManager() { Shutdown(absl::InfiniteFuture()); }

absl::Status JobManager::LoadAll() {
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> entries, ListDir(options_.root));
  std::vector<std::shared_ptr<Job>> interrupted, resumed, recovered, others;
  MutexLock lock(&mu_);
  for (const std::string& entry : entries) {
    if (!IsJobRecordFile(entry)) continue;
    const std::string path = absl::StrCat(options_.root, "/", entry);
    absl::StatusOr<JobStatus> status = ReadJobRecord(path);
    if (!status.ok() || absl::StrCat(status->id, ".json") != entry) {
      LogWarning(absl::StrCat("skipping job record ", path, ": ",
                              status.ok() ? "the id does not match the file name"
                                          : status.status().message()));
      continue;
    }
    auto job = std::make_shared<Job>();
    job->status = *std::move(status);
    const std::string id = job->status.id;
    if (!IsTerminal(job->status.state)) {
      // Another server on this data folder may be running it.
      const std::string claim_path = ClaimPath(options_.root, id);
      absl::StatusOr<std::optional<FileLock>> claim = FileLock::TryAcquire(claim_path, identity_);
      if (!claim.ok() || !claim->has_value()) {
        job->foreign = true;
        job->owner = claim.ok() ? FileLock::ReadHolder(claim_path)
                                : absl::StrCat("unknown (", claim.status().message(), ")");
        others.push_back(job);
      } else {
        job->claim = std::move(*claim);
        // A crash in the middle of a record or checkpoint write leaves its
        // temporary file; the previous complete version is still in place.
        RemoveLeftoverTemps(options_.root, id);
        // Its last owner writes its final record before letting go.
        if (absl::StatusOr<JobStatus> now = ReadJobRecord(path); now.ok()) job->status = *now;
      }
    }
    if (!job->foreign && !IsTerminal(job->status.state)) {
      switch (PrepareResumption(*job)) {
        case Resumption::kResumed: resumed.push_back(job); break;
        case Resumption::kFailed: interrupted.push_back(job); break;
        default: recovered.push_back(job); break;
      }
    }
    next_id_ = std::max(next_id_, JobNumber(job->status.id) + 1);
    jobs_[job->status.id] = job;
  }
  // Resumed jobs run in their original order.
  std::sort(resumed.begin(), resumed.end(), [](const auto& a, const auto& b) {
    return JobNumber(a->status.id) < JobNumber(b->status.id);
  });
  for (const auto& job : resumed) queue_.push_back(job);
  UpdateStateMetrics();
  // Persist takes mu_ itself: write directly here (still single-threaded).
  for (const auto& job : interrupted) {
    LogWarning(absl::StrCat("job ", job->status.id, " (model '", job->status.request.model,
                            "'): ", job->status.error));
    (void)WriteJobRecord(options_.root, job->status);
  }
  for (const auto& job : recovered) {
    LogInfo(absl::StrCat("job ", job->status.id, " had published model '",
                         job->status.request.model, "' before the restart: SUCCEEDED"));
    (void)WriteJobRecord(options_.root, job->status);
    (void)RemoveTree(CheckpointDir(options_.root, job->status.id));
  }
  for (const auto& job : resumed) {
    const int64_t from = job->status.checkpoint_step;
    LogInfo(absl::StrCat(
        "job ", job->status.id, " (model '", job->status.request.model,
        "') resumes after a server restart",
        job->status.interrupted.empty()
            ? ""
            : absl::StrCat(" (stopped ", job->status.interrupted, ")"),
        from > 0 ? absl::StrCat(" from its checkpoint at step ", from)
                 : " (no checkpoint yet: from the start)"));
    (void)WriteJobRecord(options_.root, job->status);
  }
  for (const auto& job : others) {
    LogInfo(absl::StrCat("job ", job->status.id, " (model '", job->status.request.model, "', ",
                         JobStateName(job->status.state),
                         ") is owned by another server on this data folder (", job->owner,
                         "): left to it"));
  }
  // Ended jobs are nobody's.
  for (const auto& [id, job] : jobs_) {
    if (IsTerminal(job->status.state)) job->claim.reset();
  }
  return absl::OkStatus();
}

JobManager::Resumption JobManager::PrepareResumption(Job& job) {
  JobStatus& s = job.status;
  s.steps_per_second = 0;
  s.eta_seconds = 0;
  if (!options_.resume_interrupted) {
    s.state = JobState::kFailed;
    s.error = absl::StrCat("interrupted by a server restart at step ", s.step);
    s.finished_unix_ms = NowUnixMs();
    return Resumption::kFailed;
  }
  if (PublishedBy(s)) {
    // Killed after publishing, before its final record was written.
    s.state = JobState::kSucceeded;
    s.step = s.total_steps;
    s.finished_unix_ms = NowUnixMs();
    return Resumption::kRecovered;
  }
  s.state = JobState::kQueued;
  ++s.resumes;
  job.resuming = true;
  return Resumption::kResumed;
}

std::shared_ptr<JobManager::Job> JobManager::Adopt(const std::string& id, bool claim) {
  const std::string path = RecordPath(options_.root, id);
  absl::StatusOr<JobStatus> read = ReadJobRecord(path);
  if (!read.ok() || read->id != id) return nullptr;
  const std::string claim_path = ClaimPath(options_.root, id);
  std::string last_owner;
  std::optional<FileLock> lock;
  if (claim && !IsTerminal(read->state)) {
    last_owner = FileLock::ReadHolder(claim_path);
    absl::StatusOr<std::optional<FileLock>> taken = FileLock::TryAcquire(claim_path, identity_);
    if (taken.ok() && taken->has_value()) {
      lock = std::move(*taken);
      RemoveLeftoverTemps(options_.root, id);  // of writes its last owner did not finish
      // Its last owner writes its final record before letting go.
      read = ReadJobRecord(path);
      if (!read.ok() || read->id != id) return nullptr;
      if (IsTerminal(read->state)) {
        lock.reset();
      } else {
        // Whether it had published before it was interrupted: models that
        // the last owner published since the last rescan count too.
        (void)models_->Rescan();
      }
    }
  }
  const std::string owner = lock.has_value() || IsTerminal(read->state)
                                ? std::string()
                                : FileLock::ReadHolder(claim_path);
  const bool cancel_requested =
      lock.has_value() && repository::Exists(CancelRequestPath(options_.root, id));
  std::shared_ptr<Job> job;
  Resumption resumption = Resumption::kResumed;
  JobStatus snapshot;
  {
    MutexLock guard(&mu_);
    std::shared_ptr<Job>& slot = jobs_[id];
    if (slot != nullptr && !slot->foreign) return slot;
    if (slot == nullptr) {
      slot = std::make_shared<Job>();
      slot->foreign = true;
    }
    job = slot;
    const int64_t version = job->status.version;
    if (version == 0 || JobRecordToJson(job->status) != JobRecordToJson(*read)) {
      job->status = *std::move(read);
      job->status.version = version;
      Announce(*job, false);
    }
    job->owner = owner;
    if (!lock.has_value() || stopping_) return job;
    job->claim = std::move(lock);
    job->foreign = false;
    next_id_ = std::max(next_id_, JobNumber(id) + 1);
    if (cancel_requested) {
      JobStatus& s = job->status;
      s.state = JobState::kCancelled;
      s.steps_per_second = 0;
      s.eta_seconds = 0;
      s.error = absl::StrCat("cancelled by request at step ", s.step,
                             " (its server had stopped; it was not resumed)");
      s.finished_unix_ms = NowUnixMs();
      resumption = Resumption::kCancelled;
    } else {
      resumption = PrepareResumption(*job);
    }
    if (resumption == Resumption::kResumed) queue_.push_back(job);
    Announce(*job, true);
    UpdateStateMetrics();
    snapshot = job->status;
  }
  const JobStatus& s = snapshot;
  const std::string what = absl::StrCat("job ", id, " (model '", s.request.model, "')");
  const std::string gone = absl::StrCat(
      "the server that owned it", last_owner.empty() ? "" : absl::StrCat(" (", last_owner, ")"),
      " stopped");
  switch (resumption) {
    case Resumption::kResumed:
      LogInfo(absl::StrCat(what, " resumes here: ", gone,
                           s.checkpoint_step > 0
                               ? absl::StrCat("; from its checkpoint at step ", s.checkpoint_step)
                               : "; no checkpoint yet: from the start"));
      break;
    case Resumption::kFailed: LogWarning(absl::StrCat(what, ": ", gone, ": ", s.error)); break;
    case Resumption::kRecovered:
      LogInfo(absl::StrCat(what, " had published its model before ", gone, ": SUCCEEDED"));
      break;
    case Resumption::kCancelled: LogInfo(absl::StrCat(what, " ", s.error)); break;
  }
  (void)WriteRecord(*job);
  if (resumption != Resumption::kResumed) {
    if (resumption == Resumption::kRecovered) (void)RemoveTree(CheckpointDir(options_.root, id));
    if (resumption == Resumption::kCancelled) {
      (void)RemoveTree(CancelRequestPath(options_.root, id));
    }
    MutexLock guard(&mu_);
    job->claim.reset();
  }
  return job;
}

void JobManager::AdoptAll(bool claim) {
  absl::StatusOr<std::vector<std::string>> entries = ListDir(options_.root);
  if (!entries.ok()) return;
  std::vector<std::string> ids;
  {
    MutexLock lock(&mu_);
    for (const std::string& entry : *entries) {
      if (!IsJobRecordFile(entry)) continue;
      std::string id = entry.substr(0, entry.size() - std::string(".json").size());
      auto it = jobs_.find(id);
      const bool may_change = it == jobs_.end()
                                  ? IsJobId(id)
                                  : it->second->foreign && !IsTerminal(it->second->status.state);
      if (may_change) ids.push_back(std::move(id));
    }
  }
  // Claimed jobs resume in their original order.
  std::sort(ids.begin(), ids.end(),
            [](const std::string& a, const std::string& b) { return JobNumber(a) < JobNumber(b); });
  for (const std::string& id : ids) (void)Adopt(id, claim);
}

std::shared_ptr<JobManager::Job> JobManager::Find(const std::string& id) {
  {
    MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end() && !(it->second->foreign && !IsTerminal(it->second->status.state))) {
      return it->second;
    }
  }
  if (!IsJobId(id)) return nullptr;
  if (std::shared_ptr<Job> job = Adopt(id, /*claim=*/false)) return job;
  MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

absl::StatusOr<JobStatus> JobManager::CancelOthers(const std::string& id, std::shared_ptr<Job> job,
                                                   absl::Duration wait) {
  const std::string request = CancelRequestPath(options_.root, id);
  WFM_RETURN_IF_ERROR(
      model::io::WriteFileAtomically(request, absl::StrCat("requested by ", identity_, "\n")));
  std::string owner;
  {
    MutexLock lock(&mu_);
    owner = job->owner;
  }
  LogInfo(absl::StrCat("job ", id, " is another server's on this data folder",
                       owner.empty() ? "" : absl::StrCat(" (", owner, ")"),
                       ": a cancel request is left for it"));
  // A job whose owner is gone is claimed here, and the request honoured now.
  if (std::shared_ptr<Job> adopted = Adopt(id, /*claim=*/true)) job = adopted;
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    {
      MutexLock lock(&mu_);
      auto ended = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return IsTerminal(job->status.state) || !job->foreign;
      };
      if (ended() || absl::Now() >= deadline) return job->status;
      if (WaitUntil(std::min(deadline, absl::Now() + kRecordPollInterval), ended)) {
        return job->status;
      }
    }
    (void)Adopt(id, /*claim=*/false);
  }
}

void JobManager::HonourCancelRequests() {
  std::vector<std::shared_ptr<Job>> own;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) {
      if (!job->foreign && (!IsTerminal(job->status.state) || job->cancel_requested)) {
        own.push_back(job);
      }
    }
  }
  for (const auto& job : own) {
    std::string id;
    bool ended = false, seen = false;
    {
      MutexLock lock(&mu_);
      id = job->status.id;
      ended = IsTerminal(job->status.state);
      seen = job->cancel_requested;
    }
    const std::string request = CancelRequestPath(options_.root, id);
    if (!repository::Exists(request)) continue;
    if (ended) {
      (void)RemoveTree(request);
      MutexLock lock(&mu_);
      job->cancel_requested = false;
      continue;
    }
    if (!seen) {
      const std::string by(absl::StripAsciiWhitespace(FileLock::ReadHolder(request)));
      LogInfo(absl::StrCat("job ", id, ": cancel ", by.empty() ? "requested" : by,
                           " (another server on this data folder)"));
      MutexLock lock(&mu_);
      job->cancel_requested = true;
    }
    (void)Cancel(id, absl::ZeroDuration());
  }
}

void JobManager::ClaimLoop() {
  const bool reclaim = options_.claim_interval > absl::ZeroDuration();
  absl::Time next_claim = reclaim ? absl::Now() + options_.claim_interval : absl::InfiniteFuture();
  while (true) {
    {
      MutexLock lock(&mu_);
      const bool stop = WaitUntil(absl::Now() + kCancelPollInterval,
                                  [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; });
      if (stop) return;
    }
    HonourCancelRequests();
    if (absl::Now() >= next_claim) {
      AdoptAll(/*claim=*/true);
      next_claim = absl::Now() + options_.claim_interval;
    }
  }
}

void JobManager::Release(Job& job) {
  job.claim.reset();
  job.foreign = !IsTerminal(job.status.state);
}

void JobManager::UpdateStateMetrics() {
  if (metrics_ == nullptr) return;
  std::map<JobState, int64_t> counts;
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled}) {
    counts[s] = 0;
  }
  // Another server's jobs are counted by that server.
  for (const auto& [id, job] : jobs_) {
    if (!job->foreign) ++counts[job->status.state];
  }
  for (const auto& [state, count] : counts) metrics_->SetTrainingJobs(JobStateName(state), count);
}

void JobManager::Announce(Job& job, bool persisted) {
  ++job.status.version;
  job.last_notify = absl::Now();
  if (persisted) job.last_persist = job.last_notify;
  changed_.SignalAll();
}

absl::Status JobManager::WriteRecord(Job& job) {
  MutexLock persist(&job.persist_mu);
  JobStatus snapshot;
  {
    MutexLock lock(&mu_);
    snapshot = job.status;
  }
  return WriteRecordLocked(snapshot);
}

absl::Status JobManager::WriteStatus(Job& job, const JobStatus& status) {
  MutexLock persist(&job.persist_mu);
  return WriteRecordLocked(status);
}

absl::Status JobManager::WriteRecordLocked(const JobStatus& snapshot) {
  return WriteJobRecord(options_.root, snapshot);
}

absl::StatusOr<JobStatus> JobManager::Start(const TrainingRequest& request) {
  WFM_RETURN_IF_ERROR(ValidateTrainingRequest(request, *datasets_, *models_));
  TrainingRequest queued = request;
  if (!request.init_from_model.empty()) {
    WFM_ASSIGN_OR_RETURN(const ModelInfo base,
                         models_->Info(request.init_from_model, request.init_from_version));
    queued.init_from_version = base.version;
    queued.init_from_created_unix_ms = base.created_unix_ms;
  }
  // Jobs other servers on this data folder started count too (one model,
  // one job).
  AdoptAll(/*claim=*/false);
  auto job = std::make_shared<Job>();
  {
    MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "training queue is full (", queue_.size(), " jobs waiting); try again later"));
    }
    for (const auto& [id, other] : jobs_) {
      if (!IsTerminal(other->status.state) && other->status.request.model == request.model) {
        return absl::FailedPreconditionError(absl::StrCat(
            "model: '", request.model, "' is being trained by ", id, " (",
            JobStateName(other->status.state), "); cancel it or wait for it to end"));
      }
    }
    JobStatus& s = job->status;
    // A new id, reserved among the servers on this data folder by creating
    // its claim file (which this server then holds).
    while (s.id.empty()) {
      std::string id = absl::StrCat(kJobPrefix, next_id_++);
      if (jobs_.count(id) != 0) continue;
      absl::StatusOr<std::optional<FileLock>> claim =
          FileLock::TryAcquire(ClaimPath(options_.root, id), identity_, /*create_new=*/true);
      if (absl::IsAlreadyExists(claim.status())) continue;
      WFM_RETURN_IF_ERROR(claim.status());
      if (!claim->has_value()) continue;
      job->claim = std::move(*claim);
      s.id = std::move(id);
    }
    s.request = queued;
    s.state = JobState::kQueued;
    s.total_steps = request.config.steps();
    s.created_unix_ms = NowUnixMs();
    s.version = 1;
    jobs_[s.id] = job;
    UpdateStateMetrics();
  }
  // The QUEUED record is on disk before a worker can take the job.
  if (absl::Status s = WriteRecord(*job); !s.ok()) {
    MutexLock lock(&mu_);
    jobs_.erase(job->status.id);
    UpdateStateMetrics();
    return s;
  }
  JobStatus snapshot;
  {
    MutexLock lock(&mu_);
    queue_.push_back(job);
    snapshot = job->status;
    changed_.SignalAll();
  }
  LogInfo(absl::StrCat("job ", snapshot.id, " queued: train ",
                       model::FamilyName(request.config.family), " model '", request.model,
                       "' on '", request.dataset, "' for ", request.config.steps(), " steps"));
  return snapshot;
}

absl::StatusOr<JobStatus> JobManager::Get(const std::string& id) {
  std::shared_ptr<Job> job = Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", id, "' not found"));
  MutexLock lock(&mu_);
  return job->status;
}

std::vector<JobStatus> JobManager::List() {
  AdoptAll(/*claim=*/false);
  std::vector<JobStatus> out;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) out.push_back(job->status);
  }
  std::sort(out.begin(), out.end(), [](const JobStatus& a, const JobStatus& b) {
    return JobNumber(a.id) != JobNumber(b.id) ? JobNumber(a.id) < JobNumber(b.id) : a.id < b.id;
  });
  return out;
}

absl::StatusOr<JobStatus> JobManager::WaitForUpdate(const std::string& id, int64_t after_version,
                                                    absl::Duration timeout) {
  std::shared_ptr<Job> job = Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", id, "' not found"));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      MutexLock lock(&mu_);
      // A job left queued by a shutdown changes no more in this process.
      auto left_queued = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ && job->status.state == JobState::kQueued &&
               job->status.version <= after_version;
      };
      if (left_queued()) {
        return absl::UnavailableError(
            absl::StrCat("the server is shutting down; job ", id,
                         " stays queued and resumes when it starts again"));
      }
      // Another server's job changes in its record only.
      const bool in_record = job->foreign && !IsTerminal(job->status.state);
      WaitUntil(in_record ? std::min(deadline, absl::Now() + kRecordPollInterval) : deadline,
                [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                  return job->status.version > after_version;
                });
      if (job->status.version > after_version || !in_record || absl::Now() >= deadline) {
        return job->status;
      }
    }
    (void)Adopt(id, /*claim=*/false);
  }
}

absl::StatusOr<JobStatus> JobManager::Cancel(const std::string& id, absl::Duration wait) {
  std::shared_ptr<Job> job = Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", id, "' not found"));
  bool others = false;
  {
    MutexLock lock(&mu_);
    others = job->foreign && !IsTerminal(job->status.state);
  }
  if (others) return CancelOthers(id, job, wait);
  {
    MutexLock lock(&mu_);
    JobStatus& s = job->status;
    if (IsTerminal(s.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " has already ended (", JobStateName(s.state), ")"));
    }
    if (s.state == JobState::kRunning) {
      if (job->cancel_reason.empty() || job->suspending) job->cancel_reason = "by request";
      job->suspending = false;  // a user's cancel is never undone by a restart
      job->cancel.store(true);
      WaitUntil(absl::Now() + wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return IsTerminal(job->status.state);
      });
      return job->status;
    }
    // Queued: it never starts.
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    s.state = JobState::kCancelled;
    s.error = "cancelled by request before it started";
    s.finished_unix_ms = NowUnixMs();
    Announce(*job, true);
    UpdateStateMetrics();
  }
  (void)WriteRecord(*job);
  LogInfo(absl::StrCat("job ", id, " cancelled before it started"));
  MutexLock lock(&mu_);
  job->claim.reset();
  return job->status;
}

bool JobManager::Shutdown(absl::Time deadline) {
  std::vector<std::shared_ptr<Job>> cancelled;
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      // Resuming after the restart: queued jobs stay queued (their records
      // say so already; watchers are told), running ones stop at a step
      // boundary and are checkpointed there (Run). Otherwise all are cancelled.
      const bool suspend = options_.resume_interrupted;
      for (const auto& job : queue_) {
        if (!suspend) {
          job->status.state = JobState::kCancelled;
          job->status.error = "cancelled by server shutdown before it started";
          job->status.finished_unix_ms = NowUnixMs();
          cancelled.push_back(job);
        }
        Announce(*job, !suspend);
      }
      if (suspend && !queue_.empty()) {
        LogInfo(absl::StrCat("shutdown: ", queue_.size(),
                             " queued job(s) stay queued and run after the restart"));
      }
      queue_.clear();
      for (const auto& [id, job] : jobs_) {
        if (job->status.state == JobState::kRunning && job->cancel_reason.empty()) {
          if (suspend) {
            job->suspending = true;
          } else {
            job->cancel_reason = "by server shutdown";
          }
          job->cancel.store(true);
        }
      }
      UpdateStateMetrics();
      changed_.SignalAll();
    }
  }
  for (const auto& job : cancelled) (void)WriteRecord(*job);
  {
    MutexLock lock(&mu_);
    const bool idle =
        WaitUntil(deadline, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; });
    // Jobs left queued are recorded so: another server on this data folder
    // may take them over from here (and only their record tells then).
    for (const auto& [id, job] : jobs_) {
      if (job->status.state != JobState::kRunning && job->claim.has_value()) Release(*job);
    }
    if (!idle) {
      LogWarning("shutdown: a training job did not stop within the grace period");
      return false;
    }
  }
  if (!joined_) {
    for (auto& worker : workers_) worker.join();
    if (claimer_.joinable()) claimer_.join();
    joined_ = true;
  }
  return true;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) changed_.Wait(&mu_);
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      job->status.state = JobState::kRunning;
      if (job->status.started_unix_ms == 0) job->status.started_unix_ms = NowUnixMs();
      job->status.interrupted.clear();
      ++running_;
      Announce(*job, true);
      UpdateStateMetrics();
    }
    Run(job);
  }
}

void JobManager::Run(const std::shared_ptr<Job>& job) {
  (void)WriteRecord(*job);
  LogInfo(absl::StrCat("job ", job->status.id, " running"));
  const absl::Status result = Train(job);
  // The final state reaches the disk (and the checkpoint folder of a
  // successful job is gone) before any reader can see it.
  JobStatus final;
  {
    MutexLock lock(&mu_);
    final = job->status;
  }
  final.finished_unix_ms = NowUnixMs();
  final.eta_seconds = 0;
  bool suspended = false;
  if (absl::IsCancelled(result) && job->cancel.load()) {
    MutexLock lock(&mu_);
    suspended = job->suspending;
  }
  if (result.ok()) {
    final.state = JobState::kSucceeded;
  } else if (suspended) {
    // Left for the next start, as a crash would leave it (minus the lost
    // steps): its checkpoint is at the step it reached when the final one
    // could be written.
    final.state = JobState::kQueued;
    final.finished_unix_ms = 0;
    final.steps_per_second = 0;
    final.interrupted = absl::StrCat("by server shutdown at step ", final.step);
  } else if (absl::IsCancelled(result) && job->cancel.load()) {
    final.state = JobState::kCancelled;
    MutexLock lock(&mu_);
    final.error = absl::StrCat("cancelled ", job->cancel_reason, " at step ", final.step);
  } else {
    final.state = JobState::kFailed;
    final.error = CodeText(result);
  }
  (void)WriteStatus(*job, final);
  if (final.state == JobState::kSucceeded) (void)RemoveTree(CheckpointDir(options_.root, final.id));
  while (true) {
    {
      MutexLock lock(&mu_);
      if (!suspended || job->suspending) {
        final.version = job->status.version;
        job->status = final;
        // Recorded ended or left queued: nobody's now.
        Release(*job);
        --running_;
        Announce(*job, true);
        UpdateStateMetrics();
        break;
      }
      // Cancelled by its user while being left queued: it ends CANCELLED,
      // on disk before anyone sees it.
      suspended = false;
      final.state = JobState::kCancelled;
      final.interrupted.clear();
      final.finished_unix_ms = NowUnixMs();
      final.error = absl::StrCat("cancelled ", job->cancel_reason, " at step ", final.step);
    }
    (void)WriteStatus(*job, final);
  }
  const std::string& model_name = final.request.model;
  if (metrics_ != nullptr) metrics_->AddTrainingSteps(model_name, 0, final.loss, 0.0);
  const JobStatus& s = final;
  if (s.state == JobState::kSucceeded) {
    LogInfo(absl::StrCat("job ", s.id, " succeeded: model '", model_name, "' after ", s.step,
                         " steps, loss ", s.loss));
  } else if (suspended) {
    LogInfo(absl::StrCat("job ", s.id, " stopped ", s.interrupted, " (checkpoint at step ",
                         s.checkpoint_step, "); it resumes when the server starts again"));
  } else {
    LogWarning(absl::StrCat("job ", s.id, " ", JobStateName(s.state), ": ", s.error));
  }
}

template <typename Trainer>
absl::StatusOr<model::checkpoint::Checkpoint> JobManager::RunTrainer(
    Trainer& trainer, const std::shared_ptr<Job>& job, const TrainingOrigin& origin,
    model::TrainHooks hooks) {
  const std::string checkpoint_dir = CheckpointDir(options_.root, job->status.id);
  auto checkpoint = [&](int64_t step) -> absl::Status {
    WFM_ASSIGN_OR_RETURN(model::checkpoint::Checkpoint ckpt, trainer.MakeCheckpoint(true));
    ckpt.metadata["server"] = origin.ToJson();
    WFM_RETURN_IF_ERROR(MakeDirs(checkpoint_dir));
    WFM_RETURN_IF_ERROR(
        model::checkpoint::Write(CheckpointPath(options_.root, job->status.id), ckpt));
    {
      MutexLock lock(&mu_);
      job->status.checkpoint_step = step;
      Announce(*job, true);  // watchers see the checkpoint at once
    }
    // The record then names a step a restart could resume from.
    (void)WriteRecord(*job);
    return absl::OkStatus();
  };
  hooks.on_checkpoint = checkpoint;
  const absl::Status trained = trainer.Train(hooks);
  if (absl::IsCancelled(trained) && job->cancel.load()) {
    // Stopped by a shutdown, before a step: the state is the step's own, and
    // the next start continues from it. If this write fails (or the drain's
    // deadline ends the process first), the last periodic checkpoint stands.
    int64_t saved = 0;
    bool suspending = false;
    {
      MutexLock lock(&mu_);
      suspending = job->suspending;
      saved = job->status.checkpoint_step;
    }
    if (suspending && trainer.step() > saved) {
      const absl::Status written = checkpoint(trainer.step());
      if (!written.ok()) {
        LogWarning(absl::StrCat("job ", job->status.id, ": no checkpoint at shutdown (",
                                written.message(), "); the one of step ", saved, " stands"));
      }
    }
  }
  WFM_RETURN_IF_ERROR(trained);
  return trainer.MakeCheckpoint(false);
}

bool JobManager::PublishedBy(const JobStatus& status) const {
  absl::StatusOr<ModelVersions> model = models_->Describe(status.request.model);
  if (!model.ok()) return false;
  for (const auto& version : model->versions) {
    if (version->info.origin.job == status.id) return true;
  }
  return false;
}

absl::StatusOr<std::optional<model::checkpoint::Checkpoint>> JobManager::ResumeCheckpoint(
    const JobStatus& status) const {
  const std::string path = CheckpointPath(options_.root, status.id);
  if (!repository::Exists(path)) {
    if (status.checkpoint_step == 0) return std::nullopt;
    return absl::DataLossError(absl::StrCat("cannot resume: the checkpoint of step ",
                                            status.checkpoint_step, " (", path, ") is missing"));
  }
  absl::StatusOr<model::checkpoint::Checkpoint> ckpt = model::checkpoint::Read(path);
  if (!ckpt.ok()) {
    // The message names the file.
    return absl::DataLossError(absl::StrCat("cannot resume: ", ckpt.status().message()));
  }
  return std::optional<model::checkpoint::Checkpoint>(*std::move(ckpt));
}

absl::StatusOr<model::checkpoint::Checkpoint> JobManager::BaseModel(
    const TrainingRequest& request) const {
  const std::string& name = request.init_from_model;
  const std::string version =
      request.init_from_version > 0 ? absl::StrCat(" version ", request.init_from_version) : "";
  absl::StatusOr<model::checkpoint::Checkpoint> base =
      models_->ReadCheckpoint(name, request.init_from_version);
  if (!base.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("init_from_model: cannot read model '", name,
                                                      "'", version, ": ", base.status().message()));
  }
  if (base->metadata.value("created_unix_ms", int64_t{0}) != request.init_from_created_unix_ms) {
    return absl::FailedPreconditionError(
        absl::StrCat("init_from_model: model '", name, "'", version,
                     " was replaced after the job was queued; start a new job to fine-tune it"));
  }
  return base;
}

namespace {

// Whether the data a checkpoint was trained on is still the data set's
// current version (and the source data set's). FAILED_PRECONDITION naming
// the data set otherwise.
absl::Status CheckSameData(const model::checkpoint::Checkpoint& ckpt, const TrainingOrigin& now,
                           const TrainingRequest& req) {
  absl::StatusOr<TrainingOrigin> then = TrainingOrigin::FromJson(
      ckpt.metadata.contains("server") ? ckpt.metadata["server"] : nlohmann::json::object());
  if (!then.ok()) return absl::DataLossError(absl::StrCat("cannot resume: ", then.status().message()));
  auto replaced = [&](const char* field, const std::string& name) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot resume: ", field, " '", name,
        "' was replaced since the job's checkpoint was written; a job never continues on other "
        "data (start a new job)"));
  };
  if (then->dataset_created_unix_ms != now.dataset_created_unix_ms) {
    return replaced("dataset", req.dataset);
  }
  if (then->source_created_unix_ms != now.source_created_unix_ms) {
    return replaced("source data set", req.config.source_dataset);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status JobManager::Train(const std::shared_ptr<Job>& job) {
  TrainingRequest req;
  JobStatus recorded;
  bool resuming = false;
  {
    MutexLock lock(&mu_);
    req = job->status.request;
    recorded = job->status;
    resuming = job->resuming;
  }
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const DatasetData> data, datasets_->Load(req.dataset));
  const model::TrainingConfig config = repository::ConfigForData(req.config, data->info.kind);
  if (!KindFits(config.family, data->info.kind)) {
    return absl::FailedPreconditionError(absl::StrCat("data set '", req.dataset,
                                                      "' was replaced by one of kind ",
                                                      DatasetKindName(data->info.kind)));
  }
  std::shared_ptr<const DatasetData> source;
  if (UsesGivenSource(config)) {
    WFM_ASSIGN_OR_RETURN(source, datasets_->Load(config.source_dataset));
  }
  WFM_ASSIGN_OR_RETURN(TrainingInputs inputs,
                       repository::MakeTrainingInputs(*data, source.get(), config));
  inputs.origin.job = recorded.id;
  inputs.origin.init_from_model = req.init_from_model;
  inputs.origin.init_from_version = req.init_from_version;

  // A resumed job continues from its checkpoint, on the same data; a new
  // fine-tuning job starts from its base model's weights.
  std::optional<model::checkpoint::Checkpoint> resume_from;
  if (resuming) {
    WFM_ASSIGN_OR_RETURN(resume_from, ResumeCheckpoint(recorded));
    if (resume_from.has_value()) WFM_RETURN_IF_ERROR(CheckSameData(*resume_from, inputs.origin, req));
  }
  std::optional<model::checkpoint::Checkpoint> base;
  if (!resume_from.has_value() && !req.init_from_model.empty()) {
    WFM_ASSIGN_OR_RETURN(base, BaseModel(req));
  }

  int64_t last_step = 0;
  model::TrainHooks hooks;
  hooks.cancel = &job->cancel;
  hooks.on_progress = [&](const model::TrainProgress& p) {
    if (metrics_ != nullptr) {
      metrics_->AddTrainingSteps(req.model, p.step - last_step, p.loss, p.steps_per_second);
    }
    last_step = p.step;
    bool persist_now = false;
    {
      MutexLock lock(&mu_);
      JobStatus& s = job->status;
      s.step = p.step;
      s.total_steps = p.total_steps;
      s.loss = p.loss;
      s.steps_per_second = p.steps_per_second;
      s.eta_seconds = p.eta_seconds;
      const absl::Time now = absl::Now();
      persist_now = now - job->last_persist >= kPersistInterval;
      if (now - job->last_notify >= kNotifyInterval || p.step == p.total_steps || persist_now) {
        Announce(*job, persist_now);
      }
    }
    if (persist_now) (void)WriteRecord(*job);
  };
  // Where the trainer starts: the resumed step, announced before training.
  auto started = [&](int64_t step) {
    last_step = step;
    if (!resuming) return;
    {
      MutexLock lock(&mu_);
      job->status.step = step;
      job->status.resumed_from_step = step;
      Announce(*job, true);
    }
    (void)WriteRecord(*job);
  };

  // The training itself is the same for both families.
  auto run = [&](auto trainer) -> absl::StatusOr<model::checkpoint::Checkpoint> {
    if (!trainer.ok()) return trainer.status();
    if (base.has_value()) WFM_RETURN_IF_ERROR((*trainer)->InitWeightsFrom(*base));
    started((*trainer)->step());
    return RunTrainer(**trainer, job, inputs.origin, hooks);
  };
  absl::StatusOr<model::checkpoint::Checkpoint> trained;
  if (config.family == model::Family::kPointCloud) {
    const auto* source_clouds = inputs.source_clouds_or_null();
    trained = run(resume_from.has_value()
                      ? model::PointCloudTrainer::Resume(inputs.clouds, *resume_from,
                                                         source_clouds, config.steps())
                      : model::PointCloudTrainer::Create(inputs.clouds, config.pointcloud,
                                                         req.dataset, source_clouds));
  } else {
    const auto* source_gaussians = inputs.source_gaussians_or_null();
    trained = run(resume_from.has_value()
                      ? model::GaussianTrainer::Resume(inputs.gaussians, *resume_from,
                                                       source_gaussians, config.steps())
                      : model::GaussianTrainer::Create(inputs.gaussians, config.gaussian,
                                                       req.dataset, source_gaussians));
  }
  WFM_ASSIGN_OR_RETURN(model::checkpoint::Checkpoint final_ckpt, std::move(trained));
  final_ckpt.metadata["server"] = inputs.origin.ToJson();
  if (job->cancel.load()) {
    // A shutdown after the last step publishes the model (the job ends);
    // a user's cancel does not.
    MutexLock lock(&mu_);
    if (!job->suspending) return absl::CancelledError("cancelled before publishing");
  }
  WFM_RETURN_IF_ERROR(models_->Publish(req.model, final_ckpt, req.overwrite).status());
  return absl::OkStatus();
}

}  // namespace wfm::server
