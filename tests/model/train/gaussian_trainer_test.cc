#include "model/train/gaussian_trainer.h"

#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <numeric>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/checkpoint/checkpoint.h"
#include "model/common/status.h"
#include "model/eval/metrics.h"
#include "model/gaussian/bures.h"
#include "model/sample/gaussian_model.h"
#include "tests/model/train/gaussian_family.h"
#include "tests/model/train/trainer_contract.h"
#include "tests/testing/status.h"
#include "tests/testing/tiny_network.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;
using ::wfm::testing::Parameters;

// A small, fast configuration.
GaussianTrainConfig Tiny(int64_t steps = 6) {
  return testing::TrainConfig<GaussianTrainConfig>(testing::TinyNetwork(), steps, 8, 1e-3);
}

// The learning tests' small model, batches of 32 at learning rate 2e-3 for
// `steps` steps.
GaussianTrainConfig LearningConfig(int64_t steps) {
  return testing::TrainConfig<GaussianTrainConfig>(testing::LearningNetwork(), steps, 32, 2e-3);
}

// Trainers of `data` (named "d") with the given sources, and their
// resumption.
auto Creator(const io::GaussianSet& data, const io::GaussianSet* source = nullptr) {
  return [&data, source](const GaussianTrainConfig& c) {
    return GaussianTrainer::Create(data, c, "d", source);
  };
}
auto Resumer(const io::GaussianSet& data, const io::GaussianSet* source = nullptr) {
  return [&data, source](const checkpoint::Checkpoint& k) {
    return GaussianTrainer::Resume(data, k, source);
  };
}

// Every covariance exactly symmetric with a positive smallest eigenvalue.
void ExpectSpd(const GeneratedGaussians& g) {
  const int64_t d = g.dim, n = static_cast<int64_t>(g.means.size()) / d;
  ASSERT_EQ(static_cast<int64_t>(g.covs.size()), n * d * d);
  const at::Tensor s = at::tensor(g.covs, at::kDouble).view({n, d, d});
  EXPECT_TRUE(at::equal(s, s.transpose(1, 2)));
  EXPECT_GT(at::linalg_eigvalsh(s).min().item<double>(), 0.0);
  for (double v : g.means) EXPECT_TRUE(std::isfinite(v));
}

absl::StatusOr<GeneratedGaussians> SampleOne(const GaussianModel& m, int64_t n, int64_t steps,
                                             uint64_t seed, const std::string& label = "",
                                             bool reference_sign = false) {
  GaussianSampleRequest r;
  r.num_samples = n;
  r.steps = steps;
  r.seed = seed;
  r.label = label;
  r.reference_cov_sign = reference_sign;
  WFM_ASSIGN_OR_RETURN(std::vector<GeneratedGaussians> out, m.Sample({r}));
  return out[0];
}

TEST(GaussianTrainerTest, EveryVelocityLossArchitectureAndSourceTrains) {
  const io::GaussianSet data = testing::CircleFamily(24, 3, 1);
  const io::GaussianSet source = testing::CircleFamily(30, 3, 2);
  for (const char* velocity : {"riemannian", "euclidean"}) {
    for (const char* loss : {"tangent", "euclidean"}) {
      for (const char* arch : {"separate", "joint"}) {
        GaussianTrainConfig c = Tiny(3);
        c.velocity = velocity;
        c.loss = loss;
        c.network.architecture = arch;
        auto t = GaussianTrainer::Create(data, c, "circle");
        ASSERT_TRUE(t.ok()) << t.status();
        ASSERT_TRUE((*t)->Train().ok()) << velocity << " " << loss << " " << arch;
        EXPECT_TRUE(std::isfinite((*t)->Summary().final_loss));
        EXPECT_GT((*t)->Summary().final_loss, 0.0);
        auto model = (*t)->MakeModel();
        ASSERT_TRUE(model.ok()) << model.status();
        auto g = SampleOne(**model, 6, 4, 1);
        ASSERT_TRUE(g.ok()) << g.status();
        ExpectSpd(*g);
      }
    }
  }
  for (auto kind : {GaussianSource::kGivenRandom, GaussianSource::kGivenMatched}) {
    GaussianTrainConfig c = Tiny(3);
    c.source = kind;
    const io::GaussianSet matched = testing::CircleFamily(24, 3, 3);
    const io::GaussianSet& src = kind == GaussianSource::kGivenMatched ? matched : source;
    auto t = GaussianTrainer::Create(data, c, "circle", &src);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->minibatch_ot(), kind == GaussianSource::kGivenRandom);
    ASSERT_TRUE((*t)->Train().ok());
    WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const GaussianModel> model, (*t)->MakeModel());
    // Sampling starts from the given sources: frame 0 of the trajectory is
    // one of them, exactly.
    GaussianSampleRequest r;
    r.num_samples = 5;
    r.steps = 2;
    r.seed = 2;
    r.trajectory = true;
    auto g = model->Sample({r});
    ASSERT_TRUE(g.ok()) << g.status();
    ExpectSpd((*g)[0]);
    for (int64_t s = 0; s < 5; ++s) {
      const std::vector<double> m0((*g)[0].trajectory_means.begin() + s * 3,
                                   (*g)[0].trajectory_means.begin() + s * 3 + 3);
      const std::vector<double> s0((*g)[0].trajectory_covs.begin() + s * 9,
                                   (*g)[0].trajectory_covs.begin() + s * 9 + 9);
      bool found = false;
      for (int64_t k = 0; k < src.num_gaussians(); ++k) {
        found |= m0 == std::vector<double>(src.means.begin() + k * 3, src.means.begin() + k * 3 + 3) &&
                 s0 == std::vector<double>(src.covs.begin() + k * 9, src.covs.begin() + k * 9 + 9);
      }
      EXPECT_TRUE(found) << s;
    }
  }
}

// With an untrained network (learning rate ~0) the tangent loss is the mean
// squared Bures–Wasserstein distance of the batch's (source, data) pairs
// (the McCann path has constant speed), so minibatch OT, which re-pairs to
// minimise that cost, must lower it clearly. A wrong permutation direction or
// a pairing on the wrong matrix would not.
TEST(GaussianTrainerTest, MinibatchOtLowersTheUntrainedLoss) {
  const io::GaussianSet data = testing::CircleFamily(128, 2, 4);
  auto mean_loss = [&](bool minibatch, double* mean) {
    GaussianTrainConfig c = Tiny(40);
    c.optimizer.batch_size = 16;
    c.optimizer.learning_rate = 1e-12;
    c.minibatch_ot = minibatch;
    WFM_ASSERT_OK_AND_ASSIGN(const std::unique_ptr<GaussianTrainer> t,
                             GaussianTrainer::Create(data, c, "circle"));
    double sum = 0;
    for (int i = 0; i < 40; ++i) {
      WFM_ASSERT_OK_AND_ASSIGN(const double loss, t->Step());
      sum += loss;
    }
    *mean = sum / 40;
  };
  double paired = 0, random = 0;
  ASSERT_NO_FATAL_FAILURE(mean_loss(true, &paired));
  ASSERT_NO_FATAL_FAILURE(mean_loss(false, &random));
  std::printf("untrained loss: minibatch OT %.3f, random pairs %.3f\n", paired, random);
  EXPECT_LT(paired, 0.6 * random);
}

TEST(GaussianTrainerTest, SameSeedSameRunOtherSeedOtherRun) {
  const io::GaussianSet data = testing::CircleFamily(20, 2, 5);
  testing::ExpectSameSeedSameRunOtherSeedOtherRun(Creator(data), Tiny(5));
}

TEST(GaussianTrainerTest, ResumeContinuesTheSameRun) {
  const io::GaussianSet data = testing::CircleFamily(20, 3, 6);
  const io::GaussianSet source = testing::CircleFamily(12, 3, 7);
  for (auto kind : {GaussianSource::kWishart, GaussianSource::kGivenRandom}) {
    GaussianTrainConfig c = Tiny(10);
    c.source = kind;
    const io::GaussianSet* src = kind == GaussianSource::kWishart ? nullptr : &source;
    checkpoint::Checkpoint read;
    ASSERT_NO_FATAL_FAILURE(
        testing::ExpectResumeContinuesTheSameRun(Creator(data, src), Resumer(data, src), c, &read));
    // Data of another dimension is refused.
    const io::GaussianSet flat = testing::CircleFamily(20, 2, 6);
    EXPECT_THAT(std::string(GaussianTrainer::Resume(flat, read, src).status().message()),
                HasSubstr("dimension"));
  }
}

// The reference's schedule: decay_steps = min(decay_steps, steps / 100),
// fixed at creation and kept when a resumed run changes the total.
TEST(GaussianTrainerTest, LearningRateScheduleAsTheReference) {
  const io::GaussianSet data = testing::CircleFamily(10, 2, 8);
  GaussianTrainConfig c = Tiny(2000);
  auto t = GaussianTrainer::Create(data, c, "d");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->effective_decay_steps(), 20);
  c.optimizer.steps = 250000;
  EXPECT_EQ((*GaussianTrainer::Create(data, c, "d"))->effective_decay_steps(), 1000);
  c.optimizer.steps = 99;
  EXPECT_EQ((*GaussianTrainer::Create(data, c, "d"))->effective_decay_steps(), 0);
  ASSERT_TRUE((*t)->Step().ok());
  auto ckpt = (*t)->MakeCheckpoint(true);
  ASSERT_TRUE(ckpt.ok());
  auto resumed = GaussianTrainer::Resume(data, *ckpt, nullptr, /*steps=*/50);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->effective_decay_steps(), 20);
  EXPECT_EQ((*resumed)->total_steps(), 50);
}

TEST(GaussianTrainerTest, CheckpointRoundTripSamplesIdentically) {
  io::GaussianSet data = testing::CircleFamily(20, 3, 9, 0, 2 * M_PI, /*labelled=*/true);
  testing::RoundTrip<GaussianTrainer, GaussianModel, GeneratedGaussians> rt;
  ASSERT_NO_FATAL_FAILURE(
      testing::SampleLiveAndReloaded<GaussianSampleRequest>(Creator(data), Tiny(4), "left", &rt));
  EXPECT_EQ(rt.live.means, rt.reloaded.means);
  EXPECT_EQ(rt.live.covs, rt.reloaded.covs);
  EXPECT_EQ(rt.live.trajectory_covs, rt.reloaded.trajectory_covs);
  EXPECT_EQ(rt.reloaded.labels, std::vector<std::string>(4, "left"));
  EXPECT_EQ(rt.loaded->labels().names, (std::vector<std::string>{"left", "right"}));
  EXPECT_EQ(rt.loaded->summary().items, 20);
  EXPECT_EQ(rt.loaded->metadata().at("family"), "gaussian");
  EXPECT_EQ(rt.loaded->data_stats().dim, 3);
  EXPECT_NEAR(rt.loaded->data_stats().cov_diag_mean, rt.trainer->data_stats().cov_diag_mean,
              0.0);
}

TEST(GaussianTrainerTest, ModelsSampleWithTheMovingAverageAndKeepItOnResume) {
  const io::GaussianSet data = testing::CircleFamily(20, 2, 21);
  GaussianTrainConfig c = Tiny(10);
  c.optimizer.ema_decay = 0.9;
  c.time_distribution = "logit_normal";
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> t,
                           GaussianTrainer::Create(data, c, "circle"));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t->Step().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint midway, t->MakeCheckpoint(true));
  ASSERT_TRUE(t->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, t->MakeCheckpoint(false));
  // The served model samples with "ema.*"; the same tensors under "model.*"
  // (and no average) give the same samples, the trained weights others.
  const checkpoint::Checkpoint averaged = testing::WithWeights(ckpt, true);
  const checkpoint::Checkpoint trained = testing::WithWeights(ckpt, false);
  auto sample = [](const checkpoint::Checkpoint& k) -> std::vector<double> {
    auto model = GaussianModel::FromCheckpoint(k);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return {};
    auto g = SampleOne(**model, 4, 5, 3);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? g->covs : std::vector<double>{};
  };
  const std::vector<double> served = sample(ckpt);
  ASSERT_FALSE(served.empty());
  EXPECT_EQ(served, sample(averaged));
  EXPECT_NE(served, sample(trained));
  // A resumed run ends with the same average.
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> resumed,
                           GaussianTrainer::Resume(data, midway));
  ASSERT_TRUE(resumed->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint again, resumed->MakeCheckpoint(false));
  EXPECT_EQ(served, sample(again));
}

TEST(GaussianTrainerTest, CancelAndProgress) {
  const io::GaussianSet data = testing::CircleFamily(12, 2, 10);
  testing::ExpectCancelAndProgress(Creator(data), Tiny(50));
}

// Two ranks, each on half of the global batch, with their gradients averaged
// by the hook, make the same updates as one process on the whole batch
// (minibatch OT off; up to float rounding of the gradient mean).
TEST(GaussianTrainerTest, DataParallelRanksEqualOneProcess) {
  const io::GaussianSet data = testing::CircleFamily(32, 2, 11);
  GaussianTrainConfig c = Tiny(3);
  c.optimizer.batch_size = 8;
  c.minibatch_ot = false;
  auto single = GaussianTrainer::Create(data, c, "d");
  ASSERT_TRUE(single.ok());
  ASSERT_TRUE((*single)->Train().ok());

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<at::Tensor>*> waiting;
  int64_t generation = 0;
  auto reduce = [&](std::vector<at::Tensor>& grads) -> absl::Status {
    std::unique_lock<std::mutex> lock(mu);
    const int64_t gen = generation;
    waiting.push_back(&grads);
    if (waiting.size() == 2) {
      for (size_t i = 0; i < grads.size(); ++i) {
        const at::Tensor mean = 0.5 * ((*waiting[0])[i] + (*waiting[1])[i]);
        (*waiting[0])[i].copy_(mean);
        (*waiting[1])[i].copy_(mean);
      }
      waiting.clear();
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
    return absl::OkStatus();
  };
  std::unique_ptr<GaussianTrainer> ranks[2];
  for (int r = 0; r < 2; ++r) {
    auto t = GaussianTrainer::Create(data, c, "d", nullptr, DistributedRole{r, 2});
    ASSERT_TRUE(t.ok()) << t.status();
    ranks[r] = std::move(*t);
  }
  std::thread workers[2];
  absl::Status status[2];
  for (int r = 0; r < 2; ++r) {
    workers[r] = std::thread([&, r] {
      TrainHooks h;
      h.reduce_gradients = reduce;
      status[r] = ranks[r]->Train(h);
    });
  }
  for (auto& w : workers) w.join();
  ASSERT_TRUE(status[0].ok() && status[1].ok());
  EXPECT_TRUE(at::equal(Parameters(*ranks[0]), Parameters(*ranks[1])));
  EXPECT_TRUE(at::allclose(Parameters(*ranks[0]), Parameters(**single), 1e-5, 1e-6));
  EXPECT_FALSE(at::equal(Parameters(**single), [&] {
    auto fresh = GaussianTrainer::Create(data, c, "d");
    return Parameters(**fresh);
  }()));
}

TEST(GaussianTrainerTest, RejectsBadConfigAndData) {
  const io::GaussianSet data = testing::CircleFamily(8, 2, 12);
  auto message = [&](const GaussianTrainConfig& c, const io::GaussianSet& d = {},
                     const io::GaussianSet* source = nullptr) {
    const io::GaussianSet& set = d.dim == 0 ? data : d;
    return std::string(GaussianTrainer::Create(set, c, "d", source).status().message());
  };
  GaussianTrainConfig c = Tiny();
  c.velocity = "sideways";
  EXPECT_THAT(message(c), HasSubstr("velocity"));
  c = Tiny();
  c.loss = "l1";
  EXPECT_THAT(message(c), HasSubstr("loss"));
  c = Tiny();
  c.network.architecture = "tower";
  EXPECT_THAT(message(c), HasSubstr("network.architecture"));
  c = Tiny();
  c.degrees_of_freedom_scale = 0.5;  // k = 1 < d = 2
  EXPECT_THAT(message(c), HasSubstr("degrees_of_freedom_scale"));
  c = Tiny();
  c.mean_scale_factor = 0;
  EXPECT_THAT(message(c), HasSubstr("mean_scale_factor"));
  c = Tiny();
  c.optimizer.batch_size = 0;
  EXPECT_THAT(message(c), HasSubstr("batch_size"));
  c = Tiny();
  EXPECT_THAT(std::string(GaussianTrainer::Create(data, c, "d", nullptr, DistributedRole{0, 3})
                              .status()
                              .message()),
              HasSubstr("split evenly"));
  // Data: a covariance that is not positive definite is named.
  io::GaussianSet bad = data;
  bad.covs[5 * 4 + 0] = -1.0;
  EXPECT_THAT(message(Tiny(), bad), HasSubstr("covs[5]"));
  // Condition vectors need one per Gaussian.
  io::GaussianSet cont = data;
  cont.labels = io::Labels::FromContinuous(std::vector<float>(7, 0.5f), 1);
  EXPECT_THAT(message(Tiny(), cont), HasSubstr("labels"));
  // Sources: needed for given kinds, refused otherwise, same dimension,
  // matched counts.
  c = Tiny();
  c.source = GaussianSource::kGivenRandom;
  EXPECT_THAT(message(c), HasSubstr("needs the source Gaussians"));
  const io::GaussianSet other_dim = testing::CircleFamily(8, 3, 13);
  EXPECT_THAT(message(c, {}, &other_dim), HasSubstr("dimension"));
  c.source = GaussianSource::kGivenMatched;
  const io::GaussianSet fewer = testing::CircleFamily(5, 2, 14);
  EXPECT_THAT(message(c, {}, &fewer), HasSubstr("one source Gaussian per data Gaussian"));
  EXPECT_THAT(message(Tiny(), {}, &fewer), HasSubstr("source Gaussians were given"));
  // Resume refuses another family's checkpoint.
  checkpoint::Checkpoint foreign;
  foreign.metadata = {{"format", "wfm.pointcloud_model"}, {"version", 1}};
  EXPECT_EQ(GaussianTrainer::Resume(data, foreign).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GaussiansFromPointCloudsTest, MeanAndCovarianceOfEachCloud) {
  io::PointCloudSet clouds;
  clouds.dim = 2;
  // Cloud 0: (0,0), (2,0), (0,2), (2,2): mean (1,1), sample cov diag(4/3).
  // Cloud 1: (1,1), (3,3), (5,5): mean (3,3), sample cov 4·[[1,1],[1,1]] + ridge.
  clouds.points = {0, 0, 2, 0, 0, 2, 2, 2, 1, 1, 3, 3, 5, 5};
  clouds.offsets = {0, 4, 7};
  clouds.labels = io::Labels::FromIntegers({3, 4});
  auto g = GaussiansFromPointClouds(clouds, 1, 0.5);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->means, (std::vector<double>{1, 1, 3, 3}));
  const std::vector<double> expected = {4.0 / 3 + 0.5, 0, 0, 4.0 / 3 + 0.5, 4.5, 4, 4, 4.5};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(g->covs[i], expected[i], 1e-12) << i;
  EXPECT_EQ(g->labels.integers, (std::vector<int64_t>{3, 4}));
  // Population covariance: 3/4 of the sample one for cloud 0.
  auto p = GaussiansFromPointClouds(clouds, 0, 0.5);
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->covs[0], 1.0 + 0.5, 1e-12);
  // Without a ridge the collinear cloud 1 is singular, and named.
  auto singular = GaussiansFromPointClouds(clouds, 1, 0.0);
  ASSERT_FALSE(singular.ok());
  EXPECT_THAT(std::string(singular.status().message()), HasSubstr("covs[1]"));
  EXPECT_THAT(std::string(GaussiansFromPointClouds(clouds, 2).status().message()),
              HasSubstr("ddof"));
  EXPECT_THAT(std::string(GaussiansFromPointClouds(clouds, 1, -1).status().message()),
              HasSubstr("ridge"));
}

// The learning check of issue 4, on a family whose means lie on a circle and
// whose covariances rotate and stretch with the angle (gaussian_family.h):
// a small model trained a few hundred steps generates Gaussians whose
// Bures–Wasserstein 1-NNA against held-aside Gaussians is clearly below the
// untrained model's, and the reference's covariance update sign
// (GaussianSampleRequest::reference_cov_sign) fails the same check.
// Measured over seeds 0-7 (one thread, AVX-512 kernels):
//   d = 2, 400 steps: untrained 0.85-0.90, trained 0.62-0.73, reference sign 0.95-0.99;
//   d = 8, 500 steps: untrained 0.96-0.99, trained 0.61-0.73, reference sign 0.98-1.00.
struct LearningCase {
  int64_t dim;
  int64_t steps;
  double untrained_at_least;
};

void PrintTo(const LearningCase& c, std::ostream* os) {
  *os << "d = " << c.dim << ", " << c.steps << " steps";
}

class GaussianLearningTest : public ::testing::TestWithParam<LearningCase> {};

TEST_P(GaussianLearningTest, TrainedModelBeatsUntrainedAndTheReferenceSignFails) {
  const LearningCase p = GetParam();
  for (uint64_t seed = 0; seed < 3; ++seed) {
    const io::GaussianSet data = testing::CircleFamily(256, p.dim, 100 + seed);
    const io::GaussianSet held = testing::CircleFamily(64, p.dim, 200 + seed);
    GaussianTrainConfig c = LearningConfig(p.steps);
    c.optimizer.seed = seed;
    auto t = GaussianTrainer::Create(data, c, "circle");
    ASSERT_TRUE(t.ok()) << t.status();
    // BW metrics of the trainer's current model against `held`.
    auto evaluate = [&](bool reference_sign, eval::GaussianEvaluation* out) {
      WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const GaussianModel> model,
                               (*t)->MakeModel());
      WFM_ASSERT_OK_AND_ASSIGN(const GeneratedGaussians g,
                               SampleOne(*model, 64, 50, 7, "", reference_sign));
      ExpectSpd(g);
      WFM_ASSERT_OK_AND_ASSIGN(*out, eval::EvaluateGaussians(ToGaussianSet(g), held));
    };
    eval::GaussianEvaluation before, after, reference;
    ASSERT_NO_FATAL_FAILURE(evaluate(false, &before));
    ASSERT_TRUE((*t)->Train().ok());
    ASSERT_NO_FATAL_FAILURE(evaluate(false, &after));
    ASSERT_NO_FATAL_FAILURE(evaluate(true, &reference));
    std::printf("d=%ld seed %lu: BW 1-NNA untrained %.3f, trained %.3f, reference sign %.3f; "
                "MMD %.3f %.3f %.3f\n",
                static_cast<long>(p.dim), static_cast<unsigned long>(seed), before.bures.one_nna,
                after.bures.one_nna, reference.bures.one_nna, before.bures.mmd, after.bures.mmd,
                reference.bures.mmd);
    EXPECT_GE(before.bures.one_nna, p.untrained_at_least);
    EXPECT_LE(after.bures.one_nna, 0.80);
    EXPECT_LE(after.bures.one_nna, before.bures.one_nna - 0.12);
    // The reference sign moves covariances away from the data: it is
    // distinguishable from the held-aside set almost perfectly.
    EXPECT_GE(reference.bures.one_nna, 0.93);
    EXPECT_GE(reference.bures.one_nna, after.bures.one_nna + 0.15);
    EXPECT_GT(reference.bures.mmd, 3.0 * after.bures.mmd);
  }
}

INSTANTIATE_TEST_SUITE_P(Dimensions, GaussianLearningTest,
                         ::testing::Values(LearningCase{2, 400, 0.84}, LearningCase{8, 500, 0.93}),
                         [](const auto& info) { return "d" + std::to_string(info.param.dim); });

// Two labelled sub-families (the left and the right half of the circle):
// samples for each label are nearer (BW²) to their own sub-family.
TEST(GaussianConditionalTest, ConditionalSamplesFollowTheLabel) {
  const io::GaussianSet data = testing::CircleFamily(256, 2, 300, 0, 2 * M_PI, /*labelled=*/true);
  const GaussianTrainConfig c = LearningConfig(400);
  auto t = GaussianTrainer::Create(data, c, "circle");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE((*t)->minibatch_ot());  // conditional models pair at random
  ASSERT_TRUE((*t)->Train().ok());
  auto model = (*t)->MakeModel();
  ASSERT_TRUE(model.ok());
  // The sub-families as tensors.
  std::vector<int64_t> idx[2];
  for (int64_t k = 0; k < data.num_gaussians(); ++k) {
    idx[data.labels.strings[k] == "left" ? 0 : 1].push_back(k);
  }
  const at::Tensor means = at::tensor(data.means, at::kDouble).view({-1, 2});
  const at::Tensor covs = at::tensor(data.covs, at::kDouble).view({-1, 2, 2});
  const char* names[2] = {"left", "right"};
  for (int l = 0; l < 2; ++l) {
    auto g = SampleOne(**model, 32, 40, 11, names[l]);
    ASSERT_TRUE(g.ok()) << g.status();
    ExpectSpd(*g);
    EXPECT_EQ(g->labels, std::vector<std::string>(32, names[l]));
    const at::Tensor gm = at::tensor(g->means, at::kDouble).view({-1, 2});
    const at::Tensor gc = at::tensor(g->covs, at::kDouble).view({-1, 2, 2});
    at::Tensor nearest[2];
    for (int f = 0; f < 2; ++f) {
      const at::Tensor rows = at::tensor(idx[f], at::kLong);
      auto dist = gaussian::PairwiseBuresWasserstein(gm, gc, means.index_select(0, rows),
                                                     covs.index_select(0, rows));
      ASSERT_TRUE(dist.ok());
      nearest[f] = std::get<0>(dist->min(1));
    }
    const double own = (nearest[l] < nearest[1 - l]).to(at::kDouble).mean().item<double>();
    std::printf("label %s: %.2f of the samples nearer their own sub-family\n", names[l], own);
    EXPECT_GE(own, 0.85);
  }
}

}  // namespace
}  // namespace wfm::model
