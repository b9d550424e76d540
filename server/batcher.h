// Dynamic batching (Triton's dynamic_batch_scheduler): one Batcher per
// served model, with one worker thread. Concurrent requests wait in a
// bounded queue; the worker merges them into one Model::Sample() call of at
// most max_batch_samples samples (a larger request runs alone), so one
// batched integration serves several clients.
//
// Queue policy (queue_policy.h): each request has a priority (low, normal,
// high) and may have a queue timeout.
// - Order: the queue is kept in the order the worker takes requests:
//   higher priority first, first come first served within a priority. A
//   call is filled from the front of that order, so it starts with the
//   highest-priority oldest request and lower priorities fill the room it
//   leaves (up to max_batch_samples; the first request that does not fit
//   ends the call, so nothing overtakes it). A call that runs is never
//   preempted: a high-priority request that arrives meanwhile goes first
//   into the next call.
// - Ageing (no starvation): a waiting request rises one priority level per
//   priority_aging waited. Exactly: a request of level p (low 0, normal 1,
//   high 2) that arrived at t ranks as if it arrived at t - p *
//   priority_aging at the highest level, so a request is never overtaken by
//   one of a higher priority that arrived more than (level difference) x
//   priority_aging after it; a low request waits at most 2 x priority_aging
//   plus the requests that were ahead of it then. priority_aging infinite:
//   strict priorities (low requests can starve while higher ones keep the
//   queue busy).
// - Queue timeout: a request still waiting when its timeout passes leaves
//   the queue and ends with DEADLINE_EXCEEDED; the model is never run for
//   it (its caller's thread wakes at the timeout, and the worker checks
//   every request it takes). Once a call took it, it runs to its end.
// - max_queue counts the waiting requests of every priority.
// Every request that leaves the queue (taken into a call, timed out, or
// cancelled while waiting) reports its wait (BatchObserver::on_queue_wait).
//
// When to run: the batcher keeps an estimate of the model's concurrency, the
// largest number of requests in flight (waiting or running) seen when a
// request arrives; it shrinks to what has arrived when a wait times out.
// While that estimate is 1 (a lone client) a request runs at once and never
// waits. Otherwise the worker waits until the queue holds as many requests as
// the estimate (closed-loop clients are served as soon as they are all back),
// or max_batch_samples samples, or max_queue_delay has passed since the
// oldest request arrived or the previous call ended, whichever is later.
// The model gives each request a result that depends only on that request
// (its own seed), so neither merging nor priorities change results.
//
// Cancellation: each request has a `cancelled` callback (client gone,
// deadline passed). Only the thread that called Run() ever calls it, every
// cancel_poll, and records the answer in a flag the worker reads: gRPC's
// synchronous ServerContext::IsCancelled() must not run on two threads at
// once (it consumes a completion-queue event; two calls unref its
// completion op twice and abort the server). A request cancelled while
// queued leaves the queue at once; a cancelled request inside a running call just
// has its result discarded; the call itself stops (the model polls every
// integration step) when all its requests are cancelled or the batcher is
// stopped hard.
//
// Locking: the batcher's state (queue, concurrency estimate, the running
// call) is guarded by mu_, each request's result by its own mutex, taken
// after mu_ when both are held (never the other way round); clang's
// -Wthread-safety checks both. The model runs with no lock held.
//
// The batcher does not keep its model alive: it holds it weakly, and each
// queued request holds it until its result (callers of Run() hold the model
// they resolved, model_registry.h), so a model unloaded from the registry
// is freed when its last request ends, not when its batcher goes.
//
// Model must provide
//   absl::StatusOr<std::vector<Result>> Sample(const std::vector<Request>&,
//                                             const std::function<bool()>&) const;
// and Request a `num_samples` field.
#ifndef WFM_SERVER_BATCHER_H_
#define WFM_SERVER_BATCHER_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "model/common/mutex.h"
#include "server/queue_policy.h"

namespace wfm::server {

struct BatcherOptions {
  int64_t max_batch_samples = 64;       // samples merged into one call
  absl::Duration max_queue_delay = absl::Milliseconds(5);
  int64_t max_queue = 256;              // waiting requests; beyond: RESOURCE_EXHAUSTED
  // How often a waiting caller polls its `cancelled` callback.
  absl::Duration cancel_poll = absl::Milliseconds(10);
  // A waiting request rises one priority level per priority_aging waited
  // (see the top); InfiniteDuration = strict priorities.
  absl::Duration priority_aging = absl::Seconds(10);
};

// What the batcher reports per call (for metrics).
struct BatchObserver {
  // requests merged, samples generated (requests and samples of that call).
  std::function<void(int64_t requests, int64_t samples)> on_batch;
  std::function<void(int64_t depth)> on_queue_depth;
  // A request left the queue after `seconds` (taken into a call, timed out
  // or cancelled while waiting).
  std::function<void(QueuePriority priority, double seconds)> on_queue_wait;
  // A request ended DEADLINE_EXCEEDED by its queue timeout.
  std::function<void()> on_queue_timeout;
};

template <typename Model, typename Request, typename Result>
class Batcher {
 public:
  using ModelType = Model;

  Batcher(std::string name, std::shared_ptr<const Model> model, BatcherOptions options,
          BatchObserver observer = {})
      : name_(std::move(name)),
        model_(std::move(model)),
        options_(options),
        observer_(std::move(observer)),
        worker_([this] { WorkerLoop(); }) {}

  // Finishes what is queued, then stops the worker.
  ~Batcher() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    work_.SignalAll();
    worker_.join();
  }

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // The model; null once nothing holds it any more.
  std::shared_ptr<const Model> model() const { return model_.lock(); }

  // Queues the request under `policy` and blocks until its result.
  // RESOURCE_EXHAUSTED when the queue is full, DEADLINE_EXCEEDED when it
  // waited longer than policy.timeout (never computed), CANCELLED when
  // `cancelled` turned true first, UNAVAILABLE when the batcher is stopping
  // or its model was freed (see the top).
  absl::StatusOr<Result> Run(Request request, const QueuePolicy& policy,
                             std::function<bool()> cancelled = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_) {
    auto pending = std::make_shared<Pending>();
    pending->model = model_.lock();
    if (pending->model == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("sampling: model '", name_, "' was unloaded; retry"));
    }
    pending->request = std::move(request);
    pending->priority = policy.priority;
    pending->timeout = policy.timeout;
    pending->cancelled_fn = std::move(cancelled);
    {
      MutexLock lock(&mu_);
      if (stopping_) return absl::UnavailableError("sampling: the server is shutting down");
      if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "sampling queue of model '", name_, "' is full (", queue_.size(),
            " requests waiting, --max-queue); retry later"));
      }
      pending->enqueued = std::chrono::steady_clock::now();
      pending->sequence = next_sequence_++;
      pending->rank = RankOf(*pending);
      pending->expires = ExpiryOf(pending->enqueued, policy.timeout);
      // Behind every request that ranks before it (see the top).
      queue_.insert(std::find_if(queue_.begin(), queue_.end(),
                                 [&](const std::shared_ptr<Pending>& p) {
                                   return TakenBefore(*pending, *p);
                                 }),
                    pending);
      concurrency_ = std::max(concurrency_, static_cast<int64_t>(queue_.size()) + running_);
      ReportDepth();
    }
    work_.SignalAll();
    // Whether the request may still be waiting (then its timeout applies);
    // false once it is known that a call took it.
    bool maybe_queued = pending->expires != kNever;
    while (true) {
      {
        MutexLock lock(&pending->mu);
        if (!pending->done) {
          absl::Duration wait = options_.cancel_poll;
          if (maybe_queued) {
            wait = std::min(wait, absl::FromChrono(pending->expires -
                                                   std::chrono::steady_clock::now()));
          }
          if (wait > absl::ZeroDuration()) pending->cv.WaitWithTimeout(&pending->mu, wait);
        }
        if (pending->done) return std::move(pending->result);
      }
      if (pending->cancelled_fn && pending->cancelled_fn()) {
        pending->cancelled.store(true);
        // Out of the queue now; inside a running call the worker drops its
        // result (or stops the call).
        (void)LeaveQueue(pending);
        work_.SignalAll();
        return absl::CancelledError("sampling cancelled by the client");
      }
      if (maybe_queued && std::chrono::steady_clock::now() >= pending->expires) {
        if (LeaveQueue(pending)) {
          if (observer_.on_queue_timeout) observer_.on_queue_timeout();
          return TimedOut(*pending);
        }
        // A call took it (or the worker timed it out): its result comes.
        maybe_queued = false;
      }
    }
  }

  // With the default policy (normal priority, no queue timeout).
  absl::StatusOr<Result> Run(Request request, std::function<bool()> cancelled = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_) {
    return Run(std::move(request), QueuePolicy{}, std::move(cancelled));
  }

  // Requests waiting (not yet in a call).
  int64_t queue_depth() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return static_cast<int64_t>(queue_.size());
  }

  // Requests waiting or in the call being executed.
  int64_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return static_cast<int64_t>(queue_.size()) + running_;
  }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr TimePoint kNever = TimePoint::max();

  struct Pending {
    std::shared_ptr<const Model> model;  // kept until the result
    Request request;
    QueuePriority priority = QueuePriority::kNormal;
    absl::Duration timeout = absl::InfiniteDuration();
    std::function<bool()> cancelled_fn;  // called on Run()'s thread only
    std::atomic<bool> cancelled{false};  // what it said; read by the worker
    // Set before the request is queued, under the batcher's mu_, and never
    // changed after.
    TimePoint enqueued;
    int64_t sequence = 0;       // arrival order
    TimePoint rank;             // enqueued - level x priority_aging (see the top)
    TimePoint expires = kNever; // end of its queue timeout
    Mutex mu;
    CondVar cv;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<Result> result ABSL_GUARDED_BY(mu) = absl::UnknownError("no result");

    void Finish(absl::StatusOr<Result> r) ABSL_LOCKS_EXCLUDED(mu) {
      MutexLock lock(&mu);
      result = std::move(r);
      done = true;
      cv.SignalAll();
    }
  };

  void ReportDepth() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (observer_.on_queue_depth) observer_.on_queue_depth(static_cast<int64_t>(queue_.size()));
  }

  // `p` leaves the queue now.
  void ReportWait(const Pending& p, TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!observer_.on_queue_wait) return;
    observer_.on_queue_wait(p.priority,
                            std::chrono::duration<double>(now - p.enqueued).count());
  }

  // The time `p` ranks at with ageing (see the top).
  TimePoint RankOf(const Pending& p) const {
    if (options_.priority_aging == absl::InfiniteDuration()) return p.enqueued;
    return p.enqueued -
           static_cast<int>(p.priority) * absl::ToChronoNanoseconds(options_.priority_aging);
  }

  // Whether the worker takes `a` before `b`.
  bool TakenBefore(const Pending& a, const Pending& b) const {
    if (options_.priority_aging == absl::InfiniteDuration() && a.priority != b.priority) {
      return a.priority > b.priority;
    }
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.sequence < b.sequence;
  }

  static TimePoint ExpiryOf(TimePoint enqueued, absl::Duration timeout) {
    if (timeout == absl::InfiniteDuration()) return kNever;
    const auto limit = absl::ToChronoNanoseconds(timeout);
    if (limit >= kNever - enqueued) return kNever;
    return enqueued + limit;
  }

  absl::Status TimedOut(const Pending& p) const {
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - p.enqueued).count();
    return absl::DeadlineExceededError(absl::StrFormat(
        "queue_timeout_seconds: waited %.3f s in the sampling queue of model '%s', longer "
        "than the request's queue timeout of %g s; nothing was computed",
        waited, name_, absl::ToDoubleSeconds(p.timeout)));
  }

  // Takes `pending` out of the queue (reporting its wait); false when it
  // is no longer there (a call took it, or the worker finished it).
  bool LeaveQueue(const std::shared_ptr<Pending>& pending) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    auto it = std::find(queue_.begin(), queue_.end(), pending);
    if (it == queue_.end()) return false;
    queue_.erase(it);
    ReportWait(*pending, std::chrono::steady_clock::now());
    ReportDepth();
    return true;
  }

  int64_t QueuedSamples() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int64_t n = 0;
    for (const auto& p : queue_) n += p->request.num_samples;
    return n;
  }

  // Whether the queue holds what the worker waits for before a call.
  bool BatchReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || queue_.empty() || QueuedSamples() >= options_.max_batch_samples ||
           static_cast<int64_t>(queue_.size()) >= concurrency_;
  }

  // The next call's requests (and their samples), taken off the queue, with
  // running_ set; false once stopping and drained.
  bool NextBatch(std::vector<std::shared_ptr<Pending>>* batch, int64_t* samples)
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    while (true) {
      while (!stopping_ && queue_.empty()) work_.Wait(&mu_);
      if (queue_.empty()) return false;  // stopping and drained
      // Wait for company only when there is evidence of concurrency.
      if (!stopping_ && concurrency_ > 1 &&
          static_cast<int64_t>(queue_.size()) < concurrency_) {
        // The delay counts from the oldest arrival or from the end of the
        // previous call, whichever is later: the clients of that call get
        // the delay to come back.
        TimePoint oldest = queue_.front()->enqueued;
        for (const auto& p : queue_) oldest = std::min(oldest, p->enqueued);
        const auto deadline = std::max(oldest, idle_since_) +
                              absl::ToChronoNanoseconds(options_.max_queue_delay);
        bool full = BatchReady();
        while (!full) {
          const auto now = std::chrono::steady_clock::now();
          if (now >= deadline) break;
          work_.WaitWithTimeout(&mu_, absl::FromChrono(deadline - now));
          full = BatchReady();
        }
        if (queue_.empty()) continue;
        // Fewer came than expected: expect that many from now on.
        if (!full) concurrency_ = std::max<int64_t>(1, static_cast<int64_t>(queue_.size()));
      }
      batch->clear();
      *samples = 0;
      const TimePoint now = std::chrono::steady_clock::now();
      while (!queue_.empty()) {
        const std::shared_ptr<Pending> next = queue_.front();
        if (next->cancelled.load()) {
          queue_.pop_front();
          ReportWait(*next, now);
          next->Finish(absl::CancelledError("sampling cancelled by the client"));
          continue;
        }
        if (now >= next->expires) {
          // Its caller would find it gone from the queue; it gets this.
          queue_.pop_front();
          ReportWait(*next, now);
          if (observer_.on_queue_timeout) observer_.on_queue_timeout();
          next->Finish(TimedOut(*next));
          continue;
        }
        if (!batch->empty() &&
            *samples + next->request.num_samples > options_.max_batch_samples) {
          break;
        }
        queue_.pop_front();
        ReportWait(*next, now);
        *samples += next->request.num_samples;
        batch->push_back(next);
      }
      ReportDepth();
      if (batch->empty()) continue;
      running_ = static_cast<int64_t>(batch->size());
      return true;
    }
  }

  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::shared_ptr<Pending>> batch;
    int64_t samples = 0;
    while (NextBatch(&batch, &samples)) {
      std::vector<absl::StatusOr<Result>> outcomes = Execute(batch, samples);
      // Their callers still hold the model; from here only they do.
      for (const auto& p : batch) p->model = nullptr;
      {
        MutexLock lock(&mu_);
        // Reset before the clients learn their results: a lone client's next
        // request must not count this call as concurrent with it.
        running_ = 0;
        idle_since_ = std::chrono::steady_clock::now();
        for (size_t i = 0; i < batch.size(); ++i) batch[i]->Finish(std::move(outcomes[i]));
      }
      batch.clear();
    }
  }

  // The outcome of each request of the batch.
  std::vector<absl::StatusOr<Result>> Execute(const std::vector<std::shared_ptr<Pending>>& batch,
                                              int64_t samples) {
    std::vector<Request> requests;
    requests.reserve(batch.size());
    for (const auto& p : batch) requests.push_back(p->request);
    auto all_cancelled = [&batch]() {
      for (const auto& p : batch) {
        if (!p->cancelled.load()) return false;
      }
      return true;
    };
    // Every request of the batch holds the same model.
    absl::StatusOr<std::vector<Result>> results =
        batch.front()->model->Sample(requests, all_cancelled);
    if (observer_.on_batch) observer_.on_batch(static_cast<int64_t>(batch.size()), samples);
    std::vector<absl::StatusOr<Result>> outcomes;
    outcomes.reserve(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!results.ok()) {
        outcomes.emplace_back(results.status());
      } else if (batch[i]->cancelled.load()) {
        outcomes.emplace_back(absl::CancelledError("sampling cancelled by the client"));
      } else {
        outcomes.emplace_back(std::move((*results)[i]));
      }
    }
    return outcomes;
  }

  const std::string name_;
  const std::weak_ptr<const Model> model_;
  const BatcherOptions options_;
  const BatchObserver observer_;

  mutable Mutex mu_;
  CondVar work_;  // the queue or stopping_ changed
  // In the order the worker takes them (TakenBefore).
  std::deque<std::shared_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;      // requests in the call being executed
  int64_t concurrency_ ABSL_GUARDED_BY(mu_) = 1;  // expected requests in flight (see the top)
  // End of the last call.
  TimePoint idle_since_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;  // last: starts after everything above is built
};

}  // namespace wfm::server

#endif  // WFM_SERVER_BATCHER_H_
