#include "model/nn/pointcloud_inference.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string_view>

#include <ATen/ATen.h>

#include "model/common/parallel.h"
#include "model/nn/attention.h"

namespace wfm::model::nn {
namespace {

// Rows (points) per work item: every layer's weights are read from memory
// once per item and used for all its rows (a width-512 network has 36 MiB of
// them, more than the caches), while a batch still splits into several items
// for the threads.
constexpr int64_t kItemRows = 128;
// Work per item at least this many floating-point operations (~0.1 ms): a
// parallel region costs tens of microseconds to start and join, so a small
// network's evaluation of a few clouds stays on one thread.
constexpr double kMinItemFlops = 16e6;

std::vector<float> ToVector(const at::Tensor& tensor) {
  const at::Tensor c = tensor.detach().to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

PointCloudInference::PointCloudInference(const PointCloudVelocityNetImpl& net,
                                         const kernel::FloatKernels& kernels)
    : kernels_(&kernels), config_(net.config()) {
  time_freqs_ = ToVector(net.time_frequencies());
  embed_ = Pack(net.embed->weight, net.embed->bias);
  time_embed_ = Pack(net.time_embed->weight, net.time_embed->bias);
  if (net.cond_embed) cond_embed_ = Pack(net.cond_embed->weight, net.cond_embed->bias);
  for (const auto& module : *net.blocks) {
    const auto* block = module->as<EncoderBlockImpl>();
    Block b;
    b.norm1 = CopyNorm(block->norm1->weight, block->norm1->bias);
    b.qkv = Pack(block->attention->qkv->weight, block->attention->qkv->bias);
    b.out = Pack(block->attention->out->weight, block->attention->out->bias);
    b.norm2 = CopyNorm(block->norm2->weight, block->norm2->bias);
    b.fc1 = Pack(block->feed_forward->fc1->weight, block->feed_forward->fc1->bias);
    b.fc2 = Pack(block->feed_forward->fc2->weight, block->feed_forward->fc2->bias);
    blocks_.push_back(std::move(b));
  }
  final_norm_ = CopyNorm(net.final_norm->weight, net.final_norm->bias);
  final_ = Pack(net.final->weight, net.final->bias);
  dense_flops_per_point_ = 2.0 * (embed_.in * embed_.out + final_.in * final_.out);
  for (const Block& b : blocks_) {
    for (const Dense* d : {&b.qkv, &b.out, &b.fc1, &b.fc2}) {
      dense_flops_per_point_ += 2.0 * d->in * d->out;
    }
  }
}

PointCloudInference::Dense PointCloudInference::Pack(const at::Tensor& weight,
                                                     const at::Tensor& bias) const {
  const std::vector<float> w = ToVector(weight);
  const std::vector<float> b = ToVector(bias);
  Dense d;
  d.out = static_cast<int>(weight.size(0));
  d.in = static_cast<int>(weight.size(1));
  // The AMX products pay off, and are used, only for the wide layers; the
  // narrow ones (the point embedding and the output, whose inputs or
  // outputs are the point's coordinates) stay in float32.
  d.kernels = kernels_;
  if (std::string_view(kernels_->isa) == "amx" && (d.in < kWideLayer || d.out < kWideLayer)) {
    d.kernels = kernel::FloatKernelsFor("avx512f");
  }
  d.packed.resize(d.kernels->packed_gemm_size(d.out, d.in));
  d.kernels->pack_gemm(w.data(), d.in, false, d.out, d.in, b.data(), 1.0f, d.packed.data());
  return d;
}

PointCloudInference::Norm PointCloudInference::CopyNorm(const at::Tensor& weight,
                                                        const at::Tensor& bias) {
  return Norm{ToVector(weight), ToVector(bias)};
}

void PointCloudInference::Apply(const Dense& layer, const float* x, int rows, float* y,
                                kernel::GemmEpilogue epilogue) const {
  // kAddResidual sums into y itself (y = y + layer(x)).
  layer.kernels->packed_gemm(x, layer.in, rows, layer.in, layer.packed.data(), layer.out,
                             epilogue,
                             epilogue == kernel::GemmEpilogue::kAddResidual ? y : nullptr,
                             layer.out, y, layer.out);
}

std::vector<float> PointCloudInference::Conditioning(const at::Tensor& t,
                                                     const at::Tensor& condition) const {
  const int64_t batch = t.size(0);
  const int64_t half = static_cast<int64_t>(time_freqs_.size());
  const int64_t width = config_.width;
  const at::Tensor tc = t.contiguous();
  const float* times = tc.data_ptr<float>();
  // [cos f t, sin f t]: the phase in float32 as the network computes it.
  std::vector<float> features(batch * 2 * half);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t k = 0; k < half; ++k) {
      const float phase = time_freqs_[k] * times[b];
      features[b * 2 * half + k] = static_cast<float>(std::cos(static_cast<double>(phase)));
      features[b * 2 * half + half + k] = static_cast<float>(std::sin(static_cast<double>(phase)));
    }
  }
  std::vector<float> cond(batch * width);
  Apply(time_embed_, features.data(), static_cast<int>(batch), cond.data());
  if (config_.condition == ConditionKind::kNone) return cond;
  std::vector<float> input;
  if (config_.condition == ConditionKind::kDiscrete) {
    // one_hot(label); the null label -1 embeds as the zero vector.
    const int64_t classes = config_.num_classes;
    input.assign(batch * classes, 0.0f);
    const at::Tensor labels = condition.contiguous();
    const int64_t* codes = labels.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b) {
      if (codes[b] >= 0 && codes[b] < classes) input[b * classes + codes[b]] = 1.0f;
    }
  } else {
    input = ToVector(condition);
  }
  std::vector<float> embedded(batch * width);
  Apply(cond_embed_, input.data(), static_cast<int>(batch), embedded.data());
  for (size_t i = 0; i < cond.size(); ++i) cond[i] += embedded[i];
  return cond;
}

void PointCloudInference::RunClouds(const float* points, const float* cond, int64_t first,
                                    int64_t count, int64_t n, float* velocity) const {
  const kernel::FloatKernels& k = *kernels_;
  const int e = static_cast<int>(config_.width);
  const int mlp = static_cast<int>(config_.mlp_hidden);
  const int d = static_cast<int>(config_.space_dim);
  const int heads = static_cast<int>(config_.heads);
  const int cloud = static_cast<int>(n);
  const int rows = static_cast<int>(count * n);
  const float eps = static_cast<float>(kLayerNormEps);
  const int64_t r = rows;
  std::unique_ptr<float[]> scratch(
      new float[r * (3 * e + 3 * e + mlp) + AttentionCloudScratchFloats(n)]);
  float* x = scratch.get();  // the residual stream, rows × E
  float* h = x + r * e;      // layer-norm outputs, rows × E
  float* o = h + r * e;      // attention outputs, rows × E
  float* qkv = o + r * e;    // rows × 3E
  float* f = qkv + r * 3 * e;  // feed-forward hidden layer, rows × mlp
  float* attention_scratch = f + r * mlp;

  Apply(embed_, points + first * n * d, rows, x);
  for (const Block& block : blocks_) {
    for (int64_t c = 0; c < count; ++c) {
      k.layer_norm_rows(x + c * n * e, cond + (first + c) * e, cloud, e, block.norm1.gamma.data(),
                        block.norm1.beta.data(), eps, h + c * n * e, nullptr, nullptr);
    }
    Apply(block.qkv, h, rows, qkv);
    for (int64_t c = 0; c < count; ++c) {
      AttentionCoreCloud(qkv + c * n * 3 * e, cloud, e, heads, o + c * n * e, attention_scratch);
    }
    Apply(block.out, o, rows, x, kernel::GemmEpilogue::kAddResidual);
    k.layer_norm_rows(x, nullptr, rows, e, block.norm2.gamma.data(), block.norm2.beta.data(), eps,
                      h, nullptr, nullptr);
    Apply(block.fc1, h, rows, f, kernel::GemmEpilogue::kLeakyRelu);
    Apply(block.fc2, f, rows, x, kernel::GemmEpilogue::kAddResidual);
  }
  k.layer_norm_rows(x, nullptr, rows, e, final_norm_.gamma.data(), final_norm_.beta.data(), eps, h,
                    nullptr, nullptr);
  Apply(final_, h, rows, velocity + first * n * d);
}

at::Tensor PointCloudInference::Velocity(const at::Tensor& points, const at::Tensor& t,
                                         const at::Tensor& condition) const {
  TORCH_CHECK(points.dim() == 3 && points.size(2) == config_.space_dim &&
                  points.scalar_type() == at::kFloat,
              "PointCloudInference: points must be float32 [B,N,", config_.space_dim, "]");
  const int64_t batch = points.size(0);
  const int64_t n = points.size(1);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == batch && t.scalar_type() == at::kFloat,
              "PointCloudInference: t must be float32 [B]");
  CheckConditionArgument(config_, condition, batch, "PointCloudInference");
  at::Tensor velocity = at::empty({batch, n, config_.space_dim}, at::kFloat);
  if (batch == 0 || n == 0) return velocity;
  const at::Tensor pts = points.contiguous();
  const std::vector<float> cond = Conditioning(t, condition);
  // Per point: the dense layers, plus q·kᵀ and P·v against the n keys.
  const double flops_per_row =
      dense_flops_per_point_ + 4.0 * static_cast<double>(n * config_.width * config_.layers);
  const int64_t item_rows =
      std::max<int64_t>(kItemRows, static_cast<int64_t>(std::ceil(kMinItemFlops / flops_per_row)));
  const int64_t per_item = std::max<int64_t>(1, item_rows / n);
  const int64_t items = (batch + per_item - 1) / per_item;
  const float* p = pts.data_ptr<float>();
  float* v = velocity.data_ptr<float>();
  ParallelForEachItem(items, [&](int64_t item) {
    const int64_t first = item * per_item;
    RunClouds(p, cond.data(), first, std::min(per_item, batch - first), n, v);
  });
  return velocity;
}

int64_t PointCloudInference::bytes() const {
  int64_t floats = static_cast<int64_t>(time_freqs_.size());
  const auto dense = [&](const Dense& d) { floats += static_cast<int64_t>(d.packed.size()); };
  const auto norm = [&](const Norm& n) {
    floats += static_cast<int64_t>(n.gamma.size() + n.beta.size());
  };
  dense(embed_);
  dense(time_embed_);
  dense(cond_embed_);
  for (const Block& b : blocks_) {
    norm(b.norm1);
    dense(b.qkv);
    dense(b.out);
    norm(b.norm2);
    dense(b.fc1);
    dense(b.fc2);
  }
  norm(final_norm_);
  dense(final_);
  return floats * static_cast<int64_t>(sizeof(float));
}

}  // namespace wfm::model::nn
