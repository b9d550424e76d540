// /metrics scraped over HTTP carries the contract's metrics, incremented by
// known requests.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

using ::testing::HasSubstr;

TEST(ServiceMetricsTest, CountsRequestsSamplesAndTraining) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();
  const std::string before = server.Metrics();
  EXPECT_EQ(MetricValue(before, "wfm_models_loaded"), 0);
  EXPECT_EQ(MetricValue(before, "wfm_datasets_stored"), 0);
  EXPECT_TRUE(MetricValue(before, "wfm_build_info").has_value());
  // Every method's code-OK series exists at 0 before any call; no other code.
  for (const char* method : {"UploadDataset", "GetDataset", "StartTraining", "SampleNiches",
                             "SampleGaussians", "Evaluate"}) {
    EXPECT_EQ(MetricValue(before, "wfm_rpc_requests_total", {{"method", method}, {"code", "OK"}}), 0)
        << method;
    EXPECT_EQ(MetricValue(before, "wfm_rpc_latency_seconds_count",
                          {{"method", method}, {"code", "OK"}}),
              0)
        << method;
  }
  EXPECT_FALSE(MetricValue(before, "wfm_rpc_requests_total", {{"code", "NOT_FOUND"}}).has_value());
  EXPECT_FALSE(MetricValue(before, "wfm_generated_samples_total").has_value());

  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    pb::GetDatasetRequest request;
    request.set_name("missing");
    pb::Dataset reply;
    EXPECT_FALSE(stub->GetDataset(&context, request, &reply).ok());
  }
  ASSERT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 3)).ok());
  ASSERT_EQ(Train(*stub, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 12)).state(), pb::SUCCEEDED);
  // A published model's throughput and queue series exist at 0 before it is
  // sampled.
  const std::string published = server.Metrics();
  EXPECT_EQ(MetricValue(published, "wfm_generated_samples_total",
                        {{"model", "m"}, {"family", "pointcloud"}}),
            0);
  EXPECT_EQ(MetricValue(published, "wfm_generated_points_total", {{"model", "m"}}), 0);
  EXPECT_EQ(MetricValue(published, "wfm_sampling_queue_depth", {{"model", "m"}}), 0);
  EXPECT_EQ(MetricValue(published, "wfm_sampling_queue_timeouts_total", {{"model", "m"}}), 0);
  for (const char* priority : {"low", "normal", "high"}) {
    EXPECT_EQ(MetricValue(published, "wfm_sampling_queue_wait_seconds_count",
                          {{"model", "m"}, {"priority", priority}}),
              0)
        << priority;
  }
  ASSERT_TRUE(SampleNiches(*stub, NicheRequest("m", 3, 10, 1)).status.ok());
  ASSERT_TRUE(SampleNiches(*stub, NicheRequest("m", 2, 7, 2)).status.ok());
  pb::SampleNichesRequest rk4 = NicheRequest("m", 1, 5, 3, 4);
  rk4.set_solver("rk4");
  rk4.set_priority(pb::SAMPLING_PRIORITY_LOW);
  rk4.set_queue_timeout_seconds(600);  // a lone request is taken at once
  const Niches rk4_niches = SampleNiches(*stub, rk4);
  ASSERT_TRUE(rk4_niches.status.ok());
  ASSERT_FALSE(rk4_niches.messages.empty());
  EXPECT_EQ(rk4_niches.messages[0].network_evaluations(), 4 * 4);

  const std::string text = server.Metrics();
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total",
                        {{"method", "GetDataset"}, {"code", "NOT_FOUND"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_latency_seconds_count",
                        {{"method", "GetDataset"}, {"code", "NOT_FOUND"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "UploadDataset"}, {"code", "OK"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "StartTraining"}, {"code", "OK"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "SampleNiches"}, {"code", "OK"}}), 3);
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "m"}, {"family", "pointcloud"}}), 6);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total", {{"model", "m"}, {"family", "pointcloud"}}),
            3 * 10 + 2 * 7 + 5);
  // Two midpoint requests of 10 steps (2 evaluations each), one of rk4 at 4.
  EXPECT_EQ(MetricValue(text, "wfm_network_evaluations_total",
                        {{"model", "m"}, {"family", "pointcloud"}, {"solver", "midpoint"}}),
            2 * 10 * 2);
  EXPECT_EQ(MetricValue(text, "wfm_network_evaluations_total",
                        {{"model", "m"}, {"family", "pointcloud"}, {"solver", "rk4"}}),
            4 * 4);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_count", {{"family", "pointcloud"}}), 3);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_samples_sum", {{"family", "pointcloud"}}), 6);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "m"}}), 0);
  // Each request left the queue once, under its priority.
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_count",
                        {{"model", "m"}, {"priority", "normal"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_count",
                        {{"model", "m"}, {"priority", "low"}}),
            1);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_timeouts_total", {{"model", "m"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_training_steps_total", {{"model", "m"}}), 12);
  EXPECT_TRUE(MetricValue(text, "wfm_training_loss", {{"model", "m"}}).has_value());
  EXPECT_TRUE(MetricValue(text, "wfm_training_steps_per_second", {{"model", "m"}}).has_value());
  EXPECT_EQ(MetricValue(text, "wfm_training_jobs", {{"state", "SUCCEEDED"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_training_jobs", {{"state", "RUNNING"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_models_loaded"), 1);
  EXPECT_EQ(MetricValue(text, "wfm_datasets_stored"), 1);
  EXPECT_THAT(text, HasSubstr("# TYPE wfm_rpc_latency_seconds histogram"));
}

}  // namespace
}  // namespace wfm::testing
