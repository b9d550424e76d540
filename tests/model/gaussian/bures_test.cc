#include "model/gaussian/bures.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/gaussian/small_matrix.h"
#include "tests/model/gaussian/gaussian_test_util.h"
#include "tests/testing/json_fixture.h"

namespace wfm::model::gaussian {
namespace {

using ::testing::HasSubstr;
using namespace test_util;  // NOLINT(build/namespaces): the Gaussian test helpers

at::Tensor Bt(const at::Tensor& x) { return x.transpose(-1, -2); }
at::Tensor Mv(const at::Tensor& a, const at::Tensor& x) {
  return at::matmul(a, x.unsqueeze(-1)).squeeze(-1);
}
at::Tensor Sandwich(const at::Tensor& a, const at::Tensor& s) {
  return at::matmul(at::matmul(a, s), Bt(a));
}

struct Gaussians {
  at::Tensor m0, s0, m1, s1;
  Gaussians To(at::ScalarType t) const { return {m0.to(t), s0.to(t), m1.to(t), s1.to(t)}; }
};

Gaussians RandomPairs(int64_t batch, int64_t d, uint64_t seed, double cond = 100.0) {
  at::Generator gen = MakeGenerator(seed);
  Gaussians g;
  g.m0 = RandomMeans(batch, d, gen);
  g.s0 = RandomSpd(batch, d, gen, cond);
  g.m1 = RandomMeans(batch, d, gen, 2.0);
  g.s1 = RandomSpd(batch, d, gen, cond, 1.5);
  return g;
}

// Dimensions 1..16 (Jacobi and the per-matrix QL) plus 40 and 70 (LAPACK
// above 64).
std::vector<int64_t> Dims() {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d <= 16; ++d) dims.push_back(d);
  dims.push_back(40);
  dims.push_back(70);
  return dims;
}

// Every geometry test runs twice: the default kernels, and every dimension
// forced onto the batched LAPACK path.
class BuresPathTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) force_ = std::make_unique<internal::ScopedPerMatrixMaxDim>(0);
  }
  std::unique_ptr<internal::ScopedPerMatrixMaxDim> force_;
};

INSTANTIATE_TEST_SUITE_P(Kernels, BuresPathTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Lapack") : std::string("Default");
                         });

// ------------------------------------------------------------------ Monge map

TEST_P(BuresPathTest, MongeMapPushesN0ToN1) {
  for (int64_t d : Dims()) {
    for (uint64_t seed = 0; seed < 6; ++seed) {
      const Gaussians g = RandomPairs(4, d, 31 * d + seed);
      auto map = GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      ASSERT_TRUE(map.ok()) << map.status();
      const auto& [a, b] = *map;
      ASSERT_EQ(a.sizes(), (std::vector<int64_t>{4, d, d}));
      ASSERT_EQ(b.sizes(), (std::vector<int64_t>{4, d}));
      EXPECT_LE(WorstItemRelError(Sandwich(a, g.s0), g.s1), 1e-10) << "d=" << d;
      EXPECT_LE(WorstItemRelError(Mv(a, g.m0) + b, g.m1), 1e-12) << "d=" << d;
      EXPECT_TRUE(at::equal(a, Bt(a))) << "d=" << d;
      EXPECT_GT(at::linalg_eigvalsh(a).min().item<double>(), 0.0) << "d=" << d;

      // float32 in, float32 out, computed in float64 internally.
      const Gaussians f = g.To(at::kFloat);
      auto map32 = GaussianMongeMap(f.m0, f.s0, f.m1, f.s1);
      ASSERT_TRUE(map32.ok());
      EXPECT_EQ(map32->first.scalar_type(), at::kFloat);
      const at::Tensor a32 = map32->first.to(at::kDouble);
      EXPECT_LE(WorstItemRelError(Sandwich(a32, f.s0.to(at::kDouble)), f.s1.to(at::kDouble)),
                1e-4)
          << "float32 d=" << d;
      EXPECT_LE(WorstItemRelError(Mv(a32, f.m0.to(at::kDouble)) + map32->second.to(at::kDouble),
                                  f.m1.to(at::kDouble)),
                1e-4)
          << "float32 d=" << d;
      EXPECT_TRUE(at::equal(map32->first, Bt(map32->first)));
    }
  }
}

TEST_P(BuresPathTest, MongeMapOfWishartNoiseToIllConditionedData) {
  // The trainer's case: Wishart noise to data covariances with condition
  // numbers up to 1e6.
  for (int64_t d : {2, 3, 8, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      at::Generator gen = MakeGenerator(seed + 500);
      const at::Tensor m0 = RandomMeans(8, d, gen);
      const at::Tensor s0 = RandomWishart(8, d, gen);
      const at::Tensor m1 = RandomMeans(8, d, gen);
      const at::Tensor s1 = RandomSpd(8, d, gen, 1e6, 0.1);
      auto map = GaussianMongeMap(m0, s0, m1, s1);
      ASSERT_TRUE(map.ok());
      EXPECT_LE(WorstItemRelError(Sandwich(map->first, s0), s1), 1e-8) << "d=" << d;
    }
  }
}

TEST_P(BuresPathTest, MongeMapClosedFormsForCommutingAndEqualCovariances) {
  for (int64_t d : {1, 2, 3, 7, 16, 70}) {
    at::Generator gen = MakeGenerator(d + 40);
    const at::Tensor q = RandomRotation(3, d, gen);
    const at::Tensor lam = at::rand({3, d}, gen, F64()) + 0.1;
    const at::Tensor mu = at::rand({3, d}, gen, F64()) * 3.0 + 0.1;
    const at::Tensor m0 = RandomMeans(3, d, gen);
    const at::Tensor m1 = RandomMeans(3, d, gen);
    auto map = GaussianMongeMap(m0, Compose(q, lam), m1, Compose(q, mu));
    ASSERT_TRUE(map.ok());
    const at::Tensor expected = Compose(q, (mu / lam).sqrt());
    EXPECT_LE(RelError(map->first, expected), 1e-11) << "d=" << d;
    EXPECT_LE(RelError(map->second, m1 - Mv(expected, m0)), 1e-11) << "d=" << d;

    auto same = GaussianMongeMap(m0, Compose(q, lam), m0, Compose(q, lam));
    ASSERT_TRUE(same.ok());
    EXPECT_LE(MaxAbs(same->first - test_util::Eye(3, d)), 1e-11) << "d=" << d;
    EXPECT_LE(MaxAbs(same->second), 1e-10) << "d=" << d;
  }
}

TEST_P(BuresPathTest, MongeMapToSingularTargetStaysFinite) {
  for (int64_t d : {2, 3, 9, 70}) {
    at::Generator gen = MakeGenerator(d + 60);
    const at::Tensor q = RandomRotation(2, d, gen);
    at::Tensor mu = at::rand({2, d}, gen, F64()) + 0.5;
    mu.select(1, 0).fill_(0.0);  // rank d-1 target
    const at::Tensor s1 = Compose(q, mu);
    const at::Tensor s0 = RandomSpd(2, d, gen, 10.0);
    auto map = GaussianMongeMap(RandomMeans(2, d, gen), s0, RandomMeans(2, d, gen), s1);
    ASSERT_TRUE(map.ok());
    EXPECT_TRUE(at::isfinite(map->first).all().item<bool>());
    EXPECT_LE(MaxAbs(Sandwich(map->first, s0) - s1), 1e-7 * MaxAbs(s1)) << "d=" << d;
    // A is singular along the target's null direction.
    EXPECT_LE(std::abs(at::linalg_eigvalsh(map->first).min().item<double>()), 1e-6);
  }
}

TEST(MongeMapFixtureTest, MatchesPotOtMappingLinear) {
  const nlohmann::json fixture = wfm::testing::LoadFixture("gaussian/gaussian.json");
  int cases = 0;
  for (const nlohmann::json& c : fixture.at("monge")) {
    const at::Tensor m0 = wfm::testing::JsonToTensor(c.at("m0")).unsqueeze(0);
    const at::Tensor s0 = wfm::testing::JsonToTensor(c.at("S0")).unsqueeze(0);
    const at::Tensor m1 = wfm::testing::JsonToTensor(c.at("m1")).unsqueeze(0);
    const at::Tensor s1 = wfm::testing::JsonToTensor(c.at("S1")).unsqueeze(0);
    const at::Tensor a_ref = wfm::testing::JsonToTensor(c.at("A")).unsqueeze(0);
    const at::Tensor b_ref = wfm::testing::JsonToTensor(c.at("b")).unsqueeze(0);
    auto map = GaussianMongeMap(m0, s0, m1, s1);
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_LE(RelError(map->first, a_ref), 1e-8) << "d=" << c.at("d");
    EXPECT_LE(RelError(map->second, b_ref), 1e-8) << "d=" << c.at("d");
    ++cases;
  }
  EXPECT_EQ(cases, 18);
}

// ------------------------------------------------- McCann path and velocities

at::Tensor RandomS(int64_t batch, uint64_t seed, double lo = 0.0, double hi = 1.0) {
  at::Generator gen = MakeGenerator(seed);
  return lo + (hi - lo) * at::rand({batch}, gen, F64());
}

TEST_P(BuresPathTest, McCannInterpolationHitsBothEndpoints) {
  for (int64_t d : {1, 2, 3, 5, 12, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const Gaussians g = RandomPairs(5, d, 7 * d + seed);
      auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      auto start = McCannInterpolate(g.m0, g.s0, a, b, at::zeros({5}, F64()));
      auto end = McCannInterpolate(g.m0, g.s0, a, b, at::ones({5}, F64()));
      ASSERT_TRUE(start.ok() && end.ok());
      EXPECT_LE(WorstItemRelError(start->first, g.m0), 1e-15);
      EXPECT_LE(WorstItemRelError(start->second, g.s0), 1e-14);
      EXPECT_LE(WorstItemRelError(end->first, g.m1), 1e-12) << "d=" << d;
      EXPECT_LE(WorstItemRelError(end->second, g.s1), 1e-10) << "d=" << d;
      // float s works for float64 Gaussians.
      auto mid = McCannInterpolate(g.m0, g.s0, a, b, at::full({5}, 0.5, at::kFloat));
      ASSERT_TRUE(mid.ok());
      EXPECT_TRUE(at::equal(mid->second, Bt(mid->second)));
      EXPECT_GT(at::linalg_eigvalsh(mid->second).min().item<double>(), 0.0);
    }
  }
}

TEST_P(BuresPathTest, McCannInterpolationIsAConstantSpeedGeodesic) {
  // W(N_0, N_s) = s W(N_0, N_1) and W(N_s, N_1) = (1 - s) W(N_0, N_1).
  for (int64_t d : {1, 2, 3, 6, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const Gaussians g = RandomPairs(6, d, 3 * d + seed + 900);
      auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      const at::Tensor s = RandomS(6, seed + 17);
      auto [ms, ss] = *McCannInterpolate(g.m0, g.s0, a, b, s);
      const at::Tensor w = BuresWassersteinDistanceSquared(g.m0, g.s0, g.m1, g.s1)->sqrt();
      const at::Tensor w0s = BuresWassersteinDistanceSquared(g.m0, g.s0, ms, ss)->sqrt();
      const at::Tensor ws1 = BuresWassersteinDistanceSquared(ms, ss, g.m1, g.s1)->sqrt();
      EXPECT_LE(MaxAbs(w0s - s * w), 1e-6 * MaxAbs(w)) << "d=" << d;
      EXPECT_LE(MaxAbs(ws1 - (1.0 - s) * w), 1e-6 * MaxAbs(w)) << "d=" << d;
    }
  }
}

TEST_P(BuresPathTest, EuclideanVelocityMatchesCentralDifferences) {
  const double h = 1e-5;
  for (int64_t d : {1, 2, 3, 5, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const Gaussians g = RandomPairs(5, d, 11 * d + seed);
      auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      const at::Tensor s = RandomS(5, seed, 0.05, 0.95);
      auto vel = EuclideanVelocity(g.m0, g.s0, a, b, s);
      ASSERT_TRUE(vel.ok()) << vel.status();
      auto plus = *McCannInterpolate(g.m0, g.s0, a, b, s + h);
      auto minus = *McCannInterpolate(g.m0, g.s0, a, b, s - h);
      const at::Tensor dm = (plus.first - minus.first) / (2 * h);
      const at::Tensor ds = (plus.second - minus.second) / (2 * h);
      // The path is quadratic in s: central differences are exact up to rounding.
      EXPECT_LE(RelError(vel->first, dm), 1e-8) << "d=" << d;
      EXPECT_LE(RelError(vel->second, ds), 1e-8) << "d=" << d;
      EXPECT_LE(RelError(vel->first, g.m1 - g.m0), 1e-12) << "d=" << d;
    }
  }
}

TEST_P(BuresPathTest, RiemannianVelocityIsSymmetricAndGeneratesTheFlow) {
  const double h = 1e-5;
  for (int64_t d : {1, 2, 3, 4, 8, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const Gaussians g = RandomPairs(5, d, 13 * d + seed);
      auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      const at::Tensor s = RandomS(5, seed + 3, 0.05, 0.95);
      auto riem = RiemannianVelocity(g.m0, g.s0, a, b, s);
      ASSERT_TRUE(riem.ok()) << riem.status();
      const at::Tensor& v = riem->second;
      EXPECT_TRUE(at::equal(v, Bt(v))) << "d=" << d;
      auto [ms, ss] = *McCannInterpolate(g.m0, g.s0, a, b, s);
      auto eucl = *EuclideanVelocity(g.m0, g.s0, a, b, s);
      const at::Tensor generated = at::matmul(v, ss) + at::matmul(ss, v);
      EXPECT_LE(RelError(generated, eucl.second), 1e-10) << "d=" << d;
      EXPECT_TRUE(at::equal(riem->first, eucl.first));
      auto plus = *McCannInterpolate(g.m0, g.s0, a, b, s + h);
      auto minus = *McCannInterpolate(g.m0, g.s0, a, b, s - h);
      EXPECT_LE(RelError(generated, (plus.second - minus.second) / (2 * h)), 1e-8) << "d=" << d;
      // V = (A - I) M^{-1} literally.
      const at::Tensor s3 = s.view({5, 1, 1});
      const at::Tensor m = (1.0 - s3) * test_util::Eye(5, d) + s3 * a;
      EXPECT_LE(RelError(v, at::matmul(a - test_util::Eye(5, d), at::inverse(m))), 1e-10);
    }
  }
}

TEST_P(BuresPathTest, RiemannianVelocityAtTheEndOfAPathToASingularTarget) {
  at::Generator gen = MakeGenerator(71);
  const int64_t d = 3;
  const at::Tensor q = RandomRotation(2, d, gen);
  at::Tensor mu = at::rand({2, d}, gen, F64()) + 0.5;
  mu.select(1, 2).fill_(0.0);
  const at::Tensor m0 = RandomMeans(2, d, gen);
  const at::Tensor s0 = RandomSpd(2, d, gen);
  auto [a, b] = *GaussianMongeMap(m0, s0, RandomMeans(2, d, gen), Compose(q, mu));
  auto riem = RiemannianVelocity(m0, s0, a, b, at::ones({2}, F64()));
  ASSERT_TRUE(riem.ok());
  EXPECT_TRUE(at::isfinite(riem->second).all().item<bool>());
}

TEST(GaussianPathTest, RejectsBadArguments) {
  const Gaussians g = RandomPairs(4, 3, 1);
  auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
  const at::Tensor s = at::full({4}, 0.5, F64());
  EXPECT_THAT(McCannInterpolate(g.m0, g.s0, a, b, at::full({4}, 1.5, F64())).status().message(),
              HasSubstr("s[0]: must be within [0, 1]"));
  EXPECT_THAT(McCannInterpolate(g.m0, g.s0, a, b, at::full({3}, 0.5, F64())).status().message(),
              HasSubstr("s: shape must be [4]"));
  EXPECT_THAT(RiemannianVelocity(g.m0, g.s0, a.narrow(0, 0, 3), b, s).status().message(),
              HasSubstr("A: shape must be [4, 3, 3]"));
  EXPECT_THAT(EuclideanVelocity(g.m0, g.s0, a, b.to(at::kFloat), s).status().message(),
              HasSubstr("b: dtype"));
  at::Tensor bad = a.clone();
  bad[2][1][1] = NAN;
  EXPECT_THAT(EuclideanVelocity(g.m0, g.s0, bad, b, s).status().message(),
              HasSubstr("A[2]: values must be finite"));
  EXPECT_THAT(GaussianMongeMap(g.m0, g.s0, g.m1.narrow(1, 0, 2), g.s1).status().message(),
              HasSubstr("m1: shape must be [4, 3]"));
  EXPECT_THAT(GaussianMongeMap(g.m0, g.s0.to(at::kFloat), g.m1, g.s1).status().message(),
              HasSubstr("m0: dtype"));
  at::Tensor nan_cov = g.s1.clone();
  nan_cov[3][0][0] = INFINITY;
  EXPECT_THAT(GaussianMongeMap(g.m0, g.s0, g.m1, nan_cov).status().message(),
              HasSubstr("S1[3]: values must be finite"));
  EXPECT_THAT(BuresWassersteinDistanceSquared(g.m0, g.s0, g.m1, g.s1.narrow(0, 0, 2))
                  .status()
                  .message(),
              HasSubstr("S1: shape must be [4, 3, 3]"));
  EXPECT_EQ(GaussianMongeMap(g.m0, g.s0, g.m1, g.s1.to(at::kInt)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GaussianPathTest, UncheckedVariantsComputeTheSameValues) {
  const Gaussians g = RandomPairs(6, 4, 2);
  const at::Tensor s = RandomS(6, 5);
  auto checked = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
  auto fast = unchecked::GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
  EXPECT_TRUE(at::equal(checked.first, fast.first));
  EXPECT_TRUE(at::equal(checked.second, fast.second));
  const at::Tensor& a = checked.first;
  const at::Tensor& b = checked.second;
  EXPECT_TRUE(at::equal(McCannInterpolate(g.m0, g.s0, a, b, s)->second,
                        unchecked::McCannInterpolate(g.m0, g.s0, a, b, s).second));
  EXPECT_TRUE(at::equal(EuclideanVelocity(g.m0, g.s0, a, b, s)->second,
                        unchecked::EuclideanVelocity(g.m0, g.s0, a, b, s).second));
  EXPECT_TRUE(at::equal(RiemannianVelocity(g.m0, g.s0, a, b, s)->second,
                        unchecked::RiemannianVelocity(g.m0, g.s0, a, b, s).second));
  EXPECT_TRUE(at::equal(*BuresWassersteinDistanceSquared(g.m0, g.s0, g.m1, g.s1),
                        unchecked::BuresWassersteinDistanceSquared(g.m0, g.s0, g.m1, g.s1)));
  EXPECT_TRUE(at::equal(*PairwiseBuresWasserstein(g.m0, g.s0, g.m1, g.s1),
                        unchecked::PairwiseBuresWasserstein(g.m0, g.s0, g.m1, g.s1)));
}

TEST_P(BuresPathTest, OutputsCarryNoAutogradHistory) {
  for (int64_t d : {3, 70}) {
    const Gaussians g = RandomPairs(3, d, 4);
    const at::Tensor m0 = g.m0.clone().requires_grad_(true);
    const at::Tensor s0 = g.s0.clone().requires_grad_(true);
    auto [a, b] = *GaussianMongeMap(m0, s0, g.m1, g.s1);
    EXPECT_FALSE(a.requires_grad() || b.requires_grad()) << "d=" << d;
    const at::Tensor s = at::full({3}, 0.5, F64());
    auto [ms, ss] = *McCannInterpolate(m0, s0, a, b, s);
    EXPECT_FALSE(ms.requires_grad() || ss.requires_grad()) << "d=" << d;
    EXPECT_FALSE(RiemannianVelocity(m0, s0, a, b, s)->second.requires_grad());
    EXPECT_FALSE(BuresWassersteinDistanceSquared(m0, s0, g.m1, g.s1)->requires_grad());
    EXPECT_FALSE(PairwiseBuresWasserstein(m0, s0, g.m1, g.s1)->requires_grad());
  }
}

TEST(GaussianPathTest, NonContiguousInputs) {
  const Gaussians g = RandomPairs(4, 5, 3);
  const at::Tensor s0t = Bt(g.s0);  // symmetric, so equal values, non-contiguous
  auto a = GaussianMongeMap(g.m0, s0t, g.m1, g.s1);
  auto b = GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(a->first, b->first));
}

// ------------------------------------------------------------------ distances

TEST_P(BuresPathTest, DistanceClosedFormForDiagonalAndCommutingCovariances) {
  for (int64_t d : {1, 2, 3, 8, 16, 70}) {
    at::Generator gen = MakeGenerator(d + 300);
    const at::Tensor lam = at::rand({4, d}, gen, F64()) * 2.0 + 0.01;
    const at::Tensor mu = at::rand({4, d}, gen, F64()) * 2.0 + 0.01;
    const at::Tensor m0 = RandomMeans(4, d, gen);
    const at::Tensor m1 = RandomMeans(4, d, gen);
    const at::Tensor expected =
        (m0 - m1).square().sum(-1) + (lam.sqrt() - mu.sqrt()).square().sum(-1);
    auto diag = BuresWassersteinDistanceSquared(m0, at::diag_embed(lam), m1, at::diag_embed(mu));
    ASSERT_TRUE(diag.ok());
    EXPECT_LE(RelError(*diag, expected), 1e-12) << "d=" << d;
    const at::Tensor q = RandomRotation(4, d, gen);
    auto rotated = BuresWassersteinDistanceSquared(m0, Compose(q, lam), m1, Compose(q, mu));
    ASSERT_TRUE(rotated.ok());
    EXPECT_LE(RelError(*rotated, expected), 1e-10) << "d=" << d;
  }
}

TEST_P(BuresPathTest, DistanceIsSymmetricZeroOnIdenticalInputsAndMatchesTransportCost) {
  for (int64_t d : {1, 2, 3, 7, 16, 70}) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const Gaussians g = RandomPairs(6, d, 17 * d + seed, 1e3);
      const at::Tensor ab = *BuresWassersteinDistanceSquared(g.m0, g.s0, g.m1, g.s1);
      const at::Tensor ba = *BuresWassersteinDistanceSquared(g.m1, g.s1, g.m0, g.s0);
      EXPECT_LE(RelError(ab, ba), 1e-11) << "d=" << d;
      const at::Tensor same = *BuresWassersteinDistanceSquared(g.m0, g.s0, g.m0, g.s0);
      EXPECT_TRUE((same >= 0).all().item<bool>());
      EXPECT_LE(MaxAbs(same), 1e-11 * MaxAbs(g.s0) * d) << "d=" << d;
      // The cost of the Monge map: E|T(x) - x|^2 = |Δm|^2 + tr((A-I) S0 (A-I)).
      auto [a, b] = *GaussianMongeMap(g.m0, g.s0, g.m1, g.s1);
      const at::Tensor ami = a - test_util::Eye(6, d);
      const at::Tensor cost = (g.m1 - g.m0).square().sum(-1) +
                              Sandwich(ami, g.s0).diagonal(0, -2, -1).sum(-1);
      EXPECT_LE(RelError(ab, cost), 1e-9) << "d=" << d;
    }
  }
}

TEST_P(BuresPathTest, DistanceSatisfiesTheTriangleInequality) {
  for (int64_t d : {1, 2, 3, 5, 16, 70}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      at::Generator gen = MakeGenerator(23 * d + seed);
      const int64_t n = 16;
      std::vector<at::Tensor> m, s;
      for (int k = 0; k < 3; ++k) {
        m.push_back(RandomMeans(n, d, gen, 0.3));
        s.push_back(RandomSpd(n, d, gen, 1e3));
      }
      const at::Tensor w01 = BuresWassersteinDistanceSquared(m[0], s[0], m[1], s[1])->sqrt();
      const at::Tensor w12 = BuresWassersteinDistanceSquared(m[1], s[1], m[2], s[2])->sqrt();
      const at::Tensor w02 = BuresWassersteinDistanceSquared(m[0], s[0], m[2], s[2])->sqrt();
      EXPECT_TRUE((w02 <= w01 + w12 + 1e-9).all().item<bool>()) << "d=" << d;
      EXPECT_TRUE((w01 <= w02 + w12 + 1e-9).all().item<bool>()) << "d=" << d;
    }
  }
}

TEST(BuresDistanceFixtureTest, MatchesScipySqrtm) {
  const nlohmann::json fixture = wfm::testing::LoadFixture("gaussian/gaussian.json");
  int cases = 0;
  for (const nlohmann::json& c : fixture.at("bures")) {
    const at::Tensor m0 = wfm::testing::JsonToTensor(c.at("m0")).unsqueeze(0);
    const at::Tensor s0 = wfm::testing::JsonToTensor(c.at("S0")).unsqueeze(0);
    const at::Tensor m1 = wfm::testing::JsonToTensor(c.at("m1")).unsqueeze(0);
    const at::Tensor s1 = wfm::testing::JsonToTensor(c.at("S1")).unsqueeze(0);
    const double expected = c.at("dist2").get<double>();
    auto dist = BuresWassersteinDistanceSquared(m0, s0, m1, s1);
    ASSERT_TRUE(dist.ok());
    EXPECT_NEAR((*dist)[0].item<double>(), expected, 1e-9 * std::max(1.0, expected))
        << "d=" << c.at("d");
    auto dist32 = BuresWassersteinDistanceSquared(m0.to(at::kFloat), s0.to(at::kFloat),
                                                  m1.to(at::kFloat), s1.to(at::kFloat));
    ASSERT_TRUE(dist32.ok());
    EXPECT_NEAR((*dist32)[0].item<double>(), expected, 1e-4 * std::max(1.0, expected));
    ++cases;
  }
  EXPECT_EQ(cases, 14);
  for (const nlohmann::json& c : fixture.at("pairwise")) {
    const at::Tensor ma = wfm::testing::JsonToTensor(c.at("mA"));
    const at::Tensor sa = wfm::testing::JsonToTensor(c.at("SA"));
    const at::Tensor mb = wfm::testing::JsonToTensor(c.at("mB"));
    const at::Tensor sb = wfm::testing::JsonToTensor(c.at("SB"));
    const at::Tensor expected = wfm::testing::JsonToTensor(c.at("dist2"));
    auto dist = PairwiseBuresWasserstein(ma, sa, mb, sb);
    ASSERT_TRUE(dist.ok()) << dist.status();
    EXPECT_LE(RelError(*dist, expected), 1e-9);
    {
      internal::ScopedPerMatrixMaxDim force_lapack(0);
      EXPECT_LE(RelError(*PairwiseBuresWasserstein(ma, sa, mb, sb), expected), 1e-9);
    }
  }
}

TEST_P(BuresPathTest, PairwiseEqualsTheDistanceOfEveryPair) {
  for (int64_t d : {1, 2, 3, 16, 70}) {
    at::Generator gen = MakeGenerator(d + 800);
    const int64_t p = 5;
    const int64_t q = 7;
    const at::Tensor ma = RandomMeans(p, d, gen);
    const at::Tensor sa = RandomSpd(p, d, gen, 100.0);
    const at::Tensor mb = RandomMeans(q, d, gen);
    const at::Tensor sb = RandomSpd(q, d, gen, 100.0);
    auto all = PairwiseBuresWasserstein(ma, sa, mb, sb);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->sizes(), (std::vector<int64_t>{p, q}));
    const at::Tensor rows = at::arange(p).repeat_interleave(q);
    const at::Tensor cols = at::arange(q).repeat({p});
    const at::Tensor each = *BuresWassersteinDistanceSquared(
        ma.index_select(0, rows), sa.index_select(0, rows), mb.index_select(0, cols),
        sb.index_select(0, cols));
    EXPECT_LE(RelError(*all, each.view({p, q})), 1e-10) << "d=" << d;
    auto all32 = PairwiseBuresWasserstein(ma.to(at::kFloat), sa.to(at::kFloat), mb.to(at::kFloat),
                                          sb.to(at::kFloat));
    ASSERT_TRUE(all32.ok());
    EXPECT_EQ(all32->scalar_type(), at::kFloat);
    EXPECT_LE(RelError(*all32, *all), 1e-5) << "d=" << d;
  }
}

TEST(PairwiseTest, EmptySetsAndArgumentChecks) {
  const Gaussians g = RandomPairs(3, 2, 9);
  auto none = PairwiseBuresWasserstein(g.m0.narrow(0, 0, 0), g.s0.narrow(0, 0, 0), g.m1, g.s1);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->sizes(), (std::vector<int64_t>{0, 3}));
  auto none2 = PairwiseBuresWasserstein(g.m0, g.s0, g.m1.narrow(0, 0, 0), g.s1.narrow(0, 0, 0));
  ASSERT_TRUE(none2.ok());
  EXPECT_EQ(none2->sizes(), (std::vector<int64_t>{3, 0}));
  const Gaussians h = RandomPairs(4, 3, 9);
  EXPECT_THAT(PairwiseBuresWasserstein(g.m0, g.s0, h.m1, h.s1).status().message(),
              HasSubstr("S_b: shape must be [*, 2, 2]"));
  EXPECT_THAT(PairwiseBuresWasserstein(g.m0, g.s0, g.m1.narrow(0, 0, 2), g.s1).status().message(),
              HasSubstr("m_b: shape must be [3, 2]"));
}

// ------------------------------------------------------ weighted moments

TEST(WeightedMeanCovarianceTest, MatchesNumpyWeightedCovariance) {
  const nlohmann::json fixture = wfm::testing::LoadFixture("gaussian/gaussian.json");
  for (const nlohmann::json& c : fixture.at("moments")) {
    const at::Tensor x = wfm::testing::JsonToTensor(c.at("x"));
    const at::Tensor w = wfm::testing::JsonToTensor(c.at("w"));
    const at::Tensor mean = wfm::testing::JsonToTensor(c.at("mean"));
    const at::Tensor cov = wfm::testing::JsonToTensor(c.at("cov"));
    auto got = WeightedMeanCovariance(x, w);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_LE(RelError(got->first, mean), 1e-13);
    EXPECT_LE(RelError(got->second, cov), 1e-13);
    auto got32 = WeightedMeanCovariance(x.to(at::kFloat), w.to(at::kFloat));
    ASSERT_TRUE(got32.ok());
    EXPECT_EQ(got32->second.scalar_type(), at::kFloat);
    EXPECT_LE(RelError(got32->second, cov), 1e-5);
    auto ridged = WeightedMeanCovariance(x, w, 0.25);
    ASSERT_TRUE(ridged.ok());
    const int64_t d = x.size(2);
    EXPECT_LE(RelError(ridged->second, cov + 0.25 * at::eye(d, F64())), 1e-13);
  }
}

TEST(WeightedMeanCovarianceTest, PaddingHasExactlyNoInfluence) {
  for (int64_t d : {1, 3, 7}) {
    for (uint64_t seed = 0; seed < 10; ++seed) {
      at::Generator gen = MakeGenerator(seed + 40 * d);
      const int64_t n = 5 + static_cast<int64_t>(seed);
      const at::Tensor x = at::randn({1, n, d}, gen, F64());
      const at::Tensor w = at::rand({1, n}, gen, F64()) + 0.1;
      auto plain = *WeightedMeanCovariance(x, w);
      // Interleave padding points (huge, finite coordinates, weight 0).
      const int64_t pad = 1 + static_cast<int64_t>(seed % 4);
      const int64_t total = n + pad;
      at::Tensor xp = 1e6 * at::randn({1, total, d}, gen, F64());
      at::Tensor wp = at::zeros({1, total}, F64());
      const at::Tensor order = at::randperm(total, gen, at::TensorOptions().dtype(at::kLong));
      const at::Tensor real = std::get<0>(order.narrow(0, 0, n).sort());
      xp.index_copy_(1, real, x);
      wp.index_copy_(1, real, w);
      auto padded = *WeightedMeanCovariance(xp, wp);
      EXPECT_TRUE(at::equal(padded.first, plain.first)) << "d=" << d << " seed=" << seed;
      EXPECT_TRUE(at::equal(padded.second, plain.second)) << "d=" << d << " seed=" << seed;
      // Float32 too.
      auto plain32 = *WeightedMeanCovariance(x.to(at::kFloat), w.to(at::kFloat));
      auto padded32 = *WeightedMeanCovariance(xp.to(at::kFloat), wp.to(at::kFloat));
      EXPECT_TRUE(at::equal(padded32.second, plain32.second));
    }
  }
}

TEST(WeightedMeanCovarianceTest, WeightsAreNormalisedPerCloud) {
  at::Generator gen = MakeGenerator(8);
  const at::Tensor x = at::randn({3, 20, 4}, gen, F64());
  const at::Tensor w = at::rand({3, 20}, gen, F64()) + 0.1;
  auto a = *WeightedMeanCovariance(x, w);
  auto b = *WeightedMeanCovariance(x, w * at::tensor({1.0, 7.0, 1e-3}, F64()).unsqueeze(1));
  EXPECT_LE(RelError(a.first, b.first), 1e-14);
  EXPECT_LE(RelError(a.second, b.second), 1e-14);
  EXPECT_TRUE(at::equal(a.second, Bt(a.second)));
  // Uniform weights: the plain (biased) covariance.
  auto u = *WeightedMeanCovariance(x, at::ones({3, 20}, F64()));
  const at::Tensor xc = x - x.mean(1, /*keepdim=*/true);
  EXPECT_LE(RelError(u.second, at::matmul(Bt(xc), xc) / 20.0), 1e-13);
}

TEST(WeightedMeanCovarianceTest, RejectsBadArguments) {
  const at::Tensor x = at::randn({2, 4, 3}, at::kDouble);
  const at::Tensor w = at::ones({2, 4}, at::kDouble);
  at::Tensor neg = w.clone();
  neg[1][2] = -1.0;
  EXPECT_THAT(WeightedMeanCovariance(x, neg).status().message(), HasSubstr("w: weights must be >= 0"));
  at::Tensor empty = w.clone();
  empty[1].zero_();
  EXPECT_THAT(WeightedMeanCovariance(x, empty).status().message(), HasSubstr("w: row 1"));
  at::Tensor nan_x = x.clone();
  nan_x[1][3][0] = NAN;
  EXPECT_THAT(WeightedMeanCovariance(nan_x, w).status().message(),
              HasSubstr("x[1]: values must be finite"));
  EXPECT_THAT(WeightedMeanCovariance(x, w.narrow(1, 0, 3)).status().message(),
              HasSubstr("w: shape must be [2, 4]"));
  EXPECT_THAT(WeightedMeanCovariance(x, w, -1.0).status().message(), HasSubstr("ridge"));
  EXPECT_THAT(WeightedMeanCovariance(x[0], w).status().message(), HasSubstr("x: must have 3"));
}

}  // namespace
}  // namespace wfm::model::gaussian
