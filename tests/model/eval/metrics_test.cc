#include "model/eval/metrics.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/ot/emd.h"
#include "tests/model/train/train_test_util.h"
#include "tests/testing/json_fixture.h"

namespace wfm::model::eval {
namespace {

TEST(MetricsFromDistancesTest, HandComputedCase) {
  // Generated g0, g1; reference r0, r1, r2.
  const at::Tensor gg = at::tensor({0.0, 5.0, 5.0, 0.0}, at::kDouble).view({2, 2});
  const at::Tensor rr = at::tensor({0.0, 1.0, 4.0, 1.0, 0.0, 4.0, 4.0, 4.0, 0.0}, at::kDouble).view({3, 3});
  const at::Tensor gr = at::tensor({2.0, 3.0, 6.0,    // g0: nearest r0 (2) < g1 (5): wrong
                                    7.0, 8.0, 0.5},   // g1: nearest r2 (0.5) < g0 (5): wrong
                                   at::kDouble).view({2, 3});
  auto m = MetricsFromDistances(gg, rr, gr);
  ASSERT_TRUE(m.ok()) << m.status();
  // r0: own nearest r1 (1) < cross min (2): right. r1: own 1 < cross 3: right.
  // r2: own 4 > cross 0.5: wrong. Right: 2 of 5.
  EXPECT_DOUBLE_EQ(m->one_nna, 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(m->mmd, (2.0 + 3.0 + 0.5) / 3.0);
  EXPECT_DOUBLE_EQ(m->cov, 2.0 / 3.0);  // r0 and r2 are matched
  EXPECT_FALSE(MetricsFromDistances(gg, rr, gr.narrow(1, 0, 2)).ok());
  EXPECT_FALSE(MetricsFromDistances(gg.narrow(0, 0, 1).narrow(1, 0, 1), rr.narrow(0, 0, 1).narrow(1, 0, 1),
                                    gr.narrow(0, 0, 1).narrow(1, 0, 1)).ok());
}

TEST(EvaluatePointCloudsTest, IdenticalAndSeparatedSets) {
  const io::PointCloudSet a = testing::Ellipses(12, 1);
  auto same = EvaluatePointClouds(a, a);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_DOUBLE_EQ(same->chamfer.one_nna, 0.0);  // every nearest neighbour is the twin
  EXPECT_DOUBLE_EQ(same->chamfer.mmd, 0.0);
  EXPECT_DOUBLE_EQ(same->chamfer.cov, 1.0);
  EXPECT_TRUE(same->has_emd);
  EXPECT_NEAR(same->emd.mmd, 0.0, 1e-9);
  io::PointCloudSet far = testing::Ellipses(10, 2);
  for (size_t k = 0; k < far.points.size(); k += 2) far.points[k] += 50.0f;
  auto apart = EvaluatePointClouds(far, a, /*with_emd=*/false);
  ASSERT_TRUE(apart.ok());
  EXPECT_DOUBLE_EQ(apart->chamfer.one_nna, 1.0);
  EXPECT_FALSE(apart->has_emd);
  EXPECT_GT(apart->chamfer.mmd, 2000.0);
  io::PointCloudSet three = a;
  three.dim = 1;
  EXPECT_FALSE(EvaluatePointClouds(a, three).ok());
}

// Pairwise EMD entries equal the exact EMD (POT's emd2 on the fixture clouds
// with uniform weights is covered by ot/emd_test; here the batched driver).
TEST(PairwiseTest, EmdAndChamferEntries) {
  const io::PointCloudSet a = testing::Ellipses(4, 3), b = testing::Ellipses(5, 4);
  auto emd = PairwiseEmd(a, b);
  auto cd = PairwiseChamfer(a, b);
  ASSERT_TRUE(emd.ok() && cd.ok());
  ASSERT_EQ(emd->sizes(), (at::IntArrayRef{4, 5}));
  auto cloud = [](const io::PointCloudSet& s, int64_t k) {
    return at::tensor(std::vector<float>(s.points.begin() + s.offsets[k] * 2,
                                         s.points.begin() + s.offsets[k + 1] * 2), at::kDouble)
        .view({s.cloud_size(k), 2});
  };
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      const at::Tensor x = cloud(a, i), y = cloud(b, j);
      auto exact = ot::ExactEmd(x, at::ones({x.size(0)}, at::kDouble), y, at::ones({y.size(0)}, at::kDouble));
      EXPECT_NEAR((*emd)[i][j].item<double>(), exact->cost, 1e-6);
      const at::Tensor d = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(2);
      const double chamfer = std::get<0>(d.min(1)).mean().item<double>() + std::get<0>(d.min(0)).mean().item<double>();
      EXPECT_NEAR((*cd)[i][j].item<double>(), chamfer, 1e-5);
    }
  }
}

TEST(EvaluateGaussiansTest, IdenticalAndShifted) {
  io::GaussianSet g;
  g.dim = 2;
  for (int k = 0; k < 10; ++k) {
    g.means.insert(g.means.end(), {0.1 * k, -0.2 * k});
    g.covs.insert(g.covs.end(), {1.0 + 0.1 * k, 0.2, 0.2, 0.5});
  }
  auto same = EvaluateGaussians(g, g);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_DOUBLE_EQ(same->bures.one_nna, 0.0);
  EXPECT_NEAR(same->mean_error, 0.0, 1e-12);
  EXPECT_NEAR(same->covariance_error, 0.0, 1e-12);
  io::GaussianSet shifted = g;
  for (size_t k = 0; k < shifted.means.size(); k += 2) shifted.means[k] += 100.0;
  auto apart = EvaluateGaussians(shifted, g);
  ASSERT_TRUE(apart.ok());
  EXPECT_DOUBLE_EQ(apart->bures.one_nna, 1.0);
  EXPECT_NEAR(apart->mean_error, 100.0, 1e-9);
  EXPECT_GT(apart->bures.mmd, 99.0 * 99.0);  // every pair is about 100 apart in the means
}

}  // namespace
}  // namespace wfm::model::eval
