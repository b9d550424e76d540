// Full flows through real gRPC clients: upload -> train -> watch -> sample ->
// evaluate, for point clouds, Gaussians and spatial cells.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/servable_util.h"
#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Cholesky of a symmetric [d, d] matrix succeeds with positive pivots.
bool PositiveDefinite(const double* a, int64_t d) {
  std::vector<double> l(d * d, 0.0);
  for (int64_t j = 0; j < d; ++j) {
    double s = a[j * d + j];
    for (int64_t k = 0; k < j; ++k) s -= l[j * d + k] * l[j * d + k];
    if (!(s > 0)) return false;
    l[j * d + j] = std::sqrt(s);
    for (int64_t i = j + 1; i < d; ++i) {
      double v = a[i * d + j];
      for (int64_t k = 0; k < j; ++k) v -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = v / l[j * d + j];
    }
  }
  return true;
}

class FlowTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start().ok()); }
  TestServer server_;
};

TEST_F(FlowTest, PointClouds) {
  auto stub = server_.Stub();
  const model::io::PointCloudSet set = Ellipses(12, 1, /*labelled=*/true);
  pb::Dataset dataset;
  grpc::Status up = Upload(*stub, Header("shapes", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE),
                           CloudChunks(set, 5), &dataset);
  ASSERT_TRUE(up.ok()) << up.error_message();
  EXPECT_EQ(dataset.items(), 12);
  EXPECT_EQ(dataset.points(), set.num_points());
  EXPECT_THAT(dataset.label_names(), ElementsAre("round", "wide"));
  {
    grpc::ClientContext context;
    pb::ListDatasetsResponse list;
    ASSERT_TRUE(stub->ListDatasets(&context, {}, &list).ok());
    ASSERT_EQ(list.datasets_size(), 1);
    EXPECT_EQ(list.datasets(0).name(), "shapes");
  }

  // Training returns at once with a queued job and the effective config.
  pb::TrainingConfig config = TinyConfig(pb::FAMILY_POINTCLOUD, 40);
  config.set_holdout_fraction(0.25);
  pb::StartTrainingRequest start;
  start.set_dataset("shapes");
  start.set_model("shapes-m");
  *start.mutable_config() = config;
  pb::TrainingJob job;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->StartTraining(&context, start, &job).ok());
  }
  EXPECT_EQ(job.state(), pb::QUEUED);
  EXPECT_EQ(job.total_steps(), 40);
  EXPECT_EQ(job.config().pointcloud().monge_map(), "rounded_matching");  // a default filled in
  EXPECT_EQ(job.config().network().width(), 16);
  std::vector<pb::TrainingJob> updates = Watch(*stub, job.id());
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back().state(), pb::SUCCEEDED) << updates.back().error();
  EXPECT_EQ(updates.back().step(), 40);
  for (size_t i = 1; i < updates.size(); ++i) EXPECT_GE(updates[i].step(), updates[i - 1].step());

  pb::ModelInfo info;
  {
    grpc::ClientContext context;
    pb::GetModelRequest request;
    request.set_name("shapes-m");
    ASSERT_TRUE(stub->GetModel(&context, request, &info).ok());
  }
  EXPECT_EQ(info.family(), pb::FAMILY_POINTCLOUD);
  EXPECT_EQ(info.dim(), 2);
  EXPECT_EQ(info.label_type(), pb::LABEL_TYPE_DISCRETE);
  EXPECT_THAT(info.labels(), ElementsAre("round", "wide"));
  EXPECT_EQ(info.summary().steps(), 40);
  EXPECT_EQ(info.summary().items(), 9);
  EXPECT_EQ(info.summary().dataset(), "shapes");
  EXPECT_GT(info.parameters(), 0);
  EXPECT_GT(info.size_bytes(), 0);
  EXPECT_DOUBLE_EQ(info.config().holdout_fraction(), 0.25);
  EXPECT_THAT(info.config_json(), HasSubstr("\"width\":16"));

  // Sampling: whole clouds in chunks of two.
  pb::SampleNichesRequest request = NicheRequest("shapes-m", 5, 10, 7);
  request.set_label("wide");
  request.set_samples_per_message(2);
  Niches niches = SampleNiches(*stub, request);
  ASSERT_TRUE(niches.status.ok()) << niches.status.error_message();
  ASSERT_EQ(niches.messages.size(), 3u);
  EXPECT_EQ(niches.messages[0].first_sample(), 0);
  EXPECT_EQ(niches.messages[1].first_sample(), 2);
  EXPECT_EQ(niches.messages[2].first_sample(), 4);
  EXPECT_EQ(niches.messages[2].sizes_size(), 1);
  EXPECT_THAT(niches.sizes, Each(10));
  EXPECT_THAT(niches.labels, Each(std::string("wide")));
  ASSERT_EQ(niches.points.size(), 5u * 10 * 2);
  for (float v : niches.points) EXPECT_TRUE(std::isfinite(v));
  // The same seed gives the same clouds.
  EXPECT_EQ(SampleNiches(*stub, request).points, niches.points);
  // Trajectories: steps + 1 frames of every point.
  request.set_trajectory(true);
  request.set_samples_per_message(0);
  Niches traj = SampleNiches(*stub, request);
  ASSERT_TRUE(traj.status.ok());
  ASSERT_EQ(traj.messages.size(), 1u);
  EXPECT_EQ(traj.messages[0].frames(), 11);
  EXPECT_EQ(traj.messages[0].trajectory_size(), 11 * 50 * 2);
  // The last frame is the generated cloud.
  EXPECT_EQ(traj.messages[0].trajectory(10 * 100 + 3), traj.points[3]);

  // Evaluation on everything and on the held-out clouds.
  pb::EvaluateRequest eval = EvaluationRequest("shapes-m", "shapes", "", 5);
  pb::EvaluateResponse all;
  ASSERT_NO_FATAL_FAILURE(Evaluate(*stub, eval, &all));
  EXPECT_EQ(all.family(), pb::FAMILY_POINTCLOUD);
  EXPECT_EQ(all.reference(), 12);
  EXPECT_EQ(all.generated(), 12);
  EXPECT_GE(all.chamfer().one_nna(), 0.0);
  EXPECT_LE(all.chamfer().one_nna(), 1.0);
  EXPECT_GT(all.chamfer().mmd(), 0.0);
  EXPECT_TRUE(all.has_emd());
  eval.set_split("heldout");
  eval.set_emd(false);
  pb::EvaluateResponse heldout;
  ASSERT_NO_FATAL_FAILURE(Evaluate(*stub, eval, &heldout));
  EXPECT_EQ(heldout.reference(), 3);
  EXPECT_FALSE(heldout.has_emd());

  ASSERT_TRUE(DeleteModel(*stub, "shapes-m").ok());
  EXPECT_EQ(SampleNiches(*stub, NicheRequest("shapes-m", 1, 5, 1)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(FlowTest, Gaussians) {
  auto stub = server_.Stub();
  const model::io::GaussianSet set = RandomGaussians(16, 3, 2, /*labelled=*/true);
  pb::Dataset dataset;
  ASSERT_TRUE(Upload(*stub, Header("states", pb::GAUSSIANS, 3, pb::LABEL_TYPE_DISCRETE),
                     GaussianChunks(set, 6), &dataset)
                  .ok());
  EXPECT_EQ(dataset.items(), 16);
  pb::TrainingConfig config = TinyConfig(pb::FAMILY_GAUSSIAN, 30);
  config.set_holdout_fraction(0.25);
  const pb::TrainingJob done = Train(*stub, "states", "g", config);
  ASSERT_EQ(done.state(), pb::SUCCEEDED) << done.error();
  EXPECT_EQ(done.family(), pb::FAMILY_GAUSSIAN);

  pb::SampleGaussiansRequest request;
  request.set_model("g");
  request.set_num_samples(4);
  request.set_label("a");
  request.set_steps(10);
  request.set_seed(3);
  request.set_trajectory(true);
  pb::SampleGaussiansResponse reply;
  {
    grpc::ClientContext context;
    grpc::Status s = stub->SampleGaussians(&context, request, &reply);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(reply.dim(), 3);
  ASSERT_EQ(reply.means_size(), 12);
  ASSERT_EQ(reply.covs_size(), 36);
  EXPECT_THAT(reply.labels(), ElementsAre("a", "a", "a", "a"));
  for (int g = 0; g < 4; ++g) {
    const double* s = reply.covs().data() + g * 9;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) EXPECT_EQ(s[i * 3 + j], s[j * 3 + i]);
    }
    EXPECT_TRUE(PositiveDefinite(s, 3)) << "Gaussian " << g;
  }
  EXPECT_EQ(reply.frames(), 11);
  EXPECT_EQ(reply.trajectory_means_size(), 11 * 12);
  EXPECT_EQ(reply.trajectory_covs_size(), 11 * 36);

  pb::EvaluateResponse result;
  ASSERT_NO_FATAL_FAILURE(
      Evaluate(*stub, EvaluationRequest("g", "states", "heldout", 5), &result));
  EXPECT_EQ(result.family(), pb::FAMILY_GAUSSIAN);
  EXPECT_EQ(result.reference(), 4);
  EXPECT_GT(result.bures().mmd(), 0.0);
  EXPECT_GE(result.bures().one_nna(), 0.0);
  EXPECT_GT(result.covariance_error(), 0.0);
  // A Gaussian model is not sampled as clouds.
  EXPECT_EQ(SampleNiches(*stub, NicheRequest("g", 1, 5, 1)).status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// Versions through the API: a second training adds version 2; GetModel and
// ListModels list both; requests take a version (the reply names it); a pin
// rolls back; a version is deleted alone; overwrite restarts at version 1.
TEST_F(FlowTest, ModelVersions) {
  auto stub = server_.Stub();
  ASSERT_TRUE(Upload(*stub, Header("states", pb::GAUSSIANS, 2), GaussianChunks(RandomGaussians(8, 2, 1), 8))
                  .ok());
  ASSERT_EQ(Train(*stub, "states", "g", TinyConfig(pb::FAMILY_GAUSSIAN, 3, 1)).state(), pb::SUCCEEDED);
  ASSERT_EQ(Train(*stub, "states", "g", TinyConfig(pb::FAMILY_GAUSSIAN, 4, 2)).state(), pb::SUCCEEDED);
  pb::ModelInfo info;
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, "g", &info).ok());
  EXPECT_EQ(info.version(), 2);
  EXPECT_EQ(info.serving_version(), 2);
  EXPECT_EQ(info.pinned_version(), 0);
  ASSERT_EQ(info.versions_size(), 2);
  EXPECT_EQ(info.versions(0).version(), 1);
  EXPECT_EQ(info.versions(0).summary().steps(), 3);
  EXPECT_EQ(info.versions(1).summary().steps(), 4);
  EXPECT_EQ(info.versions(1).dataset(), "states");
  EXPECT_GT(info.versions(0).size_bytes(), 0);
  EXPECT_GT(info.versions(0).created_unix_ms(), 0);
  pb::GetModelRequest first;
  first.set_name("g");
  first.set_version(1);
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::GetModel, first, &info).ok());
  EXPECT_EQ(info.version(), 1);
  EXPECT_EQ(info.summary().steps(), 3);
  pb::ListModelsResponse list;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::ListModels, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).versions_size(), 2);

  // The same seed on two versions: different weights, different samples.
  const auto sample = [&](int64_t version) {
    pb::SampleGaussiansRequest r;
    r.set_model("g");
    r.set_num_samples(2);
    r.set_steps(4);
    r.set_seed(5);
    r.set_version(version);
    pb::SampleGaussiansResponse reply;
    grpc::ClientContext context;
    const grpc::Status s = stub->SampleGaussians(&context, r, &reply);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return reply;
  };
  const pb::SampleGaussiansResponse v1 = sample(1);
  const pb::SampleGaussiansResponse serving = sample(0);
  EXPECT_EQ(v1.version(), 1);
  EXPECT_EQ(serving.version(), 2);
  EXPECT_NE(std::vector<double>(v1.means().begin(), v1.means().end()),
            std::vector<double>(serving.means().begin(), serving.means().end()));

  // Rollback: pin version 1; requests without a version get it.
  pb::UpdateModelRequest pin;
  pin.set_name("g");
  pin.set_serving_version(1);
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::UpdateModel, pin, &info).ok());
  EXPECT_EQ(info.serving_version(), 1);
  EXPECT_EQ(info.pinned_version(), 1);
  const pb::SampleGaussiansResponse pinned = sample(0);
  EXPECT_EQ(pinned.version(), 1);
  EXPECT_EQ(std::vector<double>(pinned.means().begin(), pinned.means().end()),
            std::vector<double>(v1.means().begin(), v1.means().end()));
  pb::EvaluateRequest evaluation = EvaluationRequest("g", "states", "all", 3);
  evaluation.set_version(2);
  pb::EvaluateResponse evaluated;
  ASSERT_NO_FATAL_FAILURE(Evaluate(*stub, evaluation, &evaluated));
  EXPECT_EQ(evaluated.version(), 2);

  // Deleting the pinned version is refused; another one goes alone.
  pb::DeleteModelRequest drop;
  drop.set_name("g");
  drop.set_version(1);
  pb::DeleteModelResponse dropped;
  EXPECT_EQ(Call(*stub, &pb::WfmService::Stub::DeleteModel, drop, &dropped).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  drop.set_version(2);
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::DeleteModel, drop, &dropped).ok());
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, "g", &info).ok());
  ASSERT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.versions(0).version(), 1);

  // Overwrite: every version goes, the new model is version 1, unpinned.
  ASSERT_EQ(Train(*stub, "states", "g", TinyConfig(pb::FAMILY_GAUSSIAN, 5, 3)).state(), pb::SUCCEEDED);
  pb::StartTrainingRequest overwrite;
  overwrite.set_dataset("states");
  overwrite.set_model("g");
  *overwrite.mutable_config() = TinyConfig(pb::FAMILY_GAUSSIAN, 6, 4);
  overwrite.set_overwrite(true);
  pb::TrainingJob job;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::StartTraining, overwrite, &job).ok());
  std::vector<pb::TrainingJob> updates = Watch(*stub, job.id());
  ASSERT_FALSE(updates.empty());
  ASSERT_EQ(updates.back().state(), pb::SUCCEEDED) << updates.back().error();
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, "g", &info).ok());
  ASSERT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.version(), 1);
  EXPECT_EQ(info.pinned_version(), 0);
  EXPECT_EQ(info.summary().steps(), 6);
}

// GAUSSIANS carry condition vectors with their encoding; the Gaussian model
// trained on them learns the null condition (guidance 2) and samples guided.
TEST_F(FlowTest, GaussiansWithConditionsAndGuidance) {
  auto stub = server_.Stub();
  model::io::GaussianSet set = RandomGaussians(12, 2, 4);
  std::vector<float> conditions;
  for (int i = 0; i < 12; ++i) {
    for (float v : {i % 2 == 0 ? 1.0f : 0.0f, i % 2 == 0 ? 0.0f : 1.0f, 20.0f + i}) {
      conditions.push_back(v);
    }
  }
  set.labels = model::io::Labels::FromContinuous(conditions, 3);
  pb::DatasetHeader header = Header("cstates", pb::GAUSSIANS, 2, pb::LABEL_TYPE_CONTINUOUS);
  header.set_condition_dim(3);
  pb::ConditionColumn* type = header.add_condition_columns();
  type->set_name("type");
  type->set_kind(pb::CONDITION_KIND_CATEGORICAL);
  type->add_categories("T");
  type->add_categories("B");
  type->set_width(2);
  pb::ConditionColumn* age = header.add_condition_columns();
  age->set_name("age");
  age->set_kind(pb::CONDITION_KIND_NUMERIC);
  age->set_width(1);
  age->set_offset(2);
  pb::Dataset dataset;
  ASSERT_TRUE(Upload(*stub, header, GaussianChunks(set, 5), &dataset).ok());
  EXPECT_EQ(dataset.items(), 12);
  EXPECT_EQ(dataset.label_type(), pb::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(dataset.condition_dim(), 3);
  ASSERT_EQ(dataset.condition_columns_size(), 2);
  EXPECT_EQ(dataset.condition_columns(1).name(), "age");

  pb::TrainingConfig config = TinyConfig(pb::FAMILY_GAUSSIAN, 5);
  config.mutable_gaussian()->set_guidance(2.0);
  config.mutable_gaussian()->set_p_uncond(0.3);
  const pb::TrainingJob done = Train(*stub, "cstates", "cg", config);
  ASSERT_EQ(done.state(), pb::SUCCEEDED) << done.error();
  pb::ModelInfo info;
  ASSERT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, "cg", &info).ok());
  EXPECT_EQ(info.label_type(), pb::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(info.condition_dim(), 3);
  EXPECT_EQ(info.default_guidance(), 2.0);
  EXPECT_EQ(info.config().gaussian().guidance(), 2.0);
  EXPECT_EQ(info.config().gaussian().p_uncond(), 0.3);
  ASSERT_EQ(info.condition_columns_size(), 2);
  EXPECT_EQ(info.condition_columns(0).categories(1), "B");

  const auto sample = [&](std::optional<double> guidance) {
    pb::SampleGaussiansRequest request;
    request.set_model("cg");
    request.set_num_samples(3);
    request.set_steps(4);
    request.set_seed(5);
    for (float v : {0.0f, 1.0f, 25.0f}) request.add_condition(v);
    if (guidance) request.set_guidance(*guidance);
    pb::SampleGaussiansResponse reply;
    const grpc::Status s = Call(*stub, &pb::WfmService::Stub::SampleGaussians, request, &reply);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return reply;
  };
  const pb::SampleGaussiansResponse by_default = sample(std::nullopt), two = sample(2.0),
                                    one = sample(1.0), zero = sample(0.0);
  ASSERT_EQ(two.means_size(), 6);
  EXPECT_THAT(two.conditions(), ElementsAre(0, 1, 25, 0, 1, 25, 0, 1, 25));
  const auto means = [](const pb::SampleGaussiansResponse& r) {
    return std::vector<double>(r.means().begin(), r.means().end());
  };
  EXPECT_EQ(means(by_default), means(two));
  EXPECT_NE(means(two), means(one));
  EXPECT_NE(means(one), means(zero));
}

TEST_F(FlowTest, SpatialCellsAsNichesAndAsCellStates) {
  auto stub = server_.Stub();
  const Cells cells = RandomCells(2, 20, 3, 5);
  pb::Dataset dataset;
  ASSERT_TRUE(Upload(*stub, Header("tissue", pb::SPATIAL_CELLS, 3, pb::LABEL_TYPE_DISCRETE),
                     CellChunks(cells, 15), &dataset)
                  .ok());
  EXPECT_EQ(dataset.items(), 40);
  EXPECT_EQ(dataset.samples(), 2);
  EXPECT_THAT(dataset.label_names(), ElementsAre("left", "right"));

  pb::TrainingConfig config = TinyConfig(pb::FAMILY_POINTCLOUD, 20);
  config.set_niche_size(4);
  config.set_holdout_fraction(0.2);
  const pb::TrainingJob niches_job = Train(*stub, "tissue", "niche-m", config);
  ASSERT_EQ(niches_job.state(), pb::SUCCEEDED) << niches_job.error();
  EXPECT_EQ(niches_job.config().niche_size(), 4);
  pb::SampleNichesRequest request = NicheRequest("niche-m", 3, 4, 1);
  request.set_label("left");
  Niches niches = SampleNiches(*stub, request);
  ASSERT_TRUE(niches.status.ok()) << niches.status.error_message();
  EXPECT_EQ(niches.points.size(), 3u * 4 * 3);
  EXPECT_THAT(niches.labels, Each(std::string("left")));
  pb::EvaluateRequest eval = EvaluationRequest("niche-m", "tissue", "heldout", 5);
  eval.set_emd(false);
  pb::EvaluateResponse result;
  ASSERT_NO_FATAL_FAILURE(Evaluate(*stub, eval, &result));
  EXPECT_EQ(result.reference(), 8);  // 20% of 40 cells, each a niche

  pb::TrainingConfig gconfig = TinyConfig(pb::FAMILY_GAUSSIAN, 20);
  gconfig.set_niche_size(5);
  const pb::TrainingJob states_job = Train(*stub, "tissue", "state-m", gconfig);
  ASSERT_EQ(states_job.state(), pb::SUCCEEDED) << states_job.error();
  pb::SampleGaussiansRequest g;
  g.set_model("state-m");
  g.set_num_samples(2);
  g.set_steps(5);
  pb::SampleGaussiansResponse reply;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->SampleGaussians(&context, g, &reply).ok());
  EXPECT_EQ(reply.dim(), 3);
  EXPECT_EQ(reply.labels_size(), 2);
}

// Load on demand through the API (--max-loaded-models 1): every model is
// listed, the one not in memory says so; a request loads it (the other is
// unloaded, least recently used); UpdateModel loads and unloads; the
// results do not depend on where the weights were; the metrics count it.
TEST(ResidencyFlowTest, ModelsLoadOnDemandAndOnRequest) {
  TestServer server([](server::ServerOptions& o) { o.max_loaded_models = 1; });
  ASSERT_TRUE(server.Start().ok());
  for (uint64_t seed : {1, 2}) {
    absl::StatusOr<model::checkpoint::Checkpoint> ckpt =
        TrainedGaussianCheckpoint(RandomGaussians(8, 2, seed), 3, seed);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ASSERT_TRUE(server.app().models().Publish(seed == 1 ? "a" : "b", *ckpt, false).ok());
  }
  auto stub = server.Stub();
  const auto loaded = [&](const std::string& name) {
    pb::ModelInfo info;
    EXPECT_TRUE(CallNamed(*stub, &pb::WfmService::Stub::GetModel, name, &info).ok());
    EXPECT_EQ(info.versions_size(), 1);
    EXPECT_GT(info.memory_bytes(), 0);
    EXPECT_EQ(info.versions(0).memory_bytes(), info.memory_bytes());
    EXPECT_EQ(info.versions(0).loaded(), info.loaded());
    return info.loaded();
  };
  const auto sample = [&](const std::string& name) {
    pb::SampleGaussiansRequest r;
    r.set_model(name);
    r.set_num_samples(2);
    r.set_steps(3);
    r.set_seed(5);
    pb::SampleGaussiansResponse reply;
    grpc::ClientContext context;
    const grpc::Status s = stub->SampleGaussians(&context, r, &reply);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return std::vector<double>(reply.means().begin(), reply.means().end());
  };
  const auto residency = [&](const std::string& name, pb::ModelResidency action) {
    pb::UpdateModelRequest r;
    r.set_name(name);
    r.set_residency(action);
    pb::ModelInfo info;
    EXPECT_TRUE(Call(*stub, &pb::WfmService::Stub::UpdateModel, r, &info).ok());
    return info.loaded();
  };
  // b was published last; a went out of memory for it.
  EXPECT_FALSE(loaded("a"));
  EXPECT_TRUE(loaded("b"));
  pb::ListModelsResponse list;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::ListModels, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  const std::vector<double> first = sample("a");
  EXPECT_TRUE(loaded("a"));
  EXPECT_FALSE(loaded("b"));
  EXPECT_TRUE(residency("b", pb::MODEL_RESIDENCY_LOAD));
  EXPECT_FALSE(loaded("a"));
  EXPECT_FALSE(residency("b", pb::MODEL_RESIDENCY_UNLOAD));
  EXPECT_EQ(sample("a"), first);
  const std::string metrics = server.Metrics();
  EXPECT_EQ(MetricValue(metrics, "wfm_models_loaded"), 2);
  EXPECT_EQ(MetricValue(metrics, "wfm_model_versions_resident"), 1);
  EXPECT_EQ(MetricValue(metrics, "wfm_model_loads_total"), 3);
  EXPECT_EQ(MetricValue(metrics, "wfm_model_unloads_total", {{"reason", "lru"}}), 3);
  EXPECT_EQ(MetricValue(metrics, "wfm_model_unloads_total", {{"reason", "explicit"}}), 1);
  EXPECT_EQ(MetricValue(metrics, "wfm_model_unloads_total", {{"reason", "budget"}}), 0);
}

TEST(ResidencyFlowTest, BadLimitsAreRefusedNamingTheFlag) {
  server::ServerOptions o;
  o.max_loaded_models = -1;
  absl::Status refused = server::ValidateServerOptions(o);
  EXPECT_TRUE(absl::IsInvalidArgument(refused));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--max-loaded-models: must be >= 0"));
  o.max_loaded_models = 0;
  for (int64_t mib : {int64_t{-3}, server::kMaxLoadedModelMib + 1}) {
    o.max_loaded_model_mib = mib;
    refused = server::ValidateServerOptions(o);
    EXPECT_TRUE(absl::IsInvalidArgument(refused));
    EXPECT_THAT(std::string(refused.message()), HasSubstr("--max-loaded-model-mib: must be 0"));
  }
  o.max_loaded_model_mib = 512;
  EXPECT_TRUE(server::ValidateServerOptions(o).ok());
}

}  // namespace
}  // namespace wfm::testing
