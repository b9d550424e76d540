#include "model/ot/sinkhorn.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/ot/lse_kernel.h"
#include "tests/testing/json_fixture.h"

namespace wfm::model::ot {
namespace {

using ::testing::HasSubstr;

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

struct Problem {
  at::Tensor x, a, y, b;
};

Problem RandomProblem(int64_t B, int64_t n, int64_t m, int64_t d, uint64_t seed,
                      at::ScalarType dtype = at::kDouble, int pad_n = 0, int pad_m = 0) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opt = at::TensorOptions().dtype(dtype);
  Problem p;
  p.x = at::randn({B, n, d}, gen, opt);
  p.y = 0.7 * at::randn({B, m, d}, gen, opt) + 0.5;
  p.a = at::rand({B, n}, gen, opt) + 0.1;
  p.b = at::rand({B, m}, gen, opt) + 0.1;
  if (pad_n > 0) p.a.narrow(1, n - pad_n, pad_n).zero_();
  if (pad_m > 0) p.b.narrow(1, m - pad_m, pad_m).zero_();
  p.a = p.a / p.a.sum(1, true);
  p.b = p.b / p.b.sum(1, true);
  return p;
}

SinkhornOptions Options(double eps, int iterations) {
  SinkhornOptions o;
  o.epsilon = eps;
  o.iterations = iterations;
  return o;
}

// POT's sinkhorn_log plans (tests/fixtures/ot/make_fixtures.py): 3 shapes
// with N != M, ε ∈ {0.002, 0.01, 0.1} relative, padded and unpadded, 200
// iterations; float64 and float32, stabilised and plain log-domain iterations.
TEST(SinkhornTest, PlansMatchPotFixtures) {
  const nlohmann::json fixture = testing::LoadFixture("ot/sinkhorn.json");
  int compared = 0;
  for (const auto& c : fixture["cases"]) {
    const at::Tensor x = testing::JsonToTensor(c["x"]), a = testing::JsonToTensor(c["a"]);
    const at::Tensor y = testing::JsonToTensor(c["y"]), b = testing::JsonToTensor(c["b"]);
    for (const auto& [eps_text, plan_json] : c["plans"].items()) {
      const at::Tensor expected = testing::JsonToTensor(plan_json);
      for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
        for (bool stabilized : {true, false}) {
          SinkhornOptions opt = Options(std::stod(eps_text), c["iterations"].get<int>());
          opt.stabilized_scaling = stabilized;
          auto sol = SolveSinkhorn(x.to(dtype), a.to(dtype), y.to(dtype), b.to(dtype), opt);
          ASSERT_TRUE(sol.ok()) << sol.status();
          const at::Tensor plan = sol->Plan().to(at::kDouble);
          const double tol = dtype == at::kDouble ? 1e-9 : 1e-4;
          EXPECT_LT(MaxAbs(plan - expected), tol)
              << "eps " << eps_text << " padded " << c["padded"] << " n " << c["n"] << " m "
              << c["m"] << " dtype " << c10::toString(dtype) << " stabilized " << stabilized;
          if (c["padded"].get<bool>()) {
            // Padding rows and columns carry exactly zero mass.
            EXPECT_EQ(MaxAbs(plan.masked_select((a == 0).unsqueeze(2).expand_as(plan))), 0.0);
            EXPECT_EQ(MaxAbs(plan.masked_select((b == 0).unsqueeze(1).expand_as(plan))), 0.0);
          }
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 6 * 3 * 4);
}

TEST(SinkhornTest, MarginalsAfterManyIterations) {
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Problem p = RandomProblem(4, 40, 30, 3, seed, at::kDouble, 7, 4);
    auto sol = SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.05, 2000));
    ASSERT_TRUE(sol.ok()) << sol.status();
    const at::Tensor plan = sol->Plan();
    EXPECT_LT(MaxAbs(plan.sum(2) - p.a), 1e-12);
    EXPECT_LT(MaxAbs(plan.sum(1) - p.b), 1e-9);
    EXPECT_LT(sol->marginal_error().max().item<double>(), 1e-8);
    EXPECT_TRUE(sol->converged().all().item<bool>());
    EXPECT_TRUE((sol->iterations() == 2000).all().item<bool>());
    // Padding carries no mass and its potentials are -inf.
    EXPECT_EQ(MaxAbs(plan.narrow(1, 33, 7)), 0.0);
    EXPECT_EQ(MaxAbs(plan.narrow(2, 26, 4)), 0.0);
    EXPECT_TRUE(at::isneginf(sol->f().narrow(1, 33, 7)).all().item<bool>());
    EXPECT_TRUE(at::isneginf(sol->g().narrow(1, 26, 4)).all().item<bool>());
  }
}

// Padding has no influence at all: a padded problem gives the plan of the
// unpadded one, wherever the padding points sit.
TEST(SinkhornTest, PaddingHasNoInfluence) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    Problem p = RandomProblem(3, 25, 18, 2, 100 + seed, at::kFloat);
    Problem q = p;
    const int extra_n = 6, extra_m = 9;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    q.x = at::cat({p.x, 50.0 * at::randn({3, extra_n, 2}, gen)}, 1);
    q.a = at::cat({p.a, at::zeros({3, extra_n})}, 1);
    q.y = at::cat({p.y, 50.0 * at::randn({3, extra_m, 2}, gen)}, 1);
    q.b = at::cat({p.b, at::zeros({3, extra_m})}, 1);
    auto plain = SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.01, 150));
    auto padded = SolveSinkhorn(q.x, q.a, q.y, q.b, Options(0.01, 150));
    ASSERT_TRUE(plain.ok() && padded.ok());
    const at::Tensor sub = padded->Plan().narrow(1, 0, 25).narrow(2, 0, 18);
    EXPECT_EQ(MaxAbs(sub - plain->Plan()), 0.0);
    EXPECT_EQ(MaxAbs(padded->Plan().narrow(1, 25, extra_n)), 0.0);
    EXPECT_EQ(MaxAbs(padded->cost_scale() - plain->cost_scale()), 0.0);
  }
}

// The stabilised scaling iterations reproduce plain log-domain iterations,
// across ε (down to 1e-3 relative), sizes and iteration counts.
TEST(SinkhornTest, StabilizedEqualsLogDomain) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t n = 5 + rng() % 60, m = 5 + rng() % 60, d = 1 + rng() % 6;
    const double eps = std::pow(10.0, -3.0 + 2.5 * (rng() % 1000) / 1000.0);
    const int iters = 1 + rng() % 400;
    Problem p = RandomProblem(2, n, m, d, 1000 + trial, at::kDouble, trial % 3, trial % 2);
    SinkhornOptions opt = Options(eps, iters);
    auto stab = SolveSinkhorn(p.x, p.a, p.y, p.b, opt);
    opt.stabilized_scaling = false;
    auto log = SolveSinkhorn(p.x, p.a, p.y, p.b, opt);
    ASSERT_TRUE(stab.ok() && log.ok());
    EXPECT_LT(MaxAbs(stab->Plan() - log->Plan()), 1e-11)
        << "trial " << trial << " eps " << eps << " iters " << iters;
    EXPECT_LT(MaxAbs(stab->marginal_error() - log->marginal_error()), 1e-11);
  }
}

TEST(SinkhornTest, FloatAndDoubleAgree) {
  Problem p = RandomProblem(8, 64, 64, 3, 5);
  auto d = SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.002, 200));
  auto f = SolveSinkhorn(p.x.to(at::kFloat), p.a.to(at::kFloat), p.y.to(at::kFloat),
                         p.b.to(at::kFloat), Options(0.002, 200));
  ASSERT_TRUE(d.ok() && f.ok());
  EXPECT_EQ(f->f().scalar_type(), at::kFloat);
  EXPECT_LT(MaxAbs(f->Plan().to(at::kDouble) - d->Plan()), 1e-5);
}

TEST(SinkhornTest, ToleranceModeStopsOnceConverged) {
  Problem p = RandomProblem(5, 40, 30, 3, 9, at::kDouble, 3, 2);
  SinkhornOptions opt = Options(0.05, 5000);
  opt.until_converged = true;
  opt.tolerance = 1e-3;
  auto sol = SolveSinkhorn(p.x, p.a, p.y, p.b, opt);
  ASSERT_TRUE(sol.ok());
  const at::Tensor l1 = (sol->Plan().sum(1) - p.b).abs().sum(1);
  EXPECT_TRUE((l1 < 1e-3).all().item<bool>()) << l1;
  EXPECT_TRUE(sol->converged().all().item<bool>());
  EXPECT_TRUE((sol->iterations() % 10 == 0).all().item<bool>());
  EXPECT_TRUE((sol->iterations() < 5000).all().item<bool>());
  // One check earlier the problem had not converged yet.
  for (int64_t k = 0; k < 5; ++k) {
    SinkhornOptions fixed = Options(0.05, sol->iterations()[k].item<int>() - 10);
    Problem one{p.x.narrow(0, k, 1), p.a.narrow(0, k, 1), p.y.narrow(0, k, 1), p.b.narrow(0, k, 1)};
    if (fixed.iterations < 1) continue;
    auto earlier = SolveSinkhorn(one.x, one.a, one.y, one.b, fixed);
    ASSERT_TRUE(earlier.ok());
    EXPECT_GE(earlier->marginal_error().item<double>(), 1e-3);
  }
  // An iteration cap that is too small leaves problems unconverged.
  opt.iterations = 10;
  opt.epsilon = 0.002;
  auto capped = SolveSinkhorn(p.x, p.a, p.y, p.b, opt);
  ASSERT_TRUE(capped.ok());
  EXPECT_FALSE(capped->converged().all().item<bool>());
  EXPECT_TRUE((capped->iterations() == 10).all().item<bool>());
}

TEST(SinkhornTest, AbsoluteEpsilonEqualsScaledRelative) {
  Problem p = RandomProblem(3, 20, 20, 2, 11);
  auto rel = SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.01, 300));
  ASSERT_TRUE(rel.ok());
  // The same problem with ε = 0.01 · max cost, absolute, per problem.
  for (int64_t k = 0; k < 3; ++k) {
    SinkhornOptions abs = Options(0.01 * rel->cost_scale()[k].item<double>(), 300);
    abs.epsilon_scale = EpsilonScale::kAbsolute;
    auto sol = SolveSinkhorn(p.x.narrow(0, k, 1), p.a.narrow(0, k, 1), p.y.narrow(0, k, 1),
                             p.b.narrow(0, k, 1), abs);
    ASSERT_TRUE(sol.ok());
    EXPECT_EQ(sol->cost_scale().item<double>(), 1.0);
    EXPECT_LT(MaxAbs(sol->Plan()[0] - rel->Plan()[k]), 1e-10);
  }
}

TEST(SinkhornTest, BarycentricMapAndCosts) {
  Problem p = RandomProblem(2, 15, 12, 3, 13, at::kDouble, 2, 0);
  auto sol = SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.05, 500));
  ASSERT_TRUE(sol.ok());
  const at::Tensor plan = sol->Plan();
  const at::Tensor map = sol->BarycentricMap(p.y);
  for (int64_t k = 0; k < 2; ++k) {
    for (int64_t i = 0; i < 13; ++i) {
      const at::Tensor expect = (plan[k][i].unsqueeze(1) * p.y[k]).sum(0) / plan[k][i].sum();
      EXPECT_LT(MaxAbs(map[k][i] - expect), 1e-12);
    }
  }
  EXPECT_EQ(MaxAbs(map.narrow(1, 13, 2)), 0.0);  // padding rows
  const at::Tensor cost = (p.x.unsqueeze(2) - p.y.unsqueeze(1)).pow(2).sum(3);
  EXPECT_LT(MaxAbs(sol->TransportCost() - (plan * cost).sum({1, 2})), 1e-12);
}

TEST(SinkhornTest, GeneralCostMatrix) {
  // A cost that is not a squared distance: the plan is still the Gibbs form
  // exp((f + g - C) / ε) with the right marginals.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor cost = at::rand({2, 6, 9}, gen, at::kDouble);
  const at::Tensor a = at::full({2, 6}, 1.0 / 6, at::kDouble);
  const at::Tensor b = at::full({2, 9}, 1.0 / 9, at::kDouble);
  auto sol = SolveSinkhornCost(cost, a, b, Options(0.1, 3000));
  ASSERT_TRUE(sol.ok());
  EXPECT_LT(MaxAbs(sol->Plan().sum(1) - b), 1e-10);
  EXPECT_LT(MaxAbs(sol->scaled_cost() - cost / cost.amax({1, 2}, true)), 1e-15);
}

TEST(SinkhornTest, RejectsBadInput) {
  Problem p = RandomProblem(2, 5, 6, 2, 1);
  auto expect_error = [](const absl::StatusOr<SinkhornSolution>& s, const std::string& words) {
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(words));
  };
  expect_error(SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.0, 10)), "epsilon");
  expect_error(SolveSinkhorn(p.x, p.a, p.y, p.b, Options(-1.0, 10)), "epsilon");
  expect_error(SolveSinkhorn(p.x, p.a, p.y, p.b, Options(0.1, 0)), "iterations");
  expect_error(SolveSinkhorn(p.x, p.a.narrow(1, 0, 4), p.y, p.b, Options(0.1, 10)), "a: shape");
  expect_error(SolveSinkhorn(p.x, p.a, p.y.narrow(2, 0, 1), p.b, Options(0.1, 10)), "y: shape");
  expect_error(SolveSinkhorn(p.x, -p.a, p.y, p.b, Options(0.1, 10)), "a: weights must be >= 0");
  expect_error(SolveSinkhorn(p.x, p.a * 0, p.y, p.b, Options(0.1, 10)), "no positive weight");
  expect_error(SolveSinkhorn(p.x, p.a * 2, p.y, p.b, Options(0.1, 10)), "unbalanced");
  at::Tensor nan_x = p.x.clone();
  nan_x[0][1][0] = std::numeric_limits<double>::quiet_NaN();
  expect_error(SolveSinkhorn(nan_x, p.a, p.y, p.b, Options(0.1, 10)), "finite");
  expect_error(SolveSinkhorn(p.x.to(at::kFloat), p.a, p.y.to(at::kFloat), p.b, Options(0.1, 10)),
               "dtype");
  expect_error(SolveSinkhorn(p.x.to(at::kInt), p.a, p.y, p.b, Options(0.1, 10)), "float32 or float64");
}

// Each instruction set's kernels agree with the portable ones and with the
// definition computed in double precision.
TEST(LseKernelTest, EveryIsaMatchesTheDefinition) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int rows = 13, cols = 45, stride = kernel::PaddedStride(cols);
  auto alloc = [](size_t n) {
    return std::unique_ptr<float, decltype(&std::free)>(
        static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64)), &std::free);
  };
  auto mat = alloc(rows * stride), w = alloc(stride), lm = alloc(rows), out = alloc(rows);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < stride; ++j) {
      mat.get()[i * stride + j] =
          j < cols ? -200.0f * std::abs(normal(rng)) : -std::numeric_limits<float>::infinity();
    }
    lm.get()[i] = normal(rng);
  }
  for (int j = 0; j < stride; ++j) w.get()[j] = j < cols ? 30.0f * normal(rng) : 0.0f;
  int tested = 0;
  for (const char* isa : {"generic", "avx2", "avx512f"}) {
    const kernel::FloatKernels* k = kernel::FloatKernelsFor(isa);
    if (k == nullptr) continue;  // this CPU lacks the instruction set
    ++tested;
    k->lse_rows(mat.get(), rows, stride, w.get(), lm.get(), out.get());
    for (int i = 0; i < rows; ++i) {
      double mx = -1e300;
      for (int j = 0; j < cols; ++j) mx = std::max(mx, double(mat.get()[i * stride + j]) + w.get()[j]);
      double s = 0;
      for (int j = 0; j < cols; ++j) s += std::exp(double(mat.get()[i * stride + j]) + w.get()[j] - mx);
      const double expect = lm.get()[i] - (mx + std::log(s));
      EXPECT_NEAR(out.get()[i], expect, 2e-6 * std::max(1.0, std::abs(expect))) << isa;
    }
    // exp accuracy over [-90, 10]: ~1 ulp relative, exact zeros below -86.
    auto in_a = alloc(1024), out_a = alloc(1024);
    for (int q = 0; q < 1024; ++q) in_a.get()[q] = -90.0f + 100.0f * q / 1023.0f;
    k->exp(in_a.get(), out_a.get(), 1024);
    for (int q = 0; q < 1024; ++q) {
      const float xq = in_a.get()[q];
      if (xq < -86.0f) {
        EXPECT_EQ(out_a.get()[q], 0.0f);
      } else {
        EXPECT_NEAR(out_a.get()[q], std::exp(double(xq)), 3e-7 * std::exp(double(xq))) << xq;
      }
    }
  }
  EXPECT_GE(tested, 1);
  EXPECT_STRNE(kernel::BestFloatKernels().isa, nullptr);
}

}  // namespace
}  // namespace wfm::model::ot
