// Cancellation: a training job (CancelTrainingJob, seen by a watcher) and a
// streaming sample (the client cancels its call).
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/metrics.h"
#include "server/sampler.h"
#include "tests/server/test_server.h"
#include "tests/testing/wait.h"

namespace wfm::testing {
namespace {

using ::testing::StartsWith;

class CancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    stub_ = server_.Stub();
    ASSERT_TRUE(Upload(*stub_, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 6)).ok());
  }
  TestServer server_;
  std::unique_ptr<pb::WfmService::Stub> stub_;
};

TEST_F(CancelTest, CancellingATrainingJobEndsItAndItsWatch) {
  pb::StartTrainingRequest start;
  start.set_dataset("d");
  start.set_model("never");
  *start.mutable_config() = TinyConfig(pb::FAMILY_POINTCLOUD, 10000000);
  pb::TrainingJob job;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->StartTraining(&context, start, &job).ok());
  }
  std::vector<pb::TrainingJob> updates;
  grpc::Status watch_status;
  std::thread watcher([&] { updates = Watch(*stub_, job.id(), &watch_status); });
  // Wait until it runs (5 s at most; the cancellation is checked either way).
  WaitUntil(
      [&] {
        pb::TrainingJob now;
        EXPECT_TRUE(GetTrainingJob(*stub_, job.id(), &now).ok());
        return now.step() > 0;
      },
      absl::Seconds(5));
  pb::CancelTrainingJobRequest cancel;
  cancel.set_id(job.id());
  pb::TrainingJob cancelled;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->CancelTrainingJob(&context, cancel, &cancelled).ok());
  }
  EXPECT_EQ(cancelled.state(), pb::CANCELLED);
  EXPECT_THAT(cancelled.error(), StartsWith("cancelled by request at step "));
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status.error_message();
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back().state(), pb::CANCELLED);
  EXPECT_EQ(updates.back().step(), cancelled.step());
  // No model was published.
  grpc::ClientContext context;
  pb::GetModelRequest get;
  get.set_name("never");
  pb::ModelInfo info;
  EXPECT_EQ(stub_->GetModel(&context, get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CancelTest, CancellingAStreamingSampleStopsTheWork) {
  ASSERT_EQ(Train(*stub_, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
  grpc::ClientContext context;
  // Minutes of work if it were not stopped.
  auto reader = stub_->SampleNiches(&context, NicheRequest("m", 64, 64, 1, 10000));
  // The request has reached the model's batcher (a lone request then runs at
  // once).
  EXPECT_TRUE(WaitUntil([&] { return server_.app().sampler().InFlight("m") > 0; },
                        absl::Seconds(60), absl::Milliseconds(1)));
  context.TryCancel();
  pb::SampleNichesResponse m;
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The model is free again: a small request completes within its deadline.
  Niches next = SampleNiches(*stub_, NicheRequest("m", 1, 5, 2), [](grpc::ClientContext& c) {
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  });
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  const std::string metrics = server_.Metrics();
  EXPECT_EQ(MetricValue(metrics, "wfm_rpc_requests_total",
                        {{"method", "SampleNiches"}, {"code", "CANCELLED"}}),
            1);
  // Nothing was counted as generated for the cancelled call.
  EXPECT_EQ(MetricValue(metrics, "wfm_generated_samples_total", {{"model", "m"}}), 1);
}

// A request that waits in the model's queue longer than its
// queue_timeout_seconds ends DEADLINE_EXCEEDED and is never computed; the
// queue-wait histogram (by priority) and the timeout counter see it.
TEST_F(CancelTest, ARequestPastItsQueueTimeoutIsNotComputed) {
  ASSERT_EQ(Train(*stub_, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
  const auto waited = [this](const char* priority) {
    return MetricValue(server_.Metrics(), "wfm_sampling_queue_wait_seconds_count",
                       {{"model", "m"}, {"priority", priority}})
        .value_or(-1);
  };
  EXPECT_EQ(waited("normal"), 0);
  // Minutes of work if it were not stopped; it holds the model's batcher.
  grpc::ClientContext busy_context;
  auto busy = stub_->SampleNiches(&busy_context, NicheRequest("m", 64, 64, 1, 10000));
  // It left the queue: a call runs it.
  EXPECT_TRUE(WaitUntil([&] { return waited("normal") == 1; }, absl::Seconds(60)));
  pb::SampleNichesRequest hurried = NicheRequest("m", 1, 5, 2);
  hurried.set_priority(pb::SAMPLING_PRIORITY_HIGH);
  hurried.set_queue_timeout_seconds(0.05);
  const Niches timed_out = SampleNiches(*stub_, hurried);
  EXPECT_EQ(timed_out.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(timed_out.status.error_message(),
              ::testing::AllOf(StartsWith("queue_timeout_seconds: waited "),
                               ::testing::HasSubstr("model 'm'"),
                               ::testing::HasSubstr("nothing was computed")));
  EXPECT_TRUE(timed_out.messages.empty());
  std::string metrics = server_.Metrics();
  EXPECT_EQ(MetricValue(metrics, "wfm_sampling_queue_timeouts_total", {{"model", "m"}}), 1);
  EXPECT_EQ(MetricValue(metrics, "wfm_sampling_queue_wait_seconds_count",
                        {{"model", "m"}, {"priority", "high"}}),
            1);
  EXPECT_GE(MetricValue(metrics, "wfm_sampling_queue_wait_seconds_sum",
                        {{"model", "m"}, {"priority", "high"}})
                .value_or(0),
            0.05);
  EXPECT_EQ(server_.app().sampler().InFlight("m"), 1);  // only the busy call
  busy_context.TryCancel();
  pb::SampleNichesResponse m;
  EXPECT_FALSE(busy->Read(&m));
  EXPECT_EQ(busy->Finish().error_code(), grpc::StatusCode::CANCELLED);
  metrics = server_.Metrics();
  EXPECT_EQ(MetricValue(metrics, "wfm_rpc_requests_total",
                        {{"method", "SampleNiches"}, {"code", "DEADLINE_EXCEEDED"}}),
            1);
  EXPECT_EQ(MetricValue(metrics, "wfm_generated_samples_total", {{"model", "m"}}), 0);
}

}  // namespace
}  // namespace wfm::testing
