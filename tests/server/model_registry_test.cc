#include "server/model_registry.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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
using ::wfm::testing::MetricValue;

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
    EXPECT_EQ(info.size_bytes, static_cast<int64_t>(fs::file_size(root + "/shapes-v1/1/model.wfm")));
    EXPECT_EQ(info.summary.steps, 3);
    EXPECT_EQ(info.summary.dataset, "shapes");
    EXPECT_THAT(info.origin.heldout, ElementsAre(1, 4));
    ASSERT_TRUE(info.pointcloud_config.has_value());
    EXPECT_EQ(info.pointcloud_config->network.width, 16);
    EXPECT_GT(info.created_unix_ms, 0);
    EXPECT_EQ(info.version, 1);
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
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(2), false).ok());
  auto second = registry->Get("m");
  EXPECT_EQ((*second)->info.version, 2);
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(2), true).ok());
  auto fresh = registry->Get("m");
  EXPECT_NE(fresh->get(), old->get());
  EXPECT_EQ((*fresh)->info.version, 1);
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
    std::fstream f(dir.path() + "/flipped/1/model.wfm", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\x7f", 1);
  }
  fs::create_directories(dir.path() + "/empty");
  fs::create_directories(dir.path() + "/garbage");
  std::ofstream(dir.path() + "/garbage/model.wfm") << "not a checkpoint";
  fs::create_directories(dir.path() + "/bad name");
  fs::copy_file(dir.path() + "/good/1/model.wfm", dir.path() + "/bad name/model.wfm");
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
                                 {{"model", "shapes"}, {"family", "pointcloud"}, {"version", "1"}}),
            0);
  EXPECT_EQ(testing::MetricValue(text, "wfm_sampling_queue_depth", {{"model", "shapes"}}), 0);
  // Every loaded version has its own throughput series.
  ASSERT_TRUE((*registry)->Publish("shapes", PointCloudCheckpoint(2), false).ok());
  text = metrics.Text();
  EXPECT_EQ(testing::MetricValue(text, "wfm_generated_samples_total",
                                 {{"model", "shapes"}, {"version", "2"}}),
            0);
  ASSERT_TRUE((*registry)->DeleteVersion("shapes", 1).ok());
  text = metrics.Text();
  EXPECT_FALSE(testing::MetricValue(text, "wfm_generated_samples_total",
                                    {{"model", "shapes"}, {"version", "1"}})
                   .has_value());
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

std::vector<int64_t> Versions(const ModelRegistry& registry, const std::string& name) {
  absl::StatusOr<ModelVersions> model = registry.Describe(name);
  EXPECT_TRUE(model.ok()) << model.status();
  std::vector<int64_t> out;
  if (model.ok()) {
    for (const auto& v : model->versions) out.push_back(v->info.version);
  }
  return out;
}

int64_t ServingVersion(const ModelRegistry& registry, const std::string& name) {
  absl::StatusOr<std::shared_ptr<const Servable>> model = registry.Get(name);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? (*model)->info.version : -1;
}

// Training into a name adds the next version; the latest serves unless one
// is pinned; a pin survives restarts; the pinned and the only version cannot
// be deleted.
TEST(ModelRegistryTest, VersionsPublishPinRollbackAndDelete) {
  testing::TempDir dir;
  const model::checkpoint::Checkpoint a = PointCloudCheckpoint(1);
  const model::checkpoint::Checkpoint b = PointCloudCheckpoint(2);
  {
    auto registry = Open(dir.path());
    for (int i = 1; i <= 3; ++i) {
      auto published = registry->Publish("m", i == 2 ? b : a, false);
      ASSERT_TRUE(published.ok()) << published.status();
      EXPECT_EQ((*published)->info.version, i);
      EXPECT_TRUE(fs::exists(dir.path() + "/m/" + std::to_string(i) + "/model.wfm"));
    }
    EXPECT_THAT(Versions(*registry, "m"), ElementsAre(1, 2, 3));
    EXPECT_EQ(ServingVersion(*registry, "m"), 3);
    EXPECT_EQ(registry->size(), 1);
    // Each version is its own model: version 2 was trained with seed 2.
    auto two = registry->Get("m", 2);
    ASSERT_TRUE(two.ok());
    EXPECT_EQ((*two)->info.version, 2);
    auto ckpt = registry->ReadCheckpoint("m", 2);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    EXPECT_EQ(ckpt->metadata.value("created_unix_ms", int64_t{0}),
              b.metadata.value("created_unix_ms", int64_t{0}));
    EXPECT_TRUE(absl::IsNotFound(registry->Get("m", 4).status()));
    EXPECT_TRUE(absl::IsNotFound(registry->Describe("m", 4).status()));

    // Rollback: pin 2; a new version does not take over.
    auto pinned = registry->Update("m", 2, std::nullopt);
    ASSERT_TRUE(pinned.ok()) << pinned.status();
    EXPECT_EQ(pinned->serving_version, 2);
    EXPECT_EQ(pinned->pinned_version, 2);
    ASSERT_TRUE(registry->Publish("m", a, false).ok());
    EXPECT_EQ(ServingVersion(*registry, "m"), 2);
    EXPECT_TRUE(absl::IsNotFound(registry->Update("m", 9, std::nullopt).status()));
    const absl::Status pinned_delete = registry->DeleteVersion("m", 2);
    EXPECT_TRUE(absl::IsFailedPrecondition(pinned_delete)) << pinned_delete;
    EXPECT_THAT(std::string(pinned_delete.message()), HasSubstr("pinned"));
    ASSERT_TRUE(registry->DeleteVersion("m", 3).ok());
    EXPECT_FALSE(fs::exists(dir.path() + "/m/3"));
    EXPECT_TRUE(absl::IsNotFound(registry->DeleteVersion("m", 3)));
    EXPECT_TRUE(absl::IsNotFound(registry->DeleteVersion("ghost", 1)));
  }
  {
    // The pin is on disk.
    auto registry = Open(dir.path());
    EXPECT_THAT(Versions(*registry, "m"), ElementsAre(1, 2, 4));
    EXPECT_EQ(ServingVersion(*registry, "m"), 2);
    ASSERT_TRUE(registry->Update("m", 0, std::nullopt).ok());  // unpin
    EXPECT_EQ(ServingVersion(*registry, "m"), 4);
    EXPECT_FALSE(fs::exists(dir.path() + "/m/serving.json"));
    ASSERT_TRUE(registry->DeleteVersion("m", 1).ok());
    ASSERT_TRUE(registry->DeleteVersion("m", 4).ok());
    EXPECT_EQ(ServingVersion(*registry, "m"), 2);
    const absl::Status only = registry->DeleteVersion("m", 2);
    EXPECT_TRUE(absl::IsFailedPrecondition(only)) << only;
    // The next version is above every stored one.
    auto next = registry->Publish("m", a, false);
    ASSERT_TRUE(next.ok());
    EXPECT_EQ((*next)->info.version, 3);
    ASSERT_TRUE(registry->Delete("m").ok());
    EXPECT_FALSE(fs::exists(dir.path() + "/m"));
  }
}

// Overwrite replaces the whole lineage: every version and the pin go, the
// checkpoint becomes version 1.
TEST(ModelRegistryTest, OverwriteReplacesEveryVersionWithVersionOne) {
  testing::TempDir dir;
  auto registry = Open(dir.path());
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(1), false).ok());
  ASSERT_TRUE(registry->Publish("m", PointCloudCheckpoint(2), false).ok());
  ASSERT_TRUE(registry->Update("m", 1, 5).ok());
  auto replaced = registry->Publish("m", GaussianCheckpoint(), true);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ((*replaced)->info.version, 1);
  EXPECT_THAT(Versions(*registry, "m"), ElementsAre(1));
  auto model = registry->Describe("m");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->pinned_version, 0);
  EXPECT_EQ(model->keep_versions, 0);
  EXPECT_EQ(model->described->info.family, model::Family::kGaussian);
  EXPECT_FALSE(fs::exists(dir.path() + "/m/2"));
  EXPECT_FALSE(fs::exists(dir.path() + "/m/serving.json"));
  EXPECT_THAT(Versions(*Open(dir.path()), "m"), ElementsAre(1));
}

// Retention: the latest K versions and the pinned one stay; the server's
// default applies to models without their own.
TEST(ModelRegistryTest, RetentionKeepsTheLatestVersionsAndThePinnedOne) {
  testing::TempDir dir;
  auto registry = ModelRegistry::Open(dir.path(), nullptr, ModelRegistryOptions{2});
  ASSERT_TRUE(registry.ok()) << registry.status();
  ModelRegistry& r = **registry;
  const model::checkpoint::Checkpoint ckpt = PointCloudCheckpoint(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Publish("m", ckpt, false).ok());
  EXPECT_THAT(Versions(r, "m"), ElementsAre(2, 3));
  EXPECT_FALSE(fs::exists(dir.path() + "/m/1"));
  ASSERT_TRUE(r.Update("m", 2, std::nullopt).ok());
  ASSERT_TRUE(r.Publish("m", ckpt, false).ok());
  ASSERT_TRUE(r.Publish("m", ckpt, false).ok());
  EXPECT_THAT(Versions(r, "m"), ElementsAre(2, 4, 5));
  // The model's own retention, applied at once.
  auto one = r.Update("m", std::nullopt, 1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->keep_versions, 1);
  EXPECT_THAT(Versions(r, "m"), ElementsAre(2, 5));
  EXPECT_EQ(ServingVersion(r, "m"), 2);
  EXPECT_THAT(repository::VersionsBeyondRetention({1, 2, 3, 4}, 2, 0), ElementsAre(1, 2));
  EXPECT_THAT(repository::VersionsBeyondRetention({1, 2, 3, 4}, 2, 1), ElementsAre(2));
  EXPECT_THAT(repository::VersionsBeyondRetention({1, 2}, 3, 0), ElementsAre());
}

// A data folder of the first layout (<name>/model.wfm) is served in place
// as version 1; new versions go next to it.
TEST(ModelRegistryTest, TheFirstLayoutIsVersionOne) {
  testing::TempDir dir;
  fs::create_directories(dir.path() + "/old");
  ASSERT_TRUE(model::checkpoint::Write(dir.path() + "/old/model.wfm", PointCloudCheckpoint(1)).ok());
  auto registry = Open(dir.path());
  EXPECT_THAT(Versions(*registry, "old"), ElementsAre(1));
  EXPECT_EQ(ServingVersion(*registry, "old"), 1);
  ASSERT_TRUE(registry->ReadCheckpoint("old", 1).ok());
  auto two = registry->Publish("old", PointCloudCheckpoint(2), false);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ((*two)->info.version, 2);
  EXPECT_TRUE(fs::exists(dir.path() + "/old/2/model.wfm"));
  EXPECT_TRUE(fs::exists(dir.path() + "/old/model.wfm"));  // never moved
  EXPECT_THAT(Versions(*Open(dir.path()), "old"), ElementsAre(1, 2));
  ASSERT_TRUE(registry->DeleteVersion("old", 1).ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/old/model.wfm"));
  EXPECT_THAT(Versions(*Open(dir.path()), "old"), ElementsAre(2));
}

// A publish interrupted by a crash leaves a staging folder: never visible
// as a version, removed at the next start.
TEST(ModelRegistryTest, AHalfWrittenVersionIsInvisibleAndCleanedUp) {
  testing::TempDir dir;
  auto watcher = Open(dir.path());
  ASSERT_TRUE(watcher->Publish("m", PointCloudCheckpoint(1), false).ok());
  const std::string half = dir.path() + "/m/.~staging-version-0123456789abcdef";
  fs::create_directories(half);
  std::ofstream(half + "/model.wfm") << "half a checkpoint";
  const std::string fresh = dir.path() + "/.~staging-n-0123456789abcdef";
  fs::create_directories(fresh + "/1");
  std::ofstream(fresh + "/1/model.wfm") << "half";
  fs::create_directories(dir.path() + "/m/07");  // not a version name
  // A running server's rescan sees nothing new (and leaves another
  // writer's staging folder alone); the next start removes them.
  ModelRegistry::RescanResult r = watcher->Rescan();
  EXPECT_EQ(r.added + r.replaced + r.removed, 0);
  EXPECT_TRUE(fs::exists(half));
  auto registry = Open(dir.path());
  EXPECT_THAT(Versions(*registry, "m"), ElementsAre(1));
  EXPECT_EQ(registry->size(), 1);
  EXPECT_FALSE(fs::exists(half));
  EXPECT_FALSE(fs::exists(fresh));
  auto next = registry->Publish("m", PointCloudCheckpoint(2), false);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ((*next)->info.version, 2);
}

// Another server on the same folder: its new versions and pins are seen at
// the next rescan.
TEST(ModelRegistryTest, RescanSeesAnotherWritersVersionsAndPin) {
  testing::TempDir dir;
  auto ours = Open(dir.path());
  auto theirs = Open(dir.path());
  ASSERT_TRUE(theirs->Publish("m", PointCloudCheckpoint(1), false).ok());
  EXPECT_EQ(ours->Rescan().added, 1);
  auto first = ours->Get("m");
  ASSERT_TRUE(theirs->Publish("m", PointCloudCheckpoint(2), false).ok());
  ModelRegistry::RescanResult r = ours->Rescan();
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.replaced + r.removed, 0);
  EXPECT_EQ(ServingVersion(*ours, "m"), 2);
  EXPECT_EQ(ours->Get("m", 1)->get(), first->get());  // unchanged, not reloaded
  ASSERT_TRUE(theirs->Update("m", 1, std::nullopt).ok());
  ours->Rescan();
  EXPECT_EQ(ServingVersion(*ours, "m"), 1);
  ASSERT_TRUE(theirs->Update("m", 0, std::nullopt).ok());
  ASSERT_TRUE(theirs->DeleteVersion("m", 1).ok());
  EXPECT_EQ(ours->Rescan().removed, 1);
  EXPECT_THAT(Versions(*ours, "m"), ElementsAre(2));
}

// Residency: three models published into a folder, then opened with limits.
class ResidencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = Open(dir_.path());
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_TRUE(registry->Publish(name, PointCloudCheckpoint(name[0]), false).ok());
    }
    auto info = registry->Info("a");
    ASSERT_TRUE(info.ok()) << info.status();
    bytes_ = info->memory_bytes;
  }

  std::unique_ptr<ModelRegistry> OpenLimited(int64_t max_models, int64_t max_bytes) {
    ModelRegistryOptions options;
    options.max_loaded_models = max_models;
    options.max_loaded_bytes = max_bytes;
    auto registry = ModelRegistry::Open(dir_.path(), &metrics_, options);
    EXPECT_TRUE(registry.ok()) << registry.status();
    return std::move(registry).value();
  }

  static std::vector<int64_t> Loaded(const ModelRegistry& registry, const std::string& name) {
    auto model = registry.Describe(name);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? model->loaded : std::vector<int64_t>{};
  }

  // The names whose serving version is in memory.
  static std::vector<std::string> Resident(const ModelRegistry& registry) {
    std::vector<std::string> out;
    for (const ModelVersions& m : registry.ListVersions()) {
      if (m.IsLoaded(m.serving_version)) out.push_back(m.described->info.name);
    }
    return out;
  }

  static std::vector<float> Points(const Servable& servable) {
    model::CloudSampleRequest request;
    request.points = 5;
    request.steps = 2;
    request.seed = 11;
    auto clouds = servable.pointcloud->Sample({request});
    EXPECT_TRUE(clouds.ok()) << clouds.status();
    return clouds.ok() ? (*clouds)[0].points : std::vector<float>{};
  }

  testing::TempDir dir_;
  Metrics metrics_{"0"};
  int64_t bytes_ = 0;
};

TEST_F(ResidencyTest, MemoryBytesCountTheWeights) {
  // At least the float32 parameters; the packed inference copy about doubles it.
  auto registry = OpenLimited(0, 0);
  auto a = registry->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_GE(bytes_, (*a)->info.parameters * 4);
  EXPECT_EQ((*a)->info.memory_bytes, bytes_);
  // Without limits everything is in memory from the start.
  EXPECT_THAT(Resident(*registry), ElementsAre("a", "b", "c"));
  EXPECT_EQ(registry->Residency().loaded_versions, 3);
  EXPECT_EQ(registry->Residency().loaded_bytes, 3 * bytes_);
  EXPECT_EQ(registry->Residency().loads, 0);
}

TEST_F(ResidencyTest, LoadsOnFirstUseAndUnloadsTheLeastRecentlyUsed) {
  auto registry = OpenLimited(2, 0);
  // Listed with metadata, nothing in memory.
  EXPECT_EQ(registry->size(), 3);
  EXPECT_THAT(Resident(*registry), ElementsAre());
  auto info = registry->Info("b");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->memory_bytes, bytes_);
  EXPECT_EQ(MetricValue(metrics_.Text(), "wfm_model_versions_resident"), 0);
  auto a = registry->Get("a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(registry->Get("b").ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("a", "b"));
  ASSERT_TRUE(registry->Get("a").ok());  // b is now the least recently used
  ASSERT_TRUE(registry->Get("c").ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("a", "c"));
  // a stayed the same object; b loads again and evicts a (c was used later).
  EXPECT_EQ(registry->Get("a")->get(), a->get());
  ASSERT_TRUE(registry->Get("c").ok());
  ASSERT_TRUE(registry->Get("b").ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("b", "c"));
  ResidencyCounts counts = registry->Residency();
  EXPECT_EQ(counts.loads, 4);
  EXPECT_EQ(counts.unloads_lru, 2);
  EXPECT_EQ(counts.unloads_budget, 0);
  EXPECT_EQ(counts.loaded_versions, 2);
  const std::string text = metrics_.Text();
  EXPECT_EQ(MetricValue(text, "wfm_model_versions_resident"), 2);
  EXPECT_EQ(MetricValue(text, "wfm_model_resident_bytes"), 2 * bytes_);
  EXPECT_EQ(MetricValue(text, "wfm_model_loads_total"), 4);
  EXPECT_EQ(MetricValue(text, "wfm_model_unloads_total", {{"reason", "lru"}}), 2);
  EXPECT_EQ(MetricValue(text, "wfm_model_unloads_total", {{"reason", "explicit"}}), 0);
  // The evicted a, still held here, samples as the reloaded one does.
  auto again = registry->Get("a");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->get(), a->get());
  EXPECT_EQ(Points(**again), Points(**a));
  // A published version is in memory at once (and counts as used).
  ASSERT_TRUE(registry->Publish("d", PointCloudCheckpoint(4), false).ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("a", "d"));
}

TEST_F(ResidencyTest, TheMemoryBudgetUnloadsAndRefusesWhatCannotFit) {
  auto registry = OpenLimited(0, 2 * bytes_ + bytes_ / 2);
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(registry->Get(name).ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("b", "c"));
  EXPECT_EQ(registry->Residency().unloads_budget, 1);
  EXPECT_EQ(MetricValue(metrics_.Text(), "wfm_model_unloads_total", {{"reason", "budget"}}), 1);
  // A model over the whole budget is never loaded; its metadata is there.
  auto small = OpenLimited(0, bytes_ - 1);
  const absl::Status refused = small->Get("a").status();
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--max-loaded-model-mib"));
  EXPECT_TRUE(small->Info("a").ok());
  EXPECT_TRUE(absl::IsResourceExhausted(small->Load("a")));
}

TEST_F(ResidencyTest, ExplicitUnloadLeavesHoldersTheirModel) {
  auto registry = OpenLimited(0, 0);
  auto a = registry->Get("a");
  ASSERT_TRUE(a.ok());
  const std::vector<float> before = Points(**a);
  std::weak_ptr<const model::PointCloudModel> weights = (*a)->pointcloud;
  ASSERT_TRUE(registry->Unload("a").ok());
  EXPECT_THAT(Loaded(*registry, "a"), ElementsAre());
  EXPECT_THAT(Resident(*registry), ElementsAre("b", "c"));
  // The holder keeps sampling; the weights go with the last holder.
  EXPECT_EQ(Points(**a), before);
  a = absl::UnknownError("released");
  EXPECT_TRUE(weights.expired());
  // The next request loads it again, with the same results.
  auto again = registry->Get("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Points(**again), before);
  EXPECT_THAT(Loaded(*registry, "a"), ElementsAre(1));
  ASSERT_TRUE(registry->Unload("a", 1).ok());
  ASSERT_TRUE(registry->Load("a").ok());
  EXPECT_THAT(Loaded(*registry, "a"), ElementsAre(1));
  const ResidencyCounts counts = registry->Residency();
  EXPECT_EQ(counts.unloads_explicit, 2);
  EXPECT_EQ(counts.loads, 2);
  EXPECT_EQ(MetricValue(metrics_.Text(), "wfm_model_unloads_total", {{"reason", "explicit"}}), 2);
  EXPECT_TRUE(absl::IsNotFound(registry->Unload("ghost")));
  EXPECT_TRUE(absl::IsNotFound(registry->Unload("a", 2)));
  EXPECT_TRUE(absl::IsNotFound(registry->Load("ghost")));
  EXPECT_TRUE(absl::IsNotFound(registry->Load("a", 2)));
  // Unloading what is not in memory is no change.
  ASSERT_TRUE(registry->Unload("b").ok());
  ASSERT_TRUE(registry->Unload("b").ok());
  EXPECT_EQ(registry->Residency().unloads_explicit, 3);
}

TEST_F(ResidencyTest, ConcurrentFirstRequestsLoadOnce) {
  auto registry = OpenLimited(1, 0);
  std::vector<std::thread> threads;
  std::vector<const Servable*> got(6, nullptr);
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      auto servable = registry->Get("b");
      if (servable.ok()) got[i] = servable->get();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(registry->Residency().loads, 1);
  for (const Servable* s : got) EXPECT_EQ(s, got[0]);
  EXPECT_NE(got[0], nullptr);
}

TEST_F(ResidencyTest, ALimitedRestartLoadsNothingAndRescansKeepResidency) {
  auto registry = OpenLimited(2, 0);
  ASSERT_TRUE(registry->Get("c").ok());
  registry->Rescan();
  EXPECT_THAT(Resident(*registry), ElementsAre("c"));
  // A version another writer publishes is found, not loaded.
  ASSERT_TRUE(Open(dir_.path())->Publish("e", PointCloudCheckpoint(5), false).ok());
  EXPECT_EQ(registry->Rescan().added, 1);
  EXPECT_THAT(Resident(*registry), ElementsAre("c"));
  EXPECT_TRUE(registry->Get("e").ok());
  EXPECT_THAT(Resident(*registry), ElementsAre("c", "e"));
}

TEST(ModelRegistryOptionsTest, NegativeLimitsAreRefused) {
  testing::TempDir dir;
  ModelRegistryOptions options;
  options.max_loaded_models = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(ModelRegistry::Open(dir.path(), nullptr, options).status()));
  options.max_loaded_models = 0;
  options.max_loaded_bytes = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(ModelRegistry::Open(dir.path(), nullptr, options).status()));
}

}  // namespace
}  // namespace wfm::server
