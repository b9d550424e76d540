#include "model/ot/emd.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/testing/json_fixture.h"

namespace wfm::model::ot {
namespace {

// POT's ot.emd2 / ot.emd on weighted clouds of different sizes
// (tests/fixtures/ot/make_fixtures.py).
TEST(ExactEmdTest, MatchesPot) {
  const nlohmann::json fixture = testing::LoadFixture("ot/emd.json");
  ASSERT_EQ(fixture["cases"].size(), 4u);
  for (const auto& c : fixture["cases"]) {
    const at::Tensor x = testing::JsonToTensor(c["x"]), a = testing::JsonToTensor(c["a"]);
    const at::Tensor y = testing::JsonToTensor(c["y"]), b = testing::JsonToTensor(c["b"]);
    auto r = ExactEmd(x, a, y, b, /*with_plan=*/true);
    ASSERT_TRUE(r.ok()) << r.status();
    const double expect = c["emd2"].get<double>();
    EXPECT_NEAR(r->cost, expect, 1e-9 * std::max(1.0, expect));
    EXPECT_LT((r->plan.sum(1) - a).abs().max().item<double>(), 1e-11);
    EXPECT_LT((r->plan.sum(0) - b).abs().max().item<double>(), 1e-11);
    // float32 inputs give the same cost to float32 precision.
    auto f = ExactEmd(x.to(at::kFloat), a.to(at::kFloat), y.to(at::kFloat), b.to(at::kFloat));
    ASSERT_TRUE(f.ok());
    EXPECT_NEAR(f->cost, expect, 1e-5 * std::max(1.0, expect));
  }
}

TEST(ExactEmdTest, ClosedFormCases) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (int trial = 0; trial < 5; ++trial) {
    const at::Tensor x = at::randn({30, 3}, gen, at::kDouble);
    const at::Tensor w = at::full({30}, 1.0 / 30, at::kDouble);
    // A cloud with itself: 0. A translated copy: |c|^2.
    EXPECT_NEAR(ExactEmd(x, w, x, w)->cost, 0.0, 1e-12);
    const at::Tensor c = at::randn({1, 3}, gen, at::kDouble);
    EXPECT_NEAR(ExactEmd(x, w, x + c, w)->cost, c.pow(2).sum().item<double>(), 1e-9);
    // A permuted copy with padding appended: still 0; weights need not sum to 1.
    const at::Tensor perm = at::randperm(30, gen, at::kLong);
    const at::Tensor y = at::cat({x.index_select(0, perm), at::randn({4, 3}, gen, at::kDouble)});
    const at::Tensor wy = at::cat({at::full({30}, 2.0, at::kDouble), at::zeros({4}, at::kDouble)});
    EXPECT_NEAR(ExactEmd(x, w, y, wy)->cost, 0.0, 1e-10);  // mass quantised to 2^-40
  }
  // One point against two: the mass splits, cost = mean squared distance.
  const at::Tensor one = at::zeros({1, 2}, at::kDouble);
  const at::Tensor two = at::tensor({1.0, 0.0, 0.0, 3.0}, at::kDouble).view({2, 2});
  auto r = ExactEmd(one, at::ones({1}, at::kDouble), two, at::ones({2}, at::kDouble));
  EXPECT_NEAR(r->cost, 0.5 * 1.0 + 0.5 * 9.0, 1e-12);
}

TEST(ExactEmdTest, RejectsBadInput) {
  const at::Tensor x = at::randn({3, 2}), w = at::ones({3});
  EXPECT_EQ(ExactEmd(x, w, at::randn({3, 3}), w).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExactEmd(x, w * 0, x, w).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExactEmd(x, -w, x, w).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wfm::model::ot
