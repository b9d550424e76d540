#include "model/gaussian/losses.h"

#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/model/gaussian/gaussian_test_util.h"

namespace wfm::model::gaussian {
namespace {

using ::testing::HasSubstr;
using namespace test_util;  // NOLINT(build/namespaces): the Gaussian test helpers

// A float64 tensor of the given shape holding `values` in row-major order.
at::Tensor Values(std::vector<double> values, std::vector<int64_t> shape) {
  return at::tensor(values, F64()).view(shape).clone();
}

at::Tensor RandomSymmetric(int64_t batch, int64_t d, at::Generator& gen) {
  const at::Tensor g = at::randn({batch, d, d}, gen, F64());
  return 0.5 * (g + g.transpose(-1, -2));
}

TEST(TangentNormLossTest, HandComputedValue) {
  // Δm = (1, 2) -> 5. ΔV = [[1, 1], [1, 0]], S = [[2, 0], [0, 3]]:
  // ΔV² = [[2, 1], [1, 1]], tr(S ΔV²) = 2·2 + 3·1 = 7. Total 12.
  const at::Tensor pred_m = Values({1.5, 2.0}, {1, 2});
  const at::Tensor true_m = Values({0.5, 0.0}, {1, 2});
  const at::Tensor true_v = Values({1.0, 0.5, 0.5, -1.0}, {1, 2, 2});
  const at::Tensor pred_v = true_v + Values({1.0, 1.0, 1.0, 0.0}, {1, 2, 2});
  const at::Tensor s = Values({2.0, 0.0, 0.0, 3.0}, {1, 2, 2});
  auto loss = TangentNormLoss(pred_m, pred_v, true_m, true_v, s);
  ASSERT_TRUE(loss.ok()) << loss.status();
  ASSERT_EQ(loss->sizes(), (std::vector<int64_t>{1}));
  EXPECT_DOUBLE_EQ((*loss)[0].item<double>(), 12.0);
}

TEST(EuclideanNormLossTest, HandComputedValue) {
  // Δm = (3, 4) -> 25. ΔS = [[1, 2], [2, 2]] -> |ΔS|_F² = 13, / d = 6.5.
  const at::Tensor pred_m = Values({3.0, 4.0, 0.0, 0.0}, {2, 2});
  const at::Tensor true_m = at::zeros({2, 2}, F64());
  const at::Tensor true_s = at::zeros({2, 2, 2}, F64());
  at::Tensor pred_s = at::zeros({2, 2, 2}, F64());
  pred_s[0] = Values({1.0, 2.0, 2.0, 2.0}, {2, 2});
  auto loss = EuclideanNormLoss(pred_m, pred_s, true_m, true_s);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_DOUBLE_EQ((*loss)[0].item<double>(), 31.5);
  EXPECT_DOUBLE_EQ((*loss)[1].item<double>(), 0.0);
}

TEST(TangentNormLossTest, MatchesAnEntrywiseLoopAndIsNonNegative) {
  for (int64_t d : {1, 2, 3, 6}) {
    for (uint64_t seed = 0; seed < 5; ++seed) {
      at::Generator gen = MakeGenerator(seed + 10 * d);
      const int64_t batch = 4;
      const at::Tensor pm = at::randn({batch, d}, gen, F64());
      const at::Tensor tm = at::randn({batch, d}, gen, F64());
      const at::Tensor pv = RandomSymmetric(batch, d, gen);
      const at::Tensor tv = RandomSymmetric(batch, d, gen);
      const at::Tensor s = test_util::RandomSpd(batch, d, gen);
      auto loss = TangentNormLoss(pm, pv, tm, tv, s);
      ASSERT_TRUE(loss.ok());
      EXPECT_TRUE((*loss >= 0).all().item<bool>());
      const auto pma = pm.accessor<double, 2>(), tma = tm.accessor<double, 2>();
      const auto pva = pv.accessor<double, 3>(), tva = tv.accessor<double, 3>();
      const auto sa = s.accessor<double, 3>();
      for (int64_t b = 0; b < batch; ++b) {
        double expected = 0.0;
        for (int64_t i = 0; i < d; ++i) expected += (pma[b][i] - tma[b][i]) * (pma[b][i] - tma[b][i]);
        // tr(S D D) = Σ_ijk S_ij D_jk D_ki.
        for (int64_t i = 0; i < d; ++i) {
          for (int64_t j = 0; j < d; ++j) {
            for (int64_t k = 0; k < d; ++k) {
              expected += sa[b][i][j] * (pva[b][j][k] - tva[b][j][k]) *
                          (pva[b][k][i] - tva[b][k][i]);
            }
          }
        }
        EXPECT_NEAR((*loss)[b].item<double>(), expected, 1e-12 * (1.0 + std::abs(expected)));
      }
      auto zero = TangentNormLoss(pm, pv, pm, pv, s);
      ASSERT_TRUE(zero.ok());
      EXPECT_EQ(test_util::MaxAbs(*zero), 0.0);
      auto fast = unchecked::TangentNormLoss(pm, pv, tm, tv, s);
      EXPECT_TRUE(at::equal(fast, *loss));
    }
  }
}

// Central differences of sum(loss) with respect to every entry of `x`,
// which `loss_of` reads.
at::Tensor NumericGradient(const std::function<at::Tensor()>& loss_of, at::Tensor x,
                           double h = 1e-6) {
  at::Tensor grad = at::zeros_like(x);
  at::Tensor flat = x.view({-1});
  at::Tensor gflat = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double orig = flat[i].item<double>();
    flat[i] = orig + h;
    const double up = loss_of().sum().item<double>();
    flat[i] = orig - h;
    const double down = loss_of().sum().item<double>();
    flat[i] = orig;
    gflat[i] = (up - down) / (2 * h);
  }
  return grad;
}

TEST(LossGradientTest, TangentNormGradientsMatchFiniteDifferences) {
  for (int64_t d : {1, 2, 3}) {
    at::Generator gen = MakeGenerator(70 + d);
    const int64_t batch = 3;
    at::Tensor pm = at::randn({batch, d}, gen, F64());
    at::Tensor pv = RandomSymmetric(batch, d, gen);
    const at::Tensor tm = at::randn({batch, d}, gen, F64());
    const at::Tensor tv = RandomSymmetric(batch, d, gen);
    const at::Tensor s = test_util::RandomSpd(batch, d, gen);

    const at::Tensor pm_leaf = pm.clone().requires_grad_(true);
    const at::Tensor pv_leaf = pv.clone().requires_grad_(true);
    auto loss = TangentNormLoss(pm_leaf, pv_leaf, tm, tv, s);
    ASSERT_TRUE(loss.ok());
    ASSERT_TRUE(loss->requires_grad());
    loss->sum().backward();

    auto value = [&] { return *TangentNormLoss(pm, pv, tm, tv, s); };
    EXPECT_LE(RelError(pm_leaf.grad(), NumericGradient(value, pm)), 1e-7) << "d=" << d;
    EXPECT_LE(RelError(pv_leaf.grad(), NumericGradient(value, pv)), 1e-7) << "d=" << d;
    // Analytic form: d/dm = 2Δm; d/dV = (S ΔV + ΔV S)ᵀ (per entry of a
    // general, not symmetrised, V).
    const at::Tensor dv = pv - tv;
    EXPECT_LE(RelError(pm_leaf.grad(), 2 * (pm - tm)), 1e-12);
    EXPECT_LE(RelError(pv_leaf.grad(),
                       (at::matmul(s, dv) + at::matmul(dv, s)).transpose(-1, -2)),
              1e-12);
  }
}

TEST(LossGradientTest, EuclideanNormGradientsMatchFiniteDifferences) {
  for (int64_t d : {1, 2, 4}) {
    at::Generator gen = MakeGenerator(90 + d);
    const int64_t batch = 3;
    at::Tensor pm = at::randn({batch, d}, gen, F64());
    at::Tensor ps = at::randn({batch, d, d}, gen, F64());
    const at::Tensor tm = at::randn({batch, d}, gen, F64());
    const at::Tensor ts = at::randn({batch, d, d}, gen, F64());
    const at::Tensor pm_leaf = pm.clone().requires_grad_(true);
    const at::Tensor ps_leaf = ps.clone().requires_grad_(true);
    auto loss = EuclideanNormLoss(pm_leaf, ps_leaf, tm, ts);
    ASSERT_TRUE(loss.ok());
    loss->sum().backward();
    auto value = [&] { return *EuclideanNormLoss(pm, ps, tm, ts); };
    EXPECT_LE(RelError(pm_leaf.grad(), NumericGradient(value, pm)), 1e-7) << "d=" << d;
    EXPECT_LE(RelError(ps_leaf.grad(), NumericGradient(value, ps)), 1e-7) << "d=" << d;
    EXPECT_LE(RelError(ps_leaf.grad(), 2.0 * (ps - ts) / static_cast<double>(d)), 1e-12);
  }
}

TEST(LossesTest, Float32AndArgumentChecks) {
  at::Generator gen = MakeGenerator(3);
  const at::Tensor m = at::randn({4, 3}, gen, F64());
  const at::Tensor v = RandomSymmetric(4, 3, gen);
  const at::Tensor s = test_util::RandomSpd(4, 3, gen);
  auto l32 = TangentNormLoss(m.to(at::kFloat), v.to(at::kFloat), at::zeros({4, 3}, at::kFloat),
                             at::zeros({4, 3, 3}, at::kFloat), s.to(at::kFloat));
  ASSERT_TRUE(l32.ok());
  EXPECT_EQ(l32->scalar_type(), at::kFloat);
  auto l64 = TangentNormLoss(m, v, at::zeros({4, 3}, F64()), at::zeros({4, 3, 3}, F64()), s);
  EXPECT_LE(RelError(*l32, *l64), 1e-5);

  EXPECT_THAT(TangentNormLoss(m, v, m, v, s.narrow(0, 0, 2)).status().message(),
              HasSubstr("S_t: shape must be [4, 3, 3]"));
  EXPECT_THAT(TangentNormLoss(m, v, m.to(at::kFloat), v, s).status().message(),
              HasSubstr("true_m: dtype"));
  EXPECT_THAT(TangentNormLoss(m, v.narrow(2, 0, 2), m, v, s).status().message(),
              HasSubstr("pred_V: shape must be [4, 3, 3]"));
  EXPECT_THAT(EuclideanNormLoss(m, v, m.narrow(1, 0, 2), v).status().message(),
              HasSubstr("true_m: shape must be [4, 3]"));
  EXPECT_THAT(EuclideanNormLoss(m[0], v, m, v).status().message(),
              HasSubstr("pred_m: must have 2 dimensions"));
  EXPECT_THAT(EuclideanNormLoss(m, v, m, v.to(at::kInt)).status().message(),
              HasSubstr("true_S: must be float32 or float64"));
}

}  // namespace
}  // namespace wfm::model::gaussian
