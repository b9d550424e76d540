#include "model/train/pointcloud_trainer.h"

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/checkpoint/checkpoint.h"
#include "model/config/feature_transform.h"
#include "model/eval/metrics.h"
#include "model/sample/pointcloud_model.h"
#include "tests/model/train/train_test_util.h"
#include "tests/model/train/trainer_contract.h"
#include "tests/testing/status.h"
#include "tests/testing/tiny_network.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;
using ::wfm::testing::Parameters;

// A small, fast configuration.
PointCloudTrainConfig Tiny(int64_t steps = 6) {
  PointCloudTrainConfig c =
      testing::TrainConfig<PointCloudTrainConfig>(testing::TinyNetwork(), steps, 8, 1e-3);
  c.sinkhorn_iterations = 50;
  return c;
}

// Trainers of `data` (named "d"), and their resumption.
auto Creator(const io::PointCloudSet& data) {
  return [&data](const PointCloudTrainConfig& c) {
    return PointCloudTrainer::Create(data, c, "d");
  };
}
auto Resumer(const io::PointCloudSet& data) {
  return [&data](const checkpoint::Checkpoint& k) { return PointCloudTrainer::Resume(data, k); };
}

TEST(PointCloudTrainerTest, EveryMongeMapCostAndSourceTrains) {
  const io::PointCloudSet data = testing::Ellipses(24, 1);
  for (const char* map : {"entropic", "argmax", "rounded_matching", "sample", "euclidean"}) {
    for (const char* cost : {"chamfer", "entropic", "euclidean", "frechet"}) {
      PointCloudTrainConfig c = Tiny(2);
      c.monge_map = map;
      c.minibatch_cost = cost;
      auto t = PointCloudTrainer::Create(data, c, "ellipses");
      ASSERT_TRUE(t.ok()) << t.status();
      ASSERT_TRUE((*t)->Train().ok()) << map << " " << cost;
      EXPECT_TRUE(std::isfinite((*t)->Summary().final_loss));
      EXPECT_EQ((*t)->step(), 2);
    }
  }
  for (auto source : {PointCloudSource::kUniform, PointCloudSource::kNormal,
                      PointCloudSource::kCholNormal, PointCloudSource::kMetaNormal}) {
    PointCloudTrainConfig c = Tiny(2);
    c.source = source;
    auto t = PointCloudTrainer::Create(data, c, "ellipses");
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE((*t)->Train().ok()) << PointCloudSourceName(source);
  }
  // Tolerance-mode Sinkhorn and subsampled clouds.
  PointCloudTrainConfig c = Tiny(2);
  c.sinkhorn_iterations = 0;
  c.subsample_points = 20;
  auto t = PointCloudTrainer::Create(data, c, "ellipses");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE((*t)->Train().ok());
}

TEST(PointCloudTrainerTest, UserGivenSources) {
  const io::PointCloudSet data = testing::Ellipses(16, 2);
  const io::PointCloudSet source = testing::Ellipses(16, 3);
  for (auto kind : {PointCloudSource::kGivenRandom, PointCloudSource::kGivenMatched}) {
    PointCloudTrainConfig c = Tiny(3);
    c.source = kind;
    auto t = PointCloudTrainer::Create(data, c, "ellipses", &source);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE((*t)->Train().ok());
    // Sampling starts from the given clouds, which set the sizes.
    WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const PointCloudModel> model,
                             (*t)->MakeModel());
    CloudSampleRequest r;
    r.num_samples = 5;
    r.steps = 3;
    auto out = model->Sample({r});
    ASSERT_TRUE(out.ok()) << out.status();
    for (int64_t s = 0; s < 5; ++s) {
      const int64_t n = (*out)[0].offsets[s + 1] - (*out)[0].offsets[s];
      bool found = false;
      for (int64_t k = 0; k < source.num_clouds(); ++k) found |= source.cloud_size(k) == n;
      EXPECT_TRUE(found);
    }
    r.points = 10;
    EXPECT_EQ(model->Sample({r}).status().code(), absl::StatusCode::kInvalidArgument);
  }
  // Matched sources need one cloud per data cloud; given kinds need clouds.
  PointCloudTrainConfig c = Tiny();
  c.source = PointCloudSource::kGivenMatched;
  const io::PointCloudSet fewer = testing::Ellipses(5, 3);
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d", &fewer).status().message()),
              HasSubstr("one source cloud per data cloud"));
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d").status().message()),
              HasSubstr("needs the source clouds"));
}

TEST(PointCloudTrainerTest, SameSeedSameRunOtherSeedOtherRun) {
  const io::PointCloudSet data = testing::Ellipses(20, 4);
  PointCloudTrainConfig c = Tiny(5);
  c.monge_map = "sample";  // also exercises the seeded plan sampling
  testing::ExpectSameSeedSameRunOtherSeedOtherRun(Creator(data), c);
}

TEST(PointCloudTrainerTest, ResumeContinuesTheSameRun) {
  const io::PointCloudSet data = testing::Ellipses(20, 5, /*labelled=*/true);
  testing::ExpectResumeContinuesTheSameRun(Creator(data), Resumer(data), Tiny(10));
}

TEST(PointCloudTrainerTest, FineTuningStartsFromAServedModelsWeights) {
  const io::PointCloudSet data = testing::Ellipses(20, 5);
  auto base = PointCloudTrainer::Create(data, Tiny(3), "d");
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE((*base)->Train().ok());
  auto served = (*base)->MakeCheckpoint(/*with_optimizer=*/false);
  ASSERT_TRUE(served.ok()) << served.status();
  PointCloudTrainConfig c = Tiny(2);
  c.optimizer.seed = 9;
  auto tuned = PointCloudTrainer::Create(testing::Ellipses(12, 6), c, "other");
  ASSERT_TRUE(tuned.ok());
  EXPECT_FALSE(at::equal(Parameters(**tuned), Parameters(**base)));
  ASSERT_TRUE((*tuned)->InitWeightsFrom(*served).ok());
  EXPECT_TRUE(at::equal(Parameters(**tuned), Parameters(**base)));
  EXPECT_EQ((*tuned)->step(), 0);  // a new run: step, optimizer and stream afresh
  ASSERT_TRUE((*tuned)->Train().ok());
  EXPECT_EQ((*tuned)->step(), 2);
  // A network of another shape is refused, naming a parameter.
  c.network.mlp_hidden *= 2;
  auto wider = PointCloudTrainer::Create(data, c, "d");
  ASSERT_TRUE(wider.ok());
  const absl::Status refused = (*wider)->InitWeightsFrom(*served);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("parameter '"));
}

TEST(PointCloudTrainerTest, CheckpointRoundTripSamplesIdentically) {
  const io::PointCloudSet data = testing::Ellipses(20, 6, /*labelled=*/true);
  testing::RoundTrip<PointCloudTrainer, PointCloudModel, GeneratedClouds> rt;
  ASSERT_NO_FATAL_FAILURE(
      testing::SampleLiveAndReloaded<CloudSampleRequest>(Creator(data), Tiny(4), "1", &rt));
  EXPECT_EQ(rt.live.points, rt.reloaded.points);
  EXPECT_EQ(rt.live.trajectory, rt.reloaded.trajectory);
  EXPECT_EQ(rt.loaded->labels().names, (std::vector<std::string>{"0", "1"}));
}

TEST(PointCloudTrainerTest, CancelAndProgress) {
  const io::PointCloudSet data = testing::Ellipses(12, 7);
  testing::ExpectCancelAndProgress(Creator(data), Tiny(50));
}

TEST(PointCloudTrainerTest, RejectsBadConfigAndData) {
  const io::PointCloudSet data = testing::Ellipses(8, 8);
  PointCloudTrainConfig c = Tiny();
  c.network.width = 18;
  c.network.heads = 4;
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d").status().message()),
              HasSubstr("divisible by heads"));
  c = Tiny();
  c.optimizer.learning_rate = -1;
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d").status().message()),
              HasSubstr("learning_rate"));
  c = Tiny();
  c.epsilon = 0;
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d").status().message()),
              HasSubstr("epsilon"));
  c = Tiny();
  c.monge_map = "nearest";
  EXPECT_THAT(std::string(PointCloudTrainer::Create(data, c, "d").status().message()),
              HasSubstr("monge_map"));
  io::PointCloudSet bad = data;
  bad.points[3] = std::nanf("");
  EXPECT_EQ(PointCloudTrainer::Create(bad, Tiny(), "d").status().code(),
            absl::StatusCode::kInvalidArgument);
}

std::vector<float> SamplePoints(const checkpoint::Checkpoint& ckpt, const std::string& label = "") {
  auto model = PointCloudModel::FromCheckpoint(ckpt);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  CloudSampleRequest r;
  r.num_samples = 3;
  r.steps = 4;
  r.seed = 9;
  r.label = label;
  auto s = (*model)->Sample({r});
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? (*s)[0].points : std::vector<float>{};
}

TEST(PointCloudTrainerTest, ModelsSampleWithTheMovingAverage) {
  const io::PointCloudSet data = testing::Ellipses(20, 12, /*labelled=*/true);
  PointCloudTrainConfig c = Tiny(12);
  c.optimizer.ema_decay = 0.9;
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> t,
                           PointCloudTrainer::Create(data, c, "d"));
  ASSERT_TRUE(t->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, t->MakeCheckpoint(false));
  int64_t averaged = 0, trained = 0;
  for (const auto& entry : ckpt.tensors) {
    averaged += entry.first.rfind("ema.", 0) == 0;
    trained += entry.first.rfind("model.", 0) == 0;
  }
  EXPECT_EQ(averaged, trained);  // every parameter and buffer has its average
  const std::vector<float> served = SamplePoints(ckpt, "1");
  EXPECT_EQ(served, SamplePoints(testing::WithWeights(ckpt, true), "1"));
  EXPECT_NE(served, SamplePoints(testing::WithWeights(ckpt, false), "1"));
  // The trainer's own model is the served one.
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const PointCloudModel> live, t->MakeModel());
  CloudSampleRequest r;
  r.num_samples = 3;
  r.steps = 4;
  r.seed = 9;
  r.label = "1";
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<GeneratedClouds> s, live->Sample({r}));
  EXPECT_EQ(s[0].points, served);
}

TEST(PointCloudTrainerTest, ResumeKeepsTheMovingAverage) {
  const io::PointCloudSet data = testing::Ellipses(20, 13);
  PointCloudTrainConfig c = Tiny(8);
  c.optimizer.ema_decay = 0.95;
  c.optimizer.lr_schedule = "cosine";
  c.optimizer.warmup_steps = 3;
  c.optimizer.weight_decay = 0.01;
  c.time_distribution = "logit_normal";
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> straight,
                           PointCloudTrainer::Create(data, c, "d"));
  ASSERT_TRUE(straight->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> first,
                           PointCloudTrainer::Create(data, c, "d"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(first->Step().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, first->MakeCheckpoint(true));
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> resumed,
                           PointCloudTrainer::Resume(data, ckpt));
  ASSERT_TRUE(resumed->Train().ok());
  EXPECT_TRUE(at::equal(Parameters(*straight), Parameters(*resumed)));
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint a, straight->MakeCheckpoint(false));
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint b, resumed->MakeCheckpoint(false));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_TRUE(at::equal(a.tensors[i].second, b.tensors[i].second)) << a.tensors[i].first;
  }
}

TEST(PointCloudTrainerTest, TimeBudgetEndsEarlyWithAModel) {
  const io::PointCloudSet data = testing::Ellipses(20, 14);
  PointCloudTrainConfig c = Tiny(100000);
  c.optimizer.time_budget_seconds = 1e-9;  // spent by the first step
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> t,
                           PointCloudTrainer::Create(data, c, "d"));
  ASSERT_TRUE(t->Train().ok());
  EXPECT_EQ(t->step(), 1);
  EXPECT_EQ(t->Summary().steps, 1);
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, t->MakeCheckpoint(false));
  const std::vector<float> points = SamplePoints(ckpt);
  EXPECT_FALSE(points.empty());
  for (float v : points) EXPECT_TRUE(std::isfinite(v));
}

// Count-valued clouds: 3 features, Poisson-like integers around 1, 20 and 300.
io::PointCloudSet Counts(int64_t clouds, uint64_t seed) {
  std::mt19937_64 rng(seed);
  io::PointCloudSet set;
  set.dim = 3;
  set.offsets = {0};
  const double means[3] = {1.0, 20.0, 300.0};
  for (int64_t c = 0; c < clouds; ++c) {
    for (int i = 0; i < 8; ++i) {
      for (double m : means) {
        set.points.push_back(static_cast<float>(std::poisson_distribution<int>(m)(rng)));
      }
    }
    set.offsets.push_back(set.offsets.back() + 8);
  }
  return set;
}

TEST(PointCloudTrainerTest, FeatureTransformTrainsInItsSpaceAndSamplesBack) {
  const io::PointCloudSet data = Counts(30, 15);
  PointCloudTrainConfig c = Tiny(5);
  c.feature_transform = "auto";
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> t,
                           PointCloudTrainer::Create(data, c, "counts"));
  ASSERT_TRUE(t->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, t->MakeCheckpoint(false));
  ASSERT_TRUE(ckpt.metadata.contains("feature_transform"));
  WFM_ASSERT_OK_AND_ASSIGN(const FeatureTransform transform,
                           FeatureTransform::FromJson(ckpt.metadata["feature_transform"]));
  EXPECT_EQ(transform.kind(), "log1p_standardize");
  // The noise statistics are those of the standardised data (raw counts
  // reach about 350).
  EXPECT_LT(ckpt.metadata["data_stats"]["max_value"].get<double>(), 10.0);
  EXPECT_LT(ckpt.metadata["data_stats"]["min_value"].get<double>(), 0.0);
  const std::vector<float> served = SamplePoints(ckpt);
  ASSERT_FALSE(served.empty());
  for (float v : served) EXPECT_GE(v, 0.0f);
  // The served samples are the flow's samples mapped back by the inverse.
  checkpoint::Checkpoint raw = ckpt;
  raw.metadata.erase("feature_transform");
  std::vector<float> flow = SamplePoints(raw);
  transform.Invert(flow.data(), static_cast<int64_t>(flow.size()));
  EXPECT_EQ(flow, served);
  // Plain coordinates keep the identity under auto; log1p refuses negatives.
  const io::PointCloudSet shapes = testing::Ellipses(10, 16);
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PointCloudTrainer> plain,
                           PointCloudTrainer::Create(shapes, c, "shapes"));
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint plain_ckpt, plain->MakeCheckpoint(false));
  EXPECT_FALSE(plain_ckpt.metadata.contains("feature_transform"));
  c.feature_transform = "log1p";
  const absl::Status refused = PointCloudTrainer::Create(shapes, c, "shapes").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("dataset: feature_transform log1p needs non-negative values"));
}

// The learning tests' small model, batches of 32 at learning rate 2e-3 for
// `steps` steps.
PointCloudTrainConfig LearningConfig(int64_t steps) {
  return testing::TrainConfig<PointCloudTrainConfig>(testing::LearningNetwork(), steps, 32, 2e-3);
}

// The learning check of the issue: on ellipses with random axes and rotation
// (24-48 points), a small model trained a few hundred steps generates clouds
// whose 1-NNA (Chamfer) against held-aside ellipses is clearly below the
// untrained model's. Measured with this configuration over training seeds
// 0-4 (data seeds 100-104, held-aside seeds 200-204): untrained 0.96-0.98,
// trained 0.61-0.80; the test runs seed 0 (0.63) and asserts <= 0.85 and a
// gap of at least 0.12.
TEST(PointCloudLearningTest, TrainedModelBeatsUntrained) {
  const uint64_t seed = 0;
  const io::PointCloudSet data = testing::Ellipses(256, 100 + seed);
  const io::PointCloudSet held = testing::Ellipses(64, 200 + seed);
  PointCloudTrainConfig c = LearningConfig(800);
  c.optimizer.seed = seed;
  auto t = PointCloudTrainer::Create(data, c, "ellipses");
  ASSERT_TRUE(t.ok()) << t.status();
  // The 1-NNA (Chamfer) of the trainer's current model against `held`.
  auto nna = [&](double* one_nna) {
    WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const PointCloudModel> m, (*t)->MakeModel());
    CloudSampleRequest r;
    r.num_samples = 64;
    r.steps = 50;
    r.seed = 7;
    WFM_ASSERT_OK_AND_ASSIGN(const std::vector<GeneratedClouds> s, m->Sample({r}));
    WFM_ASSERT_OK_AND_ASSIGN(const eval::PointCloudEvaluation e,
                             eval::EvaluatePointClouds(ToPointCloudSet(s[0]), held,
                                                       /*with_emd=*/false));
    *one_nna = e.chamfer.one_nna;
  };
  double before = 0, after = 0;
  ASSERT_NO_FATAL_FAILURE(nna(&before));
  ASSERT_TRUE((*t)->Train().ok());
  ASSERT_NO_FATAL_FAILURE(nna(&after));
  std::printf("1-NNA(CD) untrained %.3f, trained %.3f\n", before, after);
  EXPECT_GE(before, 0.93);
  EXPECT_LE(after, 0.85);
  EXPECT_GE(before - after, 0.12);
}

// Two labelled sub-families (wide flat ellipses, small circles): samples for
// each label are nearer (Chamfer) to their own sub-family.
TEST(PointCloudLearningTest, ConditionalSamplesFollowTheLabel) {
  const io::PointCloudSet data = testing::Ellipses(256, 300, /*labelled=*/true);
  const PointCloudTrainConfig c = LearningConfig(400);
  auto t = PointCloudTrainer::Create(data, c, "ellipses");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Train().ok());
  auto model = (*t)->MakeModel();
  ASSERT_TRUE(model.ok());
  // Reference sub-families.
  std::vector<int64_t> idx[2];
  for (int64_t k = 0; k < data.num_clouds(); ++k) idx[data.labels.integers[k]].push_back(k);
  io::PointCloudSet family[2];
  for (int l = 0; l < 2; ++l) {
    family[l].dim = 2;
    family[l].offsets = {0};
    for (int64_t k : idx[l]) {
      family[l].points.insert(family[l].points.end(), data.points.begin() + data.offsets[k] * 2,
                              data.points.begin() + data.offsets[k + 1] * 2);
      family[l].offsets.push_back(family[l].offsets.back() + data.cloud_size(k));
    }
  }
  for (int l = 0; l < 2; ++l) {
    CloudSampleRequest r;
    r.num_samples = 32;
    r.steps = 40;
    r.seed = 11;
    r.label = std::to_string(l);
    auto s = (*model)->Sample({r});
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)[0].labels, std::vector<std::string>(32, r.label));
    const io::PointCloudSet gen = ToPointCloudSet((*s)[0]);
    auto own = eval::PairwiseChamfer(gen, family[l]);
    auto other = eval::PairwiseChamfer(gen, family[1 - l]);
    ASSERT_TRUE(own.ok() && other.ok());
    const at::Tensor d_own = std::get<0>(own->min(1)), d_other = std::get<0>(other->min(1));
    // Nearly every sample is closer to its own family.
    EXPECT_GE((d_own < d_other).to(at::kDouble).mean().item<double>(), 0.9) << "label " << l;
  }
}

}  // namespace
}  // namespace wfm::model
