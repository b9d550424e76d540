#include "model/sample/ode_solver.h"

#include <cmath>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

// A known flow, integrated from t = 1 down to t = 0 (dx/dt = v):
//   v0 = cos(t)·x0  →  x0(t) = x0(1)·exp(sin t − sin 1)
//   v1 = x1²        →  x1(t) = 1 / (1/x1(1) + 1 − t)
// Starting at (1, 0.5): x(0) = (exp(−sin 1), 1/3).
class KnownFlow {
 public:
  using State = std::vector<double>;
  using Tangent = std::vector<double>;

  absl::StatusOr<Tangent> Velocity(const State& x, double t) {
    ++calls;
    return Tangent{std::cos(t) * x[0], x[1] * x[1]};
  }
  absl::StatusOr<State> Advance(const State& x, const Terms<Tangent>& terms, double h) {
    State out = x;
    for (const auto& [w, k] : terms) {
      for (size_t e = 0; e < x.size(); ++e) out[e] -= h * w * (*k)[e];
    }
    return out;
  }
  double ErrorNorm(const State& x, const State& high, const State& low, double rtol,
                   double atol) const {
    double sum = 0.0;
    for (size_t e = 0; e < x.size(); ++e) {
      const double r =
          (high[e] - low[e]) / (atol + rtol * std::max(std::abs(x[e]), std::abs(high[e])));
      sum += r * r;
    }
    return std::sqrt(sum / static_cast<double>(x.size()));
  }
  void Record(const State& /*x*/, int64_t frame, double t) {
    EXPECT_EQ(frame, static_cast<int64_t>(times.size()));
    times.push_back(t);
  }

  int64_t calls = 0;
  std::vector<double> times;
};

const std::vector<double> kExact = {std::exp(-std::sin(1.0)), 1.0 / 3.0};

double Error(const std::vector<double>& x) {
  return std::max(std::abs(x[0] - kExact[0]), std::abs(x[1] - kExact[1]));
}

struct Solved {
  std::vector<double> x;
  OdeStats stats;
  KnownFlow flow;
};

Solved Solve(OdeSolver solver, int64_t steps, double rtol = kDefaultRtol, double atol = kDefaultAtol) {
  Solved run;
  run.x = {1.0, 0.5};
  OdeSettings s;
  s.solver = solver;
  s.steps = steps;
  s.rtol = rtol;
  s.atol = atol;
  auto stats = Integrate(run.flow, &run.x, s);
  EXPECT_TRUE(stats.ok()) << stats.status();
  if (stats.ok()) run.stats = *stats;
  return run;
}

// The measured order: log2 of the error ratio when the steps double.
TEST(OdeSolverTest, OrderOfConvergenceOnAKnownFlow) {
  const struct {
    OdeSolver solver;
    double order;
  } cases[] = {{OdeSolver::kEuler, 1}, {OdeSolver::kMidpoint, 2}, {OdeSolver::kHeun, 2},
               {OdeSolver::kRk4, 4}};
  for (const auto& c : cases) {
    for (int64_t steps : {16, 32}) {
      const double coarse = Error(Solve(c.solver, steps).x);
      const double fine = Error(Solve(c.solver, 2 * steps).x);
      const double measured = std::log2(coarse / fine);
      EXPECT_NEAR(measured, c.order, 0.15) << OdeSolverName(c.solver) << " at " << steps;
    }
  }
}

TEST(OdeSolverTest, FixedStepEvaluationsAndFramesAreExact) {
  for (OdeSolver solver :
       {OdeSolver::kEuler, OdeSolver::kMidpoint, OdeSolver::kHeun, OdeSolver::kRk4}) {
    for (int64_t steps : {1, 3, 10}) {
      const Solved run = Solve(solver, steps);
      const int64_t stages = TableauOf(solver).stages;
      EXPECT_EQ(run.stats.evaluations, steps * stages) << OdeSolverName(solver);
      EXPECT_EQ(run.flow.calls, steps * stages);
      EXPECT_EQ(MaxEvaluations({solver, steps}), steps * stages);
      EXPECT_EQ(run.stats.accepted, steps);
      ASSERT_EQ(static_cast<int64_t>(run.flow.times.size()), steps + 1);
      EXPECT_EQ(run.flow.times.front(), 1.0);
      EXPECT_NEAR(run.flow.times.back(), 0.0, 1e-15);
    }
  }
  EXPECT_EQ(TableauOf(OdeSolver::kEuler).stages, 1);
  EXPECT_EQ(TableauOf(OdeSolver::kMidpoint).stages, 2);
  EXPECT_EQ(TableauOf(OdeSolver::kHeun).stages, 2);
  EXPECT_EQ(TableauOf(OdeSolver::kRk4).stages, 4);
}

// Every tableau is consistent: rows of a sum to c, weights sum to 1.
TEST(OdeSolverTest, TableauxAreConsistent) {
  for (OdeSolver solver : {OdeSolver::kEuler, OdeSolver::kMidpoint, OdeSolver::kHeun,
                           OdeSolver::kRk4, OdeSolver::kAdaptive}) {
    const ButcherTableau& t = TableauOf(solver);
    ASSERT_EQ(static_cast<int>(t.a.size()), t.stages);
    for (int i = 0; i < t.stages; ++i) {
      double row = 0.0;
      for (double a : t.a[i]) row += a;
      EXPECT_NEAR(row, t.c[i], 1e-15) << OdeSolverName(solver) << i;
    }
    double b = 0.0, low = 0.0;
    for (double w : t.b) b += w;
    for (double w : t.b_low) low += w;
    EXPECT_NEAR(b, 1.0, 1e-15);
    if (solver == OdeSolver::kAdaptive) {
      EXPECT_NEAR(low, 1.0, 1e-15);
    }
  }
}

TEST(OdeSolverTest, AdaptiveReachesTheToleranceAndSpendsMoreForLess) {
  int64_t previous = 0;
  for (double rtol : {1e-3, 1e-5, 1e-7}) {
    const Solved run = Solve(OdeSolver::kAdaptive, 10000, rtol, rtol);
    // The global error stays within a small multiple of the local tolerance.
    EXPECT_LT(Error(run.x), 10 * rtol) << rtol;
    EXPECT_EQ(run.stats.evaluations, 1 + 3 * (run.stats.accepted + run.stats.rejected));
    EXPECT_EQ(run.flow.calls, run.stats.evaluations);
    EXPECT_GT(run.stats.evaluations, previous);
    previous = run.stats.evaluations;
    // Frames = accepted steps + 1, from t = 1 down to exactly 0.
    ASSERT_EQ(static_cast<int64_t>(run.flow.times.size()), run.stats.accepted + 1);
    EXPECT_EQ(run.flow.times.front(), 1.0);
    EXPECT_EQ(run.flow.times.back(), 0.0);
    for (size_t f = 1; f < run.flow.times.size(); ++f) {
      EXPECT_LT(run.flow.times[f], run.flow.times[f - 1]);
    }
  }
}

TEST(OdeSolverTest, AdaptiveStepCapBoundsTheEvaluations) {
  for (int64_t cap : {1, 2, 5}) {
    const Solved run = Solve(OdeSolver::kAdaptive, cap, 1e-8, 0.0);
    EXPECT_LE(run.stats.accepted + run.stats.rejected, cap);
    EXPECT_LE(run.stats.evaluations, MaxEvaluations({OdeSolver::kAdaptive, cap}));
    EXPECT_EQ(run.flow.times.back(), 0.0);  // it still reaches t = 0
  }
}

TEST(OdeSolverTest, CancelledBeforeAStep) {
  for (OdeSolver solver : {OdeSolver::kRk4, OdeSolver::kAdaptive}) {
    KnownFlow flow;
    std::vector<double> x = {1.0, 0.5};
    int polls = 0;
    auto stats = Integrate(flow, &x, {solver, 10}, [&] { return ++polls > 2; });
    EXPECT_EQ(stats.status().code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(flow.times.size(), 3u);  // the start and two steps
  }
}

TEST(OdeSolverTest, NamesAndValidation) {
  for (OdeSolver solver : {OdeSolver::kEuler, OdeSolver::kMidpoint, OdeSolver::kHeun,
                           OdeSolver::kRk4, OdeSolver::kAdaptive}) {
    WFM_ASSERT_OK_AND_ASSIGN(const OdeSolver parsed, ParseOdeSolver(OdeSolverName(solver)));
    EXPECT_EQ(parsed, solver);
  }
  const absl::Status unknown = ParseOdeSolver("leapfrog").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("solver: unknown solver 'leapfrog'"));
  EXPECT_THAT(unknown.message(), HasSubstr("euler, midpoint, heun, rk4, adaptive"));
  EXPECT_TRUE(ValidateOdeSettings({OdeSolver::kRk4, 5}, 10).ok());
  EXPECT_THAT(ValidateOdeSettings({OdeSolver::kRk4, 0}, 10).message(), HasSubstr("steps: must be >= 1"));
  EXPECT_EQ(ValidateOdeSettings({OdeSolver::kRk4, 11}, 10).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(ValidateOdeSettings({OdeSolver::kAdaptive, 5, 0.0, 1e-4}, 10).message(),
              HasSubstr("rtol: must be in [1e-8, 1]"));
  EXPECT_THAT(ValidateOdeSettings({OdeSolver::kAdaptive, 5, 2.0, 1e-4}, 10).message(),
              HasSubstr("rtol"));
  EXPECT_THAT(ValidateOdeSettings({OdeSolver::kAdaptive, 5, 1e-3, -1.0}, 10).message(),
              HasSubstr("atol: must be in [0, 1000]"));
  EXPECT_THAT(ValidateOdeSettings({OdeSolver::kAdaptive, 5, 1e-3, NAN}, 10).message(),
              HasSubstr("atol"));
  // Fixed-step solvers ignore the tolerances.
  EXPECT_TRUE(ValidateOdeSettings({OdeSolver::kEuler, 5, 0.0, -1.0}, 10).ok());
}

}  // namespace
}  // namespace wfm::model
