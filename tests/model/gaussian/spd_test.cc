#include "model/gaussian/spd.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/gaussian/small_matrix.h"
#include "tests/model/gaussian/gaussian_test_util.h"

namespace wfm::model::gaussian {
namespace {

using ::testing::HasSubstr;
using namespace test_util;  // NOLINT(build/namespaces): the Gaussian test helpers

// Dimensions covering Jacobi (d <= 3), the per-matrix QL kernel and the
// LAPACK path (d > 64).
const std::vector<int64_t> kDims = {1, 2, 3, 4, 5, 8, 13, 16, 32, 70};

// `check(s, d)` on batches s of 4 random SPD matrices (condition number 1e4)
// of every dimension d of kDims, five per dimension (generator seeds
// base·d + 0..4); stops at the first fatal failure.
template <typename Check>
void ForRandomSpdBatches(uint64_t base, const Check& check) {
  for (int64_t d : kDims) {
    for (uint64_t seed = 0; seed < 5; ++seed) {
      at::Generator gen = MakeGenerator(base * d + seed);
      check(RandomSpd(4, d, gen, /*cond=*/1e4), d);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

at::Tensor Bt(const at::Tensor& x) { return x.transpose(-1, -2); }

TEST(SymmetricEigTest, ReconstructsAndOrdersForEverySolver) {
  for (EigenSolver solver : {EigenSolver::kAuto, EigenSolver::kJacobi,
                             EigenSolver::kTridiagonalQl, EigenSolver::kLapack}) {
    for (int64_t d : {1, 2, 3, 6, 16, 40}) {
      at::Generator gen = MakeGenerator(d);
      const at::Tensor g = at::randn({6, d, d}, gen, F64());
      const at::Tensor s = 0.5 * (g + Bt(g));
      auto eig = SymmetricEig(s, solver);
      ASSERT_TRUE(eig.ok()) << eig.status();
      const auto& [w, v] = *eig;
      ASSERT_EQ(w.sizes(), (std::vector<int64_t>{6, d}));
      ASSERT_EQ(v.sizes(), (std::vector<int64_t>{6, d, d}));
      EXPECT_LE(RelError(Compose(v, w), s), 1e-12) << static_cast<int>(solver) << " d=" << d;
      EXPECT_LE(MaxAbs(at::matmul(Bt(v), v) - test_util::Eye(6, d)), 1e-12);
      if (d > 1) {
        EXPECT_TRUE((w.narrow(1, 1, d - 1) >= w.narrow(1, 0, d - 1)).all().item<bool>());
      }
      auto values = SymmetricEigenvalues(s, solver);
      ASSERT_TRUE(values.ok());
      EXPECT_LE(RelError(*values, at::linalg_eigvalsh(s)), 1e-12);
    }
  }
}

TEST(SymmetricEigTest, UsesOnlyTheSymmetricPart) {
  at::Generator gen = MakeGenerator(3);
  const at::Tensor s = RandomSpd(4, 5, gen);
  const at::Tensor skew = at::randn({4, 5, 5}, gen, F64());
  auto a = SymmetricEigenvalues(s + skew - Bt(skew));
  auto b = SymmetricEigenvalues(s);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(RelError(*a, *b), 1e-12);
}

TEST(SymmetricEigTest, Float32KeepsDtypeAndAccuracy) {
  at::Generator gen = MakeGenerator(4);
  const at::Tensor s = RandomSpd(8, 6, gen);
  auto eig = SymmetricEig(s.to(at::kFloat));
  ASSERT_TRUE(eig.ok());
  EXPECT_EQ(eig->first.scalar_type(), at::kFloat);
  EXPECT_EQ(eig->second.scalar_type(), at::kFloat);
  EXPECT_LE(RelError(eig->first, at::linalg_eigvalsh(s)), 1e-6);
}

TEST(SqrtSpdTest, SquaresBackForManySeedsAndDims) {
  ForRandomSpdBatches(100, [](const at::Tensor& s, int64_t d) {
    auto r = SqrtSpd(s);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(RelError(at::matmul(*r, *r), s), 1e-12 * std::max<int64_t>(d, 4)) << "d=" << d;
    EXPECT_TRUE(at::equal(*r, Bt(*r)));
    EXPECT_GT(at::linalg_eigvalsh(*r).min().item<double>(), 0.0);
    auto r32 = SqrtSpd(s.to(at::kFloat));
    ASSERT_TRUE(r32.ok());
    EXPECT_EQ(r32->scalar_type(), at::kFloat);
    EXPECT_LE(RelError(*r32, *r), 1e-5) << "d=" << d;
  });
}

TEST(SqrtSpdTest, ClampsNegativeEigenvaluesToZero) {
  for (int64_t d : {2, 3, 7, 70}) {
    at::Generator gen = MakeGenerator(d);
    const at::Tensor q = RandomRotation(3, d, gen);
    at::Tensor lambda = at::rand({3, d}, gen, F64()) + 0.5;
    lambda.select(1, 0).fill_(-2.0);  // indefinite
    auto r = SqrtSpd(Compose(q, lambda));
    ASSERT_TRUE(r.ok());
    EXPECT_LE(RelError(*r, Compose(q, lambda.clamp_min(0.0).sqrt())), 1e-12) << "d=" << d;
    if (d == 2) continue;
    // A zero eigenvalue comes back as ±(rounding) ~ 1e-16 |S|, whose root is
    // ~1e-8 sqrt|S|: the square root is only Hölder-continuous at 0.
    lambda.select(1, 1).fill_(0.0);
    auto r0 = SqrtSpd(Compose(q, lambda));
    ASSERT_TRUE(r0.ok());
    EXPECT_LE(RelError(*r0, Compose(q, lambda.clamp_min(0.0).sqrt())), 1e-7) << "d=" << d;
    EXPECT_LE(RelError(at::matmul(*r0, *r0), Compose(q, lambda.clamp_min(0.0))), 1e-13);
  }
}

TEST(InvSqrtSpdTest, WhitensForManySeedsAndDims) {
  ForRandomSpdBatches(200, [](const at::Tensor& s, int64_t d) {
    auto x = InvSqrtSpd(s);
    ASSERT_TRUE(x.ok()) << x.status();
    const at::Tensor white = at::matmul(at::matmul(*x, s), *x);
    EXPECT_LE(MaxAbs(white - test_util::Eye(4, d)), 1e-10) << "d=" << d;
    EXPECT_TRUE(at::equal(*x, Bt(*x)));
  });
}

TEST(InvSqrtSpdTest, ClampsAtTheRelativeFloor) {
  for (int64_t d : {3, 4, 6, 70}) {
    at::Generator gen = MakeGenerator(d + 1);
    const at::Tensor q = RandomRotation(1, d, gen);
    at::Tensor lambda = at::full({1, d}, 4.0, F64());
    lambda[0][0] = -1.0;   // indefinite
    lambda[0][1] = 1e-30;  // far below the floor
    auto x = InvSqrtSpd(Compose(q, lambda));
    ASSERT_TRUE(x.ok());
    const double floor = kInvSqrtRelativeFloor * 4.0;
    const at::Tensor expected = Compose(q, lambda.clamp_min(floor).rsqrt());
    EXPECT_LE(RelError(*x, expected), 1e-9) << "d=" << d;
    // Bounded by 1/sqrt(floor) = 5e5: no blow-up.
    EXPECT_LE(MaxAbs(*x), 1.0 / std::sqrt(floor) * (1 + 1e-9));
  }
}

TEST(InvSqrtSpdTest, NoPositiveEigenvalueGivesZero) {
  at::Tensor s = at::zeros({3, 3, 3}, F64());
  s[1] = -at::eye(3, F64());
  s[2] = at::eye(3, F64());
  auto x = InvSqrtSpd(s);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(MaxAbs((*x)[0]), 0.0);
  EXPECT_EQ(MaxAbs((*x)[1]), 0.0);
  EXPECT_LE(MaxAbs((*x)[2] - at::eye(3, F64())), 1e-15);
}

TEST(ProjectSpdTest, RaisesEigenvaluesToTheAnchorFloor) {
  for (int64_t d : {2, 3, 9, 70}) {
    at::Generator gen = MakeGenerator(d + 7);
    const at::Tensor q = RandomRotation(5, d, gen);
    const at::Tensor lambda = at::randn({5, d}, gen, F64());  // mixed signs
    auto p = ProjectSpd(Compose(q, lambda));
    ASSERT_TRUE(p.ok());
    const at::Tensor floor = 1e-4 * lambda.abs().mean(-1, /*keepdim=*/true);
    EXPECT_LE(RelError(*p, Compose(q, lambda.maximum(floor))), 1e-10) << "d=" << d;
    EXPECT_TRUE(at::equal(*p, Bt(*p)));
    EXPECT_GT(at::linalg_eigvalsh(*p).min().item<double>(), 0.0);
  }
}

TEST(ProjectSpdTest, LeavesSpdMatricesAloneAndHonoursTheAbsoluteFloor) {
  at::Generator gen = MakeGenerator(11);
  const at::Tensor s = RandomSpd(6, 4, gen, 100.0);
  auto same = ProjectSpd(s);
  ASSERT_TRUE(same.ok());
  EXPECT_LE(RelError(*same, s), 1e-13);

  auto zero = ProjectSpd(at::zeros({1, 3, 3}, F64()));
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(MaxAbs(*zero), 0.0);
  auto lifted = ProjectSpd(at::zeros({1, 3, 3}, F64()), EigenvalueFloor{1e-4, 0.25});
  ASSERT_TRUE(lifted.ok());
  EXPECT_LE(MaxAbs(*lifted - 0.25 * at::eye(3, F64())), 1e-15);

  EXPECT_EQ(ProjectSpd(s, EigenvalueFloor{-1.0, 0.0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProjectSpd(s, EigenvalueFloor{1e-4, NAN}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SpdFunctionsTest, LapackPathAgreesWithPerMatrixPath) {
  at::Generator gen = MakeGenerator(12);
  for (int64_t d : {2, 3, 8, 16}) {
    const at::Tensor s = RandomSpd(5, d, gen, 1e3);
    auto r = SqrtSpd(s);
    auto x = InvSqrtSpd(s);
    auto p = ProjectSpd(s - 0.5 * test_util::Eye(5, d));
    at::Tensor r_lapack, x_lapack, p_lapack;
    {
      internal::ScopedPerMatrixMaxDim force_lapack(0);
      r_lapack = *SqrtSpd(s);
      x_lapack = *InvSqrtSpd(s);
      p_lapack = *ProjectSpd(s - 0.5 * test_util::Eye(5, d));
    }
    EXPECT_LE(RelError(*r, r_lapack), 1e-12);
    EXPECT_LE(RelError(*x, x_lapack), 1e-11);
    EXPECT_LE(RelError(*p, p_lapack), 1e-12);
  }
}

TEST(SpdFunctionsTest, RejectsBadArguments) {
  const at::Tensor good = at::eye(3, F64()).expand({2, 3, 3}).clone();
  EXPECT_THAT(SqrtSpd(at::eye(3, F64())).status().message(), HasSubstr("S: must have 3"));
  EXPECT_THAT(SqrtSpd(at::zeros({2, 3, 4}, F64())).status().message(),
              HasSubstr("S: shape must be [B, d, d]"));
  EXPECT_THAT(InvSqrtSpd(good.to(at::kInt)).status().message(), HasSubstr("float32 or float64"));
  at::Tensor bad = good.clone();
  bad[1][0][2] = NAN;
  EXPECT_THAT(SymmetricEig(bad).status().message(), HasSubstr("S[1]: values must be finite"));
  EXPECT_EQ(ProjectSpd(bad).status().code(), absl::StatusCode::kInvalidArgument);
  // An empty batch is fine.
  auto empty = SqrtSpd(at::zeros({0, 3, 3}, F64()));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->sizes(), (std::vector<int64_t>{0, 3, 3}));
}

// ------------------------------------------------------------ validation

at::Tensor GoodCovariances(int64_t batch, int64_t d, uint64_t seed) {
  at::Generator gen = MakeGenerator(seed);
  return RandomSpd(batch, d, gen, 100.0);
}

TEST(ValidateCovariancesTest, AcceptsSpdBatchesInBothDtypes) {
  for (int64_t d : {1, 3, 16, 70}) {
    const at::Tensor s = GoodCovariances(10, d, d);
    EXPECT_TRUE(ValidateCovariances(s, "covs").ok()) << d;
    EXPECT_TRUE(ValidateCovariances(s.to(at::kFloat), "covs").ok()) << d;
    auto mask = IsSpd(s);
    ASSERT_TRUE(mask.ok());
    EXPECT_TRUE(mask->all().item<bool>());
  }
  EXPECT_TRUE(ValidateCovariances(at::zeros({0, 3, 3}, F64()), "covs").ok());
}

TEST(ValidateCovariancesTest, NamesTheNonSymmetricItem) {
  for (int64_t d : {3, 70}) {
    at::Tensor s = GoodCovariances(10, d, 1);
    s[7][0][1] += 0.5;
    const absl::Status st = ValidateCovariances(s, "covs");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("covs[7]: not symmetric")) << st;
    // Within the documented relative tolerance it passes.
    at::Tensor t = GoodCovariances(10, d, 1);
    t[7][0][1] += 1e-7 * MaxAbs(t[7]);
    EXPECT_TRUE(ValidateCovariances(t, "covs").ok());
  }
}

TEST(ValidateCovariancesTest, NamesTheIndefiniteItemAndItsSmallestEigenvalue) {
  for (int64_t d : {3, 70}) {
    at::Generator gen = MakeGenerator(d);
    const at::Tensor q = RandomRotation(10, d, gen);
    at::Tensor lambda = at::rand({10, d}, gen, F64()) + 1.0;
    lambda[7][0] = -0.3;
    const at::Tensor s = Compose(q, lambda);
    const absl::Status st = ValidateCovariances(s, "covs");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(),
                HasSubstr("covs[7]: not positive definite (smallest eigenvalue -0.3"))
        << st;
    auto mask = IsSpd(s);
    ASSERT_TRUE(mask.ok());
    EXPECT_FALSE((*mask)[7].item<bool>());
    EXPECT_EQ(mask->sum().item<int64_t>(), 9);
  }
}

TEST(ValidateCovariancesTest, NamesTheFirstBadItemAndCatchesNaN) {
  for (int64_t d : {2, 70}) {
    at::Tensor s = GoodCovariances(10, d, 2);
    s[5][1][1] = NAN;
    s[8] = -s[8];
    EXPECT_THAT(ValidateCovariances(s, "covs").message(),
                HasSubstr("covs[5]: values must be finite"));
    s[3][0][0] = INFINITY;
    EXPECT_THAT(ValidateCovariances(s, "covs").message(),
                HasSubstr("covs[3]: values must be finite"));
    at::Tensor t = GoodCovariances(10, d, 2);
    t[8] = -t[8];  // negative definite
    t[9][0][d - 1] += 1.0;
    EXPECT_THAT(ValidateCovariances(t, "covs").message(), HasSubstr("covs[8]: not positive"));
  }
}

TEST(ValidateCovariancesTest, RejectsSingularAndIllConditionedByRatio) {
  at::Generator gen = MakeGenerator(5);
  const at::Tensor q = RandomRotation(2, 4, gen);
  at::Tensor lambda = at::ones({2, 4}, F64());
  lambda[0][3] = 0.0;   // singular
  lambda[1][3] = 1e-8;  // condition number 1e8
  const at::Tensor s = Compose(q, lambda);
  EXPECT_THAT(ValidateCovariances(s, "S").message(), HasSubstr("S[0]: not positive definite"));
  const at::Tensor second = s.narrow(0, 1, 1);
  EXPECT_THAT(ValidateCovariances(second, "S").message(),
              HasSubstr("S[0]: not positive definite"));
  EXPECT_TRUE(ValidateCovariances(second, "S", CovarianceTolerance{1e-5, 1e-9})
                  .ok());
  EXPECT_EQ(ValidateCovariances(second, "S", CovarianceTolerance{1e-5, 1.5})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ValidateCovariances(at::zeros({2, 3}, F64()), "covs").message(),
              HasSubstr("covs: must have 3 dimensions"));
}

}  // namespace
}  // namespace wfm::model::gaussian
