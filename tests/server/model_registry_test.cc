#include "server/model_registry.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "model/train/gaussian_trainer.h"
#include "model/train/pointcloud_trainer.h"
#include "server/metrics.h"
#include "tests/testing/http.h"
#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

model::checkpoint::Checkpoint PointCloudCheckpoint(uint64_t seed) {
  auto trainer = model::PointCloudTrainer::Create(testing::Ellipses(6, seed, true),
                                                  testing::TinyPointCloudConfig(3, seed), "shapes");
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_TRUE((*trainer)->Train().ok());
  auto ckpt = (*trainer)->MakeCheckpoint(false);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  TrainingOrigin origin;
  origin.dataset = "shapes";
  origin.dataset_items = 6;
  origin.holdout_fraction = 0.3;
  origin.heldout = {1, 4};
  ckpt->metadata["server"] = origin.ToJson();
  return *ckpt;
}

model::checkpoint::Checkpoint GaussianCheckpoint() {
  auto trainer = model::GaussianTrainer::Create(testing::RandomGaussians(8, 2, 3),
                                                testing::TinyGaussianConfig(3), "g");
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_TRUE((*trainer)->Train().ok());
  return *(*trainer)->MakeCheckpoint(false);
}

std::unique_ptr<ModelRegistry> Open(const std::string& root) {
  auto registry = ModelRegistry::Open(root);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return std::move(registry).value();
}

TEST(ModelRegistryTest, PublishesServesAndReloads) {
  testing::TempDir dir;
  const std::string root = dir.path() + "/models";
  {
    auto registry = Open(root);
    auto published = registry->Publish("shapes-v1", PointCloudCheckpoint(1), false);
    ASSERT_TRUE(published.ok()) << published.status();
    const ModelInfo& info = (*published)->info;
    EXPECT_EQ(info.name, "shapes-v1");
    EXPECT_EQ(info.family, model::Family::kPointCloud);
    EXPECT_EQ(info.dim, 2);
    EXPECT_EQ(info.labels.kind, model::LabelSpace::Kind::kDiscrete);
    EXPECT_THAT(info.labels.names, ElementsAre("round", "wide"));
    EXPECT_GT(info.parameters, 100);
    EXPECT_EQ(info.size_bytes, static_cast<int64_t>(fs::file_size(root + "/shapes-v1/model.wfm")));
    EXPECT_EQ(info.summary.steps, 3);
    EXPECT_EQ(info.summary.dataset, "shapes");
    EXPECT_THAT(info.origin.heldout, ElementsAre(1, 4));
    ASSERT_TRUE(info.pointcloud_config.has_value());
    EXPECT_EQ(info.pointcloud_config->network.width, 16);
    EXPECT_GT(info.created_unix_ms, 0);
    ASSERT_TRUE(registry->Publish("g", GaussianCheckpoint(), false).ok());
  }
  auto registry = Open(root);
  ASSERT_EQ(registry->size(), 2);
  auto shapes = registry->Get("shapes-v1");
  ASSERT_TRUE(shapes.ok());
  EXPECT_NE((*shapes)->pointcloud, nullptr);
  EXPECT_THAT((*shapes)->info.origin.heldout, ElementsAre(1, 4));
  auto g = registry->Get("g");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->info.family, model::Family::kGaussian);
  EXPECT_NE((*g)->gaussian, nullptr);
  EXPECT_EQ((*g)->pointcloud, nullptr);
}

TEST(ModelRegistryTest, ReadersKeepTheirModelAcrossReplacementAndDelete) {
  testing::TempDir dir;
  auto registry = Open(dir.path());
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(1), false).ok());
  auto old = registry->Get("m");
  ASSERT_TRUE(old.ok());
  absl::Status exists = registry->Publish("m", PointCloudCheckpoint(2), false).status();
  EXPECT_TRUE(absl::IsAlreadyExists(exists)) << exists;
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(2), true).ok());
  auto fresh = registry->Get("m");
  EXPECT_NE(fresh->get(), old->get());
  // The old model still samples.
  model::CloudSampleRequest request;
  request.points = 5;
  request.steps = 2;
  EXPECT_TRUE((*old)->pointcloud->Sample({request}).ok());
  ASSERT_TRUE(registry->Delete("m").ok());
  EXPECT_TRUE(absl::IsNotFound(registry->Get("m").status()));
  EXPECT_TRUE(absl::IsNotFound(registry->Delete("m")));
  EXPECT_TRUE((*fresh)->pointcloud->Sample({request}).ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/m"));
}

TEST(ModelRegistryTest, NeverPublishesABadCheckpoint) {
  testing::TempDir dir;
  auto registry = Open(dir.path());
  model::checkpoint::Checkpoint bad = PointCloudCheckpoint(1);
  bad.tensors.resize(1);  // parameters missing
  EXPECT_FALSE(registry->Publish("m", bad, false).ok());
  EXPECT_FALSE(registry->Contains("m"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
  EXPECT_TRUE(absl::IsInvalidArgument(registry->Publish("a/b", PointCloudCheckpoint(1), false).status()));
}

TEST(ModelRegistryTest, SkipsCorruptFolders) {
  testing::TempDir dir;
  {
    auto registry = Open(dir.path());
    ASSERT_TRUE(registry->Publish("good", PointCloudCheckpoint(1), false).ok());
    ASSERT_TRUE(registry->Publish("flipped", PointCloudCheckpoint(2), false).ok());
  }
  {
    std::fstream f(dir.path() + "/flipped/model.wfm", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\x7f", 1);
  }
  fs::create_directories(dir.path() + "/empty");
  fs::create_directories(dir.path() + "/garbage");
  std::ofstream(dir.path() + "/garbage/model.wfm") << "not a checkpoint";
  fs::create_directories(dir.path() + "/bad name");
  fs::copy_file(dir.path() + "/good/model.wfm", dir.path() + "/bad name/model.wfm");
  auto registry = Open(dir.path());
  const auto models = registry->List();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]->info.name, "good");
}

// Another process (a replica, wfm-train) publishing into the same folder.
TEST(ModelRegistryTest, RescanFollowsWhatOthersPublishReplaceAndDelete) {
  testing::TempDir dir;
  auto ours = Open(dir.path());
  auto theirs = Open(dir.path());
  ASSERT_TRUE(theirs->Publish("a", PointCloudCheckpoint(1), false).ok());
  EXPECT_FALSE(ours->Contains("a"));
  ModelRegistry::RescanResult r = ours->Rescan();
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.replaced, 0);
  ASSERT_TRUE(ours->Contains("a"));
  auto before = ours->Get("a");
  // Unchanged files are not reloaded.
  r = ours->Rescan();
  EXPECT_EQ(r.added + r.replaced + r.removed, 0);
  EXPECT_EQ(ours->Get("a")->get(), before->get());

  ASSERT_TRUE(theirs->Publish("a", GaussianCheckpoint(), true).ok());
  r = ours->Rescan();
  EXPECT_EQ(r.replaced, 1);
  EXPECT_EQ((*ours->Get("a"))->info.family, model::Family::kGaussian);
  EXPECT_EQ((*before)->info.family, model::Family::kPointCloud);  // readers keep theirs

  // A corrupt file is skipped (and not retried while unchanged); the next
  // good version is picked up.
  fs::create_directories(dir.path() + "/b");
  std::ofstream(dir.path() + "/b/model.wfm") << "half a checkpoint";
  r = ours->Rescan();
  EXPECT_EQ(r.added, 0);
  EXPECT_FALSE(ours->Contains("b"));
  fs::remove_all(dir.path() + "/b");
  ASSERT_TRUE(theirs->Publish("b", PointCloudCheckpoint(2), false).ok());
  EXPECT_EQ(ours->Rescan().added, 1);

  ASSERT_TRUE(theirs->Delete("a").ok());
  r = ours->Rescan();
  EXPECT_EQ(r.removed, 1);
  EXPECT_FALSE(ours->Contains("a"));
  EXPECT_TRUE(ours->Contains("b"));
  EXPECT_EQ(ours->size(), 1);
}

// The models found at start-up, and those published, rescanned or deleted
// later, are reported to the metrics: their series exist at 0 from the start
// and go with the model.
TEST(ModelRegistryTest, ServedModelsHaveTheirMetricSeriesFromTheStart) {
  testing::TempDir dir;
  ASSERT_TRUE(Open(dir.path())->Publish("shapes", PointCloudCheckpoint(1), false).ok());
  Metrics metrics("0");
  auto registry = ModelRegistry::Open(dir.path(), &metrics);
  ASSERT_TRUE(registry.ok()) << registry.status();
  std::string text = metrics.Text();
  EXPECT_EQ(testing::MetricValue(text, "wfm_generated_samples_total",
                                 {{"model", "shapes"}, {"family", "pointcloud"}}),
            0);
  EXPECT_EQ(testing::MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}), 0);
  ASSERT_TRUE((*registry)->Publish("cells", GaussianCheckpoint(), false).ok());
  ASSERT_TRUE((*registry)->Delete("shapes").ok());
  text = metrics.Text();
  EXPECT_EQ(testing::MetricValue(text, "wfm_generated_samples_total",
                                 {{"model", "cells"}, {"family", "gaussian"}}),
            0);
  EXPECT_FALSE(testing::MetricValue(text, "wfm_generated_samples_total", {{"model", "shapes"}})
                   .has_value());
  EXPECT_FALSE(
      testing::MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}).has_value());
  EXPECT_EQ(testing::MetricValue(text, "wfm_models_loaded"), 1);
}

// Valid names may start with '.'; only ".~" folders are temporary.
TEST(ModelRegistryTest, DotNamesSurviveRestartsAndRescans) {
  testing::TempDir dir;
  ASSERT_TRUE(Open(dir.path())->Publish(".m", PointCloudCheckpoint(1), false).ok());
  ASSERT_TRUE(Open(dir.path())->Publish("...", GaussianCheckpoint(), false).ok());
  auto registry = Open(dir.path());
  EXPECT_TRUE(registry->Contains(".m"));
  EXPECT_TRUE(registry->Contains("..."));
  ModelRegistry::RescanResult r = registry->Rescan();
  EXPECT_EQ(r.added + r.replaced + r.removed, 0);
  EXPECT_EQ(registry->size(), 2);
}

TEST(ModelRegistryTest, BackgroundRescanPicksUpANewModel) {
  testing::TempDir dir;
  auto ours = Open(dir.path());
  ours->StartRescanning(absl::Milliseconds(20));
  ASSERT_TRUE(Open(dir.path())->Publish("late", PointCloudCheckpoint(3), false).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!ours->Contains("late") && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(ours->Contains("late"));
}

}  // namespace
}  // namespace wfm::server
