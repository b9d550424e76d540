#include "model/gaussian/spd_check.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace wfm::model::gaussian {
namespace {

using Kind = SpdVerdict::Kind;

SpdVerdict Check(const std::vector<double>& s) {
  const auto d = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(s.size()))));
  return CheckSpd(s.data(), d);
}

TEST(SpdCheckTest, AcceptsPositiveDefiniteMatrices) {
  EXPECT_TRUE(Check({1}).ok());
  EXPECT_TRUE(Check({2, 1, 1, 2}).ok());  // eigenvalues 1 and 3
  EXPECT_TRUE(Check({4, 2, 0.4, 2, 5, 1, 0.4, 1, 3}).ok());
  // Condition number 1e11: within what float64 resolves.
  EXPECT_TRUE(Check({1, 0, 0, 1e-11}).ok());
  // Scale does not matter: the rule is relative.
  EXPECT_TRUE(Check({2e-30, 1e-30, 1e-30, 2e-30}).ok());
  EXPECT_TRUE(Check({2e30, 1e30, 1e30, 2e30}).ok());
}

TEST(SpdCheckTest, RefusesSingularAndIndefiniteMatricesAtTheFailingPivot) {
  // [[1, 2], [2, 1]] has eigenvalues 3 and -1: the second pivot is 1 - 4 < 0.
  SpdVerdict v = Check({1, 2, 2, 1});
  EXPECT_EQ(v.kind, Kind::kNotPositiveDefinite);
  EXPECT_EQ(v.row, 1);
  // Rank one (x x^T) is singular.
  EXPECT_EQ(Check({1, 2, 2, 4}).kind, Kind::kNotPositiveDefinite);
  // Condition number 1e13: numerically singular.
  EXPECT_EQ(Check({1, 0, 0, 1e-13}).kind, Kind::kNotPositiveDefinite);
  EXPECT_EQ(Check({0, 0, 0, 0}).kind, Kind::kNotPositiveDefinite);
  EXPECT_EQ(Check({-1}).kind, Kind::kNotPositiveDefinite);
}

TEST(SpdCheckTest, RefusesAsymmetryBeyondTheToleranceAndNamesThePair) {
  // A relative difference of 1e-7 of the largest entry is rounding.
  EXPECT_TRUE(Check({2, 1, 1 + 2e-7, 2}).ok());
  SpdVerdict v = Check({3, 0, 0, 0, 3, 1, 0, 1.1, 3});
  EXPECT_EQ(v.kind, Kind::kNotSymmetric);
  EXPECT_EQ(v.row, 1);
  EXPECT_EQ(v.col, 2);
}

TEST(SpdCheckTest, RefusesNonFiniteEntriesAndNamesTheFirst) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  SpdVerdict v = Check({1, 0, 0, 0, 1, nan, 0, nan, 1});
  EXPECT_EQ(v.kind, Kind::kNotFinite);
  EXPECT_EQ(v.row, 1);
  EXPECT_EQ(v.col, 2);
  EXPECT_EQ(Check({std::numeric_limits<double>::infinity()}).kind, Kind::kNotFinite);
}

}  // namespace
}  // namespace wfm::model::gaussian
