#include "model/gaussian/triangle.h"

#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/model/gaussian/gaussian_test_util.h"

namespace wfm::model::gaussian {
namespace {

using ::testing::HasSubstr;
using namespace test_util;  // NOLINT(build/namespaces): the Gaussian test helpers

TEST(TriangleTest, EncodesRowByRow) {
  const at::Tensor s = at::arange(9, F64()).view({1, 3, 3});
  auto v = LowerTriangleEncode(s);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(at::equal(*v, at::tensor({0.0, 3.0, 4.0, 6.0, 7.0, 8.0}, F64()).view({1, 6})));
  // The anchor's torch.tril_indices order, for other sizes too.
  for (int64_t d : {1, 2, 4, 9}) {
    const at::Tensor m = at::arange(d * d, F64()).view({1, d, d});
    const at::Tensor idx = at::tril_indices(d, d);
    const at::Tensor expected = (idx[0] * d + idx[1]).to(at::kDouble).unsqueeze(0);
    EXPECT_TRUE(at::equal(*LowerTriangleEncode(m), expected)) << "d=" << d;
  }
}

TEST(TriangleTest, DecodeEncodeRoundTrips) {
  for (int64_t d : {1, 2, 3, 5, 20}) {
    at::Generator gen = MakeGenerator(d);
    const at::Tensor m = at::randn({4, d, d}, gen, F64());
    auto v = LowerTriangleEncode(m);
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(v->sizes(), (std::vector<int64_t>{4, TriangleSize(d)}));
    auto l = LowerTriangleDecode(*v, d);
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_TRUE(at::equal(*l, m.tril())) << "d=" << d;
    EXPECT_TRUE(at::equal(*LowerTriangleEncode(*l), *v));
    auto sym = SymmetricFromLowerTriangle(*v, d);
    ASSERT_TRUE(sym.ok());
    EXPECT_TRUE(at::equal(*sym, *l + l->transpose(1, 2))) << "d=" << d;
    EXPECT_TRUE(at::equal(sym->diagonal(0, 1, 2), 2.0 * m.diagonal(0, 1, 2)));
    // float32 keeps its dtype.
    auto sym32 = SymmetricFromLowerTriangle(v->to(at::kFloat), d);
    ASSERT_TRUE(sym32.ok());
    EXPECT_EQ(sym32->scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(*sym32, sym->to(at::kFloat)));
  }
}

TEST(TriangleTest, GradientsFlowThroughDecodeAndSymmetrise) {
  const int64_t d = 4;
  at::Generator gen = MakeGenerator(5);
  const at::Tensor v = at::randn({2, TriangleSize(d)}, gen, F64()).requires_grad_(true);
  const at::Tensor w = at::randn({2, d, d}, gen, F64());
  auto sym = SymmetricFromLowerTriangle(v, d);
  ASSERT_TRUE(sym.ok());
  (*sym * w).sum().backward();
  // d/dv_(r,c) of Σ (L + Lᵀ) ∘ W = W_rc + W_cr (2 W_rr on the diagonal).
  const at::Tensor expected = *LowerTriangleEncode(w + w.transpose(1, 2));
  EXPECT_LE(test_util::RelError(v.grad(), expected), 1e-15);

  const at::Tensor u = at::randn({2, TriangleSize(d)}, gen, F64()).requires_grad_(true);
  auto l = LowerTriangleDecode(u, d);
  ASSERT_TRUE(l.ok());
  (*l * w).sum().backward();
  EXPECT_TRUE(at::equal(u.grad(), *LowerTriangleEncode(w)));

  const at::Tensor s = at::randn({2, d, d}, gen, F64()).requires_grad_(true);
  (*LowerTriangleEncode(s)).sum().backward();
  EXPECT_TRUE(at::equal(s.grad(), at::ones({2, d, d}, F64()).tril()));
}

TEST(TriangleTest, TablesAreSafeToBuildFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &ok] {
      bool good = true;
      for (int64_t d = 1; d <= 12; ++d) {
        const int64_t dd = 1 + (d + t) % 12;
        const at::Tensor m = at::arange(dd * dd, F64()).view({1, dd, dd});
        const at::Tensor back = unchecked::LowerTriangleDecode(unchecked::LowerTriangleEncode(m), dd);
        good = good && at::equal(back, m.tril());
      }
      ok[t] = good ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(ok[t], 1) << "thread " << t;
}

TEST(TriangleTest, RejectsBadShapes) {
  EXPECT_THAT(LowerTriangleDecode(at::zeros({2, 5}, F64()), 3).status().message(),
              HasSubstr("v: shape must be [B, 6]"));
  EXPECT_THAT(SymmetricFromLowerTriangle(at::zeros({2, 6}, F64()), 0).status().message(),
              HasSubstr("d: must be >= 1"));
  EXPECT_THAT(LowerTriangleEncode(at::zeros({2, 3, 4}, F64())).status().message(),
              HasSubstr("S: shape must be [B, d, d]"));
  EXPECT_THAT(LowerTriangleDecode(at::zeros({6}, F64()), 3).status().message(),
              HasSubstr("v: must have 2 dimensions"));
  EXPECT_EQ(LowerTriangleEncode(at::zeros({2, 3, 3}, at::kLong)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wfm::model::gaussian
