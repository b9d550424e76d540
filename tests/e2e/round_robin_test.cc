// Scale-out: the C++ client balances its calls round-robin over every
// address of its target (two wfm-server binaries on 127.0.0.1 and
// 127.0.0.2, same port), and a server started with
// --max-connection-age-seconds closes old connections (GOAWAY), so that
// long-lived clients reconnect and re-resolve the name. Two servers on one
// data folder (a StatefulSet's shared volume): a model version published by
// one is served by the other after its rescan.
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include "client/client.h"
#include "server/server_app.h"
#include "tests/server/client_util.h"
#include "tests/testing/http.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace wfm::testing {
namespace {

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// ListModels calls the server has answered OK.
double ListModelsCalls(const ChildServer& server) {
  const auto [code, text] = HttpGet(PortOf(server.metrics_address()), "/metrics");
  EXPECT_EQ(code, 200);
  return MetricValue(text, "wfm_rpc_requests_total", {{"method", "ListModels"}, {"code", "OK"}})
      .value_or(-1);
}

TEST(RoundRobinTest, AClientsCallsReachEveryAddressOfItsTarget) {
  TempDir dir;
  ChildServer a({dir.path() + "/a", "", {}, 0});
  const std::string ready_a = a.WaitReady();
  ASSERT_FALSE(ready_a.empty()) << a.Log();
  const std::string port = a.address().substr(a.address().rfind(':') + 1);
  ChildServer b({dir.path() + "/b", "", {}, 0, "127.0.0.2:" + port});
  ASSERT_FALSE(b.WaitReady().empty()) << b.Log();
  ASSERT_EQ(b.address(), "127.0.0.2:" + port);

  // round_robin picks among the subchannels that are READY: the second one
  // may still be connecting for the first calls (slow under sanitizers), so
  // the client calls until both servers have answered, for at most a
  // minute, and every call must have reached one of the two.
  constexpr int kCalls = 20;
  double seen_a = ListModelsCalls(a), seen_b = ListModelsCalls(b);
  ASSERT_EQ(seen_a, 0);
  ASSERT_EQ(seen_b, 0);
  for (const std::string& target :
       {"127.0.0.1:" + port + ",127.0.0.2:" + port, "ipv4:127.0.0.1:" + port + ",127.0.0.2:" + port}) {
    client::ClientOptions options;
    options.server = target;
    auto client = client::Client::Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    int calls = 0;
    double now_a = seen_a, now_b = seen_b;
    while ((now_a == seen_a || now_b == seen_b) && std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < kCalls; ++i, ++calls) ASSERT_TRUE((*client)->ListModels().ok()) << target;
      now_a = ListModelsCalls(a);
      now_b = ListModelsCalls(b);
    }
    EXPECT_GT(now_a - seen_a, 0) << target << " after " << calls << " calls";
    EXPECT_GT(now_b - seen_b, 0) << target << " after " << calls << " calls";
    EXPECT_EQ(now_a - seen_a + now_b - seen_b, calls) << target;
    seen_a = now_a;
    seen_b = now_b;
  }
  // pick_first keeps one connection: every call goes to the same server.
  client::ClientOptions options;
  options.server = "127.0.0.1:" + port + ",127.0.0.2:" + port;
  options.load_balancing = "pick_first";
  auto client = client::Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE((*client)->ListModels().ok());
  const double delta_a = ListModelsCalls(a) - seen_a, delta_b = ListModelsCalls(b) - seen_b;
  EXPECT_TRUE((delta_a == kCalls && delta_b == 0) || (delta_a == 0 && delta_b == kCalls))
      << delta_a << " and " << delta_b;
}

TEST(RoundRobinTest, ServerAddressesAndPoliciesAreChecked) {
  EXPECT_EQ(*client::ChannelTarget("wfm:50051"), "wfm:50051");
  EXPECT_EQ(*client::ChannelTarget(" dns:///wfm-server-headless.ns.svc:50051 "),
            "dns:///wfm-server-headless.ns.svc:50051");
  EXPECT_EQ(*client::ChannelTarget("10.0.0.1:50051, 10.0.0.2:50051"),
            "ipv4:10.0.0.1:50051,10.0.0.2:50051");
  EXPECT_EQ(*client::ChannelTarget("[::1]:1,[fe80::1]:2"), "ipv6:[::1]:1,[fe80::1]:2");
  for (const char* bad : {"", "  ", "a:1,b:1", "10.0.0.1:1,[::1]:1", "10.0.0.1,10.0.0.2:1",
                          "10.0.0.1:1,10.0.0.2:x"}) {
    const absl::StatusOr<std::string> target = client::ChannelTarget(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(target.status())) << "'" << bad << "'";
  }
  client::ClientOptions options;
  options.server = "127.0.0.1:1";
  options.load_balancing = "random";
  const auto client = client::Client::Connect(options);
  EXPECT_TRUE(absl::IsInvalidArgument(client.status()));
  EXPECT_NE(client.status().message().find("round_robin"), std::string::npos);

  server::ServerOptions o;
  o.max_connection_age_seconds = -1;
  absl::Status s = server::ValidateServerOptions(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("--max-connection-age-seconds"), std::string::npos) << s;
  o.max_connection_age_seconds = 60;
  o.max_connection_age_grace_seconds = 1e12;
  s = server::ValidateServerOptions(o);
  EXPECT_NE(s.message().find("--max-connection-age-grace-seconds"), std::string::npos) << s;
}

TEST(RoundRobinTest, OldConnectionsAreClosedSoClientsReconnect) {
  TempDir dir;
  ChildServer server({dir.path(), "", {"--max-connection-age-seconds", "1"}, 0});
  ASSERT_FALSE(server.WaitReady().empty()) << server.Log();
  std::shared_ptr<grpc::Channel> channel = server.Channel();
  client::ClientOptions options;
  options.server = server.address();
  client::Client client(channel, options);
  ASSERT_TRUE(client.ListModels().ok());
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY after about a second takes the channel out of READY
  // (without the flag it stays connected and this wait times out).
  EXPECT_TRUE(channel->WaitForStateChange(GRPC_CHANNEL_READY,
                                          std::chrono::system_clock::now() + std::chrono::seconds(60)));
  // The same client reconnects on its next call.
  EXPECT_TRUE(client.ListModels().ok());
  EXPECT_EQ(ListModelsCalls(server), 2);
}

// The model "m" as `server` serves it: its serving version and the number
// of versions it knows (0, 0 while it knows none).
std::pair<int64_t, int> ServedVersions(pb::WfmService::Stub& stub) {
  pb::ModelInfo info;
  if (!CallNamed(stub, &pb::WfmService::Stub::GetModel, "m", &info).ok()) return {0, 0};
  return {info.serving_version(), info.versions_size()};
}

// The version of "m" that `stub` samples when asked for none.
int64_t SampledVersion(pb::WfmService::Stub& stub) {
  const Niches niches = SampleNiches(stub, NicheRequest("m", 1, 4, 1, 2));
  EXPECT_TRUE(niches.status.ok()) << niches.status.error_message();
  return niches.messages.empty() ? -1 : niches.messages[0].version();
}

TEST(RoundRobinTest, VersionsPublishedByOneServerAreServedByAnother) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  ChildServer a({data, "", {"--model-rescan-seconds", "0"}, 0});
  ASSERT_FALSE(a.WaitReady().empty()) << a.Log();
  ChildServer b({data, "", {"--model-rescan-seconds", "0.1"}, 0});
  ASSERT_FALSE(b.WaitReady().empty()) << b.Log();
  auto on_a = a.Stub();
  auto on_b = b.Stub();
  ASSERT_TRUE(Upload(*on_a, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 6)).ok());
  for (int64_t version = 1; version <= 2; ++version) {
    ASSERT_EQ(Train(*on_a, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 2, version)).state(),
              pb::SUCCEEDED);
    // b picks the new version up at a rescan.
    EXPECT_TRUE(WaitUntil([&] { return ServedVersions(*on_b).first == version; },
                          absl::Seconds(60), absl::Milliseconds(50)))
        << b.Log();
    EXPECT_EQ(ServedVersions(*on_b).second, version);
    EXPECT_EQ(SampledVersion(*on_b), version);
  }
  // A pin set through one server is followed by the other.
  pb::UpdateModelRequest pin;
  pin.set_name("m");
  pin.set_serving_version(1);
  pb::ModelInfo pinned;
  ASSERT_TRUE(Call(*on_a, &pb::WfmService::Stub::UpdateModel, pin, &pinned).ok());
  EXPECT_TRUE(WaitUntil([&] { return ServedVersions(*on_b).first == 1; }, absl::Seconds(60),
                        absl::Milliseconds(50)));
  EXPECT_EQ(SampledVersion(*on_b), 1);
  // a itself never rescans: it published, so it knows both versions.
  EXPECT_EQ(ServedVersions(*on_a), std::make_pair(int64_t{1}, 2));
}

}  // namespace
}  // namespace wfm::testing
