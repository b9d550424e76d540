#include "model/nn/layer_norm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace wfm::model::nn {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class AddLayerNormTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(AddLayerNormTest, MatchesATenForwardAndBackward) {
  const int64_t e = GetParam();
  at::manual_seed(e);
  const at::Tensor x = at::randn({3, 5, e}) * 2.0 + 0.5;
  const at::Tensor shift = at::randn({3, e});
  const at::Tensor weight = at::rand({e}) + 0.5;
  const at::Tensor bias = at::randn({e});
  const at::Tensor probe = at::randn({3, 5, e});
  for (bool with_shift : {false, true}) {
    SCOPED_TRACE(with_shift ? "shift" : "no shift");
    // Reference in float64 with ATen's layer_norm.
    at::Tensor xr = x.to(at::kDouble).requires_grad_(true);
    at::Tensor sr = shift.to(at::kDouble).requires_grad_(true);
    at::Tensor wr = weight.to(at::kDouble).requires_grad_(true);
    at::Tensor br = bias.to(at::kDouble).requires_grad_(true);
    const at::Tensor in = with_shift ? xr + sr.unsqueeze(1) : xr;
    const at::Tensor ref = at::layer_norm(in, {e}, wr, br, 1e-6);
    (ref * probe.to(at::kDouble)).sum().backward();

    at::Tensor xo = x.clone().requires_grad_(true);
    at::Tensor so = shift.clone().requires_grad_(true);
    at::Tensor wo = weight.clone().requires_grad_(true);
    at::Tensor bo = bias.clone().requires_grad_(true);
    const at::Tensor y = AddLayerNorm(xo, with_shift ? so : at::Tensor(), wo, bo, 1e-6);
    EXPECT_LT(MaxAbsDiff(y, ref), 2e-6);
    (y * probe).sum().backward();
    EXPECT_LT(MaxAbsDiff(xo.grad(), xr.grad()), 2e-5);
    EXPECT_LT(MaxAbsDiff(wo.grad(), wr.grad()), 2e-5);
    EXPECT_LT(MaxAbsDiff(bo.grad(), br.grad()), 2e-5);
    if (with_shift) {
      EXPECT_LT(MaxAbsDiff(so.grad(), sr.grad()), 2e-5);
    } else {
      EXPECT_FALSE(so.grad().defined());
    }
    // No graph: same values.
    at::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(AddLayerNorm(x, with_shift ? shift : at::Tensor(), weight, bias, 1e-6),
                          y.detach()));
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, AddLayerNormTest, ::testing::Values(2, 7, 16, 37, 128, 384));

TEST(AddLayerNormTest, AnyLeadingShapeWithoutShift) {
  const at::Tensor x = at::randn({4, 2, 3, 10});
  const at::Tensor w = at::ones({10}), b = at::zeros({10});
  EXPECT_LT(
      MaxAbsDiff(AddLayerNorm(x, at::Tensor(), w, b, 1e-6), at::layer_norm(x, {10}, w, b, 1e-6)),
      2e-6);
  // Non-contiguous input.
  const at::Tensor xt = at::randn({10, 6}).t();
  EXPECT_LT(
      MaxAbsDiff(AddLayerNorm(xt, at::Tensor(), w, b, 1e-6), at::layer_norm(xt, {10}, w, b, 1e-6)),
      2e-6);
}

TEST(AddLayerNormTest, RejectsBadShapes) {
  const at::Tensor w = at::ones({8}), b = at::zeros({8});
  EXPECT_THROW(AddLayerNorm(at::randn({2, 3, 8}), at::randn({3, 8}), w, b, 1e-6), c10::Error);
  EXPECT_THROW(AddLayerNorm(at::randn({2, 3, 8}), at::Tensor(), at::ones({7}), b, 1e-6),
               c10::Error);
  EXPECT_THROW(AddLayerNorm(at::randn({2, 3, 8}, at::kDouble), at::Tensor(), w, b, 1e-6),
               c10::Error);
}

}  // namespace
}  // namespace wfm::model::nn
