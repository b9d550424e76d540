#include "model/ot/monge.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wfm::model::ot {
namespace {

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

SinkhornOptions Small(double eps = 0.002) {
  SinkhornOptions o;
  o.epsilon = eps;
  o.iterations = 300;
  return o;
}

TEST(MongeTest, ParsesEveryKindName) {
  for (const char* name : {"entropic", "argmax", "rounded_matching", "sample", "euclidean"}) {
    auto kind = ParseMongeMapKind(name);
    ASSERT_TRUE(kind.ok()) << name;
    EXPECT_EQ(MongeMapKindName(*kind), name);
  }
  auto bad = ParseMongeMapKind("nearest");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("monge_map"));
}

// x = y + c: the optimal assignment of a translated copy is the identity, so
// the one-to-one maps give T(y) = y + c exactly and the entropic map up to its
// blur. The clouds are jittered 6×6 grids (spacing 1, shift <= 0.1), so the
// identity wins by a wide margin and at ε = 0.001 relative the plan is a
// permutation matrix up to ~1e-4 of leaked mass.
TEST(MongeTest, TranslationIsRecovered) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t n = 36;
    const at::Tensor ij = at::arange(n, at::kDouble);
    const at::Tensor grid = at::stack({at::floor(ij / 6), at::fmod(ij, 6)}, 1);
    const at::Tensor y = (grid.unsqueeze(0) + 0.05 * at::randn({3, n, 2}, gen, at::kDouble))
                             .index_select(1, at::randperm(n, gen, at::kLong));
    const at::Tensor c = 0.1 * (2 * at::rand({3, 1, 2}, gen, at::kDouble) - 1);
    const at::Tensor x = y + c;
    const at::Tensor w = at::full({3, n}, 1.0 / n, at::kDouble);
    SinkhornOptions opt = Small(0.001);
    opt.iterations = 500;
    for (auto kind : {MongeMapKind::kRoundedMatching, MongeMapKind::kArgmax,
                      MongeMapKind::kSample, MongeMapKind::kEuclidean}) {
      auto t = MongeTargets(kind, y, w, x, w, opt, at::make_generator<at::CPUGeneratorImpl>(1));
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_LT(MaxAbs(*t - (y + c)), 1e-12) << MongeMapKindName(kind) << " seed " << seed;
    }
    auto ent = MongeTargets(MongeMapKind::kEntropic, y, w, x, w, opt);
    ASSERT_TRUE(ent.ok());
    EXPECT_LT(MaxAbs(*ent - (y + c)), 1e-4) << seed;
  }
}

TEST(MongeTest, EachKindMatchesItsDefinition) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor x = at::randn({2, 20, 3}, gen, at::kDouble);
  const at::Tensor y = at::randn({2, 20, 3}, gen, at::kDouble) + 1.0;
  at::Tensor a = at::full({2, 20}, 1.0 / 17, at::kDouble);
  a.narrow(1, 17, 3).zero_();  // three padding sources
  const at::Tensor b = at::full({2, 20}, 1.0 / 20, at::kDouble);
  std::optional<SinkhornSolution> sol;
  auto entropic = MongeTargets(MongeMapKind::kEntropic, x, a, y, b, Small(0.05), std::nullopt, &sol);
  ASSERT_TRUE(entropic.ok() && sol.has_value());
  const at::Tensor plan = sol->Plan();
  const at::Tensor bary = at::bmm(plan, y) / plan.sum(2, true);
  EXPECT_LT(MaxAbs(entropic->narrow(1, 0, 17) - bary.narrow(1, 0, 17)), 1e-12);
  auto argmax = MongeTargets(MongeMapKind::kArgmax, x, a, y, b, Small(0.05));
  ASSERT_TRUE(argmax.ok());
  const at::Tensor idx = plan.argmax(2);
  for (int64_t k = 0; k < 2; ++k) {
    for (int64_t i = 0; i < 17; ++i) {
      EXPECT_TRUE(at::equal((*argmax)[k][i], y[k][idx[k][i].item<int64_t>()]));
    }
  }
  // Padding sources map to themselves: zero displacement, whatever the kind.
  for (auto kind : {MongeMapKind::kEntropic, MongeMapKind::kArgmax, MongeMapKind::kRoundedMatching,
                    MongeMapKind::kSample, MongeMapKind::kEuclidean}) {
    auto t = MongeTargets(kind, x, a, y, b, Small(0.05), at::make_generator<at::CPUGeneratorImpl>(2));
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(MaxAbs(t->narrow(1, 17, 3) - x.narrow(1, 17, 3)), 0.0) << MongeMapKindName(kind);
  }
  // The sample map is reproducible from the generator seed.
  auto s1 = MongeTargets(MongeMapKind::kSample, x, a, y, b, Small(0.05), at::make_generator<at::CPUGeneratorImpl>(7));
  auto s2 = MongeTargets(MongeMapKind::kSample, x, a, y, b, Small(0.05), at::make_generator<at::CPUGeneratorImpl>(7));
  auto s3 = MongeTargets(MongeMapKind::kSample, x, a, y, b, Small(0.05), at::make_generator<at::CPUGeneratorImpl>(8));
  ASSERT_TRUE(s1.ok() && s2.ok() && s3.ok());
  EXPECT_TRUE(at::equal(*s1, *s2));
  EXPECT_FALSE(at::equal(*s1, *s3));
}

// A source cloud larger than its target cloud (given sources of other
// sizes): no real source point is sent to the target's padding.
TEST(MongeTest, TargetPaddingIsNeverATarget) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  // Two pairs: 6 source slots (5 and 6 real points), 6 target slots (3 and 4
  // real points, the rest padding at the origin).
  const at::Tensor x = at::randn({2, 6, 2}, gen, at::kDouble);
  at::Tensor y = at::randn({2, 6, 2}, gen, at::kDouble) + 3.0;
  at::Tensor a = at::full({2, 6}, 1.0 / 6, at::kDouble);
  a[0][5] = 0.0;
  a[0] /= a[0].sum();
  at::Tensor b = at::zeros({2, 6}, at::kDouble);
  b[0].narrow(0, 0, 3).fill_(1.0 / 3);
  b[1].narrow(0, 0, 4).fill_(1.0 / 4);
  y = y * (b > 0).unsqueeze(2);  // padding at the origin
  const int64_t real_y[2] = {3, 4};
  for (auto kind : {MongeMapKind::kRoundedMatching, MongeMapKind::kArgmax, MongeMapKind::kSample,
                    MongeMapKind::kEuclidean}) {
    auto t = MongeTargets(kind, x, a, y, b, Small(0.05), at::make_generator<at::CPUGeneratorImpl>(3));
    ASSERT_TRUE(t.ok()) << MongeMapKindName(kind) << ": " << t.status();
    for (int64_t c = 0; c < 2; ++c) {
      for (int64_t i = 0; i < 6; ++i) {
        if (a[c][i].item<double>() == 0) continue;
        bool real = false;
        for (int64_t j = 0; j < real_y[c]; ++j) real = real || at::equal((*t)[c][i], y[c][j]);
        EXPECT_TRUE(real) << MongeMapKindName(kind) << ": pair " << c << ", source point " << i
                          << " is sent to a padding point of the target";
      }
    }
    if (kind == MongeMapKind::kRoundedMatching) {
      // Every real target point is used before any is used twice.
      for (int64_t c = 0; c < 2; ++c) {
        for (int64_t j = 0; j < real_y[c]; ++j) {
          int64_t uses = 0;
          for (int64_t i = 0; i < 6; ++i) uses += a[c][i].item<double>() > 0 && at::equal((*t)[c][i], y[c][j]);
          EXPECT_GE(uses, 1) << "pair " << c << ", target point " << j;
        }
      }
    }
  }
  // euclidean pairs the k-th real source point with real target point k mod n.
  auto e = MongeTargets(MongeMapKind::kEuclidean, x, a, y, b, Small());
  ASSERT_TRUE(e.ok());
  for (int64_t i = 0; i < 5; ++i) EXPECT_TRUE(at::equal((*e)[0][i], y[0][i % 3])) << i;
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(at::equal((*e)[1][i], y[1][i % 4])) << i;
}

TEST(MongeTest, Errors) {
  const at::Tensor x = at::randn({1, 4, 2}), y = at::randn({1, 5, 2});
  const at::Tensor a = at::full({1, 4}, 0.25), b = at::full({1, 5}, 0.2);
  auto sample = MongeTargets(MongeMapKind::kSample, x, a, y, b, Small());
  EXPECT_THAT(std::string(sample.status().message()), ::testing::HasSubstr("generator"));
  auto shape = MongeTargets(MongeMapKind::kArgmax, x, a, y.narrow(2, 0, 1), b, Small());
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wfm::model::ot
