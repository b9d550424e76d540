#include "model/sample/gaussian_model.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/checkpoint/checkpoint.h"
#include "model/common/status.h"
#include "model/gaussian/spd.h"
#include "model/train/gaussian_trainer.h"
#include "tests/model/sample/sample_test_util.h"
#include "tests/model/train/gaussian_family.h"
#include "tests/testing/status.h"
#include "tests/testing/tiny_network.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

GaussianTrainConfig Small(int64_t steps, const std::string& velocity = "riemannian") {
  GaussianTrainConfig c =
      testing::TrainConfig<GaussianTrainConfig>(testing::TinyNetwork(), steps, 8, 1e-2);
  c.velocity = velocity;
  // Sampling uses the trained weights themselves: the update-rule tests
  // evaluate the trainer's network by hand.
  c.optimizer.ema_decay = 0.0;
  return c;
}

absl::StatusOr<std::unique_ptr<GaussianTrainer>> Trainer(
    int64_t d, int64_t steps, bool labelled = false, const std::string& velocity = "riemannian") {
  const io::GaussianSet data = testing::CircleFamily(24, d, 21, 0, 2 * M_PI, labelled);
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<GaussianTrainer> t,
                       GaussianTrainer::Create(data, Small(steps, velocity), "circle"));
  WFM_RETURN_IF_ERROR(t->Train());
  return t;
}

absl::StatusOr<std::shared_ptr<const GaussianModel>> Model(
    int64_t d, int64_t steps, bool labelled = false, const std::string& velocity = "riemannian") {
  WFM_ASSIGN_OR_RETURN(const std::unique_ptr<GaussianTrainer> t,
                       Trainer(d, steps, labelled, velocity));
  return t->MakeModel();
}

GaussianSampleRequest Request(uint64_t seed, int64_t num = 3, int64_t steps = 6) {
  GaussianSampleRequest r;
  r.num_samples = num;
  r.steps = steps;
  r.seed = seed;
  return r;
}

// Every covariance exactly symmetric, finite, with a positive smallest
// eigenvalue (computed independently, by LAPACK).
void ExpectSpd(const GeneratedGaussians& g, int64_t n) {
  const int64_t d = g.dim;
  ASSERT_EQ(static_cast<int64_t>(g.means.size()), n * d);
  ASSERT_EQ(static_cast<int64_t>(g.covs.size()), n * d * d);
  const at::Tensor s = at::tensor(g.covs, at::kDouble).view({n, d, d});
  EXPECT_TRUE(at::equal(s, s.transpose(1, 2)));
  EXPECT_TRUE(at::isfinite(s).all().item<bool>());
  EXPECT_GT(at::linalg_eigvalsh(s).min().item<double>(), 0.0);
  for (double v : g.means) EXPECT_TRUE(std::isfinite(v));
}

TEST(GaussianModelTest, EveryCovarianceIsSpdEvenWithFewLargeSteps) {
  for (const char* velocity : {"riemannian", "euclidean"}) {
    for (int64_t d : {2, 5}) {
      // Untrained, and trained a little at a high learning rate.
      for (int64_t train_steps : {1, 60}) {
        WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(d, train_steps, false, velocity));
        for (int64_t steps : {1, 2, 3, 100}) {
          for (bool reference : {false, true}) {
            GaussianSampleRequest r = Request(5, 16, steps);
            r.reference_cov_sign = reference;
            auto out = m->Sample({r});
            ASSERT_TRUE(out.ok()) << out.status();
            ExpectSpd((*out)[0], 16);
          }
        }
      }
    }
  }
}

// One Euler step (dt = 1) against the update written out from the network's
// own output at the source: m1 = m0 − u, and with W = L + Lᵀ
//   corrected (default):  S1 = (I − W) S0 (I − W)    (= (I + V) S0 (I + V))
//   reference sign:       S1 = (I + W) S0 (I + W)
//   Euclidean velocity:   S1 = ProjectSpd(S0 − W).
TEST(GaussianModelTest, OneEulerStepMatchesTheUpdateRule) {
  for (const char* velocity : {"riemannian", "euclidean"}) {
    const int64_t d = 3;
    WFM_ASSERT_OK_AND_ASSIGN(auto trainer, Trainer(d, 30, false, velocity));
    auto model = trainer->MakeModel();
    ASSERT_TRUE(model.ok());
    for (bool reference : {false, true}) {
      GaussianSampleRequest r = Request(9, 4, 1);
      r.trajectory = true;
      r.reference_cov_sign = reference;
      auto out = (*model)->Sample({r});
      ASSERT_TRUE(out.ok()) << out.status();
      const GeneratedGaussians& g = (*out)[0];
      ASSERT_EQ(g.trajectory_means.size(), 2u * 4 * d);
      const at::Tensor m0 = at::tensor(std::vector<double>(g.trajectory_means.begin(),
                                                           g.trajectory_means.begin() + 4 * d),
                                       at::kDouble)
                                .view({4, d});
      const at::Tensor s0 = at::tensor(std::vector<double>(g.trajectory_covs.begin(),
                                                           g.trajectory_covs.begin() + 4 * d * d),
                                       at::kDouble)
                                .view({4, d, d});
      nn::GaussianVelocity v;
      {
        at::NoGradGuard no_grad;
        const at::Tensor rows = at::tensor(std::vector<int64_t>{0, 1, 1, 2, 2, 2}, at::kLong);
        const at::Tensor cols = at::tensor(std::vector<int64_t>{0, 0, 1, 0, 1, 2}, at::kLong);
        const at::Tensor tril = s0.to(at::kFloat).index({at::indexing::Slice(), rows, cols});
        v = trainer->network()->forward(m0.to(at::kFloat), tril, at::ones({4}, at::kFloat));
      }
      const at::Tensor u = v.mean.to(at::kDouble);
      at::Tensor l = at::zeros({4, d, d}, at::kDouble);
      const at::Tensor c = v.cov_tril.to(at::kDouble);
      for (int64_t a = 0, p = 0; a < d; ++a) {
        for (int64_t b = 0; b <= a; ++b, ++p) l.select(1, a).select(1, b).copy_(c.select(1, p));
      }
      const at::Tensor w = l + l.transpose(1, 2);
      // The step must be large enough to tell the two signs apart.
      ASSERT_GT(w.abs().max().item<double>(), 1e-3);
      const at::Tensor eye = at::eye(d, at::kDouble).expand({4, d, d});
      at::Tensor expected;
      if (std::string(velocity) == "riemannian") {
        const at::Tensor up = reference ? eye + w : eye - w;
        expected = at::matmul(at::matmul(up, s0), up.transpose(1, 2));
      } else {
        auto projected = gaussian::ProjectSpd(reference ? s0 + w : s0 - w);
        ASSERT_TRUE(projected.ok());
        expected = *projected;
      }
      const at::Tensor m1 = at::tensor(g.means, at::kDouble).view({4, d});
      const at::Tensor s1 = at::tensor(g.covs, at::kDouble).view({4, d, d});
      EXPECT_TRUE(at::allclose(m1, m0 - u, 1e-12, 1e-12)) << velocity << reference;
      EXPECT_TRUE(at::allclose(s1, expected, 1e-10, 1e-12)) << velocity << reference;
      // And not the other sign's update.
      const at::Tensor other = reference ? eye - w : eye + w;
      if (std::string(velocity) == "riemannian") {
        EXPECT_FALSE(at::allclose(s1, at::matmul(at::matmul(other, s0), other), 1e-6, 1e-8));
      }
    }
  }
}

TEST(GaussianModelTest, ReproducibleBySeedAndIndependentOfBatching) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(3, 3, /*labelled=*/true));
  GaussianSampleRequest a = Request(1, 5, 7);
  auto alone = m->Sample({a});
  auto again = m->Sample({a});
  ASSERT_TRUE(alone.ok() && again.ok());
  EXPECT_EQ((*alone)[0].means, (*again)[0].means);
  EXPECT_EQ((*alone)[0].covs, (*again)[0].covs);
  EXPECT_EQ((*alone)[0].labels, (*again)[0].labels);
  GaussianSampleRequest other = a;
  other.seed = 2;
  auto different = m->Sample({other});
  ASSERT_TRUE(different.ok());
  EXPECT_NE((*alone)[0].means, (*different)[0].means);
  // Batched with requests of other sizes, labels and step counts.
  GaussianSampleRequest b = Request(3, 11, 7);
  b.label = "right";
  GaussianSampleRequest c = Request(4, 2, 4);
  GaussianSampleRequest e = Request(5, 1, 7);
  e.trajectory = true;
  auto merged = m->Sample({b, a, c, e});
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_EQ(merged->size(), 4u);
  EXPECT_EQ((*merged)[1].means, (*alone)[0].means);
  EXPECT_EQ((*merged)[1].covs, (*alone)[0].covs);
  EXPECT_EQ((*merged)[1].labels, (*alone)[0].labels);
  auto b_alone = m->Sample({b});
  auto e_alone = m->Sample({e});
  ASSERT_TRUE(b_alone.ok() && e_alone.ok());
  EXPECT_EQ((*merged)[0].covs, (*b_alone)[0].covs);
  EXPECT_EQ((*merged)[0].labels, std::vector<std::string>(11, "right"));
  EXPECT_EQ((*merged)[3].trajectory_covs, (*e_alone)[0].trajectory_covs);
  for (size_t r = 0; r < 4; ++r) {
    ExpectSpd((*merged)[r], std::vector<int64_t>{11, 5, 2, 1}[r]);
  }
}

// Every solver keeps every state SPD (stage and accepted states use the
// SPD-preserving update), on untrained and trained models, with few large
// steps and both velocity parametrisations; every trajectory frame is SPD.
TEST(GaussianModelTest, EverySolverKeepsCovariancesSpd) {
  for (const char* velocity : {"riemannian", "euclidean"}) {
    for (int64_t train_steps : {1, 60}) {
      WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(3, train_steps, false, velocity));
      for (OdeSolver solver : testing::kSolvers) {
        for (int64_t steps : {1, 3, 20}) {
          GaussianSampleRequest r = Request(5, 8, steps);
          r.solver = solver;
          r.trajectory = true;
          auto out = m->Sample({r});
          ASSERT_TRUE(out.ok()) << out.status();
          const GeneratedGaussians& g = (*out)[0];
          ExpectSpd(g, 8);
          const int64_t frames = static_cast<int64_t>(g.trajectory_times.size());
          ASSERT_EQ(static_cast<int64_t>(g.trajectory_covs.size()), frames * 8 * 9);
          for (int64_t f = 0; f < frames; ++f) {
            GeneratedGaussians frame;
            frame.dim = 3;
            frame.means.assign(g.trajectory_means.begin() + f * 8 * 3,
                               g.trajectory_means.begin() + (f + 1) * 8 * 3);
            frame.covs.assign(g.trajectory_covs.begin() + f * 8 * 9,
                              g.trajectory_covs.begin() + (f + 1) * 8 * 9);
            // Within rounding of symmetric (the frames are not re-symmetrised).
            const at::Tensor s = at::tensor(frame.covs, at::kDouble).view({8, 3, 3});
            EXPECT_GT(at::linalg_eigvalsh(s).min().item<double>(), 0.0)
                << velocity << " " << OdeSolverName(solver) << " frame " << f;
          }
        }
      }
    }
  }
}

TEST(GaussianModelTest, EverySolverIsBatchInvariantAndCountsEvaluations) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(3, 30, /*labelled=*/true));
  std::vector<GaussianSampleRequest> reqs;
  for (OdeSolver solver : testing::kSolvers) {
    GaussianSampleRequest a = Request(21, 4, 6);
    a.solver = solver;
    a.rtol = 1e-4;
    GaussianSampleRequest b = Request(22, 3, 6);
    b.solver = solver;
    b.label = "left";
    b.trajectory = true;
    reqs.push_back(a);
    reqs.push_back(b);
  }
  reqs.push_back(Request(23, 2, 4));
  std::vector<GeneratedGaussians> merged;
  ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, reqs, &merged));
  // Euler is the default and the solvers differ.
  EXPECT_EQ(GaussianSampleRequest().solver, OdeSolver::kEuler);
  EXPECT_NE(merged[0].means, merged[6].means);
}

// With the Euclidean velocity the update is S − h·W (ProjectSpd leaves an
// SPD result as it is), a vector space: the higher-order solvers converge
// faster. Against a 400-step RK4 reference, 4-step RK4 is closer than 4-step
// Heun, itself closer than 4-step Euler, on means and covariances.
TEST(GaussianModelTest, HigherOrderSolversAreCloserWithEuclideanVelocity) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 60, false, "euclidean"));
  auto run = [&](OdeSolver solver, int64_t steps) {
    GaussianSampleRequest r = Request(31, 16, steps);
    r.solver = solver;
    auto out = m->Sample({r});
    EXPECT_TRUE(out.ok());
    std::vector<double> all = (*out)[0].means;
    all.insert(all.end(), (*out)[0].covs.begin(), (*out)[0].covs.end());
    return at::tensor(all, at::kDouble);
  };
  const at::Tensor reference = run(OdeSolver::kRk4, 400);
  auto error = [&](OdeSolver solver) {
    return (run(solver, 4) - reference).abs().max().item<double>();
  };
  const double euler = error(OdeSolver::kEuler), heun = error(OdeSolver::kHeun),
               rk4 = error(OdeSolver::kRk4);
  EXPECT_LT(heun, euler);
  EXPECT_LT(rk4, heun);
}

TEST(GaussianModelTest, LabelsAreDrawnWhenNotGiven) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 2, /*labelled=*/true));
  auto out = m->Sample({Request(8, 400, 2)});
  ASSERT_TRUE(out.ok());
  int64_t left = 0;
  for (const std::string& l : (*out)[0].labels) left += l == "left";
  EXPECT_EQ((*out)[0].labels.size(), 400u);
  EXPECT_GT(left, 150);
  EXPECT_LT(left, 250);
  // An unconditional model returns no labels.
  WFM_ASSERT_OK_AND_ASSIGN(auto unconditional, Model(2, 2));
  auto u = unconditional->Sample({Request(8, 4, 2)});
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE((*u)[0].labels.empty());
}

TEST(GaussianModelTest, TrajectoryFrames) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 5));
  GaussianSampleRequest r = Request(3, 4, 6);
  r.trajectory = true;
  auto out = m->Sample({r});
  ASSERT_TRUE(out.ok());
  const GeneratedGaussians& g = (*out)[0];
  ASSERT_EQ(g.trajectory_means.size(), 7u * 4 * 2);
  ASSERT_EQ(g.trajectory_covs.size(), 7u * 4 * 4);
  // The last frame is the result; frame 0 is the Wishart source (SPD).
  EXPECT_EQ(std::vector<double>(g.trajectory_means.end() - 8, g.trajectory_means.end()), g.means);
  EXPECT_EQ(std::vector<double>(g.trajectory_covs.end() - 16, g.trajectory_covs.end()), g.covs);
  GeneratedGaussians first;
  first.dim = 2;
  first.means.assign(g.trajectory_means.begin(), g.trajectory_means.begin() + 8);
  first.covs.assign(g.trajectory_covs.begin(), g.trajectory_covs.begin() + 16);
  ExpectSpd(first, 4);
  // Without a trajectory nothing is recorded.
  r.trajectory = false;
  auto plain = m->Sample({r});
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE((*plain)[0].trajectory_means.empty());
  EXPECT_EQ((*plain)[0].covs, g.covs);
}

// A network whose covariance head outputs W = I drives U = I − dt·W to zero
// in one step (dt = 1), so the integrator's covariance collapses to 0; the
// safeguard still returns symmetric positive definite covariances. A
// network with a NaN parameter fails the request instead.
TEST(GaussianModelTest, SafeguardAndNonFiniteNetworks) {
  WFM_ASSERT_OK_AND_ASSIGN(auto trainer, Trainer(2, 1));
  auto ckpt = trainer->MakeCheckpoint(false);
  ASSERT_TRUE(ckpt.ok());
  checkpoint::Checkpoint collapse = *ckpt;
  for (auto& [name, tensor] : collapse.tensors) {
    if (name == "model.cov_head.weight") tensor = at::zeros_like(tensor);
    // Triangle [S00, S10, S11]: 0.5 on the diagonal gives W = L + Lᵀ = I.
    if (name == "model.cov_head.bias") {
      tensor = at::tensor(std::vector<float>{0.5f, 0.0f, 0.5f}, at::kFloat);
    }
  }
  auto m = GaussianModel::FromCheckpoint(collapse);
  ASSERT_TRUE(m.ok()) << m.status();
  GaussianSampleRequest r = Request(4, 6, 1);
  r.trajectory = true;
  auto out = (*m)->Sample({r});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectSpd((*out)[0], 6);
  const std::vector<double> last((*out)[0].trajectory_covs.begin() + 6 * 4,
                                 (*out)[0].trajectory_covs.end());
  EXPECT_EQ(last, std::vector<double>(6 * 4, 0.0));  // the collapsed state

  checkpoint::Checkpoint broken = *ckpt;
  for (auto& [name, tensor] : broken.tensors) {
    if (name == "model.mean_head.bias") tensor = at::full_like(tensor, NAN);
  }
  auto nan_model = GaussianModel::FromCheckpoint(broken);
  ASSERT_TRUE(nan_model.ok());
  auto failed = (*nan_model)->Sample({Request(4, 2, 3)});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("non-finite"));
}

TEST(GaussianModelTest, CancellationAndValidation) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 2, /*labelled=*/true));
  int calls = 0;
  auto cancelled = m->Sample({Request(1, 3, 50)}, [&] { return ++calls > 3; });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 4);

  auto code = [&](const GaussianSampleRequest& r, const SampleLimits& limits = {}) {
    return m->ValidateRequest(r, limits).code();
  };
  auto message = [&](const GaussianSampleRequest& r) {
    return std::string(m->ValidateRequest(r).message());
  };
  GaussianSampleRequest r = Request(1);
  EXPECT_EQ(code(r), absl::StatusCode::kOk);
  r.num_samples = 0;
  EXPECT_THAT(message(r), HasSubstr("num_samples"));
  r = Request(1);
  r.steps = 0;
  EXPECT_THAT(message(r), HasSubstr("steps"));
  r = Request(1);
  r.label = "middle";
  EXPECT_THAT(message(r), HasSubstr("unknown 'middle'"));
  SampleLimits limits;
  limits.max_samples = 10;
  limits.max_steps = 20;
  limits.max_trajectory_values = 1000;
  r = Request(1, 11);
  EXPECT_EQ(code(r, limits), absl::StatusCode::kResourceExhausted);
  r = Request(1, 2, 21);
  EXPECT_EQ(code(r, limits), absl::StatusCode::kResourceExhausted);
  r = Request(1, 10, 20);
  r.trajectory = true;  // 21 frames × 10 × (2 + 4) values > 1000
  EXPECT_EQ(code(r, limits), absl::StatusCode::kResourceExhausted);
  r.trajectory = false;
  EXPECT_EQ(code(r, limits), absl::StatusCode::kOk);
  // Sample validates too, before any work.
  EXPECT_EQ(m->Sample({Request(1), Request(1, 0)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A label for an unconditional model.
  WFM_ASSERT_OK_AND_ASSIGN(auto u, Model(2, 1));
  r = Request(1);
  r.label = "left";
  EXPECT_THAT(std::string(u->ValidateRequest(r).message()), HasSubstr("not conditioned"));
}

TEST(GaussianModelTest, RejectsForeignAndInconsistentCheckpoints) {
  WFM_ASSERT_OK_AND_ASSIGN(auto trainer, Trainer(2, 1));
  auto ckpt = trainer->MakeCheckpoint(false);
  ASSERT_TRUE(ckpt.ok());
  checkpoint::Checkpoint foreign = *ckpt;
  foreign.metadata["format"] = "wfm.pointcloud_model";
  EXPECT_EQ(GaussianModel::FromCheckpoint(foreign).status().code(),
            absl::StatusCode::kInvalidArgument);
  checkpoint::Checkpoint newer = *ckpt;
  newer.metadata["version"] = kGaussianModelVersion + 1;
  EXPECT_EQ(GaussianModel::FromCheckpoint(newer).status().code(), absl::StatusCode::kUnimplemented);
  checkpoint::Checkpoint no_stats = *ckpt;
  no_stats.metadata.erase("data_stats");
  EXPECT_EQ(GaussianModel::FromCheckpoint(no_stats).status().code(), absl::StatusCode::kDataLoss);
  checkpoint::Checkpoint no_weights = *ckpt;
  no_weights.tensors.pop_back();
  EXPECT_FALSE(GaussianModel::FromCheckpoint(no_weights).ok());
  // A given-source model needs its source Gaussians.
  const io::GaussianSet data = testing::CircleFamily(10, 2, 22);
  const io::GaussianSet source = testing::CircleFamily(7, 2, 23);
  GaussianTrainConfig c = Small(1);
  c.source = GaussianSource::kGivenRandom;
  auto t = GaussianTrainer::Create(data, c, "d", &source);
  ASSERT_TRUE(t.ok()) << t.status();
  auto given = (*t)->MakeCheckpoint(false);
  ASSERT_TRUE(given.ok());
  EXPECT_TRUE(GaussianModel::FromCheckpoint(*given).ok());
  checkpoint::Checkpoint missing = *given;
  missing.tensors.erase(std::remove_if(missing.tensors.begin(), missing.tensors.end(),
                                       [](const auto& e) { return e.first == "source.covs"; }),
                        missing.tensors.end());
  auto status = GaussianModel::FromCheckpoint(missing).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("source.covs"));
}

// Given source Gaussians (the reference's init_noise). With both heads zero
// the velocity is 0, U = I, and every solver returns the given Gaussians bit
// for bit.
TEST(GaussianModelTest, GivenSourcesAreWhereTheFlowStarts) {
  const int64_t d = 3;
  WFM_ASSERT_OK_AND_ASSIGN(auto trainer, Trainer(d, 2));
  WFM_ASSERT_OK_AND_ASSIGN(checkpoint::Checkpoint ckpt, trainer->MakeCheckpoint(false));
  int zeroed = 0;
  for (auto& [name, tensor] : ckpt.tensors) {
    if (name.find("mean_head.") != std::string::npos || name.find("cov_head.") != std::string::npos) {
      tensor = at::zeros_like(tensor);
      ++zeroed;
    }
  }
  ASSERT_GE(zeroed, 4);
  WFM_ASSERT_OK_AND_ASSIGN(auto still, GaussianModel::FromCheckpoint(ckpt));
  GaussianSampleRequest r = Request(3, 2, 5);
  r.init_means = {0.1, -2.5, 3.25, 7.0, 0.0, -1e-3};
  r.init_covs = {2.0, 0.3, -0.1, 0.3, 1.5, 0.2, -0.1, 0.2, 0.9,
                 1e-2, 0.0, 0.0, 0.0, 4.0, 1.0, 0.0, 1.0, 3.0};
  r.trajectory = true;
  for (OdeSolver solver : testing::kSolvers) {
    r.solver = solver;
    auto out = still->Sample({r});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].means, r.init_means);
    EXPECT_EQ((*out)[0].covs, r.init_covs);
    EXPECT_EQ(std::vector<double>((*out)[0].trajectory_covs.begin(),
                                  (*out)[0].trajectory_covs.begin() + 18),
              r.init_covs);
  }
}

TEST(GaussianModelTest, GivenSourcesAreBatchInvariant) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 20, /*labelled=*/true));
  GaussianSampleRequest given = Request(5, 2);
  given.init_means = {0.5, -0.5, 1.0, 2.0};
  given.init_covs = {1.0, 0.2, 0.2, 0.5, 0.3, 0.0, 0.0, 0.3};
  GaussianSampleRequest other = given;
  other.seed = 6;
  other.init_means[0] = -1.0;
  const std::vector<GaussianSampleRequest> reqs = {Request(1, 3), given, other, Request(2, 4)};
  std::vector<GeneratedGaussians> merged;
  ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, reqs, &merged));
  EXPECT_NE(merged[1].means, given.init_means);  // the trained flow moved them
  // The second Gaussian's result depends on its own source only.
  EXPECT_NE(merged[1].means[0], merged[2].means[0]);
}

TEST(GaussianModelTest, GivenSourceValidation) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, Model(2, 2));
  auto base = [] {
    GaussianSampleRequest r = Request(1, 2);
    r.init_means = {0, 0, 1, 1};
    r.init_covs = {1, 0, 0, 1, 2, 1, 1, 2};
    return r;
  };
  EXPECT_TRUE(m->ValidateRequest(base()).ok());
  const std::vector<std::pair<std::function<void(GaussianSampleRequest*)>, std::string>> cases = {
      {[](GaussianSampleRequest* r) { r->num_samples = 3; },
       "init_means: 4 values; one given source mean per sample needs [3, 2] = 6"},
      {[](GaussianSampleRequest* r) { r->init_means.clear(); }, "init_means: 0 values"},
      {[](GaussianSampleRequest* r) { r->init_covs.pop_back(); },
       "init_covs: 7 values; one given source covariance per sample needs [2, 2, 2] = 8"},
      {[](GaussianSampleRequest* r) { r->init_means[3] = INFINITY; },
       "init_means[1, 1] = inf: values must be finite"},
      {[](GaussianSampleRequest* r) { r->init_covs[5] = NAN; },
       "init_covs[1, 0, 1] = nan: values must be finite"},
      {[](GaussianSampleRequest* r) { r->init_covs[1] = 0.5; }, "init_covs[0]: not symmetric"},
      {[](GaussianSampleRequest* r) { r->init_covs = {1, 0, 0, 1, 1, 1, 1, 1}; },
       "init_covs[1]: not positive definite"},
      {[](GaussianSampleRequest* r) { r->init_covs = {-1, 0, 0, 1, 1, 0, 0, 1}; },
       "init_covs[0]: not positive definite"},
  };
  for (const auto& [edit, message] : cases) {
    GaussianSampleRequest r = base();
    edit(&r);
    const absl::Status s = m->ValidateRequest(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message));
    EXPECT_FALSE(m->Sample({r}).ok());
  }
}

// Gaussians in 2-D whose condition c (one value, -1 or +1) sets the mean
// (3c, 0) (jittered); covariances near 0.2·I.
io::GaussianSet ShiftedByCondition(int64_t count, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  io::GaussianSet set;
  set.dim = 2;
  std::vector<float> conditions;
  for (int64_t i = 0; i < count; ++i) {
    const float c = i % 2 == 0 ? 1.0f : -1.0f;
    const at::Tensor jitter = at::randn({2}, gen, at::kDouble) * 0.2;
    set.means.push_back(3.0 * c + jitter[0].item<double>());
    set.means.push_back(jitter[1].item<double>());
    const double v = 0.2 * (1.0 + 0.1 * at::rand({1}, gen, at::kDouble).item<double>());
    set.covs.insert(set.covs.end(), {v, 0.0, 0.0, v});
    conditions.push_back(c);
  }
  set.labels = io::Labels::FromContinuous(std::move(conditions), 1);
  return set;
}

// guidance > 1 turns on condition dropout with probability p_uncond.
absl::StatusOr<std::unique_ptr<GaussianTrainer>> ConditionedTrainer(int64_t steps,
                                                                    double guidance = 1.0,
                                                                    double p_uncond = 0.1) {
  GaussianTrainConfig c = Small(steps);
  c.optimizer.batch_size = 16;
  c.guidance = guidance;
  c.p_uncond = p_uncond;
  return GaussianTrainer::Create(ShiftedByCondition(32, 41), c, "shifted");
}

// The mean first coordinate of generated Gaussians' means, and the fraction
// of them beyond `x` (positive x) or below it (negative x).
double MeanX(const GeneratedGaussians& g) {
  double sum = 0.0;
  for (size_t i = 0; i < g.means.size(); i += 2) sum += g.means[i];
  return sum / static_cast<double>(g.means.size() / 2);
}
double FractionBeyond(const GeneratedGaussians& g, double x) {
  int64_t n = 0;
  for (size_t i = 0; i < g.means.size(); i += 2) n += x > 0 ? g.means[i] > x : g.means[i] < x;
  return static_cast<double>(n) / static_cast<double>(g.means.size() / 2);
}

TEST(GaussianModelTest, ContinuousConditionsShiftTheGeneratedMeans) {
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> trainer, ConditionedTrainer(300));
  EXPECT_FALSE(trainer->minibatch_ot());  // conditional: no re-pairing
  WFM_ASSERT_OK(trainer->Train());
  // Through a checkpoint, as the server loads it.
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, trainer->MakeCheckpoint(false));
  WFM_ASSERT_OK_AND_ASSIGN(auto m, GaussianModel::FromCheckpoint(ckpt));
  EXPECT_EQ(m->labels().kind, LabelSpace::Kind::kContinuous);
  EXPECT_EQ(m->labels().cond_dim, 1);
  GaussianSampleRequest plus = Request(3, 64, 16);
  plus.condition = {1.0f};
  GaussianSampleRequest minus = Request(4, 64, 16);
  minus.condition = {-1.0f};
  WFM_ASSERT_OK_AND_ASSIGN(const auto out, m->Sample({plus, minus}));
  // The mean first coordinate of each request's Gaussians: the data's are +3
  // and -3; an unconditioned flow would give about 0 for both.
  EXPECT_GT(MeanX(out[0]), 1.5);
  EXPECT_LT(MeanX(out[1]), -1.5);
  EXPECT_EQ(out[0].conditions, std::vector<float>(64, 1.0f));
  EXPECT_EQ(out[1].conditions, std::vector<float>(64, -1.0f));
  ExpectSpd(out[0], 64);
  ExpectSpd(out[1], 64);
  // Without a condition each sample draws one of the training conditions,
  // about half +1.
  WFM_ASSERT_OK_AND_ASSIGN(const auto drawn, m->Sample({Request(5, 200, 4)}));
  ASSERT_EQ(drawn[0].conditions.size(), 200u);
  const int64_t positive = std::count(drawn[0].conditions.begin(), drawn[0].conditions.end(), 1.0f);
  EXPECT_EQ(positive + std::count(drawn[0].conditions.begin(), drawn[0].conditions.end(), -1.0f),
            200);
  EXPECT_GT(positive, 70);
  EXPECT_LT(positive, 130);
  EXPECT_TRUE(drawn[0].labels.empty());
}

TEST(GaussianModelTest, ContinuousConditionsAreBatchInvariant) {
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> trainer, ConditionedTrainer(3));
  WFM_ASSERT_OK(trainer->Train());
  WFM_ASSERT_OK_AND_ASSIGN(auto m, trainer->MakeModel());
  GaussianSampleRequest shared = Request(1, 5, 7);
  shared.condition = {0.25f};
  GaussianSampleRequest per_sample = Request(2, 3, 7);
  per_sample.condition = {1.0f, -1.0f, 0.5f};
  GaussianSampleRequest drawn = Request(3, 4, 7);
  GaussianSampleRequest other_steps = Request(4, 2, 4);
  other_steps.condition = {-2.0f};
  const std::vector<GaussianSampleRequest> all = {per_sample, shared, other_steps, drawn};
  std::vector<GeneratedGaussians> merged;
  ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, all, &merged));
  for (size_t r = 0; r < all.size(); ++r) ExpectSpd(merged[r], all[r].num_samples);
  EXPECT_EQ(merged[0].conditions, per_sample.condition);
  EXPECT_EQ(merged[1].conditions, std::vector<float>(5, 0.25f));
  // The condition reaches the network: another vector, other Gaussians.
  GaussianSampleRequest moved = shared;
  moved.condition = {-0.75f};
  WFM_ASSERT_OK_AND_ASSIGN(const auto other, m->Sample({moved}));
  EXPECT_NE(other[0].means, merged[1].means);
}

TEST(GaussianModelTest, ConditionValidationAndCheckpoints) {
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> trainer, ConditionedTrainer(2));
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, trainer->MakeCheckpoint(false));
  WFM_ASSERT_OK_AND_ASSIGN(auto m, GaussianModel::FromCheckpoint(ckpt));
  const auto message = [](const std::shared_ptr<const GaussianModel>& model,
                          const GaussianSampleRequest& r) {
    const absl::Status s = model->ValidateRequest(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    return std::string(s.message());
  };
  GaussianSampleRequest r = Request(1, 3);
  r.condition = {1.0f, 2.0f};
  EXPECT_EQ(message(m, r), "condition: must have 1 values (or 3, one vector per sample), got 2");
  r.condition = {NAN};
  EXPECT_EQ(message(m, r), "condition: values must be finite");
  r.condition = {};
  r.label = "left";
  EXPECT_EQ(message(m, r), "label: this model is not conditioned on labels");
  WFM_ASSERT_OK_AND_ASSIGN(auto labelled, Model(2, 1, /*labelled=*/true));
  WFM_ASSERT_OK_AND_ASSIGN(auto plain, Model(2, 1));
  r.label.clear();
  r.condition = {1.0f};
  EXPECT_EQ(message(labelled, r), "condition: this model is not conditioned on condition vectors");
  EXPECT_EQ(message(plain, r), "condition: this model is not conditioned on condition vectors");
  // The checkpoint carries the training conditions; without them it is
  // broken.
  checkpoint::Checkpoint broken = ckpt;
  broken.tensors.erase(std::remove_if(broken.tensors.begin(), broken.tensors.end(),
                                      [](const auto& t) { return t.first == "data.conditions"; }),
                       broken.tensors.end());
  ASSERT_LT(broken.tensors.size(), ckpt.tensors.size());
  EXPECT_EQ(GaussianModel::FromCheckpoint(broken).status().code(), absl::StatusCode::kDataLoss);
}


// A checkpoint of `ckpt`'s network whose configuration says guidance `g`
// (the default γ of its samples).
checkpoint::Checkpoint WithGuidance(checkpoint::Checkpoint ckpt, double g) {
  ckpt.metadata["config"]["guidance"] = g;
  return ckpt;
}

TEST(GaussianModelTest, GuidanceOneIsTheConditionalSamplerAndZeroTheNullCondition) {
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> trainer,
                           ConditionedTrainer(3, /*guidance=*/2.0, /*p_uncond=*/0.3));
  EXPECT_DOUBLE_EQ(trainer->p_uncond(), 0.3);
  WFM_ASSERT_OK(trainer->Train());
  WFM_ASSERT_OK_AND_ASSIGN(const checkpoint::Checkpoint ckpt, trainer->MakeCheckpoint(false));
  WFM_ASSERT_OK_AND_ASSIGN(auto guided, GaussianModel::FromCheckpoint(ckpt));
  EXPECT_DOUBLE_EQ(guided->default_guidance(), 2.0);
  // The same network as a model without guidance: the conditional sampler.
  WFM_ASSERT_OK_AND_ASSIGN(auto plain, GaussianModel::FromCheckpoint(WithGuidance(ckpt, 1.0)));
  EXPECT_DOUBLE_EQ(plain->default_guidance(), 1.0);
  GaussianSampleRequest r = Request(6, 5, 4);
  r.condition = {0.5f};
  const auto at = [&r](std::optional<double> gamma) {
    GaussianSampleRequest q = r;
    q.guidance = gamma;
    return q;
  };
  WFM_ASSERT_OK_AND_ASSIGN(const auto conditional, plain->Sample({r}));
  GaussianSampleRequest null = r;
  null.condition = {0.0f};  // the null condition
  WFM_ASSERT_OK_AND_ASSIGN(const auto unconditional, plain->Sample({null}));
  WFM_ASSERT_OK_AND_ASSIGN(const auto one, guided->Sample({at(1.0)}));
  WFM_ASSERT_OK_AND_ASSIGN(const auto zero, guided->Sample({at(0.0)}));
  EXPECT_EQ(one[0].means, conditional[0].means);
  EXPECT_EQ(one[0].covs, conditional[0].covs);
  EXPECT_EQ(zero[0].means, unconditional[0].means);
  EXPECT_EQ(zero[0].covs, unconditional[0].covs);
  EXPECT_EQ(zero[0].conditions, std::vector<float>(5, 0.5f));  // the request's condition
  // Unset = the model's γ (2), which differs from both.
  WFM_ASSERT_OK_AND_ASSIGN(const auto by_default, guided->Sample({at(std::nullopt)}));
  WFM_ASSERT_OK_AND_ASSIGN(const auto two, guided->Sample({at(2.0)}));
  EXPECT_EQ(by_default[0].means, two[0].means);
  EXPECT_NE(two[0].means, one[0].means);
  EXPECT_NE(two[0].means, zero[0].means);
  // One Euler step moves the means by the velocity itself, so the guided
  // mean is v_u + γ (v_c − v_u) applied: m_γ = m_0 + γ (m_1 − m_0).
  r.steps = 1;
  WFM_ASSERT_OK_AND_ASSIGN(const auto step0, guided->Sample({at(0.0)}));
  WFM_ASSERT_OK_AND_ASSIGN(const auto step1, guided->Sample({at(1.0)}));
  WFM_ASSERT_OK_AND_ASSIGN(const auto step3, guided->Sample({at(3.0)}));
  for (size_t i = 0; i < step3[0].means.size(); ++i) {
    const double expected =
        step0[0].means[i] + 3.0 * (step1[0].means[i] - step0[0].means[i]);
    EXPECT_NEAR(step3[0].means[i], expected, 1e-4 * (1.0 + std::abs(expected))) << i;
  }
  // Requests of every γ batch together and get what they get alone.
  r.steps = 4;
  GaussianSampleRequest per_sample = at(3.0);
  per_sample.condition = {1.0f, -1.0f, 0.25f, 0.0f, 2.0f};
  const std::vector<GaussianSampleRequest> all = {at(3.0), at(1.0), per_sample, at(0.0),
                                                  at(2.5), at(std::nullopt)};
  std::vector<GeneratedGaussians> merged;
  ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*guided, all, &merged));
  for (size_t k = 0; k < all.size(); ++k) ExpectSpd(merged[k], all[k].num_samples);
  // γ is checked; unconditional models ignore it.
  GaussianSampleRequest bad = at(-1.0);
  EXPECT_EQ(guided->ValidateRequest(bad).message(),
            "guidance: must be a finite number >= 0, got -1");
  bad.guidance = NAN;
  EXPECT_EQ(guided->ValidateRequest(bad).code(), absl::StatusCode::kInvalidArgument);
  WFM_ASSERT_OK_AND_ASSIGN(auto unconditional_model, Model(2, 1));
  GaussianSampleRequest u = Request(2, 3, 3), u3 = u;
  u3.guidance = 3.0;
  WFM_ASSERT_OK_AND_ASSIGN(const auto u_out, unconditional_model->Sample({u, u3}));
  EXPECT_EQ(u_out[0].means, u_out[1].means);
}

TEST(GaussianModelTest, ConditionDropoutOnlyWithGuidanceAboveOne) {
  for (const auto& [guidance, expected] :
       std::vector<std::pair<double, double>>{{1.0, 0.0}, {1.5, 0.25}, {0.5, 0.0}}) {
    WFM_ASSERT_OK_AND_ASSIGN(auto t, ConditionedTrainer(1, guidance, 0.25));
    EXPECT_DOUBLE_EQ(t->p_uncond(), expected) << guidance;
  }
  GaussianTrainConfig c = Small(1);
  c.guidance = 2.0;
  WFM_ASSERT_OK_AND_ASSIGN(
      auto plain,
      GaussianTrainer::Create(testing::CircleFamily(8, 2, 3, 0, 2 * M_PI, false), c, "g"));
  EXPECT_DOUBLE_EQ(plain->p_uncond(), 0.0);  // unconditional: nothing to drop
  // Without dropout the run's draws are those of a model without the
  // options: the same network as before they existed.
  WFM_ASSERT_OK_AND_ASSIGN(auto a, ConditionedTrainer(4, 1.0, 0.5));
  WFM_ASSERT_OK_AND_ASSIGN(auto b, ConditionedTrainer(4, 1.0, 0.0));
  WFM_ASSERT_OK(a->Train());
  WFM_ASSERT_OK(b->Train());
  EXPECT_EQ(a->Summary().final_loss, b->Summary().final_loss);
  WFM_ASSERT_OK_AND_ASSIGN(auto c2, ConditionedTrainer(4, 2.0, 0.5));
  WFM_ASSERT_OK(c2->Train());
  EXPECT_NE(c2->Summary().final_loss, a->Summary().final_loss);
}

TEST(GaussianModelTest, GuidanceMovesSamplesTowardTheCondition) {
  // Data at x = +3 (condition +1) and -3 (condition -1); the null condition
  // learned with p_uncond 0.3 is the mixture of both.
  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GaussianTrainer> trainer,
                           ConditionedTrainer(300, /*guidance=*/2.0, /*p_uncond=*/0.3));
  WFM_ASSERT_OK(trainer->Train());
  WFM_ASSERT_OK_AND_ASSIGN(auto m, trainer->MakeModel());
  GaussianSampleRequest r = Request(8, 200, 16);
  r.condition = {1.0f};
  std::vector<GaussianSampleRequest> at;
  for (double gamma : {0.0, 1.0, 2.0}) {
    at.push_back(r);
    at.back().guidance = gamma;
  }
  at.push_back(at.back());
  at.back().condition = {-1.0f};
  WFM_ASSERT_OK_AND_ASSIGN(const auto out, m->Sample(at));
  // γ 0: the unconditional model, both modes.
  EXPECT_GT(FractionBeyond(out[0], 1.5), 0.15);
  EXPECT_GT(FractionBeyond(out[0], -1.5), 0.15);
  // γ 1 and 2: the condition's mode, γ 2 at least as surely.
  EXPECT_GT(FractionBeyond(out[1], 1.5), 0.8);
  EXPECT_GE(FractionBeyond(out[2], 1.5), FractionBeyond(out[1], 1.5));
  EXPECT_GT(MeanX(out[2]), MeanX(out[0]) + 1.5);
  EXPECT_GT(MeanX(out[2]), MeanX(out[1]));  // γ 2 goes further than the conditional flow
  EXPECT_GT(FractionBeyond(out[3], -1.5), 0.8);
  for (const auto& g : out) ExpectSpd(g, 200);
}

}  // namespace
}  // namespace wfm::model
