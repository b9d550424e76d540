#include "model/noise/pointcloud_noise.h"

#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace wfm::model::noise {
namespace {

// 40 variable-size anisotropic 2D clouds, padded to 29 points.
void MakeClouds(at::Tensor* x, at::Tensor* w, uint64_t seed = 9) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  *x = at::zeros({40, 29, 2}, at::kDouble);
  *w = at::zeros({40, 29}, at::kDouble);
  const at::Tensor scale = at::tensor({1.0, 0.3}, at::kDouble);
  for (int64_t c = 0; c < 40; ++c) {
    const int64_t n = 20 + c % 10;
    (*x)[c].narrow(0, 0, n).copy_(at::randn({n, 2}, gen, at::kDouble) * scale + 0.5);
    (*w)[c].narrow(0, 0, n).fill_(1.0 / n);
  }
}

TEST(PointCloudStatsTest, MatchesDirectComputation) {
  at::Tensor x, w;
  MakeClouds(&x, &w);
  // Padding far away must not change anything.
  at::Tensor xp = x.clone();
  xp.masked_fill_((w == 0).unsqueeze(2), 100.0);
  auto stats = ComputePointCloudStats(xp, w);
  ASSERT_TRUE(stats.ok()) << stats.status();
  double lo = 1e300, hi = -1e300;
  at::Tensor chols = at::zeros({40, 2, 2}, at::kDouble), covs = at::zeros({40, 2, 2}, at::kDouble);
  for (int64_t c = 0; c < 40; ++c) {
    const int64_t n = 20 + c % 10;
    const at::Tensor pts = x[c].narrow(0, 0, n);
    lo = std::min(lo, pts.min().item<double>());
    hi = std::max(hi, pts.max().item<double>());
    const at::Tensor centred = pts - pts.mean(0);
    covs[c] = at::matmul(centred.t(), centred) / n + 1e-6 * at::eye(2, at::kDouble);
    chols[c] = at::linalg_cholesky(covs[c]);
  }
  EXPECT_DOUBLE_EQ(stats->min_value, lo);
  EXPECT_DOUBLE_EQ(stats->max_value, hi);
  EXPECT_LT((stats->chol_mean - chols.mean(0)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((stats->chol_std - chols.std(0, false)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((stats->cov_mean - covs.mean(0)).abs().max().item<double>(), 1e-12);
  // JSON round trip.
  auto back = PointCloudStats::FromJson(stats->ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->dim, 2);
  EXPECT_TRUE(at::equal(back->chol_std, stats->chol_std));
  EXPECT_FALSE(PointCloudStats::FromJson({{"dim", 2}}).ok());
}

TEST(PointCloudSourceTest, EachKindHasItsDistribution) {
  at::Tensor x, w;
  MakeClouds(&x, &w);
  auto stats = ComputePointCloudStats(x, w);
  ASSERT_TRUE(stats.ok());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  // uniform / normal / meta_normal stay inside the data range.
  for (auto kind : {PointCloudSource::kUniform, PointCloudSource::kNormal, PointCloudSource::kMetaNormal}) {
    auto s = SamplePointCloudSource(kind, *stats, 2.0, 50, 30, gen);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->sizes(), (at::IntArrayRef{50, 30, 2}));
    EXPECT_EQ(s->scalar_type(), at::kFloat);
    EXPECT_GE(s->min().item<double>(), stats->min_value - 1e-5) << PointCloudSourceName(kind);
    EXPECT_LE(s->max().item<double>(), stats->max_value + 1e-5) << PointCloudSourceName(kind);
  }
  // uniform: mean at the centre of the box, variance (hi-lo)^2/12.
  auto u = SamplePointCloudSource(PointCloudSource::kUniform, *stats, 2.0, 200, 500, gen);
  const double mid = 0.5 * (stats->min_value + stats->max_value);
  const double width = stats->max_value - stats->min_value;
  EXPECT_NEAR(u->mean().item<double>(), mid, 0.01 * width);
  EXPECT_NEAR(u->var().item<double>(), width * width / 12, 0.02 * width * width / 12);
  // normal: the truncated normal has its mean at the centre and sd width/6.
  auto nrm = SamplePointCloudSource(PointCloudSource::kNormal, *stats, 2.0, 200, 500, gen);
  EXPECT_NEAR(nrm->mean().item<double>(), mid, 0.01 * width);
  EXPECT_NEAR(nrm->std().item<double>(), 0.9866 * width / 6, 0.02 * width / 6);  // truncation shrinks sd
  // chol_normal: E[p pᵀ] = df² (L0 L0ᵀ + diag(Σ_k std_ik² over the lower triangle)).
  auto chol = SamplePointCloudSource(PointCloudSource::kCholNormal, *stats, 2.0, 400, 500, gen);
  const at::Tensor c64 = chol->to(at::kDouble);
  const at::Tensor emp = at::einsum("kni,knj->ij", {c64, c64}) / (400.0 * 500.0);
  const at::Tensor l0 = stats->chol_mean, sd = stats->chol_std;
  const at::Tensor expect =
      4.0 * (at::matmul(l0, l0.t()) + at::diag((sd.pow(2) * at::ones({2, 2}, at::kDouble).tril()).sum(1)));
  EXPECT_LT(((emp - expect).abs().max() / expect.abs().max()).item<double>(), 0.05);
  // meta_normal: zero-mean blobs whose average covariance is ≈ df_scale · chol_mean chol_meanᵀ
  // (before clipping; the data range clips only the tails here).
  auto meta = SamplePointCloudSource(PointCloudSource::kMetaNormal, *stats, 2.0, 400, 200, gen);
  EXPECT_NEAR(meta->mean().item<double>(), 0.0, 0.05);
}

TEST(PointCloudSourceTest, SeededAndChecked) {
  at::Tensor x, w;
  MakeClouds(&x, &w);
  auto stats = ComputePointCloudStats(x, w);
  ASSERT_TRUE(stats.ok());
  for (auto kind : {PointCloudSource::kUniform, PointCloudSource::kNormal, PointCloudSource::kCholNormal,
                    PointCloudSource::kMetaNormal}) {
    auto a = SamplePointCloudSource(kind, *stats, 2.0, 3, 7, at::make_generator<at::CPUGeneratorImpl>(5));
    auto b = SamplePointCloudSource(kind, *stats, 2.0, 3, 7, at::make_generator<at::CPUGeneratorImpl>(5));
    auto c = SamplePointCloudSource(kind, *stats, 2.0, 3, 7, at::make_generator<at::CPUGeneratorImpl>(6));
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_TRUE(at::equal(*a, *b));
    EXPECT_FALSE(at::equal(*a, *c));
  }
  EXPECT_FALSE(SamplePointCloudSource(PointCloudSource::kGivenRandom, *stats, 2.0, 3, 7,
                                      at::make_generator<at::CPUGeneratorImpl>(5)).ok());
  EXPECT_FALSE(SamplePointCloudSource(PointCloudSource::kUniform, *stats, 2.0, 3, 0,
                                      at::make_generator<at::CPUGeneratorImpl>(5)).ok());
}

}  // namespace
}  // namespace wfm::model::noise
