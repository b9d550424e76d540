// Training jobs: StartTraining returns at once with a QUEUED job; a bounded
// pool of --max-jobs worker threads runs them in order. A running job
// reports progress after every step (readers are woken at most every 250 ms,
// and at each periodic checkpoint; Watch sends at least one update per
// second), checks its cancel flag
// before every step, writes a resumable checkpoint every checkpoint_every
// steps to <data-dir>/jobs/<id>/checkpoint.wfm, and on success publishes the
// model to the registry (atomically) and removes that folder.
//
// Job records (job_record.h) are persisted as <data-dir>/jobs/<id>.json
// (atomic writes) at every state change, at checkpoints and every few
// seconds while running; requests are checked by job_validation.h.
// An orderly shutdown (Shutdown) with resume_interrupted on leaves queued
// jobs QUEUED and stops running ones before their next step, writes their
// checkpoint at that step and records them QUEUED with interrupted = "by
// server shutdown at step N"; with it off, it cancels them all.
// After a restart (a crash, a kill or such a shutdown), jobs that were
// QUEUED or RUNNING are queued again, in their original order, and resume:
// a job with a checkpoint (periodic, or its shutdown's) continues from it
// (network, optimizer, random stream and step: model/train/optimization_state.h, so it
// ends as an uninterrupted run would), one without starts afresh. A job
// that had already published its model (the model's origin names the job)
// is recorded SUCCEEDED instead of training again. A resumption fails the
// job (DATA_LOSS) when the checkpoint its record names is missing or
// unreadable, and (FAILED_PRECONDITION) when its data set or source data set
// was replaced since the checkpoint was written: a job never continues on
// other data. With resume_interrupted off, such jobs are reported FAILED
// with the error "interrupted by a server restart at step N" (N = the last
// recorded step) and their checkpoint folder is kept. Temporary files of
// the job's record or checkpoint writes that a crash interrupted are removed
// then (only once the job is claimed, below: another job's may be a write in
// progress).
//
// Fine-tuning (TrainingRequest.init_from_model): the network starts from the
// base model version's trained weights; the optimizer, schedule and random
// stream start afresh. The version (0 = the serving one, resolved then) and
// its creation time are recorded when the job is queued, and the job fails
// (FAILED_PRECONDITION) if that version was replaced or deleted before it
// started.
//
// Servers sharing a data folder (replicas on one volume) share jobs/: each
// job is owned by the one server that holds its claim, an exclusive lock on
// <data-dir>/jobs/<id>.lock (repository/file_lock.h) that the kernel releases
// when its holder dies, SIGKILL included. A server claims the jobs it starts
// (creating the claim file also reserves the id, so two servers never make
// the same one) and, at start-up and every claim_interval, the QUEUED or
// RUNNING jobs whose claim is free, re-reading the record once it holds the
// claim (the last owner writes its final record before letting go); those it
// resumes as after a restart (or reports as above), so a job runs in one
// place only and is never resumed twice. It lets a claim go once the job has
// ended or a shutdown left it queued. Jobs another server owns are shown from
// their shared record (Get, List and Start's checks re-read it; Watch
// re-reads it every 250 ms; the owner rewrites it at every state change and
// checkpoint and every 5 s); they are never run, failed or written here.
// Cancel of such a job writes a cancel request, <data-dir>/jobs/<id>.cancel,
// which its owner honours within a second (it checks its jobs' requests
// every second), and waits as for a job of its own; a job whose owner is gone
// is claimed and cancelled at once.
//
// No gRPC here.
#ifndef WFM_SERVER_JOB_MANAGER_H_
#define WFM_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/checkpoint/checkpoint.h"
#include "model/common/mutex.h"
#include "model/config/config.h"
#include "model/train/train_hooks.h"
#include "repository/file_lock.h"
#include "server/dataset_store.h"
#include "server/job_record.h"
#include "server/model_registry.h"

namespace wfm::server {

class Metrics;

struct JobManagerOptions {
  std::string root;           // <data-dir>/jobs
  int max_jobs = 1;           // worker threads, >= 1
  int64_t max_queued = 1000;  // queued jobs beyond which StartTraining is RESOURCE_EXHAUSTED
  // Whether jobs a restart finds QUEUED or RUNNING resume (or are FAILED),
  // and whether Shutdown leaves its jobs to resume (or cancels them).
  bool resume_interrupted = true;
  // How often the jobs of other servers on this data folder are re-checked:
  // one whose owner is gone (its claim is free) is claimed here and resumed.
  // Zero: only at start-up.
  absl::Duration claim_interval = absl::ZeroDuration();
  // Who this server is in its claims' files (others name it in their
  // logs); empty: repository::ProcessIdentity().
  std::string identity;
};

class JobManager {
 public:
  // Loads the job records under options.root (interrupted jobs it can claim
  // are queued to resume, or FAILED) and starts the workers. `metrics` may
  // be null.
  static absl::StatusOr<std::unique_ptr<JobManager>> Open(const JobManagerOptions& options,
                                                          DatasetStore* datasets,
                                                          ModelRegistry* models,
                                                          Metrics* metrics = nullptr);
  // Shutdown(infinite future).
  ~JobManager();

  // Validates the request against the stores (NOT_FOUND: data set, base
  // model or version; INVALID_ARGUMENT: config or data set kind;
  // FAILED_PRECONDITION: another job is training that model; UNAVAILABLE:
  // shutting down) and queues the job. The job publishes the next version
  // of its model (ModelRegistry::Publish).
  absl::StatusOr<JobStatus> Start(const TrainingRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Another server's job as its record says now (NOT_FOUND: no such job).
  absl::StatusOr<JobStatus> Get(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // By creation, oldest first; other servers' jobs included.
  std::vector<JobStatus> List() ABSL_LOCKS_EXCLUDED(mu_);
  // QUEUED: cancelled at once. RUNNING: the cancel flag is set and the call
  // waits up to `wait` for the job to stop (within one step); this holds
  // during a shutdown too (the job ends CANCELLED and never resumes). Ended
  // jobs: FAILED_PRECONDITION. Another server's job: a cancel request for
  // its owner, then the same wait (see above).
  absl::StatusOr<JobStatus> Cancel(const std::string& id, absl::Duration wait = absl::Seconds(10))
      ABSL_LOCKS_EXCLUDED(mu_);
  // The job once its version exceeds `after_version`, or at `timeout`,
  // whichever comes first (a heartbeat: the same version again).
  // UNAVAILABLE once a shutdown left the job queued and that version was seen.
  absl::StatusOr<JobStatus> WaitForUpdate(const std::string& id, int64_t after_version,
                                          absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops accepting jobs and stops running ones: with resume_interrupted,
  // each is checkpointed at the step it reached and recorded QUEUED
  // (interrupted "by server shutdown at step N"), queued ones stay QUEUED,
  // and the next start resumes them all; without, queued and running jobs
  // are recorded CANCELLED ("cancelled by server shutdown at step N"). Waits
  // for the workers until `deadline`. false when a job was still running
  // then (it stays RUNNING on disk, its last periodic checkpoint stands, and
  // a restart resumes it or reports it interrupted).
  bool Shutdown(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Job;
  // What becomes of an interrupted job this server has claimed.
  enum class Resumption { kResumed, kFailed, kRecovered, kCancelled };
  JobManager(JobManagerOptions options, DatasetStore* datasets, ModelRegistry* models,
             Metrics* metrics);
  absl::Status LoadAll();
  // Sets the state of an interrupted job just claimed: queued to resume,
  // FAILED (resume_interrupted off) or SUCCEEDED (it had published).
  Resumption PrepareResumption(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the shared record of job `id`, which this server does not own,
  // into jobs_ (added when new; watchers see a change). With `claim`, a job
  // that has not ended and whose claim is free becomes this server's and is
  // queued to resume (or cancelled, when a cancel request waits for it).
  // Null when there is no readable record.
  std::shared_ptr<Job> Adopt(const std::string& id, bool claim) ABSL_LOCKS_EXCLUDED(mu_);
  // Adopt() for every record of a job this server does not own that may
  // still change (new ones, and others' jobs that have not ended).
  void AdoptAll(bool claim) ABSL_LOCKS_EXCLUDED(mu_);
  // The job `id`; another server's is re-read first when it may have
  // changed (and looked for on disk when unknown). Null when none.
  std::shared_ptr<Job> Find(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancel of a job another server owns: a cancel request for it, then
  // waits up to `wait` for its record to show it ended.
  absl::StatusOr<JobStatus> CancelOthers(const std::string& id, std::shared_ptr<Job> job,
                                         absl::Duration wait) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels this server's jobs that another one asked to cancel, and removes
  // the requests of jobs that have ended.
  void HonourCancelRequests() ABSL_LOCKS_EXCLUDED(mu_);
  // Every second: HonourCancelRequests; every claim_interval: AdoptAll(true).
  void ClaimLoop();
  void WorkerLoop();
  void Run(const std::shared_ptr<Job>& job);
  absl::Status Train(const std::shared_ptr<Job>& job);
  // Whether the job's model in the registry was published by the job.
  bool PublishedBy(const JobStatus& status) const;
  // The periodic checkpoint a resumed job continues from; nullopt when it
  // had none yet (it starts afresh). DATA_LOSS when the checkpoint its record
  // names is missing or unreadable.
  absl::StatusOr<std::optional<model::checkpoint::Checkpoint>> ResumeCheckpoint(
      const JobStatus& status) const;
  // The base model's checkpoint of a fine-tuning job, as it was queued.
  absl::StatusOr<model::checkpoint::Checkpoint> BaseModel(const TrainingRequest& request) const;
  // Trains with `hooks` plus periodic checkpoints into jobs/<id>/; returns
  // the final (serving) checkpoint.
  template <typename Trainer>
  absl::StatusOr<model::checkpoint::Checkpoint> RunTrainer(Trainer& trainer,
                                                           const std::shared_ptr<Job>& job,
                                                           const TrainingOrigin& origin,
                                                           model::TrainHooks hooks);
  // Writes the job's current state to its record file (atomic write; one
  // writer per job at a time, so the newest state is written last); logs
  // errors.
  absl::Status WriteRecord(Job& job) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `status` as the job's record (a state not yet published).
  absl::Status WriteStatus(Job& job, const JobStatus& status) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteRecordLocked(const JobStatus& snapshot);
  // Bumps the job's version and wakes its watchers (`persisted`: its record
  // is being written now, which restarts the periodic-write clock).
  void Announce(Job& job, bool persisted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateStateMetrics() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lets the job's claim go: one left queued is another server's to take
  // over, shown from its record from now on.
  void Release(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits on changed_ until done() holds or `deadline` passes; done()'s
  // value then.
  template <typename Done>
  bool WaitUntil(absl::Time deadline, const Done& done) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!done()) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) return done();
    }
    return true;
  }

  const JobManagerOptions options_;
  const std::string identity_;  // in this server's claims
  DatasetStore* const datasets_;
  ModelRegistry* const models_;
  Metrics* const metrics_;

  mutable Mutex mu_;
  mutable CondVar changed_;  // any job's version changed; queue changes
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
  std::thread claimer_;  // ClaimLoop
  bool joined_ = false;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_JOB_MANAGER_H_
