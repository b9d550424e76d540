#include "model/ot/cloud_costs.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/gaussian/bures.h"

namespace wfm::model::ot {
namespace {

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

// Brute-force weighted chamfer over real points only.
double BruteChamfer(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  const at::Tensor rx = a > 0, ry = b > 0;
  const at::Tensor xs = x.index({rx}), ys = y.index({ry});
  const at::Tensor as = a.index({rx}) / a.sum(), bs = b.index({ry}) / b.sum();
  const at::Tensor d = (xs.unsqueeze(1) - ys.unsqueeze(0)).pow(2).sum(2);
  return ((std::get<0>(d.min(1)) * as).sum() + (std::get<0>(d.min(0)) * bs).sum()).item<double>();
}

struct Clouds {
  at::Tensor x, a, y, b;
};

Clouds RandomClouds(uint64_t seed, at::ScalarType dtype = at::kDouble) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto o = at::TensorOptions().dtype(dtype);
  Clouds c{at::randn({5, 17, 3}, g, o), at::rand({5, 17}, g, o) + 0.1,
           at::randn({6, 13, 3}, g, o) + 0.5, at::rand({6, 13}, g, o) + 0.1};
  c.a.narrow(1, 13, 4).zero_();
  c.b.narrow(1, 11, 2).zero_();
  c.x.narrow(1, 13, 4).fill_(40.0);  // padding far away: must not matter
  return c;
}

TEST(CloudCostTest, ChamferEqualsBruteForce) {
  for (uint64_t seed = 0; seed < 4; ++seed) {
    Clouds c = RandomClouds(seed);
    auto cost = PairwiseCloudCost(CloudCostKind::kChamfer, c.x, c.a, c.y, c.b);
    ASSERT_TRUE(cost.ok()) << cost.status();
    ASSERT_EQ(cost->sizes(), (at::IntArrayRef{5, 6}));
    for (int64_t p = 0; p < 5; ++p) {
      for (int64_t q = 0; q < 6; ++q) {
        EXPECT_NEAR((*cost)[p][q].item<double>(), BruteChamfer(c.x[p], c.a[p], c.y[q], c.b[q]), 1e-12);
      }
    }
    // Matched pairs.
    auto paired = ChamferDistance(c.x.narrow(0, 0, 5), c.a.narrow(0, 0, 5), c.y.narrow(0, 0, 5),
                                  c.b.narrow(0, 0, 5));
    ASSERT_TRUE(paired.ok());
    for (int64_t p = 0; p < 5; ++p) EXPECT_NEAR((*paired)[p].item<double>(), (*cost)[p][p].item<double>(), 1e-12);
    // float32 agrees.
    auto f = PairwiseCloudCost(CloudCostKind::kChamfer, c.x.to(at::kFloat), c.a.to(at::kFloat),
                               c.y.to(at::kFloat), c.b.to(at::kFloat));
    ASSERT_TRUE(f.ok());
    EXPECT_LT(MaxAbs(f->to(at::kDouble) - *cost), 1e-4);
  }
}

TEST(CloudCostTest, EntropicIsTheRegularisedOtCost) {
  Clouds c = RandomClouds(1);
  CloudCostOptions opt;
  opt.entropic_epsilon = 0.5;
  opt.entropic_iterations = 2000;
  auto cost = PairwiseCloudCost(CloudCostKind::kEntropic, c.x, c.a, c.y, c.b, opt);
  ASSERT_TRUE(cost.ok()) << cost.status();
  SinkhornOptions s;
  s.epsilon = 0.5;
  s.epsilon_scale = EpsilonScale::kAbsolute;
  s.iterations = 2000;
  for (int64_t p = 0; p < 5; ++p) {
    for (int64_t q = 0; q < 6; ++q) {
      const at::Tensor a = (c.a[p] / c.a[p].sum()).unsqueeze(0), b = (c.b[q] / c.b[q].sum()).unsqueeze(0);
      auto sol = SolveSinkhorn(c.x[p].unsqueeze(0), a, c.y[q].unsqueeze(0), b, s);
      ASSERT_TRUE(sol.ok());
      ASSERT_LT(sol->marginal_error().item<double>(), 1e-9);  // converged
      const double reg = (*cost)[p][q].item<double>();
      EXPECT_NEAR(reg, sol->RegularizedCost(a, b).item<double>(), 1e-10);
      // At convergence reg = <P,C> + ε KL(P | a⊗b), and the KL term (the
      // mutual information of the coupling) is at most min(H(a), H(b)).
      auto entropy = [](const at::Tensor& w) {
        const at::Tensor pos = w.masked_select(w > 0);
        return -(pos * at::log(pos)).sum().item<double>();
      };
      const double transport = sol->TransportCost().item<double>();
      EXPECT_GE(reg, transport - 1e-9);
      EXPECT_LE(reg, transport + 0.5 * std::min(entropy(a), entropy(b)) + 1e-9);
    }
  }
}

TEST(CloudCostTest, EuclideanAndFrechet) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor x = at::randn({3, 9, 2}, g, at::kDouble), y = at::randn({4, 9, 2}, g, at::kDouble);
  at::Tensor a = at::ones({3, 9}, at::kDouble);
  a[0][8] = 0;
  const at::Tensor b = at::ones({4, 9}, at::kDouble);
  auto euclid = PairwiseCloudCost(CloudCostKind::kEuclidean, x, a, y, b);
  ASSERT_TRUE(euclid.ok());
  for (int64_t p = 0; p < 3; ++p) {
    for (int64_t q = 0; q < 4; ++q) {
      const at::Tensor w = a[p] / a[p].sum();
      EXPECT_NEAR((*euclid)[p][q].item<double>(), ((x[p] - y[q]).pow(2).sum(1) * w).sum().item<double>(), 1e-12);
    }
  }
  auto frechet = PairwiseCloudCost(CloudCostKind::kFrechet, x, a, y, b);
  ASSERT_TRUE(frechet.ok());
  auto mx = gaussian::WeightedMeanCovariance(x, a, 1e-6);
  auto my = gaussian::WeightedMeanCovariance(y, b, 1e-6);
  for (int64_t p = 0; p < 3; ++p) {
    for (int64_t q = 0; q < 4; ++q) {
      auto bw = gaussian::BuresWassersteinDistanceSquared(
          mx->first[p].unsqueeze(0), mx->second[p].unsqueeze(0), my->first[q].unsqueeze(0),
          my->second[q].unsqueeze(0));
      EXPECT_NEAR((*frechet)[p][q].item<double>(), (*bw)[0].item<double>(), 1e-10);
    }
  }
  // Unequal sizes are refused by the index-wise cost only.
  auto bad = PairwiseCloudCost(CloudCostKind::kEuclidean, x, a, y.narrow(1, 0, 5), b.narrow(1, 0, 5));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PairwiseCloudCost(CloudCostKind::kChamfer, x, a, y.narrow(1, 0, 5), b.narrow(1, 0, 5)).ok());
}

TEST(CloudCostTest, ParseNames) {
  for (const char* name : {"chamfer", "entropic", "euclidean", "frechet"}) {
    auto k = ParseCloudCostKind(name);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(CloudCostKindName(*k), name);
  }
  EXPECT_FALSE(ParseCloudCostKind("hausdorff").ok());
}

// Data cloud i is a shifted copy of noise cloud perm[i]; the pairing finds
// perm from the chamfer costs.
TEST(MinibatchPairingTest, RecoversHiddenPairingAndIsAPermutation) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t B = 16;
    const at::Tensor noise = at::randn({B, 20, 2}, g, at::kFloat) + 3.0 * at::randn({B, 1, 2}, g, at::kFloat);
    const at::Tensor perm = at::randperm(B, g, at::kLong);
    const at::Tensor data = noise.index_select(0, perm) + 0.01;
    const at::Tensor w = at::full({B, 20}, 0.05, at::kFloat);
    auto cost = PairwiseCloudCost(CloudCostKind::kChamfer, data, w, noise, w);
    ASSERT_TRUE(cost.ok());
    SinkhornOptions opt;
    opt.epsilon = 0.002;
    opt.iterations = 200;
    auto pairing = MinibatchPairing(*cost, opt);
    ASSERT_TRUE(pairing.ok()) << pairing.status();
    EXPECT_TRUE(at::equal(*pairing, perm)) << seed;
    // Any cost matrix gives a permutation.
    auto random = MinibatchPairing(at::rand({B, B}, g, at::kFloat), opt);
    ASSERT_TRUE(random.ok());
    EXPECT_TRUE(at::equal(std::get<0>(at::sort(*random)), at::arange(B, at::kLong)));
  }
  EXPECT_FALSE(MinibatchPairing(at::rand({3, 4}), SinkhornOptions{}).ok());
}

}  // namespace
}  // namespace wfm::model::ot
