// The optimisation pieces both trainers share (train_common.h,
// optimization_state.h): learning-rate schedules, flow-time distributions,
// the training loop's time budget, AdamW and the moving average of the
// weights.
#include <atomic>
#include <cmath>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include "model/checkpoint/module_state.h"
#include "model/train/optimization_state.h"
#include "model/train/train_common.h"

namespace wfm::model {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(ScheduleTest, ExponentialIsTheReferenceDecay) {
  OptimizerConfig c;
  c.learning_rate = 1e-3;
  c.decay_steps = 100;
  c.decay_rate = 0.5;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 0, 0.0), 1e-3);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 100, 0.5), 0.5e-3);
  EXPECT_NEAR(ScheduledLearningRate(c, 150, 0.9), 1e-3 * std::pow(0.5, 1.5), 1e-15);
  c.decay_steps = 0;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 12345, 0.7), 1e-3);
}

TEST(ScheduleTest, CosineFollowsTheProgressToZero) {
  OptimizerConfig c;
  c.learning_rate = 2e-3;
  c.lr_schedule = "cosine";
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 0, 0.0), 2e-3);
  EXPECT_NEAR(ScheduledLearningRate(c, 10, 0.5), 1e-3, 1e-15);
  EXPECT_NEAR(ScheduledLearningRate(c, 10, 0.25), 1e-3 * (1 + std::cos(kPi / 4)), 1e-15);
  EXPECT_NEAR(ScheduledLearningRate(c, 10, 1.0), 0.0, 1e-15);
  EXPECT_NEAR(ScheduledLearningRate(c, 10, 3.0), 0.0, 1e-15);  // clamped
}

TEST(ScheduleTest, WarmupRampsLinearlyThenHandsOver) {
  OptimizerConfig c;
  c.learning_rate = 1e-3;
  c.decay_steps = 0;
  c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 0, 0.0), 0.25e-3);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 2, 0.0), 0.75e-3);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 3, 0.0), 1e-3);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(c, 4, 0.0), 1e-3);
  c.lr_schedule = "cosine";
  EXPECT_NEAR(ScheduledLearningRate(c, 1, 0.5), 0.5 * 0.5e-3, 1e-15);
}

TEST(FlowTimesTest, UniformAndLogitNormal) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t n = 200000;
  const at::Tensor u = SampleFlowTimes("uniform", n, gen);
  ASSERT_EQ(u.sizes(), at::IntArrayRef({n}));
  EXPECT_EQ(u.scalar_type(), at::kFloat);
  EXPECT_GE(u.min().item<float>(), 0.0f);
  EXPECT_LT(u.max().item<float>(), 1.0f);
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 0.005);
  EXPECT_NEAR(u.var().item<double>(), 1.0 / 12, 0.002);
  const at::Tensor l = SampleFlowTimes("logit_normal", n, gen);
  EXPECT_GT(l.min().item<float>(), 0.0f);
  EXPECT_LT(l.max().item<float>(), 1.0f);
  // logit(t) is standard normal.
  const at::Tensor z = at::log(l.to(at::kDouble)) - at::log1p(-l.to(at::kDouble));
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(z.std().item<double>(), 1.0, 0.01);
  // Fewer t near the ends than uniform: P(t < 0.1) = Φ(logit 0.1) = 0.0142.
  EXPECT_NEAR((l < 0.1f).to(at::kDouble).mean().item<double>(), 0.0142, 0.002);
}

// A loop over a counter, with the loop's hooks.
struct CountingLoop {
  int64_t steps = 0;
  double seconds = 0.0;
  absl::Status Run(const TrainHooks& hooks, int64_t total, double budget) {
    return RunTrainingLoop(hooks, total, 0, budget, [this] { return steps; },
                           [this]() -> absl::StatusOr<double> {
                             ++steps;
                             return 1.0;
                           },
                           &seconds);
  }
};

TEST(TrainingLoopTest, WithoutBudgetRunsEveryStep) {
  CountingLoop loop;
  ASSERT_TRUE(loop.Run({}, 50, 0.0).ok());
  EXPECT_EQ(loop.steps, 50);
  CountingLoop generous;
  ASSERT_TRUE(generous.Run({}, 50, 1e9).ok());
  EXPECT_EQ(generous.steps, 50);
}

TEST(TrainingLoopTest, SpentBudgetEndsAfterTheFirstStep) {
  // Any step takes longer than a nanosecond: the budget is spent after one.
  CountingLoop loop;
  ASSERT_TRUE(loop.Run({}, 1000, 1e-9).ok());
  EXPECT_EQ(loop.steps, 1);
  // Time already recorded (a resumed run) counts against the budget.
  CountingLoop resumed;
  resumed.steps = 10;
  resumed.seconds = 5.0;
  ASSERT_TRUE(resumed.Run({}, 1000, 4.0).ok());
  EXPECT_EQ(resumed.steps, 10);
}

TEST(TrainingLoopTest, RanksAgreeOnStopping) {
  // The hook is asked before every step but the first; its answer decides.
  int asked = 0;
  TrainHooks hooks;
  hooks.agree_to_stop = [&asked](bool spent) -> absl::StatusOr<bool> {
    EXPECT_FALSE(spent);  // the budget is huge here
    return ++asked == 3;  // another rank's budget ran out
  };
  CountingLoop loop;
  ASSERT_TRUE(loop.Run(hooks, 100, 1e9).ok());
  EXPECT_EQ(asked, 3);
  EXPECT_EQ(loop.steps, 3);
  // A failing agreement fails the run.
  hooks.agree_to_stop = [](bool) -> absl::StatusOr<bool> {
    return absl::UnavailableError("rank 1 died");
  };
  CountingLoop failing;
  EXPECT_EQ(failing.Run(hooks, 100, 1e9).code(), absl::StatusCode::kUnavailable);
  // Without a budget the hook is never consulted.
  CountingLoop unbounded;
  ASSERT_TRUE(unbounded.Run(hooks, 5, 0.0).ok());
  EXPECT_EQ(unbounded.steps, 5);
}

// A small linear model and a fixed quadratic loss.
struct Fixture {
  torch::nn::Linear net{nullptr};
  at::Tensor x, y;
  explicit Fixture(uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    net = torch::nn::Linear(torch::nn::LinearOptions(3, 2));
    {
      at::NoGradGuard no_grad;
      for (auto& p : net->parameters()) p.copy_(at::randn(p.sizes(), gen));
    }
    x = at::randn({8, 3}, gen);
    y = at::randn({8, 2}, gen);
  }
  at::Tensor Loss() { return (net->forward(x) - y).pow(2).mean(); }
  std::vector<at::Tensor> Params() {
    std::vector<at::Tensor> out;
    for (const auto& p : net->parameters()) out.push_back(p.detach().clone());
    return out;
  }
};

TEST(OptimizationStateTest, WeightDecayIsAdamW) {
  // torch::optim::AdamW is the oracle: decoupled decay p ← p (1 − lr λ),
  // then Adam's update.
  Fixture ours(3), theirs(3);
  OptimizerConfig c;
  c.learning_rate = 0.05;
  c.decay_steps = 0;
  c.weight_decay = 0.1;
  OptimizationState state(ours.net.ptr(), c, 0);
  torch::optim::AdamW adamw(theirs.net->parameters(),
                            torch::optim::AdamWOptions(0.05).betas({0.9, 0.999}).eps(1e-8)
                                .weight_decay(0.1));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(state.Apply(ours.Loss(), {}).ok());
    adamw.zero_grad();
    theirs.Loss().backward();
    adamw.step();
  }
  const auto a = ours.Params(), b = theirs.Params();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::allclose(a[i], b[i], 1e-5, 1e-6)) << i;
}

TEST(OptimizationStateTest, MovingAverageFollowsItsRecursion) {
  Fixture f(4);
  OptimizerConfig c;
  c.learning_rate = 0.05;
  c.decay_steps = 0;
  c.ema_decay = 0.9;
  OptimizationState state(f.net.ptr(), c, 0);
  std::vector<at::Tensor> ema = f.Params();  // starts at the initial weights
  for (int n = 1; n <= 30; ++n) {
    ASSERT_TRUE(state.Apply(f.Loss(), {}).ok());
    const double d = std::min(0.9, (1.0 + n) / (10.0 + n));
    const auto p = f.Params();
    for (size_t i = 0; i < ema.size(); ++i) ema[i] = d * ema[i] + (1 - d) * p[i];
  }
  absl::StatusOr<checkpoint::NamedTensors> weights = state.SamplingWeights();
  ASSERT_TRUE(weights.ok()) << weights.status();
  ASSERT_EQ(weights->size(), 2u);
  EXPECT_EQ((*weights)[0].first, "ema.weight");
  EXPECT_EQ((*weights)[1].first, "ema.bias");
  EXPECT_TRUE(at::allclose((*weights)[0].second, ema[0], 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose((*weights)[1].second, ema[1], 1e-5, 1e-6));
  // The average lags the trained weights.
  EXPECT_FALSE(at::allclose((*weights)[0].second, f.Params()[0], 1e-4, 1e-5));
  // Without an average there are no sampling weights of their own.
  Fixture g(4);
  c.ema_decay = 0.0;
  OptimizationState plain(g.net.ptr(), c, 0);
  ASSERT_TRUE(plain.Apply(g.Loss(), {}).ok());
  absl::StatusOr<checkpoint::NamedTensors> none = plain.SamplingWeights();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(checkpoint::SamplingPrefix(*weights), "ema.");
  EXPECT_EQ(checkpoint::SamplingPrefix(*none), "model.");
}

TEST(OptimizationStateTest, ProgressCountsStepsOrTheBudget) {
  Fixture f(5);
  OptimizerConfig c;
  c.steps = 4;
  OptimizationState state(f.net.ptr(), c, 0);
  EXPECT_EQ(state.Progress(), 0.0);
  ASSERT_TRUE(state.Apply(f.Loss(), {}).ok());
  EXPECT_DOUBLE_EQ(state.Progress(), 0.25);
  // With a budget, the time spent counts too: a budget spent by the first
  // step ends the run there, at full progress (a cosine schedule has
  // annealed).
  Fixture g(5);
  c.steps = 1000;
  c.time_budget_seconds = 1e-12;
  OptimizationState budgeted(g.net.ptr(), c, 0);
  ASSERT_TRUE(budgeted.Train({}, c.steps, 0, [&] { return budgeted.Apply(g.Loss(), {}); }).ok());
  EXPECT_EQ(budgeted.step(), 1);
  EXPECT_DOUBLE_EQ(budgeted.Progress(), 1.0);
}

}  // namespace
}  // namespace wfm::model
