#include "model/noise/gaussian_noise.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wfm::model::noise {
namespace {

using ::testing::HasSubstr;

io::GaussianSet TwoGaussians() {
  io::GaussianSet set;
  set.dim = 2;
  set.means = {1, 3, 5, 7};
  set.covs = {2, 0.5, 0.5, 4, 6, 0, 0, 8};
  return set;
}

TEST(GaussianStatsTest, ClosedForm) {
  auto s = ComputeGaussianStats(TwoGaussians());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->dim, 2);
  EXPECT_EQ(s->count, 2);
  // Mean entries 1, 3, 5, 7: mean 4, population variance (9 + 1 + 1 + 9) / 4.
  EXPECT_NEAR(s->mean_std, std::sqrt(5.0), 1e-15);
  // Diagonals 2, 4, 6, 8.
  EXPECT_NEAR(s->cov_diag_mean, 5.0, 1e-15);
  io::GaussianSet bad = TwoGaussians();
  bad.covs.pop_back();
  EXPECT_FALSE(ComputeGaussianStats(bad).ok());
  EXPECT_FALSE(ComputeGaussianStats(io::GaussianSet{}).ok());
}

TEST(GaussianStatsTest, JsonRoundTripAndErrors) {
  const GaussianStats s = *ComputeGaussianStats(TwoGaussians());
  auto back = GaussianStats::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->dim, s.dim);
  EXPECT_EQ(back->count, s.count);
  EXPECT_EQ(back->mean_std, s.mean_std);
  EXPECT_EQ(back->cov_diag_mean, s.cov_diag_mean);
  nlohmann::json j = s.ToJson();
  j.erase("mean_std");
  EXPECT_THAT(std::string(GaussianStats::FromJson(j).status().message()),
              HasSubstr("data statistics"));
  j = s.ToJson();
  j["cov_diag_mean"] = 0.0;
  EXPECT_THAT(std::string(GaussianStats::FromJson(j).status().message()),
              HasSubstr("cov_diag_mean"));
  j = s.ToJson();
  j["dim"] = 0;
  EXPECT_FALSE(GaussianStats::FromJson(j).ok());
}

TEST(WishartSourceTest, ScalesAndDegreesOfFreedom) {
  const GaussianStats s = *ComputeGaussianStats(TwoGaussians());
  auto w = MakeWishartSource(s, 5.0, 2.0, 0.5);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dim, 2);
  EXPECT_EQ(w->degrees_of_freedom, 10);
  EXPECT_DOUBLE_EQ(w->mean_scale, 2.0 * std::sqrt(5.0));
  EXPECT_DOUBLE_EQ(w->cov_scale, 2.5);
  EXPECT_EQ(MakeWishartSource(s, 1.7, 1, 1)->degrees_of_freedom, 3);  // floor(3.4)
  // k = floor(2 · 0.9) = 1 < d: singular covariances.
  EXPECT_THAT(std::string(MakeWishartSource(s, 0.9, 1, 1).status().message()),
              HasSubstr("degrees_of_freedom_scale"));
  EXPECT_THAT(std::string(MakeWishartSource(s, NAN, 1, 1).status().message()),
              HasSubstr("degrees_of_freedom_scale"));
  EXPECT_THAT(std::string(MakeWishartSource(s, 5, 0, 1).status().message()),
              HasSubstr("mean_scale_factor"));
  EXPECT_THAT(std::string(MakeWishartSource(s, 5, 1, -1).status().message()),
              HasSubstr("cov_scale_factor"));
}

// Moments of the scaled Wishart S = c · L Lᵀ / k, L ~ N(0,1)^{d×k}:
//   E[S] = c I,  E[S_ii²] = c² (1 + 2/k),  E[S_ij²] = c² / k (i ≠ j),
// and the means ~ N(0, mean_scale² I). The second moments pin down k.
TEST(WishartSourceTest, MomentsMatchTheScaledWishart) {
  WishartSource w;
  w.dim = 3;
  w.mean_scale = 1.5;
  w.cov_scale = 2.0;
  w.degrees_of_freedom = 15;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const int64_t n = 20000;
  auto batch = SampleWishartSource(w, n, gen);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->means.sizes(), (at::IntArrayRef{n, 3}));
  ASSERT_EQ(batch->covs.sizes(), (at::IntArrayRef{n, 3, 3}));
  EXPECT_EQ(batch->covs.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(batch->covs, batch->covs.transpose(1, 2)));
  EXPECT_GT(at::linalg_eigvalsh(batch->covs).min().item<double>(), 0.0);
  const double c = w.cov_scale, k = 15.0;
  const at::Tensor mean_cov = batch->covs.mean(0);
  // Standard errors: sqrt(2 c²/k / n) ≈ 0.0052 (diagonal), 0.0037 (off).
  EXPECT_TRUE(at::allclose(mean_cov, c * at::eye(3, at::kDouble), 0.0, 0.03)) << mean_cov;
  const double diag_sq = batch->covs.select(1, 0).select(1, 0).pow(2).mean().item<double>();
  const double off_sq = batch->covs.select(1, 0).select(1, 1).pow(2).mean().item<double>();
  EXPECT_NEAR(diag_sq, c * c * (1 + 2 / k), 0.06);   // 4.53 (k = 3 would give 6.67)
  EXPECT_NEAR(off_sq, c * c / k, 0.02);              // 0.267
  EXPECT_NEAR(batch->means.mean().item<double>(), 0.0, 0.03);
  EXPECT_NEAR(batch->means.std(/*unbiased=*/false).item<double>(), 1.5, 0.02);
}

TEST(WishartSourceTest, ReproducibleFromTheGenerator) {
  WishartSource w{2, 1.0, 1.0, 10};
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(7);
  at::Generator b = at::make_generator<at::CPUGeneratorImpl>(7);
  at::Generator other = at::make_generator<at::CPUGeneratorImpl>(8);
  auto x = SampleWishartSource(w, 5, a), y = SampleWishartSource(w, 5, b);
  auto z = SampleWishartSource(w, 5, other);
  ASSERT_TRUE(x.ok() && y.ok() && z.ok());
  EXPECT_TRUE(at::equal(x->covs, y->covs));
  EXPECT_TRUE(at::equal(x->means, y->means));
  EXPECT_FALSE(at::equal(x->covs, z->covs));
  EXPECT_EQ(SampleWishartSource(w, 0, a)->covs.size(0), 0);
  EXPECT_FALSE(SampleWishartSource(w, -1, a).ok());
  WishartSource singular{3, 1.0, 1.0, 2};
  EXPECT_FALSE(SampleWishartSource(singular, 1, a).ok());
}

}  // namespace
}  // namespace wfm::model::noise
