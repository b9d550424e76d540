#include "model/train/fused_adam.h"

#include <immintrin.h>

#include <cmath>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace wfm::model {
namespace {

struct AdamConstants {
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float inv_sqrt_bc2;  // 1 / sqrt(1 − β2^step)
  float eps;
  float step_size;     // lr / (1 − β1^step)
};

inline void ScalarUpdate(const AdamConstants& c, float* p, const float* g, float* m, float* v,
                         int64_t i) {
  const float gi = g[i];
  const float mi = c.beta1 * m[i] + c.one_minus_beta1 * gi;
  const float vi = c.beta2 * v[i] + c.one_minus_beta2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] -= c.step_size * mi / (std::sqrt(vi) * c.inv_sqrt_bc2 + c.eps);
}

void UpdateSse2(const AdamConstants& c, float* p, const float* g, float* m, float* v,
                int64_t begin, int64_t end) {
  const __m128 b1 = _mm_set1_ps(c.beta1), ob1 = _mm_set1_ps(c.one_minus_beta1);
  const __m128 b2 = _mm_set1_ps(c.beta2), ob2 = _mm_set1_ps(c.one_minus_beta2);
  const __m128 rs = _mm_set1_ps(c.inv_sqrt_bc2), eps = _mm_set1_ps(c.eps);
  const __m128 ss = _mm_set1_ps(c.step_size);
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const __m128 gi = _mm_loadu_ps(g + i);
    const __m128 mi = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m + i)), _mm_mul_ps(ob1, gi));
    const __m128 vi =
        _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(ob2, gi), gi));
    _mm_storeu_ps(m + i, mi);
    _mm_storeu_ps(v + i, vi);
    const __m128 denom = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vi), rs), eps);
    _mm_storeu_ps(p + i,
                  _mm_sub_ps(_mm_loadu_ps(p + i), _mm_div_ps(_mm_mul_ps(ss, mi), denom)));
  }
  for (; i < end; ++i) ScalarUpdate(c, p, g, m, v, i);
}

__attribute__((target("avx2"))) void UpdateAvx2(const AdamConstants& c, float* p,
                                                 const float* g, float* m, float* v,
                                                 int64_t begin, int64_t end) {
  const __m256 b1 = _mm256_set1_ps(c.beta1), ob1 = _mm256_set1_ps(c.one_minus_beta1);
  const __m256 b2 = _mm256_set1_ps(c.beta2), ob2 = _mm256_set1_ps(c.one_minus_beta2);
  const __m256 rs = _mm256_set1_ps(c.inv_sqrt_bc2), eps = _mm256_set1_ps(c.eps);
  const __m256 ss = _mm256_set1_ps(c.step_size);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi =
        _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                    _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), rs), eps);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i),
                                          _mm256_div_ps(_mm256_mul_ps(ss, mi), denom)));
  }
  for (; i < end; ++i) ScalarUpdate(c, p, g, m, v, i);
}

bool HasAvx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}

bool Fusable(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

}  // namespace

void FusedAdamStep(torch::optim::Adam& adam) {
  // Anything this kernel does not cover goes to LibTorch's own step.
  for (auto& group : adam.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.amsgrad() || options.weight_decay() != 0) {
      adam.step();
      return;
    }
    for (const auto& p : group.params()) {
      if (p.grad().defined() && (!Fusable(p) || !Fusable(p.grad()))) {
        adam.step();
        return;
      }
    }
  }
  at::NoGradGuard no_grad;
  const bool avx2 = HasAvx2();
  for (auto& group : adam.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = adam.state().find(key);
      if (it == adam.state().end()) {
        // As Adam::step's state initialisation.
        auto state = std::make_unique<torch::optim::AdamParamState>();
        state->step(0);
        state->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        state->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        it = adam.state().emplace(key, std::move(state)).first;
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*it->second);
      at::Tensor& m = state.exp_avg();
      at::Tensor& v = state.exp_avg_sq();
      if (!Fusable(m) || !Fusable(v) || m.numel() != p.numel() || v.numel() != p.numel()) {
        m = m.contiguous().to(at::kFloat);
        v = v.contiguous().to(at::kFloat);
      }
      state.step(state.step() + 1);
      const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(state.step()));
      const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(state.step()));
      AdamConstants c;
      c.beta1 = static_cast<float>(beta1);
      c.one_minus_beta1 = static_cast<float>(1.0 - beta1);
      c.beta2 = static_cast<float>(beta2);
      c.one_minus_beta2 = static_cast<float>(1.0 - beta2);
      c.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
      c.eps = static_cast<float>(options.eps());
      c.step_size = static_cast<float>(options.lr() / bc1);
      p.unsafeGetTensorImpl()->bump_version();  // as an in-place update would
      float* pp = p.data_ptr<float>();
      const float* gp = p.grad().data_ptr<float>();
      float* mp = m.data_ptr<float>();
      float* vp = v.data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
        if (avx2) {
          UpdateAvx2(c, pp, gp, mp, vp, begin, end);
        } else {
          UpdateSse2(c, pp, gp, mp, vp, begin, end);
        }
      });
    }
  }
}

}  // namespace wfm::model
