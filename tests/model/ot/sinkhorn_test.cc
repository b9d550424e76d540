#include "model/ot/sinkhorn.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace wfm::model::ot {
namespace {

TEST(SinkhornTest, PlanMarginalsMatchWeights) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({3, 20, 2});
  const at::Tensor y = at::randn({3, 25, 2}) + 1.0;
  const at::Tensor a = at::full({3, 20}, 1.0 / 20);
  const at::Tensor b = at::full({3, 25}, 1.0 / 25);
  SinkhornOptions opt;
  opt.epsilon = 0.05;
  opt.iterations = 500;
  auto sol = SolveSinkhorn(x, a, y, b, opt);
  ASSERT_TRUE(sol.ok()) << sol.status();
  const at::Tensor plan = sol->Plan();
  EXPECT_LT((plan.sum(2) - a).abs().max().item<double>(), 1e-6);
  EXPECT_LT((plan.sum(1) - b).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace wfm::model::ot
