// Multi-head self-attention over the points of a batch of clouds, as flax's
// MultiHeadDotProductAttention is used by the reference (query/key/value and
// output projections of width E with biases, logits q·k / sqrt(head_dim),
// masked keys excluded, dropout on the attention weights with one mask shared
// by every cloud and head).
//
// The core (softmax(q kᵀ / sqrt(head_dim)) v per cloud and head) is a custom
// autograd function over the fused q/k/v activations: one BLAS GEMM per
// (cloud, head) on strided views, a fused SIMD softmax, and a hand-written
// backward; nothing is copied or transposed.
#ifndef WFM_MODEL_NN_ATTENTION_H_
#define WFM_MODEL_NN_ATTENTION_H_

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "model/nn/dense.h"
#include "model/nn/nn_kernels.h"

namespace wfm::model::nn {

// Key mask -> additive key bias: mask bool [B,N] (true = real point) gives
// float32 [B,N] with 0 for real points and -inf for padding.
at::Tensor KeyBiasFromMask(const at::Tensor& mask);

// The attention core on fused projections.
//   qkv       float32 [B,N,3E], contiguous: per point [q | k | v], each of width
//             E = heads · head_dim with head h in columns h·head_dim ..
//   key_bias  float32 [B,N] from KeyBiasFromMask, or undefined (no padding)
//   dropout   null (no dropout), or the stream of the [N,N] attention-weight
//             mask (element i·N + j for query i, key j) shared by every cloud
//             and head
// Returns o float32 [B,N,E] (heads concatenated, before the output
// projection). Differentiable in qkv when grad mode is on and qkv requires
// grad (the softmax probabilities, and with dropout the dropped-out weights,
// B·heads·N·N floats each, are kept for the backward); otherwise nothing is
// saved.
at::Tensor AttentionCore(const at::Tensor& qkv, const at::Tensor& key_bias, int64_t heads,
                         const kernel::DropoutStream* dropout);

// The attention core of one cloud without padding or dropout, on raw
// buffers (the inference path, pointcloud_inference.h): qkv n × 3E (row
// stride 3E, layout as above), out n × E (row stride E; heads
// concatenated), `scratch` AttentionCloudScratchFloats(n) floats. Runs on the
// calling thread; the result is AttentionCore's for that cloud alone.
int64_t AttentionCloudScratchFloats(int64_t n);
void AttentionCoreCloud(const float* qkv, int n, int width, int heads, float* out,
                        float* scratch);

// Submodules (checkpoint keys, relative to the module):
//   "qkv"  Dense(E -> 3E): rows [0,E) query, [E,2E) key, [2E,3E) value; each
//          the flax query/key/value kernel of shape [E, heads, head_dim]
//          flattened and transposed (row h·head_dim + c is head h, channel c)
//   "out"  Dense(E -> E): the output projection
class MultiHeadAttentionImpl : public torch::nn::Cloneable<MultiHeadAttentionImpl> {
 public:
  MultiHeadAttentionImpl(int64_t width, int64_t heads);

  void reset() override;
  // lecun-normal (truncated) kernels, zero biases; q, k, v then out.
  void Initialize(at::Generator& generator);

  // x float32 [B,N,E]; key_bias as AttentionCore; dropout null or a stream.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_bias,
                     const kernel::DropoutStream* dropout = nullptr);

  int64_t width() const { return width_; }
  int64_t heads() const { return heads_; }

  Dense qkv{nullptr};
  Dense out{nullptr};

 private:
  int64_t width_;
  int64_t heads_;
};
TORCH_MODULE(MultiHeadAttention);

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_ATTENTION_H_
