// Dynamic batching (Triton's dynamic_batch_scheduler): one Batcher per
// served model, with one worker thread. Concurrent requests wait in a
// bounded FIFO queue; the worker merges them into one Model::Sample() call
// of at most max_batch_samples samples (a larger request runs alone), so
// one batched integration serves several clients.
//
// When to run: the batcher keeps an estimate of the model's concurrency, the
// largest number of requests in flight (waiting or running) seen when a
// request arrives; it shrinks to what has arrived when a wait times out.
// While that estimate is 1 (a lone client) a request runs at once and never
// waits. Otherwise the worker waits until the queue holds as many requests as
// the estimate (closed-loop clients are served as soon as they are all back),
// or max_batch_samples samples, or max_queue_delay has passed since the
// oldest request arrived or the previous call ended, whichever is later. The model gives each request a result that depends only
// on that request (its own seed), so merging never changes results.
//
// Cancellation: each request has a `cancelled` callback (client gone,
// deadline passed). Only the thread that called Run() ever calls it, every
// cancel_poll, and records the answer in a flag the worker reads: gRPC's
// synchronous ServerContext::IsCancelled() must not run on two threads at
// once (it consumes a completion-queue event; two calls unref its
// completion op twice and abort the server). A request cancelled while
// queued is dropped at once; a cancelled request inside a running call just
// has its result discarded; the call itself stops (the model polls every
// integration step) when all its requests are cancelled or the batcher is
// stopped hard.
//
// Locking: the batcher's state (queue, concurrency estimate, the running
// call) is guarded by mu_, each request's result by its own mutex; clang's
// -Wthread-safety checks both. The model runs with no lock held.
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
#include "absl/time/time.h"
#include "model/common/mutex.h"

namespace wfm::server {

struct BatcherOptions {
  int64_t max_batch_samples = 64;       // samples merged into one call
  absl::Duration max_queue_delay = absl::Milliseconds(5);
  int64_t max_queue = 256;              // waiting requests; beyond: RESOURCE_EXHAUSTED
  // How often a waiting caller polls its `cancelled` callback.
  absl::Duration cancel_poll = absl::Milliseconds(10);
};

// What the batcher reports per call (for metrics).
struct BatchObserver {
  // requests merged, samples generated (requests and samples of that call).
  std::function<void(int64_t requests, int64_t samples)> on_batch;
  std::function<void(int64_t depth)> on_queue_depth;
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

  const std::shared_ptr<const Model>& model() const { return model_; }

  // Queues the request and blocks until its result. RESOURCE_EXHAUSTED when
  // the queue is full, CANCELLED when `cancelled` turned true first,
  // UNAVAILABLE when the batcher is stopping.
  absl::StatusOr<Result> Run(Request request, std::function<bool()> cancelled = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_) {
    auto pending = std::make_shared<Pending>();
    pending->request = std::move(request);
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
      queue_.push_back(pending);
      concurrency_ = std::max(concurrency_, static_cast<int64_t>(queue_.size()) + running_);
      ReportDepth();
    }
    work_.SignalAll();
    MutexLock lock(&pending->mu);
    while (!pending->done) {
      pending->cv.WaitWithTimeout(&pending->mu, options_.cancel_poll);
      if (pending->done) break;
      if (pending->cancelled_fn && pending->cancelled_fn()) {
        pending->cancelled.store(true);
        // The worker drops it when it comes to it (or stops the call).
        work_.SignalAll();
        return absl::CancelledError("sampling cancelled by the client");
      }
    }
    return std::move(pending->result);
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
  struct Pending {
    Request request;
    std::function<bool()> cancelled_fn;  // called on Run()'s thread only
    std::atomic<bool> cancelled{false};  // what it said; read by the worker
    // Set before the request is queued, under the batcher's mu_.
    std::chrono::steady_clock::time_point enqueued;
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
        const auto deadline = std::max(queue_.front()->enqueued, idle_since_) +
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
      while (!queue_.empty()) {
        const std::shared_ptr<Pending>& next = queue_.front();
        if (next->cancelled.load()) {
          next->Finish(absl::CancelledError("sampling cancelled by the client"));
          queue_.pop_front();
          continue;
        }
        if (!batch->empty() &&
            *samples + next->request.num_samples > options_.max_batch_samples) {
          break;
        }
        *samples += next->request.num_samples;
        batch->push_back(next);
        queue_.pop_front();
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
      MutexLock lock(&mu_);
      // Reset before the clients learn their results: a lone client's next
      // request must not count this call as concurrent with it.
      running_ = 0;
      idle_since_ = std::chrono::steady_clock::now();
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->Finish(std::move(outcomes[i]));
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
    absl::StatusOr<std::vector<Result>> results = model_->Sample(requests, all_cancelled);
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
  const std::shared_ptr<const Model> model_;
  const BatcherOptions options_;
  const BatchObserver observer_;

  mutable Mutex mu_;
  CondVar work_;  // the queue or stopping_ changed
  std::deque<std::shared_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;      // requests in the call being executed
  int64_t concurrency_ ABSL_GUARDED_BY(mu_) = 1;  // expected requests in flight (see the top)
  // End of the last call.
  std::chrono::steady_clock::time_point idle_since_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;  // last: starts after everything above is built
};

}  // namespace wfm::server

#endif  // WFM_SERVER_BATCHER_H_
