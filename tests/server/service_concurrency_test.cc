// Eight concurrent sampling clients: all succeed, a request's result equals
// the same request sent alone, and the batcher merged requests.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

TEST(ConcurrencyTest, EightClientsAreBatchedWithoutChangingResults) {
  TestServer server([](server::ServerOptions& o) {
    o.max_queue_delay_ms = 20;
    o.max_batch_samples = 64;
  });
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();
  ASSERT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE),
                     CloudChunks(Ellipses(8, 1, true), 8))
                  .ok());
  ASSERT_EQ(Train(*stub, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 10)).state(), pb::SUCCEEDED);

  // Seeds 0..7, except that clients 6 and 7 repeat seeds 0 and 1; client 5
  // asks for a label, client 4 for another step count.
  auto request_of = [](int client) {
    pb::SampleNichesRequest r = NicheRequest("m", 2, 12, client >= 6 ? client - 6 : client, 40);
    if (client == 5) r.set_label("round");
    if (client == 4) r.set_steps(30);
    return r;
  };
  constexpr int kClients = 8;
  constexpr int kRounds = 3;
  std::vector<std::vector<Niches>> results(kClients);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      // Each client has its own channel, as separate processes would.
      grpc::ChannelArguments args;
      args.SetInt("wfm.client", c);
      auto own = pb::WfmService::NewStub(
          Connected(server.Channel(grpc::InsecureChannelCredentials(), args)));
      for (int round = 0; round < kRounds; ++round) {
        ++ready;
        while (ready.load() < kClients * (round + 1)) std::this_thread::yield();
        results[c].push_back(SampleNiches(*own, request_of(c)));
      }
    });
  }
  for (auto& t : threads) t.join();

  for (int c = 0; c < kClients; ++c) {
    const Niches alone = SampleNiches(*stub, request_of(c));
    ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
    for (int round = 0; round < kRounds; ++round) {
      const Niches& got = results[c][round];
      ASSERT_TRUE(got.status.ok()) << "client " << c << ": " << got.status.error_message();
      EXPECT_EQ(got.sizes, alone.sizes) << "client " << c;
      EXPECT_EQ(got.points, alone.points) << "client " << c << " round " << round;
      EXPECT_EQ(got.labels, alone.labels) << "client " << c;
    }
  }
  // Same seed, same request: same clouds.
  EXPECT_EQ(results[6][0].points, results[0][0].points);
  EXPECT_NE(results[1][0].points, results[0][0].points);

  const std::string metrics = server.Metrics();
  const double calls = *MetricValue(metrics, "wfm_sampling_batch_size_count", {{"family", "pointcloud"}});
  const double requests = *MetricValue(metrics, "wfm_sampling_batch_size_sum", {{"family", "pointcloud"}});
  const double single = *MetricValue(metrics, "wfm_sampling_batch_size_bucket",
                                     {{"family", "pointcloud"}, {"le", "1"}});
  EXPECT_EQ(requests, kClients * kRounds + kClients);
  EXPECT_LT(single, calls) << "no call merged two or more requests";
  EXPECT_LT(calls, requests);
  EXPECT_EQ(*MetricValue(metrics, "wfm_generated_samples_total", {{"model", "m"}}),
            2.0 * (kClients * kRounds + kClients));
}

}  // namespace
}  // namespace wfm::testing
