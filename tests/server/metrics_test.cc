#include "server/metrics.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

using ::testing::HasSubstr;
using testing::MetricValue;

TEST(MetricsTest, RecordsEveryFamilyWithItsLabels) {
  Metrics m("1.2.3");
  m.ObserveRpc("GetModel", "OK", 0.003);
  m.ObserveRpc("GetModel", "OK", 0.2);
  m.ObserveRpc("GetModel", "NOT_FOUND", 0.001);
  m.AddGenerated("shapes", 1, "pointcloud", 3, 45);
  m.AddGenerated("shapes", 1, "pointcloud", 2, 30);
  m.AddGenerated("cells", 1, "gaussian", 4, 0);
  m.ObserveSamplingBatch("pointcloud", 5, 7);
  m.ObserveSamplingBatch("pointcloud", 1, 1);
  m.SetQueueDepth("shapes", 3);
  m.ObserveQueueWait("shapes", "high", 0.002);
  m.ObserveQueueWait("shapes", "high", 40);
  m.ObserveQueueWait("shapes", "low", 0.5);
  m.AddQueueTimeout("shapes");
  m.AddTrainingSteps("shapes", 10, 0.5, 25.0);
  m.AddTrainingSteps("shapes", 5, 0.25, 30.0);
  m.SetTrainingJobs("RUNNING", 1);
  m.SetModelsLoaded(2);
  m.SetDatasetsStored(4);
  const std::string text = m.Text();
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "GetModel"}, {"code", "OK"}}), 2);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"code", "NOT_FOUND"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_latency_seconds_count", {{"code", "OK"}}), 2);
  EXPECT_NEAR(*MetricValue(text, "wfm_rpc_latency_seconds_sum", {{"code", "OK"}}), 0.203, 1e-9);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_latency_seconds_bucket", {{"code", "OK"}, {"le", "0.005"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}, {"family", "pointcloud"}}), 5);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total", {{"model", "shapes"}}), 75);
  // One series per model version.
  m.AddGenerated("shapes", 2, "pointcloud", 1, 0);
  EXPECT_EQ(MetricValue(m.Text(), "wfm_generated_samples_total", {{"model", "shapes"}, {"version", "1"}}), 5);
  EXPECT_EQ(MetricValue(m.Text(), "wfm_generated_samples_total", {{"model", "shapes"}, {"version", "2"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"family", "gaussian"}}), 4);
  EXPECT_FALSE(MetricValue(text, "wfm_generated_points_total", {{"family", "gaussian"}}).has_value());
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_count", {{"family", "pointcloud"}}), 2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_sum", {{"family", "pointcloud"}}), 6);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_bucket", {{"le", "1"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_samples_sum"), 8);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}), 3);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_count",
                        {{"model", "shapes"}, {"priority", "high"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_bucket",
                        {{"model", "shapes"}, {"priority", "high"}, {"le", "0.0025"}}),
            1);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_bucket",
                        {{"model", "shapes"}, {"priority", "high"}, {"le", "60"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_bucket",
                        {{"model", "shapes"}, {"priority", "high"}, {"le", "300"}}),
            2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_sum",
                        {{"model", "shapes"}, {"priority", "low"}}),
            0.5);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_timeouts_total", {{"model", "shapes"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_training_steps_total", {{"model", "shapes"}}), 15);
  EXPECT_EQ(MetricValue(text, "wfm_training_loss", {{"model", "shapes"}}), 0.25);
  EXPECT_EQ(MetricValue(text, "wfm_training_steps_per_second", {{"model", "shapes"}}), 30);
  EXPECT_EQ(MetricValue(text, "wfm_training_jobs", {{"state", "RUNNING"}}), 1);
  EXPECT_EQ(MetricValue(text, "wfm_training_jobs", {{"state", "QUEUED"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_models_loaded"), 2);
  EXPECT_EQ(MetricValue(text, "wfm_datasets_stored"), 4);
  EXPECT_EQ(MetricValue(text, "wfm_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_THAT(text, HasSubstr("# TYPE wfm_rpc_latency_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("# TYPE wfm_rpc_requests_total counter"));
}

TEST(MetricsTest, SeriesExistAtZeroFromTheStartAndLeaveWithTheirModel) {
  Metrics m("1.2.3");
  EXPECT_FALSE(MetricValue(m.Text(), "wfm_rpc_requests_total").has_value());
  m.InitRpcMethods({"ListModels", "SampleNiches"});
  m.SyncModels({{"shapes", "pointcloud"}, {"cells", "gaussian"}});
  std::string text = m.Text();
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "ListModels"}, {"code", "OK"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_latency_seconds_count",
                        {{"method", "SampleNiches"}, {"code", "OK"}}),
            0);
  EXPECT_FALSE(MetricValue(text, "wfm_rpc_requests_total", {{"method", "GetModel"}}).has_value());
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}, {"family", "pointcloud"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total", {{"model", "shapes"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "cells"}, {"family", "gaussian"}}), 0);
  EXPECT_FALSE(MetricValue(text, "wfm_generated_points_total", {{"model", "cells"}}).has_value());
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "cells"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_timeouts_total", {{"model", "cells"}}), 0);
  for (const char* priority : {"low", "normal", "high"}) {
    EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_count",
                          {{"model", "shapes"}, {"priority", priority}}),
              0)
        << priority;
  }

  m.AddGenerated("shapes", 1, "pointcloud", 3, 30);
  m.SetQueueDepth("shapes", 2);
  // Reported again, a model keeps its counts; "cells" is now a point-cloud
  // model: its Gaussian series go, the new ones start at 0.
  m.SyncModels({{"shapes", "pointcloud"}, {"cells", "pointcloud"}});
  text = m.Text();
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}}), 3);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total", {{"model", "shapes"}}), 30);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}), 2);
  EXPECT_FALSE(MetricValue(text, "wfm_generated_samples_total", {{"model", "cells"}, {"family", "gaussian"}}).has_value());
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "cells"}, {"family", "pointcloud"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total", {{"model", "cells"}}), 0);

  // A version no longer served loses its counters, its model keeps the
  // queue series.
  m.SyncModels({{"shapes", "pointcloud", 2}, {"cells", "pointcloud"}});
  text = m.Text();
  EXPECT_FALSE(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}, {"version", "1"}})
                   .has_value());
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}, {"version", "2"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}), 2);

  // A model no longer served loses its series; the others stay.
  m.SyncModels({{"cells", "pointcloud"}});
  text = m.Text();
  EXPECT_FALSE(MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}}).has_value());
  EXPECT_FALSE(MetricValue(text, "wfm_generated_points_total", {{"model", "shapes"}}).has_value());
  EXPECT_FALSE(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}).has_value());
  EXPECT_FALSE(
      MetricValue(text, "wfm_sampling_queue_timeouts_total", {{"model", "shapes"}}).has_value());
  EXPECT_FALSE(MetricValue(text, "wfm_sampling_queue_wait_seconds_count", {{"model", "shapes"}})
                   .has_value());
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_wait_seconds_count",
                        {{"model", "cells"}, {"priority", "normal"}}),
            0);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "cells"}}), 0);
  EXPECT_EQ(MetricValue(text, "wfm_rpc_requests_total", {{"method", "ListModels"}, {"code", "OK"}}), 0);
}

TEST(MetricsTest, ServesTheTextOverHttp) {
  Metrics m("0.0.1");
  absl::StatusOr<int> port = m.Serve("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  m.ObserveRpc("ListModels", "OK", 0.01);
  auto [code, body] = testing::HttpGet(*port, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(MetricValue(body, "wfm_rpc_requests_total", {{"method", "ListModels"}}), 1);
  EXPECT_EQ(testing::HttpGet(*port, "/other").first, 404);
  EXPECT_EQ(testing::HttpGet(*port, "/metrics?x=1").first, 200);
  EXPECT_TRUE(absl::IsFailedPrecondition(m.Serve("127.0.0.1:0").status()));
  // The same port cannot be bound twice.
  Metrics other("0.0.1");
  EXPECT_TRUE(absl::IsUnavailable(other.Serve("127.0.0.1:" + std::to_string(*port)).status()));
  m.StopServing();
  EXPECT_EQ(testing::HttpGet(*port, "/metrics").first, -1);
}

}  // namespace
}  // namespace wfm::server
