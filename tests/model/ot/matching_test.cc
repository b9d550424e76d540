#include "model/ot/matching.h"

#include <algorithm>
#include <random>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/ot/sinkhorn.h"

namespace wfm::model::ot {
namespace {

// The reference loop, transcribed literally: n times, take the global argmax
// (first in row-major order), assign, overwrite its row and column with -1.
at::Tensor LiteralRoundedMatching(const at::Tensor& plan) {
  const int64_t B = plan.size(0), n = plan.size(1), m = plan.size(2);
  at::Tensor out = at::full({B, n}, -1, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    at::Tensor w = plan[b].clone();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t flat = w.reshape({-1}).argmax().item<int64_t>();
      const int64_t i = flat / m, j = flat % m;
      out[b][i] = j;
      w.select(0, i).fill_(-1.0);
      w.select(1, j).fill_(-1.0);
    }
  }
  return out;
}

bool IsPermutation(const at::Tensor& row) {
  std::vector<int64_t> v(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

TEST(RoundedMatchingTest, PermutationsEqualToTheReferenceLoop) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t n = 2 + rng() % 50;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(trial);
    at::Tensor plan = at::rand({3, n, n}, gen, at::kDouble);
    if (trial % 4 == 0) plan = (plan * 3).round() / 3;  // many ties
    if (trial % 5 == 0 && n > 6) {                       // padded rows / columns
      plan.narrow(1, n - 3, 3).zero_();
      plan.narrow(2, n - 2, 2).zero_();
    }
    for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
      auto got = RoundedMatching(plan.to(dtype));
      ASSERT_TRUE(got.ok()) << got.status();
      for (int64_t b = 0; b < 3; ++b) EXPECT_TRUE(IsPermutation((*got)[b])) << trial;
      EXPECT_TRUE(at::equal(*got, LiteralRoundedMatching(plan.to(dtype)))) << trial;
    }
  }
}

TEST(RoundedMatchingTest, GreedyDiffersFromRowArgmax) {
  const at::Tensor plan = at::tensor({0.9, 0.8, 0.85, 0.1}, at::kDouble).view({1, 2, 2});
  auto greedy = RoundedMatching(plan);
  auto argmax = RowArgmax(plan);
  ASSERT_TRUE(greedy.ok() && argmax.ok());
  EXPECT_EQ((*greedy)[0][0].item<int64_t>(), 0);
  EXPECT_EQ((*greedy)[0][1].item<int64_t>(), 1);
  EXPECT_EQ((*argmax)[0][1].item<int64_t>(), 0);  // both rows want column 0
}

TEST(RoundedMatchingTest, RectangularPlans) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  // Fewer rows than columns: distinct columns.
  const at::Tensor wide = at::rand({2, 5, 9}, gen, at::kDouble);
  auto w = RoundedMatching(wide);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(at::equal(*w, LiteralRoundedMatching(wide)));
  for (int64_t b = 0; b < 2; ++b) EXPECT_EQ(std::get<0>(at::_unique((*w)[b])).numel(), 5);
  // More rows than columns: every column used once, the rest take row argmax.
  const at::Tensor tall = at::rand({1, 7, 3}, gen, at::kDouble);
  auto t = RoundedMatching(tall);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(std::get<0>(at::_unique((*t)[0])).numel(), 3);
  EXPECT_TRUE(((*t) >= 0).all().item<bool>() && ((*t) < 3).all().item<bool>());
}

// Masked columns (target padding) are never assigned; masked rows (source
// padding) take no column from the real rows.
TEST(RoundedMatchingTest, MasksLeaveRowsAndColumnsOut) {
  // Row 2 is padding; column 1 is padding and holds the largest entries.
  const at::Tensor plan =
      at::tensor({0.1, 0.9, 0.2, 0.0,  //
                  0.3, 0.8, 0.0, 0.0,  //
                  0.9, 0.9, 0.9, 0.9,  //
                  0.0, 0.0, 0.0, 0.0},
                 at::kDouble)
          .view({1, 4, 4});
  const at::Tensor rows = at::tensor({1, 1, 0, 1}, at::kInt).view({1, 4}).to(at::kBool);
  const at::Tensor cols = at::tensor({1, 0, 1, 1}, at::kInt).view({1, 4}).to(at::kBool);
  auto m = RoundedMatching(plan, rows, cols);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0][0].item<int64_t>(), 2);  // 0.2 is row 0's best real column
  EXPECT_EQ((*m)[0][1].item<int64_t>(), 0);  // 0.3
  EXPECT_EQ((*m)[0][3].item<int64_t>(), 3);  // a row without mass takes the free real column
  EXPECT_EQ((*m)[0][2].item<int64_t>(), 0);  // padding rows get column 0
  // Unmasked, the greedy loop sends rows to the padding column.
  auto unmasked = RoundedMatching(plan);
  ASSERT_TRUE(unmasked.ok());
  EXPECT_EQ((*unmasked)[0][0].item<int64_t>(), 1);
  // More real rows than real columns: the surplus rows take their best real column.
  const at::Tensor tall = at::tensor({0.5, 0.0, 0.4, 0.0, 0.3, 0.0}, at::kDouble).view({1, 3, 2});
  auto t = RoundedMatching(tall, at::Tensor(), at::tensor({1, 0}, at::kInt).view({1, 2}));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(at::equal(*t, at::zeros({1, 3}, at::kLong)));
  EXPECT_FALSE(RoundedMatching(plan, at::ones({1, 3}, at::kBool)).ok());  // wrong mask shape
}

// At small ε the plan between a cloud and a permuted, slightly moved copy is
// nearly a permutation matrix, and rounded matching reads the permutation off.
TEST(RoundedMatchingTest, RecoversHiddenPermutation) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t n = 40;
    const at::Tensor x = at::randn({2, n, 3}, gen, at::kDouble);
    const at::Tensor perm = at::randperm(n, gen, at::kLong);
    const at::Tensor y = x.index_select(1, perm) + 1e-3;
    const at::Tensor w = at::full({2, n}, 1.0 / n, at::kDouble);
    SinkhornOptions opt;
    opt.epsilon = 0.002;
    opt.iterations = 200;
    auto sol = SolveSinkhorn(x, w, y, w, opt);
    ASSERT_TRUE(sol.ok());
    auto match = RoundedMatching(sol->Plan());
    ASSERT_TRUE(match.ok());
    // y[j] = x[perm[j]] + c, so x_i must go to the j with perm[j] = i.
    const at::Tensor inverse = at::argsort(perm);
    for (int64_t b = 0; b < 2; ++b) EXPECT_TRUE(at::equal((*match)[b], inverse)) << seed;
  }
}

TEST(SampleFromPlanTest, DrawsFromRowsAndIsSeeded) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor plan = at::rand({2, 4, 6}, gen, at::kDouble);
  plan.select(2, 1).zero_();      // a column without mass is never drawn
  plan[0][2] = at::zeros({6});    // a row without mass gets column 0
  plan[1][3] = at::zeros({6});
  plan[1][3][4] = 0.3;            // a single supported column is always drawn
  at::Tensor counts = at::zeros({2, 4, 6}, at::kDouble);
  at::Generator draw = at::make_generator<at::CPUGeneratorImpl>(9);
  const int draws = 4000;
  for (int k = 0; k < draws; ++k) {
    auto idx = SampleFromPlan(plan, draw);
    ASSERT_TRUE(idx.ok());
    counts.scatter_add_(2, idx->unsqueeze(2), at::ones({2, 4, 1}, at::kDouble));
  }
  EXPECT_EQ(counts.select(2, 1).sum().item<double>(), 0.0);
  EXPECT_EQ(counts[0][2][0].item<double>(), draws);
  EXPECT_EQ(counts[1][3][4].item<double>(), draws);
  // Frequencies follow the normalised rows (binomial sd <= 0.008 at 4000 draws).
  const at::Tensor freq = counts / draws;
  const at::Tensor prob = plan / plan.sum(2, true);
  EXPECT_LT((freq[0][0] - prob[0][0]).abs().max().item<double>(), 0.035);
  EXPECT_LT((freq[1][1] - prob[1][1]).abs().max().item<double>(), 0.035);
  // The same generator state gives the same draw.
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(5);
  EXPECT_TRUE(at::equal(*SampleFromPlan(plan, g1), *SampleFromPlan(plan, g2)));
}

TEST(MatchingTest, RejectsBadPlans) {
  EXPECT_EQ(RoundedMatching(at::ones({2, 3})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RoundedMatching(-at::ones({1, 3, 3})).status().code(),
            absl::StatusCode::kInvalidArgument);
  at::Tensor nan = at::ones({1, 2, 2});
  nan[0][0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(RowArgmax(nan).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wfm::model::ot
