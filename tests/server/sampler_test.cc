// server/sampler: requests to served models through their batchers. The
// clouds and Gaussians it returns are the model's own for the request (the
// batcher passes the request through), errors name the rule, the metrics
// count what was handed back, a replaced model gets a new batcher and a
// forgotten one is gone.
#include "server/sampler.h"

#include <atomic>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/metrics.h"
#include "server/model_registry.h"
#include "tests/server/servable_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/http.h"
#include "tests/testing/status.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace wfm::server {
namespace {

using ::testing::HasSubstr;
using ::wfm::testing::MetricValue;

model::CloudSampleRequest CloudRequest(int64_t num, int64_t points, uint64_t seed) {
  model::CloudSampleRequest r;
  r.num_samples = num;
  r.points = points;
  r.steps = 4;
  r.seed = seed;
  return r;
}

model::GaussianSampleRequest GaussianRequest(int64_t num, uint64_t seed) {
  model::GaussianSampleRequest r;
  r.num_samples = num;
  r.steps = 4;
  r.seed = seed;
  return r;
}

class SamplerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WFM_ASSERT_OK_AND_ASSIGN(registry_, ModelRegistry::Open(dir_.File("models")));
    WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint clouds,
                             testing::TrainedPointCloudCheckpoint(testing::Ellipses(8, 1, true)));
    WFM_ASSERT_OK(registry_->Publish("clouds", clouds, false));
    WFM_ASSERT_OK_AND_ASSIGN(
        const model::checkpoint::Checkpoint gaussians,
        testing::TrainedGaussianCheckpoint(testing::RandomGaussians(8, 2, 3)));
    WFM_ASSERT_OK(registry_->Publish("gaussians", gaussians, false));
    SamplerOptions options;
    options.limits.max_samples = 16;
    options.limits.max_points = 32;
    sampler_ = std::make_unique<Sampler>(registry_.get(), options, &metrics_);
  }

  testing::TempDir dir_;
  Metrics metrics_{"test"};
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Sampler> sampler_;
};

TEST_F(SamplerTest, CloudsAreTheModelsOwnForTheRequest) {
  const model::CloudSampleRequest request = CloudRequest(3, 7, 42);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds got,
                           sampler_->SampleClouds("clouds", request, nullptr));
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> servable,
                           registry_->Get("clouds"));
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedClouds> direct,
                           servable->pointcloud->Sample({request}));
  EXPECT_EQ(got.dim, 2);
  EXPECT_EQ(got.offsets, (std::vector<int64_t>{0, 7, 14, 21}));
  EXPECT_EQ(got.points, direct[0].points);
  EXPECT_EQ(got.labels, direct[0].labels);
  // Another seed, other clouds.
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds other,
                           sampler_->SampleClouds("clouds", CloudRequest(3, 7, 43), nullptr));
  EXPECT_NE(other.points, got.points);
}

TEST_F(SamplerTest, GaussiansAreTheModelsOwnForTheRequest) {
  const model::GaussianSampleRequest request = GaussianRequest(4, 9);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedGaussians got,
                           sampler_->SampleGaussians("gaussians", request, nullptr));
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> servable,
                           registry_->Get("gaussians"));
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedGaussians> direct,
                           servable->gaussian->Sample({request}));
  EXPECT_EQ(got.dim, 2);
  EXPECT_EQ(got.means.size(), 4u * 2);
  EXPECT_EQ(got.covs.size(), 4u * 2 * 2);
  EXPECT_EQ(got.means, direct[0].means);
  EXPECT_EQ(got.covs, direct[0].covs);
}

TEST_F(SamplerTest, ErrorsNameTheModelAndTheRule) {
  const absl::Status missing = sampler_->SampleClouds("ghost", CloudRequest(1, 4, 1), nullptr).status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), HasSubstr("ghost"));

  const absl::Status wrong_family =
      sampler_->SampleGaussians("clouds", GaussianRequest(1, 1), nullptr).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong_family)) << wrong_family;
  EXPECT_EQ(wrong_family.message(),
            "model: 'clouds' is a pointcloud model; sample it with SampleNiches");
  const absl::Status other_family =
      sampler_->SampleClouds("gaussians", CloudRequest(1, 4, 1), nullptr).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(other_family)) << other_family;
  EXPECT_EQ(other_family.message(),
            "model: 'gaussians' is a gaussian model; sample it with SampleGaussians");

  // The request against the server's limits (16 samples, 32 points).
  const absl::Status too_many =
      sampler_->SampleClouds("clouds", CloudRequest(17, 4, 1), nullptr).status();
  EXPECT_TRUE(absl::IsResourceExhausted(too_many)) << too_many;
  EXPECT_EQ(too_many.message(), "num_samples: 17 exceeds the limit of 16");
  const absl::Status too_large =
      sampler_->SampleClouds("clouds", CloudRequest(1, 33, 1), nullptr).status();
  EXPECT_TRUE(absl::IsResourceExhausted(too_large)) << too_large;
  EXPECT_EQ(too_large.message(), "points: 33 per sample exceeds the limit of 32");
  const absl::Status none = sampler_->SampleClouds("clouds", CloudRequest(0, 4, 1), nullptr).status();
  EXPECT_TRUE(absl::IsInvalidArgument(none)) << none;
  EXPECT_EQ(none.message(), "num_samples: must be >= 1, got 0");
  const absl::Status gaussians_too_many =
      sampler_->SampleGaussians("gaussians", GaussianRequest(17, 1), nullptr).status();
  EXPECT_TRUE(absl::IsResourceExhausted(gaussians_too_many)) << gaussians_too_many;
  // Nothing was generated by the refused requests.
  EXPECT_FALSE(MetricValue(metrics_.Text(), "wfm_generated_samples_total").has_value());
}

TEST_F(SamplerTest, MetricsCountWhatWasHandedBack) {
  ASSERT_TRUE(sampler_->SampleClouds("clouds", CloudRequest(3, 5, 1), nullptr).ok());
  ASSERT_TRUE(sampler_->SampleClouds("clouds", CloudRequest(2, 6, 2), nullptr).ok());
  ASSERT_TRUE(sampler_->SampleGaussians("gaussians", GaussianRequest(4, 3), nullptr).ok());
  const std::string text = metrics_.Text();
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total",
                        {{"model", "clouds"}, {"family", "pointcloud"}}),
            5);
  EXPECT_EQ(MetricValue(text, "wfm_generated_points_total",
                        {{"model", "clouds"}, {"family", "pointcloud"}}),
            3 * 5 + 2 * 6);
  EXPECT_EQ(MetricValue(text, "wfm_generated_samples_total",
                        {{"model", "gaussians"}, {"family", "gaussian"}}),
            4);
  // One batched call per request (they came one after another), of 1 request each.
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_count", {{"family", "pointcloud"}}), 2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_sum", {{"family", "pointcloud"}}), 2);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_samples_sum", {{"family", "pointcloud"}}), 5);
  EXPECT_EQ(MetricValue(text, "wfm_sampling_batch_size_count", {{"family", "gaussian"}}), 1);
  // The queue is empty again.
  EXPECT_EQ(MetricValue(text, "wfm_sampling_queue_depth", {{"model", "clouds"}}), 0);
}

// Network evaluations by solver: fixed-step requests report steps · stages,
// an adaptive one what it spent, and the counter adds what was reported.
TEST_F(SamplerTest, NetworkEvaluationsAreReportedAndCounted) {
  model::CloudSampleRequest heun = CloudRequest(2, 5, 1);
  heun.solver = model::OdeSolver::kHeun;
  heun.steps = 3;
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds clouds,
                           sampler_->SampleClouds("clouds", heun, nullptr));
  EXPECT_EQ(clouds.evaluations, 3 * 2);
  model::GaussianSampleRequest adaptive = GaussianRequest(2, 1);
  adaptive.solver = model::OdeSolver::kAdaptive;
  adaptive.steps = 50;
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedGaussians gaussians,
                           sampler_->SampleGaussians("gaussians", adaptive, nullptr));
  EXPECT_GE(gaussians.evaluations, 4);
  EXPECT_EQ((gaussians.evaluations - 1) % 3, 0);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedGaussians euler,
                           sampler_->SampleGaussians("gaussians", GaussianRequest(1, 2), nullptr));
  const std::string text = metrics_.Text();
  EXPECT_EQ(MetricValue(text, "wfm_network_evaluations_total",
                        {{"model", "clouds"}, {"family", "pointcloud"}, {"solver", "heun"}}),
            6);
  EXPECT_EQ(MetricValue(text, "wfm_network_evaluations_total",
                        {{"model", "gaussians"}, {"family", "gaussian"}, {"solver", "adaptive"}}),
            gaussians.evaluations);
  EXPECT_EQ(MetricValue(text, "wfm_network_evaluations_total",
                        {{"model", "gaussians"}, {"family", "gaussian"}, {"solver", "euler"}}),
            euler.evaluations);
  // A bad tolerance is refused with its field before any work.
  adaptive.rtol = -1.0;
  const absl::Status bad = sampler_->SampleGaussians("gaussians", adaptive, nullptr).status();
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_THAT(std::string(bad.message()), HasSubstr("rtol: must be in [1e-8, 1]"));
}

TEST_F(SamplerTest, AReplacedModelIsSampledAndAForgottenOneIsGone) {
  const model::CloudSampleRequest request = CloudRequest(2, 5, 7);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds before,
                           sampler_->SampleClouds("clouds", request, nullptr));
  // Another training seed under the same name: the sampler serves the new one.
  WFM_ASSERT_OK_AND_ASSIGN(
      const model::checkpoint::Checkpoint retrained,
      testing::TrainedPointCloudCheckpoint(testing::Ellipses(8, 1, true), 3, /*seed=*/2));
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> replacement,
                           registry_->Publish("clouds", retrained, /*overwrite=*/true));
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds after,
                           sampler_->SampleClouds("clouds", request, nullptr));
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedClouds> direct,
                           replacement->pointcloud->Sample({request}));
  EXPECT_EQ(after.points, direct[0].points);
  EXPECT_NE(after.points, before.points);

  WFM_ASSERT_OK(registry_->Delete("clouds"));
  sampler_->Forget("clouds");
  EXPECT_TRUE(absl::IsNotFound(sampler_->SampleClouds("clouds", request, nullptr).status()));
  // The other model is untouched.
  EXPECT_TRUE(sampler_->SampleGaussians("gaussians", GaussianRequest(1, 1), nullptr).ok());
}

// Each version has its own batcher; one of a version that left the
// registry is dropped when another version of the model gets a batcher, so
// the old model is freed.
TEST_F(SamplerTest, VersionsAreSampledApartAndDeletedOnesAreFreed) {
  const model::CloudSampleRequest request = CloudRequest(2, 5, 11);
  WFM_ASSERT_OK_AND_ASSIGN(
      const model::checkpoint::Checkpoint second,
      testing::TrainedPointCloudCheckpoint(testing::Ellipses(8, 1, true), 3, /*seed=*/2));
  WFM_ASSERT_OK(registry_->Publish("clouds", second, /*overwrite=*/false));
  std::weak_ptr<const model::PointCloudModel> first_model;
  {
    WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> first,
                             registry_->Get("clouds", 1));
    first_model = first->pointcloud;
    WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds one,
                             sampler_->SampleClouds("clouds", request, nullptr, {}, 1));
    WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedClouds> direct,
                             first->pointcloud->Sample({request}));
    EXPECT_EQ(one.points, direct[0].points);
  }
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds latest,
                           sampler_->SampleClouds("clouds", request, nullptr));
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> two, registry_->Get("clouds"));
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<model::GeneratedClouds> direct,
                           two->pointcloud->Sample({request}));
  EXPECT_EQ(latest.points, direct[0].points);
  EXPECT_EQ(MetricValue(metrics_.Text(), "wfm_generated_samples_total",
                        {{"model", "clouds"}, {"version", "1"}}),
            2);
  EXPECT_FALSE(first_model.expired());  // its batcher holds it
  WFM_ASSERT_OK(registry_->DeleteVersion("clouds", 1));
  WFM_ASSERT_OK(registry_->Publish("clouds", second, /*overwrite=*/false));
  ASSERT_TRUE(sampler_->SampleClouds("clouds", request, nullptr).ok());  // version 3
  EXPECT_TRUE(first_model.expired());
  EXPECT_TRUE(absl::IsNotFound(sampler_->SampleClouds("clouds", request, nullptr, {}, 1).status()));
}

// Requests waiting for two versions of one model (each behind a long call
// of its version): the model's queue depth is their sum.
TEST(SamplerVersionsTest, TheQueueDepthOfAModelSumsItsVersions) {
  testing::TempDir dir;
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelRegistry> registry,
                           ModelRegistry::Open(dir.File("models")));
  WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint clouds,
                           testing::TrainedPointCloudCheckpoint(testing::Ellipses(8, 1, true)));
  WFM_ASSERT_OK(registry->Publish("clouds", clouds, false));
  WFM_ASSERT_OK(registry->Publish("clouds", clouds, false));
  Metrics metrics("test");
  SamplerOptions options;
  options.limits.max_samples = 16;
  options.limits.max_points = 32;
  Sampler sampler(registry.get(), options, &metrics);
  std::atomic<bool> stop{false};
  std::vector<std::thread> calls;
  const auto sample = [&](int64_t version, int64_t num, int64_t steps) {
    calls.emplace_back([&, version, num, steps] {
      model::CloudSampleRequest request = CloudRequest(num, num == 1 ? 4 : 32, 1);
      request.steps = steps;
      (void)sampler.SampleClouds("clouds", request, [&] { return stop.load(); }, {}, version);
    });
  };
  const auto taken = [&] {
    double n = 0;
    for (const char* priority : {"low", "normal", "high"}) {
      n += MetricValue(metrics.Text(), "wfm_sampling_queue_wait_seconds_count",
                       {{"model", "clouds"}, {"priority", priority}})
               .value_or(0);
    }
    return n;
  };
  // A long call per version (the most samples, points and steps; it runs
  // until cancelled here), each taken by its batcher before the next
  // request arrives.
  for (int64_t version : {1, 2}) {
    sample(version, 16, 10000);
    EXPECT_TRUE(testing::WaitUntil([&] { return taken() == version; }, absl::Seconds(60),
                                   absl::Milliseconds(5)));
  }
  sample(1, 1, 2);
  sample(2, 1, 2);
  EXPECT_TRUE(testing::WaitUntil([&] { return sampler.InFlight("clouds") == 4; },
                                 absl::Seconds(60), absl::Milliseconds(5)));
  EXPECT_EQ(MetricValue(metrics.Text(), "wfm_sampling_queue_depth", {{"model", "clouds"}}), 2);
  stop = true;
  for (std::thread& t : calls) t.join();
  EXPECT_EQ(MetricValue(metrics.Text(), "wfm_sampling_queue_depth", {{"model", "clouds"}}), 0);
}

TEST_F(SamplerTest, ACancelledRequestStopsWithCancelled) {
  model::CloudSampleRequest request = CloudRequest(4, 8, 1);
  request.steps = 10000;  // minutes of work if it were not stopped
  const absl::Status s =
      sampler_->SampleClouds("clouds", request, [] { return true; }).status();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  // Nothing was counted as generated.
  EXPECT_FALSE(MetricValue(metrics_.Text(), "wfm_generated_samples_total", {{"model", "clouds"}})
                   .has_value());
}

// An unload never fails a request: clients sample while the model is
// unloaded and loaded again over and over, and each gets the clouds an
// unraced run gets; afterwards nothing but the registry holds the weights
// (batchers do not), so an unload frees them.
TEST_F(SamplerTest, UnloadsRacingRequestsNeverFailThem) {
  const model::CloudSampleRequest request = CloudRequest(2, 5, 7);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds expected,
                           sampler_->SampleClouds("clouds", request, nullptr));
  constexpr int kClients = 3;
  constexpr int kRequests = 12;
  std::atomic<int> finished{0};
  std::atomic<int> failed{0};
  std::atomic<int> differ{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int i = 0; i < kRequests; ++i) {
        absl::StatusOr<model::GeneratedClouds> got =
            sampler_->SampleClouds("clouds", request, nullptr);
        if (!got.ok()) {
          ++failed;
          ADD_FAILURE() << got.status();
        } else if (got->points != expected.points) {
          ++differ;
        }
      }
      ++finished;
    });
  }
  int cycles = 0;
  do {
    EXPECT_TRUE(registry_->Unload("clouds").ok());
    EXPECT_TRUE(registry_->Load("clouds").ok());
    ++cycles;
  } while (finished.load() < kClients);
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(differ.load(), 0);
  EXPECT_EQ(registry_->Residency().unloads_explicit, cycles);
  std::weak_ptr<const model::PointCloudModel> weights;
  {
    WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Servable> servable,
                             registry_->Get("clouds"));
    weights = servable->pointcloud;
    WFM_ASSERT_OK(sampler_->SampleClouds("clouds", request, nullptr).status());
  }
  WFM_ASSERT_OK(registry_->Unload("clouds"));
  EXPECT_TRUE(weights.expired());
  // The next request loads it again.
  WFM_ASSERT_OK_AND_ASSIGN(const model::GeneratedClouds again,
                           sampler_->SampleClouds("clouds", request, nullptr));
  EXPECT_EQ(again.points, expected.points);
}

}  // namespace
}  // namespace wfm::server
