// The point-cloud velocity network's inference path: the function of
// PointCloudVelocityNetImpl::forward in eval mode for clouds without
// padding, on weights packed once for the float kernels (nn_kernels.h,
// PackedGemm), with no autograd and no tensor per layer.
//
// Per cloud it computes, with the network's parameters,
//   c = time_embed([cos f t, sin f t]) + cond_embed(one_hot(label) | vector)
//   x = embed(points)
//   per block: x += out(attention(qkv(LN1(x + c)))),
//              x += fc2(leaky_relu(fc1(LN2(x))))
//   v = final(LN(x))
// Dense layers are packed GEMMs with the bias, the leaky ReLU and the
// residual sum fused into the product; the attention core is
// AttentionCoreCloud (attention.h); layer norms are the SIMD kernels.
//
// Batch invariance: every value of a cloud's velocity is computed from that
// cloud alone, in an order that does not depend on the other clouds, on the
// number of threads or on which thread runs it, so a cloud gets the same
// bits alone, in any batch and at any thread count (the server merges
// sampling requests and promises each the result it would get alone). It
// differs from forward() by float rounding only: the same operations,
// summed in another order, and on CPUs with AMX tiles (the amx kernel
// table) the layers of at least kWideLayer inputs and outputs computed with
// three bfloat16 products per term (nn_kernels.h), within a few float32
// roundings of the float32 result.
//
// Threads: the clouds are split into items of whole clouds (about 128 rows,
// and at least ~0.1 ms of work, each) run by ParallelForEachItem
// (model/common/parallel.h), each item through the whole network on one
// thread, so one network evaluation has one parallel region and no thread
// waits for another between layers.
#ifndef WFM_MODEL_NN_POINTCLOUD_INFERENCE_H_
#define WFM_MODEL_NN_POINTCLOUD_INFERENCE_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "model/nn/nn_kernels.h"
#include "model/nn/pointcloud_net.h"

namespace wfm::model::nn {

class PointCloudInference {
 public:
  // Copies and packs `net`'s parameters (later changes to net are not seen)
  // for `kernels` (by default the CPU's best table; tests pass each).
  explicit PointCloudInference(const PointCloudVelocityNetImpl& net,
                               const kernel::FloatKernels& kernels = kernel::BestFloatKernels());

  // points    float32 [B,N,d], every point real (no mask)
  // t         float32 [B]
  // condition as PointCloudVelocityNetImpl::forward: undefined when
  //           unconditional, int64 labels [B] (-1 = null), float32 [B,c]
  // Returns the velocity float32 [B,N,d]. Shape or dtype misuse throws
  // c10::Error (validate with PointCloudVelocityNetImpl::ValidateInputs).
  // Thread-safe (const).
  at::Tensor Velocity(const at::Tensor& points, const at::Tensor& t,
                      const at::Tensor& condition) const;

  const PointCloudNetConfig& config() const { return config_; }
  // Bytes of its packed copy of the weights.
  int64_t bytes() const;

 private:
  // Layers with fewer inputs or outputs than this run on the float32
  // kernels even where the best table is amx.
  static constexpr int kWideLayer = 32;
  struct Dense {
    int in = 0;
    int out = 0;
    const kernel::FloatKernels* kernels = nullptr;  // its product
    std::vector<float> packed;                      // kernels->pack_gemm's layout
  };
  struct Norm {
    std::vector<float> gamma;
    std::vector<float> beta;
  };
  struct Block {
    Norm norm1;
    Dense qkv;
    Dense out;
    Norm norm2;
    Dense fc1;
    Dense fc2;
  };

  Dense Pack(const at::Tensor& weight, const at::Tensor& bias) const;
  static Norm CopyNorm(const at::Tensor& weight, const at::Tensor& bias);
  // rows × in -> rows × out (row strides in, out unless given).
  void Apply(const Dense& layer, const float* x, int rows, float* y,
             kernel::GemmEpilogue epilogue = kernel::GemmEpilogue::kNone) const;
  // c [B, E] for the clouds' times and conditions.
  std::vector<float> Conditioning(const at::Tensor& t, const at::Tensor& condition) const;
  // Clouds [first, first + count) through the network into `velocity`.
  void RunClouds(const float* points, const float* cond, int64_t first, int64_t count, int64_t n,
                 float* velocity) const;

  const kernel::FloatKernels* kernels_;
  PointCloudNetConfig config_;
  std::vector<float> time_freqs_;
  Dense embed_;
  Dense time_embed_;
  Dense cond_embed_;  // out == 0 when unconditional
  std::vector<Block> blocks_;
  Norm final_norm_;
  Dense final_;
  double dense_flops_per_point_ = 0.0;  // of the dense layers, for the item size
};

}  // namespace wfm::model::nn

#endif  // WFM_MODEL_NN_POINTCLOUD_INFERENCE_H_
