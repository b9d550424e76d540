#include "model/sample/pointcloud_model.h"

#include <cmath>
#include <functional>
#include <set>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "model/common/status.h"
#include "model/train/pointcloud_trainer.h"
#include "tests/model/sample/sample_test_util.h"
#include "tests/model/train/train_test_util.h"
#include "tests/testing/status.h"
#include "tests/testing/tiny_network.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<PointCloudTrainer>> TrainedTrainer(bool labelled, int64_t steps,
                                                                  double guidance) {
  const io::PointCloudSet data = testing::Ellipses(20, 9, labelled);
  PointCloudTrainConfig c =
      testing::TrainConfig<PointCloudTrainConfig>(testing::TinyNetwork(), steps, 8);
  c.sinkhorn_iterations = 30;
  c.guidance = guidance;
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<PointCloudTrainer> t,
                       PointCloudTrainer::Create(data, c, "ellipses"));
  WFM_RETURN_IF_ERROR(t->Train());
  return t;
}

absl::StatusOr<std::shared_ptr<const PointCloudModel>> TrainedModel(bool labelled,
                                                                    int64_t steps = 3,
                                                                    double guidance = 1.5) {
  WFM_ASSIGN_OR_RETURN(const std::unique_ptr<PointCloudTrainer> t,
                       TrainedTrainer(labelled, steps, guidance));
  return t->MakeModel();
}

CloudSampleRequest Request(uint64_t seed, int64_t num = 3, int64_t points = 0) {
  CloudSampleRequest r;
  r.num_samples = num;
  r.points = points;
  r.steps = 6;
  r.seed = seed;
  return r;
}

TEST(PointCloudModelTest, SizesComeFromTheTrainingClouds) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(false));
  const io::PointCloudSet data = testing::Ellipses(20, 9);
  std::set<int64_t> train_sizes;
  for (int64_t k = 0; k < data.num_clouds(); ++k) train_sizes.insert(data.cloud_size(k));
  auto out = m->Sample({Request(1, 30)});
  ASSERT_TRUE(out.ok()) << out.status();
  const GeneratedClouds& g = (*out)[0];
  ASSERT_EQ(g.offsets.size(), 31u);
  for (int64_t s = 0; s < 30; ++s) EXPECT_TRUE(train_sizes.count(g.offsets[s + 1] - g.offsets[s]));
  EXPECT_EQ(static_cast<int64_t>(g.points.size()), g.offsets.back() * 2);
  for (float v : g.points) EXPECT_TRUE(std::isfinite(v));
  // Fixed sizes.
  auto fixed = m->Sample({Request(1, 4, 17)});
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ((*fixed)[0].offsets, (std::vector<int64_t>{0, 17, 34, 51, 68}));
}

// A request's clouds depend only on the request: merged with others (and
// integrated in shared batches) they equal the clouds of the request alone.
TEST(PointCloudModelTest, MergedRequestsEqualLoneRequests) {
  for (bool labelled : {false, true}) {
    WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(labelled));
    std::vector<CloudSampleRequest> reqs = {Request(1, 3, 20), Request(2, 2, 20), Request(3, 4),
                                            Request(1, 3, 20)};
    if (labelled) {
      reqs[1].label = "1";
      reqs[2].guidance = 1.0;
      reqs[3].guidance = 0.0;
    }
    std::vector<GeneratedClouds> merged;
    ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, reqs, &merged));
    // Different seeds differ.
    EXPECT_NE(merged[0].points, merged[1].points);
  }
}

// Every solver: a request merged with others (other solvers, sizes, labels,
// guidance, step counts) gets its lone result bit for bit, and the reply
// counts its network evaluations (steps · stages for fixed-step solvers).
TEST(PointCloudModelTest, EverySolverIsBatchInvariantAndCountsEvaluations) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(true));
  std::vector<CloudSampleRequest> reqs;
  for (OdeSolver solver : testing::kSolvers) {
    CloudSampleRequest a = Request(11, 3);  // training sizes: several batches
    a.solver = solver;
    a.steps = 5;
    a.rtol = 1e-2;
    CloudSampleRequest b = Request(12, 2, 20);
    b.solver = solver;
    b.steps = 5;
    b.label = "1";
    b.guidance = 2.0;
    b.trajectory = true;
    reqs.push_back(a);
    reqs.push_back(b);
  }
  CloudSampleRequest other = Request(13, 2, 20);
  other.steps = 3;
  reqs.push_back(other);
  std::vector<GeneratedClouds> merged;
  ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, reqs, &merged));
  for (size_t r = 0; r < reqs.size(); ++r) {
    const std::string name = OdeSolverName(reqs[r].solver);
    for (float v : merged[r].points) ASSERT_TRUE(std::isfinite(v)) << name;
    if (reqs[r].solver == OdeSolver::kAdaptive) {
      EXPECT_GE(merged[r].evaluations, 4);
    }
    if (reqs[r].trajectory) {
      const GeneratedClouds& g = merged[r];
      const int64_t frames = static_cast<int64_t>(g.trajectory_times.size());
      ASSERT_EQ(static_cast<int64_t>(g.trajectory.size()), frames * g.offsets.back() * 2) << name;
      EXPECT_EQ(g.trajectory_times.front(), 1.0);
      EXPECT_NEAR(g.trajectory_times.back(), 0.0, 1e-12);
      if (reqs[r].solver != OdeSolver::kAdaptive) {
        EXPECT_EQ(frames, reqs[r].steps + 1);
      }
      EXPECT_EQ(std::vector<float>(g.trajectory.end() - g.points.size(), g.trajectory.end()), g.points);
    }
  }
  // The solvers differ (the flow is not integrated exactly at 5 steps).
  EXPECT_NE(merged[0].points, merged[2].points);
  EXPECT_NE(merged[2].points, merged[6].points);
}

TEST(PointCloudModelTest, SolverValidation) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(false, 1));
  CloudSampleRequest r = Request(1);
  r.solver = OdeSolver::kAdaptive;
  r.rtol = 0.0;
  EXPECT_THAT(m->ValidateRequest(r).message(), HasSubstr("rtol"));
  r.rtol = 1e-3;
  r.atol = -1.0;
  EXPECT_THAT(m->ValidateRequest(r).message(), HasSubstr("atol"));
  r.atol = 1e-4;
  r.steps = 20000;
  EXPECT_EQ(m->ValidateRequest(r).code(), absl::StatusCode::kResourceExhausted);
}

TEST(PointCloudModelTest, TrajectoryFramesAndLabels) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(true));
  CloudSampleRequest r = Request(5, 2, 10);
  r.trajectory = true;
  r.label = "0";
  auto out = m->Sample({r});
  ASSERT_TRUE(out.ok());
  const GeneratedClouds& g = (*out)[0];
  ASSERT_EQ(g.trajectory.size(), static_cast<size_t>((r.steps + 1) * 20 * 2));
  // The last frame is the result; the first differs from it.
  const std::vector<float> last(g.trajectory.end() - 40, g.trajectory.end());
  EXPECT_EQ(last, g.points);
  EXPECT_NE(std::vector<float>(g.trajectory.begin(), g.trajectory.begin() + 40), g.points);
  EXPECT_EQ(g.labels, (std::vector<std::string>{"0", "0"}));
  // Random labels when none is asked for.
  auto random = m->Sample({Request(6, 40)});
  ASSERT_TRUE(random.ok());
  std::set<std::string> seen((*random)[0].labels.begin(), (*random)[0].labels.end());
  EXPECT_EQ(seen, (std::set<std::string>{"0", "1"}));
}

// Guidance is v_u + γ (v_c − v_u): with one Euler-like step the result is
// affine in γ, so γ = 2 lies on the line through γ = 0 and γ = 1.
TEST(PointCloudModelTest, GuidanceMixesConditionalAndUnconditional) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(true, 5));
  CloudSampleRequest r = Request(8, 2, 12);
  r.steps = 1;
  r.label = "1";
  std::vector<std::vector<float>> out;
  for (double g : {0.0, 1.0, 2.0}) {
    r.guidance = g;
    auto s = m->Sample({r});
    ASSERT_TRUE(s.ok());
    out.push_back((*s)[0].points);
  }
  // One midpoint step is not affine in γ (the midpoint velocity depends on
  // the first one), so compare the first-order part: x2 - x1 ≈ x1 - x0 up to
  // the second-order term, much smaller than the difference itself.
  double diff = 0, curvature = 0;
  for (size_t k = 0; k < out[0].size(); ++k) {
    diff += std::abs(out[1][k] - out[0][k]);
    curvature += std::abs((out[2][k] - out[1][k]) - (out[1][k] - out[0][k]));
  }
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(curvature, 0.1 * diff);
  // γ = 0 is the unconditional velocity: the label no longer matters; γ = 1
  // is the conditional one: it does.
  for (double g : {0.0, 1.0}) {
    r.guidance = g;
    r.label = "0";
    auto zero = m->Sample({r});
    r.label = "1";
    auto one = m->Sample({r});
    ASSERT_TRUE(zero.ok() && one.ok());
    if (g == 0.0) {
      EXPECT_EQ((*zero)[0].points, (*one)[0].points);
    } else {
      EXPECT_NE((*zero)[0].points, (*one)[0].points);
    }
  }
}

TEST(PointCloudModelTest, CancellationAndValidation) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(true));
  int polls = 0;
  auto cancelled = m->Sample({Request(1)}, [&] { return ++polls > 2; });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 3);

  SampleLimits limits;
  limits.max_samples = 10;
  limits.max_points = 100;
  CloudSampleRequest r = Request(1);
  r.num_samples = 11;
  EXPECT_EQ(m->ValidateRequest(r, limits).code(), absl::StatusCode::kResourceExhausted);
  r = Request(1, 1, 101);
  EXPECT_EQ(m->ValidateRequest(r, limits).code(), absl::StatusCode::kResourceExhausted);
  r = Request(1, 0);
  EXPECT_THAT(std::string(m->ValidateRequest(r).message()), HasSubstr("num_samples"));
  r = Request(1);
  r.steps = 0;
  EXPECT_THAT(std::string(m->ValidateRequest(r).message()), HasSubstr("steps"));
  r = Request(1);
  r.label = "7";
  EXPECT_THAT(std::string(m->ValidateRequest(r).message()), HasSubstr("unknown '7'"));
  r = Request(1);
  r.guidance = -1;
  EXPECT_THAT(std::string(m->ValidateRequest(r).message()), HasSubstr("guidance"));
  r = Request(1);
  r.condition = {1.0f};
  EXPECT_THAT(std::string(m->ValidateRequest(r).message()), HasSubstr("condition"));
  r = Request(1, 5, 100);
  r.trajectory = true;
  r.steps = 10000;
  limits.max_trajectory_values = 1000;
  EXPECT_EQ(m->ValidateRequest(r, limits).code(), absl::StatusCode::kResourceExhausted);
}

TEST(PointCloudModelTest, ContinuousConditions) {
  io::PointCloudSet data = testing::Ellipses(20, 10);
  std::vector<float> cond;
  for (int64_t k = 0; k < 20; ++k) cond.insert(cond.end(), {float(k % 3), float(k) / 20});
  data.labels = io::Labels::FromContinuous(cond, 2);
  auto t = PointCloudTrainer::Create(
      data, testing::TrainConfig<PointCloudTrainConfig>(testing::TinyNetwork(), 2, 4), "d");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Train().ok());
  auto m = (*t)->MakeModel();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->labels().kind, LabelSpace::Kind::kContinuous);
  CloudSampleRequest r = Request(2, 3, 8);
  r.condition = {1.0f, 0.5f};
  auto out = (*m)->Sample({r});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].conditions, (std::vector<float>{1, 0.5, 1, 0.5, 1, 0.5}));
  r.condition.clear();  // drawn from the training conditions
  out = (*m)->Sample({r});
  ASSERT_TRUE(out.ok());
  ASSERT_EQ((*out)[0].conditions.size(), 6u);
  for (size_t k = 0; k < 6; k += 2) {
    bool found = false;
    for (size_t q = 0; q < cond.size(); q += 2) {
      found |= cond[q] == (*out)[0].conditions[k] && cond[q + 1] == (*out)[0].conditions[k + 1];
    }
    EXPECT_TRUE(found);
  }
}

// Given source clouds (the reference's init_noise). A network whose final
// layer is zero has velocity 0 everywhere, so every solver must return the
// given clouds bit for bit (and record them as trajectory frame 0).
TEST(PointCloudModelTest, GivenSourcesAreWhereTheFlowStarts) {
  WFM_ASSERT_OK_AND_ASSIGN(const std::unique_ptr<PointCloudTrainer> t,
                           TrainedTrainer(false, 2, 1.0));
  WFM_ASSERT_OK_AND_ASSIGN(checkpoint::Checkpoint ckpt, t->MakeCheckpoint(false));
  int zeroed = 0;
  for (auto& [name, tensor] : ckpt.tensors) {
    if (absl::EndsWith(name, ".final.weight") || absl::EndsWith(name, ".final.bias")) {
      tensor = at::zeros_like(tensor);
      ++zeroed;
    }
  }
  ASSERT_GE(zeroed, 2);
  WFM_ASSERT_OK_AND_ASSIGN(auto still, PointCloudModel::FromCheckpoint(ckpt));
  CloudSampleRequest r = Request(4, 3);
  r.init_sizes = {5, 1, 7};
  for (int i = 0; i < 13 * 2; ++i) r.init_points.push_back(0.37f * i - 3.1f + 1e-7f * i * i);
  r.trajectory = true;
  for (OdeSolver solver : testing::kSolvers) {
    r.solver = solver;
    auto out = still->Sample({r});
    ASSERT_TRUE(out.ok()) << out.status();
    const GeneratedClouds& g = (*out)[0];
    EXPECT_EQ(g.offsets, (std::vector<int64_t>{0, 5, 6, 13}));
    EXPECT_EQ(g.points, r.init_points);
    ASSERT_GE(g.trajectory.size(), r.init_points.size());
    EXPECT_EQ(std::vector<float>(g.trajectory.begin(), g.trajectory.begin() + 26), r.init_points);
  }
  // points_per_sample equal to every size is allowed; num_samples must match.
  r.init_sizes = {4, 4};
  r.init_points.resize(16);
  r.num_samples = 2;
  r.points = 4;
  r.solver = OdeSolver::kMidpoint;
  auto fixed = still->Sample({r});
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ((*fixed)[0].points, r.init_points);
}

// A request with given sources gives the same bits alone and merged with
// other requests (with and without given sources, of the same sizes).
TEST(PointCloudModelTest, GivenSourcesAreBatchInvariant) {
  for (bool labelled : {false, true}) {
    WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(labelled));
    CloudSampleRequest given = Request(7, 2);
    given.init_sizes = {9, 12};
    for (int i = 0; i < 21 * 2; ++i) given.init_points.push_back(std::sin(0.7f * i));
    CloudSampleRequest other_given = given;
    other_given.seed = 8;
    other_given.init_points[3] += 0.5f;
    std::vector<CloudSampleRequest> reqs = {Request(1, 3, 9), given, Request(2, 2, 12), other_given};
    std::vector<GeneratedClouds> merged;
    ASSERT_NO_FATAL_FAILURE(testing::SampleMergedAndAlone(*m, reqs, &merged));
    EXPECT_EQ(merged[1].offsets, (std::vector<int64_t>{0, 9, 21}));
    EXPECT_NE(merged[1].points, merged[3].points);
    EXPECT_NE(merged[1].points, given.init_points);  // the trained flow moved them
  }
}

TEST(PointCloudModelTest, GivenSourceValidation) {
  WFM_ASSERT_OK_AND_ASSIGN(auto m, TrainedModel(false));
  SampleLimits limits;
  limits.max_points = 10;
  auto base = [] {
    CloudSampleRequest r = Request(1, 2);
    r.init_sizes = {2, 3};
    r.init_points.assign(10, 0.5f);
    return r;
  };
  EXPECT_TRUE(m->ValidateRequest(base(), limits).ok());
  struct Case {
    std::function<void(CloudSampleRequest*)> edit;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](CloudSampleRequest* r) { r->num_samples = 3; }, absl::StatusCode::kInvalidArgument,
       "init_sizes: 2 given source clouds for num_samples 3"},
      {[](CloudSampleRequest* r) { r->init_sizes = {}; }, absl::StatusCode::kInvalidArgument,
       "init_sizes: required with init_points"},
      {[](CloudSampleRequest* r) { r->init_sizes = {0, 5}; }, absl::StatusCode::kInvalidArgument,
       "init_sizes[0]: a source cloud needs >= 1 point"},
      {[](CloudSampleRequest* r) { r->init_sizes = {2, 11}; }, absl::StatusCode::kResourceExhausted,
       "init_sizes[1]: 11 points exceed the limit of 10"},
      {[](CloudSampleRequest* r) { r->init_points.pop_back(); }, absl::StatusCode::kInvalidArgument,
       "init_points: 9 values; the 5 points of init_sizes in dimension 2 need 10"},
      {[](CloudSampleRequest* r) { r->init_points[7] = NAN; }, absl::StatusCode::kInvalidArgument,
       "init_points[3, 1] = nan: values must be finite"},
      {[](CloudSampleRequest* r) { r->points = 2; }, absl::StatusCode::kInvalidArgument,
       "points: 2 per sample, but given source cloud 1 has 3 points"},
  };
  for (const Case& c : cases) {
    CloudSampleRequest r = base();
    c.edit(&r);
    const absl::Status s = m->ValidateRequest(r, limits);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message));
    if (c.code == absl::StatusCode::kInvalidArgument) {
      EXPECT_FALSE(m->Sample({r}).ok());
    }
  }
}

}  // namespace
}  // namespace wfm::model
