// gRPC health checking and server reflection next to WfmService; the ready
// line; start-up failures.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/job_manager.h"
#include "tests/server/test_server.h"
#include "tests/testing/wait.h"

namespace wfm::testing {
namespace {

using ::testing::MatchesRegex;

// Lists the services through grpc.reflection.v1alpha.ServerReflection (a
// bidirectional stream) by hand: request {7: list_services = ""}; the raw
// reply holds the service names.
std::string ReflectionListing(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&context,
                               "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  const std::string bytes("\x3a\x00", 2);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  std::string reply;
  if (ok) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    for (const auto& s : slices) reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return reply;
}

TEST(HealthTest, ServingWithReflectionAndAReadyLine) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  EXPECT_THAT(server.app().ready_line(),
              MatchesRegex("wfm-server ready: grpc 127\\.0\\.0\\.1:[1-9][0-9]*, metrics "
                           "127\\.0\\.0\\.1:[1-9][0-9]*, data .*/data, 0 models, 0 data sets"));
  EXPECT_NE(server.app().ready_line().find(":" + std::to_string(server.app().grpc_port()) + ","),
            std::string::npos);
  auto channel = Connected(server.Channel());
  EXPECT_EQ(HealthStatus(channel, "wfm.v1.WfmService"), 1);
  EXPECT_EQ(HealthStatus(channel, ""), 1);
  EXPECT_EQ(HealthStatus(channel, "no.such.Service"), -1);  // NOT_FOUND
  const std::string listing = ReflectionListing(channel);
  EXPECT_NE(listing.find("wfm.v1.WfmService"), std::string::npos);
  EXPECT_NE(listing.find("grpc.health.v1.Health"), std::string::npos);
  server.Stop();
  EXPECT_EQ(HealthStatus(channel, "wfm.v1.WfmService"), -1);
}

TEST(HealthTest, StartFailsCleanlyOnABusyPortOrBadFlags) {
  TestServer first;
  ASSERT_TRUE(first.Start().ok());
  const int port = first.app().grpc_port();
  TestServer second([&](server::ServerOptions& o) { o.listen = "127.0.0.1:" + std::to_string(port); });
  EXPECT_TRUE(absl::IsUnavailable(second.Start()));
  TestServer metrics_busy([&](server::ServerOptions& o) {
    o.metrics_listen = "127.0.0.1:" + std::to_string(first.app().metrics_port());
  });
  EXPECT_TRUE(absl::IsUnavailable(metrics_busy.Start()));
  TestServer bad([](server::ServerOptions& o) { o.max_batch_samples = 0; });
  const absl::Status s = bad.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("--max-batch-samples"), absl::string_view::npos);
  // The first server is unaffected.
  EXPECT_EQ(HealthStatus(Connected(first.Channel()), "wfm.v1.WfmService"), 1);
}


TEST(HealthTest, NotServingWhileDraining) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();
  ASSERT_TRUE(Upload(*stub, Header("big", pb::POINT_CLOUDS, 2),
                     CloudChunks(Ellipses(32, 1, false, 200, 200), 8))
                  .ok());
  // A job whose steps take a while, so the draining window is visible.
  pb::TrainingConfig heavy = TinyConfig(pb::FAMILY_POINTCLOUD, 1000000);
  heavy.mutable_network()->set_width(128);
  heavy.mutable_network()->set_heads(4);
  heavy.mutable_network()->set_layers(3);
  heavy.mutable_network()->set_mlp_hidden(256);
  heavy.mutable_optimizer()->set_batch_size(32);
  heavy.mutable_pointcloud()->set_sinkhorn_iterations(200);
  pb::StartTrainingRequest start;
  start.set_dataset("big");
  start.set_model("heavy");
  *start.mutable_config() = heavy;
  pb::TrainingJob job;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->StartTraining(&context, start, &job).ok());
  }
  // The job's status (a default one, state QUEUED, if it is unknown).
  const auto status = [&] {
    absl::StatusOr<server::JobStatus> s = server.app().jobs().Get(job.id());
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : server::JobStatus();
  };
  ASSERT_TRUE(WaitUntil([&] { return status().state == server::JobState::kRunning; },
                        absl::Seconds(30), absl::Milliseconds(5)));
  ASSERT_TRUE(WaitUntil([&] { return status().step >= 1; }, absl::Seconds(60),
                        absl::Milliseconds(1)));
  auto channel = Connected(server.Channel());
  std::vector<int> seen;
  // Polls until the server is gone (a failed call).
  std::thread poller([&] {
    for (int i = 0; i < 20000; ++i) {
      const int status = HealthStatus(channel, "wfm.v1.WfmService");
      if (seen.empty() || seen.back() != status) seen.push_back(status);
      if (status == -1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  // Shut down as soon as a step has ended: the trainer is then into the next
  // one (hundreds of ms, more in sanitizer builds), which it finishes before
  // it sees the cancellation, so the server stays draining while the poller
  // watches. The step is polled (1 ms): nothing announces it.
  const int64_t step = status().step;
  EXPECT_TRUE(WaitUntil([&] { return status().step > step; }, absl::Seconds(60),
                        absl::Milliseconds(1)));
  EXPECT_TRUE(server.app().Shutdown(absl::Seconds(60)));
  poller.join();
  // SERVING, then NOT_SERVING while the running step finishes, then gone.
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 2, -1));
  // Left to resume at the next start, checkpointed at the step it reached.
  const server::JobStatus left = status();
  EXPECT_EQ(server::JobStateName(left.state), "QUEUED");
  EXPECT_EQ(left.interrupted, "by server shutdown at step " + std::to_string(left.step));
  EXPECT_EQ(left.checkpoint_step, left.step);
}

}  // namespace
}  // namespace wfm::testing
