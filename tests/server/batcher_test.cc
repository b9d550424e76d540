#include "server/batcher.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wfm::server {
namespace {

using ::testing::ElementsAre;

struct FakeRequest {
  int64_t num_samples = 1;
  int64_t seed = 0;
  int steps = 0;  // polling steps the call runs (the largest of its requests)
};

struct FakeResult {
  int64_t value = 0;
};

// Answers each request with seed * 100 + num_samples; records every call's
// requests; can hold calls at a gate and run `steps` polling steps.
class FakeModel {
 public:
  absl::StatusOr<std::vector<FakeResult>> Sample(const std::vector<FakeRequest>& requests,
                                                 const std::function<bool()>& cancelled) const {
    {
      std::unique_lock<std::mutex> lock(mu_);
      std::vector<int64_t> seeds;
      for (const auto& r : requests) seeds.push_back(r.seed);
      calls_.push_back(seeds);
      ++entered_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
    }
    int steps = steps_.load();
    for (const auto& r : requests) steps = std::max(steps, r.steps);
    for (int step = 0; step < steps; ++step) {
      if (cancelled && cancelled()) {
        stopped_early_ = true;
        return absl::CancelledError("sampling cancelled");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<FakeResult> out;
    for (const auto& r : requests) out.push_back({r.seed * 100 + r.num_samples});
    return out;
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void WaitEntered(int n) const {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return entered_ >= n; });
  }
  // WaitEntered for at most `timeout`; false when it passed first.
  bool WaitEnteredFor(int n, std::chrono::seconds timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return entered_ >= n; });
  }
  std::vector<std::vector<int64_t>> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  void set_steps(int steps) { steps_ = steps; }
  bool stopped_early() const { return stopped_early_; }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  mutable std::vector<std::vector<int64_t>> calls_;
  mutable int entered_ = 0;
  bool open_ = true;
  std::atomic<int> steps_{0};
  mutable std::atomic<bool> stopped_early_{false};
};

using FakeBatcher = Batcher<FakeModel, FakeRequest, FakeResult>;

// The batcher's queue depth as its observer reports it (on every change), so
// that a test waits for requests to be queued instead of polling.
class DepthWatch {
 public:
  BatchObserver Observer() {
    BatchObserver observer;
    observer.on_queue_depth = [this](int64_t depth) {
      std::lock_guard<std::mutex> lock(mu_);
      depth_ = depth;
      changed_.notify_all();
    };
    return observer;
  }
  // Waits until at least `n` requests are queued; false after 30 s.
  bool WaitForDepth(int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] { return depth_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int64_t depth_ = 0;
};

BatcherOptions Options(int64_t max_batch = 8, int64_t max_queue = 16,
                       absl::Duration delay = absl::Milliseconds(20)) {
  BatcherOptions o;
  o.max_batch_samples = max_batch;
  o.max_queue = max_queue;
  o.max_queue_delay = delay;
  o.cancel_poll = absl::Milliseconds(2);
  return o;
}

TEST(BatcherTest, ALoneRequestRunsAloneAndGetsItsResult) {
  auto model = std::make_shared<FakeModel>();
  std::vector<std::pair<int64_t, int64_t>> batches;
  BatchObserver observer;
  std::mutex mu;
  observer.on_batch = [&](int64_t requests, int64_t samples) {
    std::lock_guard<std::mutex> lock(mu);
    batches.emplace_back(requests, samples);
  };
  FakeBatcher batcher("m", model, Options(), observer);
  absl::StatusOr<FakeResult> r = batcher.Run({3, 7});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value, 703);
  EXPECT_THAT(model->calls(), ElementsAre(ElementsAre(7)));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(batches, ElementsAre(std::make_pair(int64_t{1}, int64_t{3})));
}

// A batcher (with `options`, its queue depth watched) whose first call,
// {1, 0}, is held in the closed model (its result lands in `first_result`):
// later requests queue behind it until the model opens.
struct HeldBatcher {
  explicit HeldBatcher(const BatcherOptions& options = Options())
      : batcher("m", model, options, depth.Observer()) {
    model->Close();
    first = std::thread([this] { first_result = batcher.Run({1, 0}); });
    model->WaitEntered(1);
  }

  // Opens the model and waits for the first call and `clients`.
  void OpenAndJoin(std::vector<std::thread>& clients) {
    model->Open();
    first.join();
    for (auto& c : clients) c.join();
  }

  std::shared_ptr<FakeModel> model = std::make_shared<FakeModel>();
  DepthWatch depth;
  FakeBatcher batcher;
  absl::StatusOr<FakeResult> first_result;
  std::thread first;
};

TEST(BatcherTest, ConcurrentRequestsAreMergedIntoOneCall) {
  HeldBatcher h(Options(/*max_batch=*/8));
  std::vector<std::thread> clients;
  std::vector<int64_t> values(6, -1);
  for (int i = 1; i < 6; ++i) {
    clients.emplace_back([&, i] { values[i] = h.batcher.Run({1, i})->value; });
  }
  EXPECT_TRUE(h.depth.WaitForDepth(5));
  h.OpenAndJoin(clients);
  values[0] = h.first_result->value;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], i * 100 + 1);
  const auto calls = h.model->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].size(), 5u);  // the five waiting requests in one call
}

TEST(BatcherTest, RespectsTheMaximumBatch) {
  HeldBatcher h(Options(/*max_batch=*/5));
  std::vector<std::thread> clients;
  for (int i = 1; i <= 4; ++i) clients.emplace_back([&, i] { (void)h.batcher.Run({2, i}); });
  // One request larger than the maximum runs on its own.
  clients.emplace_back([&] { (void)h.batcher.Run({9, 9}); });
  EXPECT_TRUE(h.depth.WaitForDepth(5));
  h.OpenAndJoin(clients);
  const auto calls = h.model->calls();
  int64_t requests = 0;
  for (size_t c = 1; c < calls.size(); ++c) {
    int64_t samples = 0;
    for (int64_t seed : calls[c]) samples += seed == 9 ? 9 : 2;
    if (calls[c] != std::vector<int64_t>{9}) {
      EXPECT_LE(samples, 5) << "call " << c;
    }
    requests += static_cast<int64_t>(calls[c].size());
  }
  EXPECT_EQ(requests, 5);
}

TEST(BatcherTest, AFullQueueIsRefusedAtOnce) {
  HeldBatcher h(Options(8, /*max_queue=*/2));
  std::vector<std::thread> clients;
  for (int i = 1; i <= 2; ++i) clients.emplace_back([&, i] { (void)h.batcher.Run({1, i}); });
  EXPECT_TRUE(h.depth.WaitForDepth(2));
  absl::StatusOr<FakeResult> refused = h.batcher.Run({1, 3});
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("--max-queue"));
  h.OpenAndJoin(clients);
}

// A held batcher with two clients queued behind its first call:
// `cancellable` sends {1, 1}, cancelled through `cancel`, and `plain` sends
// {1, 2}, whose result value lands in `kept`.
struct QueuedBehindAHeldCall : HeldBatcher {
  QueuedBehindAHeldCall() {
    cancellable = std::thread([this] {
      cancelled_status = batcher.Run({1, 1}, [this] { return cancel.load(); }).status();
    });
    plain = std::thread([this] { kept = batcher.Run({1, 2})->value; });
  }

  std::atomic<bool> cancel{false};
  absl::Status cancelled_status;
  int64_t kept = -1;
  std::thread cancellable, plain;
};

TEST(BatcherTest, ARequestCancelledWhileQueuedNeverRuns) {
  QueuedBehindAHeldCall q;
  EXPECT_TRUE(q.depth.WaitForDepth(2));
  q.cancel = true;
  q.cancellable.join();
  EXPECT_TRUE(absl::IsCancelled(q.cancelled_status)) << q.cancelled_status;
  q.model->Open();
  q.first.join();
  q.plain.join();
  EXPECT_EQ(q.kept, 201);
  for (const auto& call : q.model->calls()) {
    EXPECT_THAT(call, ::testing::Not(::testing::Contains(1)));
  }
}

TEST(BatcherTest, ACallStopsWhenAllItsRequestsAreCancelled) {
  auto model = std::make_shared<FakeModel>();
  FakeBatcher batcher("m", model, Options());
  std::atomic<bool> cancel{false};
  absl::Status status;
  // ~100 s of steps if never stopped.
  std::thread client(
      [&] { status = batcher.Run({1, 5, 100000}, [&] { return cancel.load(); }).status(); });
  model->WaitEntered(1);
  cancel = true;
  client.join();
  EXPECT_TRUE(absl::IsCancelled(status));
  // The batcher is free again: a new request completes (its model call
  // only starts once the cancelled one stopped).
  absl::StatusOr<FakeResult> next = batcher.Run({1, 6});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->value, 601);
  EXPECT_TRUE(model->stopped_early());
}

// gRPC's synchronous ServerContext::IsCancelled() aborts the server when two
// threads call it at once, so the worker must never call the callback.
TEST(BatcherTest, OnlyTheCallersThreadCallsTheCancelledCallback) {
  auto model = std::make_shared<FakeModel>();
  FakeBatcher batcher("m", model, Options());
  std::mutex mu;
  std::condition_variable polled;
  std::vector<std::thread::id> callers;
  std::atomic<bool> cancel{false};
  std::thread::id client_id;
  absl::Status status;
  std::thread client([&] {
    client_id = std::this_thread::get_id();
    status = batcher
                 .Run({1, 5, 100000},
                      [&] {
                        std::lock_guard<std::mutex> lock(mu);
                        callers.push_back(std::this_thread::get_id());
                        polled.notify_all();
                        return cancel.load();
                      })
                 .status();
  });
  model->WaitEntered(1);
  {
    // The callback is polled a few times while the call runs its steps
    // before it says cancelled.
    std::unique_lock<std::mutex> lock(mu);
    const size_t before = callers.size();
    EXPECT_TRUE(polled.wait_for(lock, std::chrono::seconds(30),
                                [&] { return callers.size() >= before + 3; }));
  }
  cancel = true;
  client.join();
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
  // The worker still learnt of it: the call stopped early, and the next
  // request (which runs only after it) completes.
  ASSERT_TRUE(batcher.Run({1, 6}).ok());
  EXPECT_TRUE(model->stopped_early());
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(callers.empty());
  for (const std::thread::id& id : callers) EXPECT_EQ(id, client_id);
}

TEST(BatcherTest, ACancelledRequestInAMergedCallOnlyLosesItsOwnResult) {
  QueuedBehindAHeldCall q;
  EXPECT_TRUE(q.depth.WaitForDepth(2));
  q.model->set_steps(300);  // the second call runs ~300 ms
  q.model->Open();
  q.model->WaitEntered(2);  // both are in the second call now
  q.cancel = true;
  q.first.join();
  q.cancellable.join();
  q.plain.join();
  EXPECT_EQ(q.kept, 201);
  EXPECT_TRUE(absl::IsCancelled(q.cancelled_status)) << q.cancelled_status;
  EXPECT_FALSE(q.model->stopped_early());  // the call went on for the other request
}


TEST(BatcherTest, OnceConcurrentItWaitsForAllClientsInsteadOfTheDelay) {
  // A delay no test run reaches: only the batch limit (5 samples) and the
  // expected concurrency can flush.
  HeldBatcher h(Options(/*max_batch=*/5, 16, absl::Seconds(60)));
  std::vector<std::thread> clients;
  // Four requests in flight (one running, three waiting of 1 + 1 + 3
  // samples, which fill the batch limit).
  for (int i = 1; i <= 3; ++i) {
    clients.emplace_back([&, i] { (void)h.batcher.Run({i == 3 ? 3 : 1, i}); });
  }
  EXPECT_TRUE(h.depth.WaitForDepth(3));
  h.OpenAndJoin(clients);
  clients.clear();
  ASSERT_EQ(h.model->calls().size(), 2u);  // [0], then [1, 2, 3]
  // Four one-sample clients (below the batch limit) arriving one by one:
  // the batcher waits for all four, then runs them together without waiting
  // for the 60 s delay.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 4; i <= 7; ++i) {
    clients.emplace_back([&, i] { (void)h.batcher.Run({1, i}); });
    // The next one arrives once this one waits in the queue.
    if (i < 7) {
      EXPECT_TRUE(h.depth.WaitForDepth(i - 3));
    }
  }
  for (auto& c : clients) c.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  const auto calls = h.model->calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2].size(), 4u);
}

// ------------------------------------------------------------ queue policy

QueuePolicy Priority(QueuePriority priority) {
  QueuePolicy p;
  p.priority = priority;
  return p;
}

QueuePolicy Timeout(absl::Duration timeout) {
  QueuePolicy p;
  p.timeout = timeout;
  return p;
}

// One sample per call (max_batch 1), so that the order of the calls is the
// order in which the worker took the requests; ageing at `aging`.
BatcherOptions OneAtATime(absl::Duration aging) {
  BatcherOptions o = Options(/*max_batch=*/1);
  o.priority_aging = aging;
  return o;
}

// Queues {1, seed} at `priority` on its own thread, once the previous
// request is in the queue (so arrival order is the order of the calls).
void QueueInOrder(HeldBatcher& h, std::vector<std::thread>& clients, int64_t seed,
                  QueuePriority priority) {
  const int64_t depth = static_cast<int64_t>(clients.size());
  clients.emplace_back([&h, seed, priority] {
    EXPECT_TRUE(h.batcher.Run({1, seed}, Priority(priority)).ok());
  });
  EXPECT_TRUE(h.depth.WaitForDepth(depth + 1));
}

// Seeds of the calls after the held first one.
std::vector<int64_t> LaterCalls(const FakeModel& model) {
  std::vector<int64_t> seeds;
  const auto calls = model.calls();
  for (size_t c = 1; c < calls.size(); ++c) {
    EXPECT_EQ(calls[c].size(), 1u);
    seeds.insert(seeds.end(), calls[c].begin(), calls[c].end());
  }
  return seeds;
}

TEST(BatcherTest, HigherPrioritiesAreTakenFirstAndFifoWithinAPriority) {
  // Ageing no test run reaches: strict order.
  HeldBatcher h(OneAtATime(absl::Hours(1)));
  std::vector<std::thread> clients;
  QueueInOrder(h, clients, 1, QueuePriority::kLow);
  QueueInOrder(h, clients, 2, QueuePriority::kNormal);
  QueueInOrder(h, clients, 3, QueuePriority::kHigh);
  QueueInOrder(h, clients, 4, QueuePriority::kLow);
  QueueInOrder(h, clients, 5, QueuePriority::kNormal);
  QueueInOrder(h, clients, 6, QueuePriority::kHigh);
  h.OpenAndJoin(clients);
  EXPECT_THAT(LaterCalls(*h.model), ElementsAre(3, 6, 2, 5, 1, 4));
}

TEST(BatcherTest, StrictPrioritiesWithoutAgeing) {
  HeldBatcher h(OneAtATime(absl::InfiniteDuration()));
  std::vector<std::thread> clients;
  QueueInOrder(h, clients, 1, QueuePriority::kLow);
  QueueInOrder(h, clients, 2, QueuePriority::kHigh);
  QueueInOrder(h, clients, 3, QueuePriority::kNormal);
  QueueInOrder(h, clients, 4, QueuePriority::kHigh);
  h.OpenAndJoin(clients);
  EXPECT_THAT(LaterCalls(*h.model), ElementsAre(2, 4, 3, 1));
}

TEST(BatcherTest, AWaitingRequestAgesPastLaterHigherPriorities) {
  // A low request that waited more than two ageing periods ranks before a
  // high one that arrives then (with ageing of an hour, the high one would
  // go first: HigherPrioritiesAreTakenFirstAndFifoWithinAPriority).
  const absl::Duration aging = absl::Milliseconds(5);
  HeldBatcher h(OneAtATime(aging));
  std::vector<std::thread> clients;
  QueueInOrder(h, clients, 1, QueuePriority::kLow);
  // The low request was queued before now; let more than 2 x aging pass
  // from it (elapsed time itself is what the test is about).
  std::this_thread::sleep_until(std::chrono::steady_clock::now() +
                                absl::ToChronoNanoseconds(2 * aging + absl::Milliseconds(1)));
  QueueInOrder(h, clients, 2, QueuePriority::kHigh);
  h.OpenAndJoin(clients);
  EXPECT_THAT(LaterCalls(*h.model), ElementsAre(1, 2));
}

TEST(BatcherTest, ACallStartsFromTheHighestPriorityAndLowerOnesFillIt) {
  BatcherOptions o = Options(/*max_batch=*/3);
  o.priority_aging = absl::Hours(1);
  HeldBatcher h(o);
  std::vector<std::thread> clients;
  // Arrival: low 1, low 2, normal 3, high 4 (one sample each).
  const std::pair<int64_t, QueuePriority> arrivals[] = {{1, QueuePriority::kLow},
                                                        {2, QueuePriority::kLow},
                                                        {3, QueuePriority::kNormal},
                                                        {4, QueuePriority::kHigh}};
  for (const auto& [seed, priority] : arrivals) {
    const int64_t depth = static_cast<int64_t>(clients.size());
    clients.emplace_back([&h, seed = seed, priority = priority] {
      EXPECT_TRUE(h.batcher.Run({1, seed}, Priority(priority)).ok());
    });
    EXPECT_TRUE(h.depth.WaitForDepth(depth + 1));
  }
  h.OpenAndJoin(clients);
  const auto calls = h.model->calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_THAT(calls[1], ElementsAre(4, 3, 1));  // three samples: the oldest low fills it
  EXPECT_THAT(calls[2], ElementsAre(2));
}

// A queue-wait observer: every (priority, seconds) and the timeouts.
struct WaitLog {
  BatchObserver Observer(DepthWatch& depth) {
    BatchObserver o = depth.Observer();
    o.on_queue_wait = [this](QueuePriority priority, double seconds) {
      std::lock_guard<std::mutex> lock(mu);
      waits.emplace_back(priority, seconds);
    };
    o.on_queue_timeout = [this] { ++timeouts; };
    return o;
  }
  std::mutex mu;
  std::vector<std::pair<QueuePriority, double>> waits;
  std::atomic<int> timeouts{0};
};

TEST(BatcherTest, ARequestPastItsQueueTimeoutEndsWithoutComputing) {
  auto model = std::make_shared<FakeModel>();
  DepthWatch depth;
  WaitLog log;
  FakeBatcher batcher("m", model, Options(), log.Observer(depth));
  model->Close();
  absl::StatusOr<FakeResult> first;
  std::thread held([&] { first = batcher.Run({1, 0}); });
  model->WaitEntered(1);
  // Behind the held call: one request with a 20 ms queue timeout, one with
  // none (queued first, so both wait).
  int64_t kept = -1;
  std::thread patient([&] { kept = batcher.Run({1, 2})->value; });
  EXPECT_TRUE(depth.WaitForDepth(1));
  absl::Status timed_out;
  std::thread hurried([&] {
    QueuePolicy p = Timeout(absl::Milliseconds(20));
    p.priority = QueuePriority::kHigh;
    timed_out = batcher.Run({1, 1}, p).status();
  });
  hurried.join();  // ends while the model is still held
  EXPECT_TRUE(absl::IsDeadlineExceeded(timed_out)) << timed_out;
  EXPECT_THAT(std::string(timed_out.message()),
              ::testing::AllOf(::testing::StartsWith("queue_timeout_seconds: waited "),
                               ::testing::HasSubstr("queue of model 'm'"),
                               ::testing::HasSubstr("queue timeout of 0.02 s")));
  EXPECT_EQ(batcher.queue_depth(), 1);  // it left the queue
  EXPECT_EQ(log.timeouts.load(), 1);
  model->Open();
  held.join();
  patient.join();
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(kept, 201);
  // The model ran for the held request and the patient one, never for seed 1.
  EXPECT_THAT(model->calls(), ElementsAre(ElementsAre(0), ElementsAre(2)));
  std::lock_guard<std::mutex> lock(log.mu);
  ASSERT_EQ(log.waits.size(), 3u);  // every request left the queue once
  int high = 0;
  for (const auto& [priority, seconds] : log.waits) {
    EXPECT_GE(seconds, 0);
    if (priority == QueuePriority::kHigh) {
      ++high;
      EXPECT_GE(seconds, 0.02);  // the timed-out one waited at least its timeout
    }
  }
  EXPECT_EQ(high, 1);
}

TEST(BatcherTest, TheQueueTimeoutEndsWhenACallTakesTheRequest) {
  auto model = std::make_shared<FakeModel>();
  FakeBatcher batcher("m", model, Options());
  model->Close();
  absl::StatusOr<FakeResult> result;
  // A lone request is taken at once (well within its 500 ms queue timeout);
  // its call is then held past that timeout.
  const absl::Duration timeout = absl::Milliseconds(500);
  std::thread client([&] { result = batcher.Run({1, 7}, Timeout(timeout)); });
  const bool entered = model->WaitEnteredFor(1, std::chrono::seconds(30));
  EXPECT_TRUE(entered) << "the request timed out before its call began";
  if (entered) {
    // It was queued before the model was entered.
    std::this_thread::sleep_until(std::chrono::steady_clock::now() +
                                  absl::ToChronoNanoseconds(timeout + absl::Milliseconds(1)));
  }
  model->Open();
  client.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->value, 701);
}

TEST(BatcherTest, ALoneClientNeverWaitsForTheDelay) {
  auto model = std::make_shared<FakeModel>();
  FakeBatcher batcher("m", model, Options(64, 16, absl::Seconds(60)));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(batcher.Run({1, i}).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(model->calls().size(), 5u);
}

}  // namespace
}  // namespace wfm::server
