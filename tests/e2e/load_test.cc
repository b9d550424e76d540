// Load: the wfm-server binary with small sampling limits (--max-queue 4,
// --max-batch-samples 8) and 64 concurrent clients, far beyond its capacity.
// Requests beyond the queue limit are refused with RESOURCE_EXHAUSTED at
// once (each returns before the queue has drained, and the median refusal
// is faster than the fastest accepted request: no wall-clock thresholds,
// only orders), every accepted request completes with the right shape and
// its seed's result, no call hangs (generous deadlines), the server serves
// afterwards, and its peak resident memory (VmHWM) grows by less than a
// bound computed from the queue limits.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/client_util.h"
#include "tests/testing/server_process.h"

namespace wfm::testing {
namespace {

using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;

constexpr int kClients = 64;
constexpr int kRounds = 3;        // requests per client, one after another
constexpr int64_t kMaxQueue = 4;
constexpr int64_t kMaxBatch = 8;
constexpr int64_t kPoints = 32;   // points per generated cloud (2D)

struct Call {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  Clock::time_point start, end;
  bool shape_ok = false;
  uint64_t seed = 0;
  std::vector<float> points;
  double seconds() const { return std::chrono::duration<double>(end - start).count(); }
};

Call Sample(pb::WfmService::Stub& stub, uint64_t seed, int64_t steps) {
  Call call;
  call.seed = seed;
  call.start = Clock::now();
  const Niches n = SampleNiches(stub, NicheRequest("tiny", 1, kPoints, seed, steps),
                                [](grpc::ClientContext& c) {
                                  c.set_deadline(std::chrono::system_clock::now() +
                                                 std::chrono::minutes(3));
                                });
  call.end = Clock::now();
  call.code = n.status.error_code();
  call.message = n.status.error_message();
  call.shape_ok = n.sizes == std::vector<int64_t>{kPoints} &&
                  n.points.size() == static_cast<size_t>(kPoints * 2) &&
                  std::all_of(n.points.begin(), n.points.end(), [](float v) { return std::isfinite(v); });
  call.points = n.points;
  return call;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

TEST(LoadTest, BeyondTheQueueLimitRequestsAreRefusedFastAndAcceptedOnesComplete) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> flags = {"--max-queue",          std::to_string(kMaxQueue),
                                          "--max-batch-samples",  std::to_string(kMaxBatch),
                                          "--max-queue-delay-ms", "5"};
  {
    // Train the model in a first process, so that the measured one only
    // loads and serves it.
    ChildServer trainer({data, dir.path() + "/log-train", flags, 0});
    ASSERT_FALSE(trainer.WaitReady().empty()) << trainer.Log();
    auto stub = trainer.Stub();
    ASSERT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(12, 1), 4)).ok());
    ASSERT_EQ(Train(*stub, "d", "tiny", TinyConfig(pb::FAMILY_POINTCLOUD, 3)).state(), pb::SUCCEEDED);
    trainer.Signal(SIGTERM);
    ASSERT_EQ(trainer.Wait(60), 0) << trainer.Log();
  }
  ChildServer server({data, dir.path() + "/log", flags, 0});
  ASSERT_FALSE(server.WaitReady().empty()) << server.Log();

  // Integration steps making one batched call last about half a second
  // here (calibration only: nothing below compares with a fixed time), so
  // that the queue stays full while the clients arrive.
  int64_t steps = 200;
  {
    auto stub = server.Stub();
    for (int i = 0; i < 4; ++i) {
      const Call c = Sample(*stub, 1, steps);
      ASSERT_EQ(c.code, grpc::StatusCode::OK) << c.message;
      if (c.seconds() >= 0.5 || steps >= 10000) break;
      steps = std::min<int64_t>(10000, static_cast<int64_t>(steps * 0.6 / std::max(c.seconds(), 1e-3)) + 1);
    }
  }
  // Peak memory after the model has served (a batch of the largest size).
  {
    auto stub = server.Stub();
    pb::SampleNichesRequest r = NicheRequest("tiny", kMaxBatch, kPoints, 3, steps);
    ASSERT_TRUE(SampleNiches(*stub, r).status.ok());
  }
  const std::optional<int64_t> hwm_before = server.ProcStatusKiB("VmHWM");
  ASSERT_TRUE(hwm_before.has_value());

  // 64 clients on their own connections, released together.
  std::vector<std::unique_ptr<pb::WfmService::Stub>> stubs;
  for (int c = 0; c < kClients; ++c) {
    auto channel = server.Channel(c + 1);
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
    stubs.push_back(pb::WfmService::NewStub(channel));
  }
  std::vector<std::vector<Call>> calls(kClients);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      ++ready;
      while (ready.load() < kClients) std::this_thread::yield();
      for (int r = 0; r < kRounds; ++r) {
        calls[c].push_back(Sample(*stubs[c], 1000 + c * kRounds + r, steps));
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<Call> accepted, rejected;
  for (const auto& per_client : calls) {
    for (const Call& call : per_client) {
      if (call.code == grpc::StatusCode::OK) {
        accepted.push_back(call);
      } else {
        // Nothing but queue refusals: no deadline passed (no hang), no other
        // error.
        ASSERT_EQ(call.code, grpc::StatusCode::RESOURCE_EXHAUSTED) << call.message;
        EXPECT_THAT(call.message, HasSubstr("--max-queue"));
        rejected.push_back(call);
      }
    }
  }
  ASSERT_EQ(accepted.size() + rejected.size(), static_cast<size_t>(kClients * kRounds));
  // Far more clients than capacity: some are refused, and at least a full
  // queue plus the running call are served.
  EXPECT_GT(rejected.size(), 0u);
  EXPECT_GE(accepted.size(), static_cast<size_t>(kMaxQueue + 1));
  for (const Call& call : accepted) EXPECT_TRUE(call.shape_ok) << "seed " << call.seed;

  // Refusals come at once: each accepted request waited for at least one
  // full integration, a refused one for none, so the typical refusal is
  // faster than the fastest accepted request, and every refusal returned
  // before the queue had drained (the last accepted request finished).
  std::vector<double> accepted_s, rejected_s;
  Clock::time_point drained = Clock::time_point::min();
  for (const Call& call : accepted) {
    accepted_s.push_back(call.seconds());
    drained = std::max(drained, call.end);
  }
  for (const Call& call : rejected) rejected_s.push_back(call.seconds());
  EXPECT_LT(Median(rejected_s), *std::min_element(accepted_s.begin(), accepted_s.end()));
  for (const Call& call : rejected) EXPECT_LT(call.end, drained) << "seed " << call.seed;

  // Results do not depend on the company: the same request alone gives the
  // same points.
  auto stub = server.Stub();
  for (size_t i = 0; i < std::min<size_t>(3, accepted.size()); ++i) {
    const Call alone = Sample(*stub, accepted[i].seed, steps);
    ASSERT_EQ(alone.code, grpc::StatusCode::OK) << alone.message;
    EXPECT_EQ(alone.points, accepted[i].points) << "seed " << accepted[i].seed;
  }
  EXPECT_EQ(HealthStatus(server.Channel(), "wfm.v1.WfmService"), 1);

  // Memory: the queue limits bound what the load can hold. Per connection
  // and serving thread (64 clients + the health and test channels) at most
  // 4 MiB (gRPC buffers, thread stacks); per queued or batched request the
  // request and its result plus the batched integration's activations (a
  // generous 1 MiB each at 32 points); 64 MiB for the allocator.
  const std::optional<int64_t> hwm_after = server.ProcStatusKiB("VmHWM");
  ASSERT_TRUE(hwm_after.has_value());
  const int64_t bound_kib = (kClients + 4) * 4 * 1024 + (kMaxQueue + kMaxBatch) * 1024 + 64 * 1024;
  EXPECT_LT(*hwm_after - *hwm_before, bound_kib)
      << "VmHWM " << *hwm_before << " KiB -> " << *hwm_after << " KiB";
  std::cout << "load: " << accepted.size() << " accepted, " << rejected.size()
            << " refused; median latency accepted " << Median(accepted_s) << " s, refused "
            << Median(rejected_s) << " s; steps " << steps << "; VmHWM " << *hwm_before
            << " -> " << *hwm_after << " KiB (bound +" << bound_kib << " KiB)\n";

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(60), 0) << server.Log();
}

}  // namespace
}  // namespace wfm::testing
