#include "model/nn/nn_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace wfm::model::nn::kernel {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<const FloatKernels*> AvailableKernels() {
  std::vector<const FloatKernels*> out;
  for (const char* isa : {"generic", "avx2", "avx512f", "amx"}) {
    if (const FloatKernels* k = FloatKernelsFor(isa)) out.push_back(k);
  }
  return out;
}

// A [rows, ld] block with cols valid columns and garbage in the padding.
at::Tensor Block(int rows, int cols, int ld, double scale) {
  at::Tensor b = at::full({rows, ld}, 12345.0f);
  b.narrow(1, 0, cols).copy_(at::randn({rows, cols}) * scale);
  return b;
}

TEST(NnKernelsTest, BestKernelsAreListed) {
  const std::string isa = BestFloatKernels().isa;
  EXPECT_TRUE(isa == "generic" || isa == "avx2" || isa == "avx512f" || isa == "amx") << isa;
  EXPECT_NE(FloatKernelsFor("generic"), nullptr);
  EXPECT_EQ(FloatKernelsFor("no-such-isa"), nullptr);
}

TEST(NnKernelsTest, SoftmaxRowsMatchesATenWithAndWithoutMask) {
  at::manual_seed(3);
  for (const FloatKernels* k : AvailableKernels()) {
    for (int cols : {1, 3, 7, 16, 37, 128, 131}) {
      const int rows = 5;
      const int ld = cols + 5;
      const at::Tensor logits = Block(rows, cols, ld, 4.0);
      at::Tensor mask = at::rand({cols}) > 0.3;
      mask[0] = true;
      const at::Tensor bias = at::zeros({cols}).masked_fill(mask.logical_not(), -kInf);
      for (bool masked : {false, true}) {
        at::Tensor s = logits.clone();
        const at::Tensor drop = Block(rows, cols, ld, 1.0);
        at::Tensor weights = at::full({rows, ld}, 777.0f);
        at::Tensor s_drop = logits.clone();
        k->softmax_rows(s.data_ptr<float>(), rows, cols, ld,
                        masked ? bias.data_ptr<float>() : nullptr, nullptr, nullptr);
        k->softmax_rows(s_drop.data_ptr<float>(), rows, cols, ld,
                        masked ? bias.data_ptr<float>() : nullptr, drop.data_ptr<float>(),
                        weights.data_ptr<float>());
        EXPECT_TRUE(at::equal(s_drop, s));
        EXPECT_TRUE(at::allclose(weights.narrow(1, 0, cols),
                                 s.narrow(1, 0, cols) * drop.narrow(1, 0, cols)));
        at::Tensor ref_logits = logits.narrow(1, 0, cols);
        if (masked) {
          ref_logits =
              ref_logits.masked_fill(mask.logical_not(), std::numeric_limits<float>::lowest());
        }
        const at::Tensor ref = at::softmax(ref_logits.to(at::kDouble), -1).to(at::kFloat);
        EXPECT_TRUE(at::allclose(s.narrow(1, 0, cols), ref, 1e-6, 1e-7))
            << k->isa << " cols " << cols << " masked " << masked;
        // The padding columns are untouched.
        if (ld > cols) {
          EXPECT_TRUE(s.narrow(1, cols, ld - cols).eq(12345.0f).all().item<bool>());
        }
      }
    }
  }
}

TEST(NnKernelsTest, SoftmaxOfAFullyMaskedRowIsUniform) {
  for (const FloatKernels* k : AvailableKernels()) {
    const int cols = 21;
    at::Tensor s = at::randn({2, cols});
    const at::Tensor bias = at::full({cols}, -kInf);
    const at::Tensor drop = at::rand({2, cols});
    at::Tensor weights = at::empty({2, cols});
    k->softmax_rows(s.data_ptr<float>(), 2, cols, cols, bias.data_ptr<float>(),
                    drop.data_ptr<float>(), weights.data_ptr<float>());
    EXPECT_TRUE(at::allclose(s, at::full({2, cols}, 1.0f / cols))) << k->isa;
    EXPECT_TRUE(at::allclose(weights, drop / cols)) << k->isa;
  }
}

TEST(NnKernelsTest, SoftmaxBackwardMatchesAutograd) {
  at::manual_seed(4);
  for (const FloatKernels* k : AvailableKernels()) {
    for (int cols : {5, 16, 37, 128}) {
      const int rows = 4;
      const int ld = cols + 3;
      at::Tensor mask = at::rand({cols}) > 0.25;
      mask[1] = true;
      const at::Tensor bias = at::zeros({cols}).masked_fill(mask.logical_not(), -kInf);
      const at::Tensor drop = (at::rand({rows, cols}) > 0.2).to(at::kFloat) * 1.25f;
      const at::Tensor upstream = at::randn({rows, cols});
      for (bool with_drop : {false, true}) {
        // Reference: W = softmax(masked logits) ∘ drop, loss = <W, upstream>.
        at::Tensor logits = at::randn({rows, cols}, at::kDouble).requires_grad_(true);
        at::Tensor p = at::softmax(
            logits.masked_fill(mask.logical_not(), std::numeric_limits<double>::lowest()), -1);
        at::Tensor w = with_drop ? p * drop.to(at::kDouble) : p;
        (w * upstream.to(at::kDouble)).sum().backward();
        at::Tensor pf = at::zeros({rows, ld});
        pf.narrow(1, 0, cols).copy_(p.detach());
        at::Tensor g = at::zeros({rows, ld});
        g.narrow(1, 0, cols).copy_(upstream);
        at::Tensor d = at::zeros({rows, ld});
        d.narrow(1, 0, cols).copy_(drop);
        k->softmax_backward_rows(pf.data_ptr<float>(), g.data_ptr<float>(),
                                 with_drop ? d.data_ptr<float>() : nullptr, rows, cols, ld,
                                 bias.data_ptr<float>());
        EXPECT_TRUE(at::allclose(g.narrow(1, 0, cols), logits.grad().to(at::kFloat), 1e-5, 1e-6))
            << k->isa << " cols " << cols << " drop " << with_drop;
      }
    }
  }
}

TEST(NnKernelsTest, SoftmaxBackwardOfAFullyMaskedRowIsZero) {
  for (const FloatKernels* k : AvailableKernels()) {
    const int cols = 9;
    const at::Tensor p = at::full({1, cols}, 1.0f / cols);
    at::Tensor g = at::randn({1, cols});
    const at::Tensor bias = at::full({cols}, -kInf);
    k->softmax_backward_rows(p.data_ptr<float>(), g.data_ptr<float>(), nullptr, 1, cols, cols,
                             bias.data_ptr<float>());
    EXPECT_EQ(g.abs().max().item<float>(), 0.0f) << k->isa;
  }
}

TEST(NnKernelsTest, LayerNormRowsMatchesATen) {
  at::manual_seed(6);
  for (const FloatKernels* k : AvailableKernels()) {
    for (int cols : {2, 5, 16, 19, 128}) {
      const int rows = 6;
      const at::Tensor x = at::randn({rows, cols}) * 3.0 + 1.0;
      const at::Tensor shift = at::randn({cols});
      const at::Tensor gamma = at::rand({cols}) + 0.5, beta = at::randn({cols});
      at::Tensor y = at::empty({rows, cols}), mean = at::empty({rows}), rstd = at::empty({rows});
      k->layer_norm_rows(x.data_ptr<float>(), shift.data_ptr<float>(), rows, cols,
                         gamma.data_ptr<float>(), beta.data_ptr<float>(), 1e-6f,
                         y.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>());
      const at::Tensor u = (x + shift).to(at::kDouble);
      const at::Tensor ref =
          at::layer_norm(u, {cols}, gamma.to(at::kDouble), beta.to(at::kDouble), 1e-6);
      EXPECT_TRUE(at::allclose(y.to(at::kDouble), ref, 1e-5, 2e-6)) << k->isa << " " << cols;
      EXPECT_TRUE(at::allclose(mean.to(at::kDouble), u.mean(1), 1e-5, 1e-6)) << k->isa;
      EXPECT_TRUE(at::allclose(rstd.to(at::kDouble), (u.var(1, /*unbiased=*/false) + 1e-6).rsqrt(),
                               1e-5, 1e-6))
          << k->isa;

      // Backward, accumulating into non-zero dgamma / dbeta.
      at::Tensor ur = u.clone().requires_grad_(true);
      at::Tensor gr = gamma.to(at::kDouble).requires_grad_(true);
      at::Tensor br = beta.to(at::kDouble).requires_grad_(true);
      const at::Tensor dy = at::randn({rows, cols});
      (at::layer_norm(ur, {cols}, gr, br, 1e-6) * dy.to(at::kDouble)).sum().backward();
      at::Tensor dx = at::empty({rows, cols});
      at::Tensor dgamma = at::ones({cols}), dbeta = at::ones({cols});
      k->layer_norm_backward_rows(
          dy.data_ptr<float>(), x.data_ptr<float>(), shift.data_ptr<float>(), rows, cols,
          gamma.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
          dx.data_ptr<float>(), dgamma.data_ptr<float>(), dbeta.data_ptr<float>());
      EXPECT_TRUE(at::allclose(dx.to(at::kDouble), ur.grad(), 1e-4, 1e-5)) << k->isa << " " << cols;
      EXPECT_TRUE(at::allclose(dgamma.to(at::kDouble), gr.grad() + 1, 1e-4, 1e-5)) << k->isa;
      EXPECT_TRUE(at::allclose(dbeta.to(at::kDouble), br.grad() + 1, 1e-4, 1e-5)) << k->isa;
    }
  }
}

// [B, F] -> [P, F, lanes] with zero padding, and back.
at::Tensor ToPanels(const at::Tensor& x, int64_t lanes) {
  const int64_t b = x.size(0), f = x.size(1), p = (b + lanes - 1) / lanes;
  at::Tensor padded = at::zeros({p * lanes, f});
  padded.narrow(0, 0, b).copy_(x);
  return padded.view({p, lanes, f}).transpose(1, 2).contiguous();
}
at::Tensor FromPanels(const at::Tensor& p, int64_t b) {
  return p.transpose(1, 2).reshape({-1, p.size(1)}).narrow(0, 0, b);
}

TEST(NnKernelsTest, PanelDenseMatchesLinear) {
  at::manual_seed(8);
  for (const FloatKernels* k : AvailableKernels()) {
    const int64_t lanes = k->panel;
    for (int64_t batch : {1, 7, 33}) {
      for (int out : {1, 3, 13, 24}) {
        const int in = 19;
        const at::Tensor x = at::randn({batch, in});
        const at::Tensor w = at::randn({out, in}), bias = at::randn({out});
        const at::Tensor residual = at::randn({batch, out});
        const at::Tensor xp = ToPanels(x, lanes);
        const int64_t panels = xp.size(0);
        const int stride = static_cast<int>(out * lanes);
        for (int variant = 0; variant < 3; ++variant) {
          // 0: plain; 1: silu; 2: residual written in place.
          at::Tensor y =
              variant == 2 ? ToPanels(residual, lanes) : at::full({panels, out, lanes}, 99.0f);
          k->panel_dense(w.data_ptr<float>(), bias.data_ptr<float>(), xp.data_ptr<float>(),
                         static_cast<int>(in * lanes), in, out, static_cast<int>(panels),
                         variant == 1, variant == 2 ? y.data_ptr<float>() : nullptr, stride,
                         y.data_ptr<float>(), stride);
          at::Tensor ref = at::linear(x.to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
          if (variant == 1) ref = at::silu(ref);
          if (variant == 2) ref = ref + residual.to(at::kDouble);
          EXPECT_TRUE(at::allclose(FromPanels(y, batch).to(at::kDouble), ref, 1e-5, 1e-5))
              << k->isa << " batch " << batch << " out " << out << " variant " << variant;
        }
      }
    }
  }
}

TEST(NnKernelsTest, PanelDenseWritesARowRangeOfAWiderBuffer) {
  for (const FloatKernels* k : AvailableKernels()) {
    const int64_t lanes = k->panel;
    const at::Tensor x = at::randn({2 * lanes, 5});
    const at::Tensor w = at::randn({4, 5}), bias = at::randn({4});
    const at::Tensor xp = ToPanels(x, lanes);
    at::Tensor wide = at::full({2, 10, lanes}, -5.0f);  // rows 3..6 get the layer
    k->panel_dense(w.data_ptr<float>(), bias.data_ptr<float>(), xp.data_ptr<float>(),
                   static_cast<int>(5 * lanes), 5, 4, 2, false, nullptr, 0,
                   wide.data_ptr<float>() + 3 * lanes, static_cast<int>(10 * lanes));
    EXPECT_TRUE(at::allclose(FromPanels(wide, 2 * lanes).narrow(1, 3, 4), at::linear(x, w, bias),
                             1e-5, 1e-5))
        << k->isa;
    EXPECT_TRUE(wide.narrow(1, 0, 3).eq(-5.0f).all().item<bool>());
    EXPECT_TRUE(wide.narrow(1, 7, 3).eq(-5.0f).all().item<bool>());
  }
}

TEST(NnKernelsTest, PanelLayerNormMatchesLayerNorm) {
  at::manual_seed(9);
  for (const FloatKernels* k : AvailableKernels()) {
    const int64_t lanes = k->panel;
    const int64_t batch = 2 * lanes + 3, features = 24;
    const at::Tensor x = at::randn({batch, features}) * 2 + 1;
    const at::Tensor gamma = at::rand({features}) + 0.5, beta = at::randn({features});
    at::Tensor xp = ToPanels(x, lanes);
    k->panel_layer_norm(xp.data_ptr<float>(), static_cast<int>(features),
                        static_cast<int>(xp.size(0)), gamma.data_ptr<float>(),
                        beta.data_ptr<float>(), 1e-6f);
    const at::Tensor ref = at::layer_norm(x.to(at::kDouble), {features}, gamma.to(at::kDouble),
                                          beta.to(at::kDouble), 1e-6);
    EXPECT_TRUE(at::allclose(FromPanels(xp, batch).to(at::kDouble), ref, 1e-5, 2e-6)) << k->isa;
    EXPECT_TRUE(at::isfinite(xp).all().item<bool>());  // zero padding lanes stay finite
  }
}

// Packs w [n, k] (or, transposed, wt [k, n]) for kernel table k.
std::vector<float> PackFor(const FloatKernels& k, const at::Tensor& w, bool transposed,
                           const at::Tensor& bias, float scale) {
  const int n = static_cast<int>(transposed ? w.size(1) : w.size(0));
  const int kk = static_cast<int>(transposed ? w.size(0) : w.size(1));
  std::vector<float> packed(k.packed_gemm_size(n, kk), -7.0f);
  k.pack_gemm(w.data_ptr<float>(), static_cast<int>(w.size(1)), transposed, n, kk,
              bias.defined() ? bias.data_ptr<float>() : nullptr, scale, packed.data());
  return packed;
}

// Whether a packed product y matches the double-precision `ref`: to float32
// rounding for the float32 tables; for amx (three bfloat16 products per term,
// nn_kernels.h) within 2^-14 of the sum of |x_kk · w_kk| (`magnitude`) more,
// the bound of the dropped low-order terms.
bool GemmClose(const FloatKernels& k, const at::Tensor& y, const at::Tensor& ref,
               const at::Tensor& magnitude) {
  const at::Tensor err = (y.to(at::kDouble) - ref).abs();
  at::Tensor allowed = ref.abs() * 1e-5 + 1e-5;
  if (std::string(k.isa) == "amx") allowed = allowed + magnitude * std::ldexp(1.0, -14);
  return (err <= allowed).all().item<bool>();
}

TEST(NnKernelsTest, PackedGemmMatchesLinearWithEveryEpilogue) {
  at::manual_seed(11);
  for (const FloatKernels* k : AvailableKernels()) {
    for (int rows : {1, 5, 6, 12, 13, 31}) {
      for (int n : {1, 3, 8, 17, 32, 33, 70}) {
        const int kk = 23;
        const at::Tensor x = at::randn({rows, kk});
        const at::Tensor w = at::randn({n, kk}), bias = at::randn({n});
        const at::Tensor residual = at::randn({rows, n});
        const std::vector<float> packed = PackFor(*k, w, false, bias, 1.0f);
        for (GemmEpilogue epilogue : {GemmEpilogue::kNone, GemmEpilogue::kLeakyRelu,
                                      GemmEpilogue::kAddResidual}) {
          // The output sits in a wider buffer (row stride n + 3) whose other
          // columns must stay as they are; the residual is summed in place.
          at::Tensor y = at::full({rows, n + 3}, 99.0f);
          if (epilogue == GemmEpilogue::kAddResidual) y.narrow(1, 0, n).copy_(residual);
          k->packed_gemm(x.data_ptr<float>(), kk, rows, kk, packed.data(), n, epilogue,
                         y.data_ptr<float>(), n + 3, y.data_ptr<float>(), n + 3);
          at::Tensor ref = at::linear(x.to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
          if (epilogue == GemmEpilogue::kLeakyRelu) ref = at::leaky_relu(ref, kLeakySlope);
          if (epilogue == GemmEpilogue::kAddResidual) ref = ref + residual.to(at::kDouble);
          const at::Tensor magnitude = at::linear(x.abs().to(at::kDouble), w.abs().to(at::kDouble));
          EXPECT_TRUE(GemmClose(*k, y.narrow(1, 0, n), ref, magnitude))
              << k->isa << " rows " << rows << " n " << n << " epilogue "
              << static_cast<int>(epilogue);
          EXPECT_TRUE(y.narrow(1, n, 3).eq(99.0f).all().item<bool>()) << k->isa;
        }
      }
    }
  }
}

TEST(NnKernelsTest, PackedGemmOfTransposedScaledWeightsWithoutBias) {
  at::manual_seed(12);
  for (const FloatKernels* k : AvailableKernels()) {
    const int rows = 9, n = 21, kk = 40;
    const at::Tensor x = at::randn({rows, kk});
    const at::Tensor wt = at::randn({kk, n});  // the [k, n] layout
    const std::vector<float> packed = PackFor(*k, wt, true, at::Tensor(), 0.25f);
    at::Tensor y = at::empty({rows, n});
    k->packed_gemm(x.data_ptr<float>(), kk, rows, kk, packed.data(), n, GemmEpilogue::kNone,
                   nullptr, 0, y.data_ptr<float>(), n);
    const at::Tensor ref = at::matmul(x.to(at::kDouble), wt.to(at::kDouble)) * 0.25;
    const at::Tensor magnitude = at::matmul(x.abs().to(at::kDouble), wt.abs().to(at::kDouble)) * 0.25;
    EXPECT_TRUE(GemmClose(*k, y, ref, magnitude)) << k->isa;
  }
}

TEST(NnKernelsTest, PackedGemmOfAWideLayer) {
  // Several 32-input chunks with a partial last one, row and column counts
  // that are not multiples of the blocks, and the error against double
  // precision measured against the float32 kernels' own: the amx table's
  // three-product arithmetic stays within a few times it.
  at::manual_seed(14);
  const int rows = 37, n = 70, kk = 300;
  const at::Tensor x = at::randn({rows, kk});
  const at::Tensor w = at::randn({n, kk}) / std::sqrt(static_cast<double>(kk));
  const at::Tensor bias = at::randn({n});
  const at::Tensor ref = at::linear(x.to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
  const at::Tensor magnitude = at::linear(x.abs().to(at::kDouble), w.abs().to(at::kDouble));
  double float32_error = 0.0;
  for (const FloatKernels* k : AvailableKernels()) {
    const std::vector<float> packed = PackFor(*k, w, false, bias, 1.0f);
    at::Tensor y = at::empty({rows, n});
    k->packed_gemm(x.data_ptr<float>(), kk, rows, kk, packed.data(), n, GemmEpilogue::kNone,
                   nullptr, 0, y.data_ptr<float>(), n);
    EXPECT_TRUE(GemmClose(*k, y, ref, magnitude)) << k->isa;
    const double error = (y.to(at::kDouble) - ref).abs().max().item<double>();
    if (std::string(k->isa) != "amx") {
      float32_error = std::max(float32_error, error);
    } else {
      ASSERT_GT(float32_error, 0.0);  // the float32 tables come first
      EXPECT_LT(error, 8 * float32_error) << "amx " << error << " float32 " << float32_error;
    }
  }
}

TEST(NnKernelsTest, PackedGemmRowsDoNotDependOnTheirNeighbours) {
  // Each row alone, and the rows in several batch sizes and offsets (so a
  // row falls into different register tiles and tails), give the same bits.
  at::manual_seed(13);
  for (const FloatKernels* k : AvailableKernels()) {
    const int rows = 50, n = 45, kk = 77;
    const at::Tensor x = at::randn({rows, kk});
    const at::Tensor w = at::randn({n, kk}), bias = at::randn({n});
    const std::vector<float> packed = PackFor(*k, w, false, bias, 1.0f);
    at::Tensor all = at::empty({rows, n});
    k->packed_gemm(x.data_ptr<float>(), kk, rows, kk, packed.data(), n, GemmEpilogue::kLeakyRelu,
                   nullptr, 0, all.data_ptr<float>(), n);
    for (int first : {0, 1, 7, 13, 30}) {
      for (int count : {1, 2, 5, 11, 20}) {
        if (first + count > rows) continue;
        at::Tensor part = at::empty({count, n});
        k->packed_gemm(x[first].data_ptr<float>(), kk, count, kk, packed.data(), n,
                       GemmEpilogue::kLeakyRelu, nullptr, 0, part.data_ptr<float>(), n);
        EXPECT_TRUE(at::equal(part, all.narrow(0, first, count)))
            << k->isa << " rows " << first << " + " << count;
      }
    }
  }
}

TEST(NnKernelsTest, PackedWeightsLayout) {
  // Panel p: its biases, then row kk = [w[p·panel + c][kk] · scale], zeros
  // past n.
  const int panel = 8, n = 10, kk = 3;
  const at::Tensor w = at::arange(n * kk, at::kFloat).view({n, kk});
  const at::Tensor bias = at::arange(n, at::kFloat) + 100;
  std::vector<float> packed(PackedGemmSize(n, kk, panel));
  ASSERT_EQ(packed.size(), 2u * (kk + 1) * panel);
  PackGemmWeights(w.data_ptr<float>(), kk, false, n, kk, bias.data_ptr<float>(), 2.0f, panel,
                  packed.data());
  EXPECT_EQ(packed[0], 100.0f);
  EXPECT_EQ(packed[7], 107.0f);
  EXPECT_EQ(packed[panel + 1], 2.0f * w[1][0].item<float>());
  EXPECT_EQ(packed[2 * panel + 3], 2.0f * w[3][1].item<float>());
  const float* second = packed.data() + (kk + 1) * panel;
  EXPECT_EQ(second[0], 108.0f);
  EXPECT_EQ(second[1], 109.0f);
  EXPECT_EQ(second[2], 0.0f);
  EXPECT_EQ(second[panel + 1], 2.0f * w[9][0].item<float>());
  EXPECT_EQ(second[panel + 2], 0.0f);
}

TEST(NnKernelsTest, DropoutStreamParameters) {
  const DropoutStream s = MakeDropoutStream(0.1, 0x0123456789ABCDEFull);
  EXPECT_EQ(s.seed_lo, 0x89ABCDEFu);
  EXPECT_EQ(s.seed_hi, 0x01234567u);
  EXPECT_EQ(s.threshold, static_cast<uint32_t>(std::llround(0.9 * 16777216.0)));
  EXPECT_FLOAT_EQ(s.scale, 1.0f / 0.9f);
  const DropoutStream none = MakeDropoutStream(0.0, 1);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_TRUE(DropoutKeep(none, i));
}

TEST(NnKernelsTest, DropoutLeakyReluFollowsTheScalarDefinition) {
  at::manual_seed(5);
  const int64_t n = 100003;  // not a multiple of any vector width
  const int64_t first = 77;
  const DropoutStream s = MakeDropoutStream(0.1, 987654321);
  const at::Tensor f = at::randn({n});
  at::Tensor expected = at::empty({n});
  at::Tensor m = at::empty({n});  // the dropout factor
  int64_t kept = 0;
  {
    auto fa = f.accessor<float, 1>();
    auto ea = expected.accessor<float, 1>();
    auto ma = m.accessor<float, 1>();
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = DropoutKeep(s, static_cast<uint32_t>(first + i));
      kept += keep;
      ma[i] = keep ? s.scale : 0.0f;
      const float z = fa[i] * ma[i];
      ea[i] = z > 0 ? z : z * kLeakySlope;
    }
  }
  // Keep rate 0.9 ± 5 standard deviations of a binomial proportion.
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.9, 5 * std::sqrt(0.09 / n));
  const at::Tensor dy = at::randn({n});
  for (const FloatKernels* k : AvailableKernels()) {
    at::Tensor y = at::empty({n});
    k->dropout_leaky_relu(f.data_ptr<float>(), y.data_ptr<float>(), n, first, s);
    EXPECT_TRUE(at::equal(y, expected)) << k->isa;
    at::Tensor df = at::empty({n});
    k->dropout_leaky_relu_backward(dy.data_ptr<float>(), y.data_ptr<float>(), df.data_ptr<float>(),
                                   n, first, s);
    // d/df leaky(m f) = m · (m f > 0 ? 1 : slope).
    const at::Tensor slope = at::where(expected > 0, at::ones({n}), at::full({n}, kLeakySlope));
    EXPECT_TRUE(at::allclose(df, dy * m * slope, 1e-6, 1e-7)) << k->isa;
  }
}

TEST(NnKernelsTest, DropoutMasksDependOnTheSeedAndSliceConsistently) {
  const int64_t n = 4096;
  const at::Tensor f = at::ones({n});
  const FloatKernels& k = BestFloatKernels();
  at::Tensor a = at::empty({n}), b = at::empty({n}), c = at::empty({n});
  k.dropout_leaky_relu(f.data_ptr<float>(), a.data_ptr<float>(), n, 0, MakeDropoutStream(0.5, 1));
  k.dropout_leaky_relu(f.data_ptr<float>(), b.data_ptr<float>(), n, 0, MakeDropoutStream(0.5, 2));
  EXPECT_FALSE(at::equal(a, b));
  // Masking the second half alone (first = n/2) reproduces the full pass.
  k.dropout_leaky_relu(f.data_ptr<float>(), c.data_ptr<float>(), n / 2, n / 2,
                       MakeDropoutStream(0.5, 1));
  EXPECT_TRUE(at::equal(c.narrow(0, 0, n / 2), a.narrow(0, n / 2, n / 2)));
}

}  // namespace
}  // namespace wfm::model::nn::kernel
