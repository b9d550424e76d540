#include "model/nn/attention.h"

#include <cmath>
#include <limits>
#include <memory>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/common/parallel.h"
#include "model/nn/blas.h"

namespace wfm::model::nn {
namespace {

// Row stride of the per-(cloud, head) [N, N] logit/probability blocks: N
// rounded up to 16 floats, so every row starts on a 64-byte boundary.
int64_t BlockStride(int64_t n) { return (n + 15) / 16 * 16; }

struct Geometry {
  int b, n, e, heads, head_dim, ld;
  float scale;  // 1 / sqrt(head_dim)

  Geometry(int clouds, int points, int width, int num_heads)
      : b(clouds),
        n(points),
        e(width),
        heads(num_heads),
        head_dim(width / num_heads),
        ld(static_cast<int>(BlockStride(points))),
        scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(width / num_heads)))) {}
  Geometry(const at::Tensor& qkv, int64_t num_heads)
      : Geometry(static_cast<int>(qkv.size(0)), static_cast<int>(qkv.size(1)),
                 static_cast<int>(qkv.size(2) / 3), static_cast<int>(num_heads)) {}
  std::ptrdiff_t BlockOffset(int cloud, int head) const {
    return (static_cast<std::ptrdiff_t>(cloud) * heads + head) * n * ld;
  }
};

void CheckCoreInputs(const at::Tensor& qkv, const at::Tensor& key_bias, int64_t heads) {
  TORCH_CHECK(qkv.dim() == 3 && qkv.scalar_type() == at::kFloat && qkv.is_contiguous(),
              "AttentionCore: qkv must be a contiguous float32 [B,N,3E] tensor");
  TORCH_CHECK(heads > 0 && qkv.size(2) % (3 * heads) == 0, "AttentionCore: qkv width ", qkv.size(2),
              " is not 3 · heads · head_dim");
  if (key_bias.defined()) {
    TORCH_CHECK(key_bias.scalar_type() == at::kFloat && key_bias.is_contiguous() &&
                    key_bias.dim() == 2 && key_bias.size(0) == qkv.size(0) &&
                    key_bias.size(1) == qkv.size(1),
                "AttentionCore: key_bias must be a contiguous float32 [B,N] tensor");
  }
}

// The [N, ld] attention-weight dropout factors (0 or 1/keep), shared by every
// cloud and head; element (i, j) is entry i·N + j of the stream.
at::Tensor DropoutFactors(const kernel::DropoutStream& stream, int n, int ld) {
  at::Tensor d = at::zeros({n, ld}, at::kFloat);
  float* p = d.data_ptr<float>();
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const auto index = static_cast<std::uint32_t>(i * n + j);
      p[static_cast<std::ptrdiff_t>(i) * ld + j] =
          kernel::DropoutKeep(stream, index) ? stream.scale : 0.0f;
    }
  }
  return d;
}

// o = softmax(q kᵀ · scale + key_bias) ∘ drop · v for every head of cloud
// b. The probabilities go to `probs` and the dropped-out weights (with drop)
// to `weights` ([B,heads,N,ld] each) when those are non-null, otherwise to
// `scratch` (2 · N · ld floats).
void ForwardCloud(const Geometry& g, int b, const float* qkv, const float* key_bias,
                  const float* drop, float* probs, float* weights, float* scratch, float* out) {
  const kernel::FloatKernels& k = kernel::BestFloatKernels();
  const int row = 3 * g.e;
  float* probs_scratch = scratch;
  float* weights_scratch = scratch + static_cast<std::ptrdiff_t>(g.n) * g.ld;
  const float* bias = key_bias == nullptr ? nullptr : key_bias + b * g.n;
  for (int h = 0; h < g.heads; ++h) {
    const float* q = qkv + static_cast<std::ptrdiff_t>(b) * g.n * row + h * g.head_dim;
    const float* kk = q + g.e;
    const float* v = q + 2 * g.e;
    float* p = probs == nullptr ? probs_scratch : probs + g.BlockOffset(b, h);
    float* w = weights == nullptr ? weights_scratch : weights + g.BlockOffset(b, h);
    blas::Sgemm(false, true, g.n, g.n, g.head_dim, g.scale, q, row, kk, row, 0.0f, p, g.ld);
    k.softmax_rows(p, g.n, g.n, g.ld, bias, drop, w);
    if (drop == nullptr) w = p;
    float* o = out + static_cast<std::ptrdiff_t>(b) * g.n * g.e + h * g.head_dim;
    blas::Sgemm(false, false, g.n, g.head_dim, g.n, 1.0f, w, g.ld, v, row, 0.0f, o, g.e);
  }
}

// ForwardCloud for every cloud, clouds in parallel (ParallelForEachItem).
void ForwardKernel(const Geometry& g, const float* qkv, const float* key_bias, const float* drop,
                   float* probs, float* weights, float* out) {
  const std::ptrdiff_t scratch_floats = 2 * static_cast<std::ptrdiff_t>(g.n) * g.ld;
  ParallelForEachItem(g.b, [&](int64_t b) {
    std::unique_ptr<float[]> scratch(new float[scratch_floats]);
    ForwardCloud(g, static_cast<int>(b), qkv, key_bias, drop, probs, weights, scratch.get(), out);
  });
}

// d(qkv) from d(o), the saved probabilities (and dropped-out weights, with
// drop) and the same key bias and dropout factors.
void BackwardKernel(const Geometry& g, const float* qkv, const float* key_bias, const float* drop,
                    const float* probs, const float* weights, const float* dout, float* dqkv) {
  const kernel::FloatKernels& k = kernel::BestFloatKernels();
  const int row = 3 * g.e;
  ParallelForEachItem(g.b, [&](int64_t cloud) {
    const int b = static_cast<int>(cloud);
    std::unique_ptr<float[]> scratch(new float[static_cast<std::ptrdiff_t>(g.n) * g.ld]);
    float* grad = scratch.get();
    const float* bias = key_bias == nullptr ? nullptr : key_bias + b * g.n;
    for (int h = 0; h < g.heads; ++h) {
      const std::ptrdiff_t qoff = static_cast<std::ptrdiff_t>(b) * g.n * row + h * g.head_dim;
      const float* q = qkv + qoff;
      const float* kk = q + g.e;
      const float* v = q + 2 * g.e;
      float* dq = dqkv + qoff;
      float* dk = dq + g.e;
      float* dv = dq + 2 * g.e;
      const float* p = probs + g.BlockOffset(b, h);
      const float* d_o = dout + static_cast<std::ptrdiff_t>(b) * g.n * g.e + h * g.head_dim;
      // dW = dO vᵀ  (gradient of the dropped-out weights W = P ∘ drop)
      blas::Sgemm(false, true, g.n, g.n, g.head_dim, 1.0f, d_o, g.e, v, row, 0.0f, grad, g.ld);
      const float* w = drop == nullptr ? p : weights + g.BlockOffset(b, h);
      // dv = Wᵀ dO
      blas::Sgemm(true, false, g.n, g.head_dim, g.n, 1.0f, w, g.ld, d_o, g.e, 0.0f, dv, row);
      // dS = P ∘ (dW ∘ drop − rowsum(dW ∘ drop ∘ P)), zero on masked keys
      k.softmax_backward_rows(p, grad, drop, g.n, g.n, g.ld, bias);
      // dq = scale · dS k,  dk = scale · dSᵀ q
      blas::Sgemm(false, false, g.n, g.head_dim, g.n, g.scale, grad, g.ld, kk, row, 0.0f, dq, row);
      blas::Sgemm(true, false, g.n, g.head_dim, g.n, g.scale, grad, g.ld, q, row, 0.0f, dk, row);
    }
  });
}

class AttentionCoreFunction : public torch::autograd::Function<AttentionCoreFunction> {
 public:
  // key_bias and drop travel as optionals: autograd records every tensor
  // argument as an input and cannot take undefined ones.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv,
                            const c10::optional<at::Tensor>& key_bias_arg,
                            const c10::optional<at::Tensor>& drop_arg, int64_t heads) {
    const at::Tensor key_bias = key_bias_arg.value_or(at::Tensor());
    const at::Tensor drop = drop_arg.value_or(at::Tensor());
    const Geometry g(qkv, heads);
    at::Tensor probs = at::empty({g.b, g.heads, g.n, g.ld}, qkv.options());
    at::Tensor weights = drop.defined() ? at::empty_like(probs) : at::Tensor();
    at::Tensor out = at::empty({g.b, g.n, g.e}, qkv.options());
    ForwardKernel(g, qkv.data_ptr<float>(),
                  key_bias.defined() ? key_bias.data_ptr<float>() : nullptr,
                  drop.defined() ? drop.data_ptr<float>() : nullptr, probs.data_ptr<float>(),
                  weights.defined() ? weights.data_ptr<float>() : nullptr, out.data_ptr<float>());
    ctx->save_for_backward({qkv});
    ctx->saved_data["probs"] = probs;
    ctx->saved_data["weights"] = weights;
    ctx->saved_data["key_bias"] = key_bias;
    ctx->saved_data["drop"] = drop;
    ctx->saved_data["heads"] = heads;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor qkv = ctx->get_saved_variables()[0];
    const at::Tensor probs = ctx->saved_data["probs"].toTensor();
    const at::Tensor weights = ctx->saved_data["weights"].toTensor();
    const at::Tensor key_bias = ctx->saved_data["key_bias"].toTensor();
    const at::Tensor drop = ctx->saved_data["drop"].toTensor();
    const Geometry g(qkv, ctx->saved_data["heads"].toInt());
    const at::Tensor dout = grads[0].contiguous();
    at::Tensor dqkv = at::empty_like(qkv);
    BackwardKernel(g, qkv.data_ptr<float>(),
                   key_bias.defined() ? key_bias.data_ptr<float>() : nullptr,
                   drop.defined() ? drop.data_ptr<float>() : nullptr, probs.data_ptr<float>(),
                   weights.defined() ? weights.data_ptr<float>() : nullptr, dout.data_ptr<float>(),
                   dqkv.data_ptr<float>());
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t AttentionCloudScratchFloats(int64_t n) { return 2 * n * BlockStride(n); }

void AttentionCoreCloud(const float* qkv, int n, int width, int heads, float* out,
                        float* scratch) {
  ForwardCloud(Geometry(1, n, width, heads), 0, qkv, nullptr, nullptr, nullptr, nullptr, scratch,
               out);
}

at::Tensor KeyBiasFromMask(const at::Tensor& mask) {
  return at::zeros(mask.sizes(), at::kFloat)
      .masked_fill_(mask.logical_not(), -std::numeric_limits<float>::infinity());
}

at::Tensor AttentionCore(const at::Tensor& qkv, const at::Tensor& key_bias, int64_t heads,
                         const kernel::DropoutStream* dropout) {
  CheckCoreInputs(qkv, key_bias, heads);
  const Geometry g(qkv, heads);
  const at::Tensor drop = dropout == nullptr ? at::Tensor() : DropoutFactors(*dropout, g.n, g.ld);
  if (at::GradMode::is_enabled() && qkv.requires_grad()) {
    return AttentionCoreFunction::apply(
        qkv, key_bias.defined() ? c10::optional<at::Tensor>(key_bias) : c10::nullopt,
        drop.defined() ? c10::optional<at::Tensor>(drop) : c10::nullopt, heads);
  }
  at::Tensor out = at::empty({g.b, g.n, g.e}, qkv.options());
  ForwardKernel(g, qkv.data_ptr<float>(), key_bias.defined() ? key_bias.data_ptr<float>() : nullptr,
                drop.defined() ? drop.data_ptr<float>() : nullptr, nullptr, nullptr,
                out.data_ptr<float>());
  return out;
}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(int64_t width, int64_t heads)
    : width_(width), heads_(heads) {
  TORCH_CHECK(width > 0 && heads > 0 && width % heads == 0, "MultiHeadAttention: width ", width,
              " must be a positive multiple of heads ", heads);
  reset();
}

void MultiHeadAttentionImpl::reset() {
  qkv = register_module("qkv", Dense(width_, 3 * width_));
  out = register_module("out", Dense(width_, width_));
}

void MultiHeadAttentionImpl::Initialize(at::Generator& generator) {
  qkv->Initialize(generator);
  out->Initialize(generator);
}

at::Tensor MultiHeadAttentionImpl::forward(const at::Tensor& x, const at::Tensor& key_bias,
                                           const kernel::DropoutStream* dropout) {
  const at::Tensor o = AttentionCore(qkv(x), key_bias, heads_, dropout);
  return out(o);
}

}  // namespace wfm::model::nn
