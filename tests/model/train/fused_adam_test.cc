#include "model/train/fused_adam.h"

#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include "model/checkpoint/adam_state.h"

namespace wfm::model {
namespace {

// Two identical modules with identical gradient sequences: one stepped by
// torch::optim::Adam, one by FusedAdamStep. Sizes cover the SIMD body and the
// scalar tail (1003 = 125·8 + 3).
struct Pair {
  torch::nn::Linear a{nullptr}, b{nullptr};
  std::unique_ptr<torch::optim::Adam> adam_a, adam_b;
};

Pair MakePair(double lr, double weight_decay = 0.0) {
  Pair p;
  at::manual_seed(0);
  p.a = torch::nn::Linear(17, 59);  // 1003 weights + 59 biases
  p.b = torch::nn::Linear(17, 59);
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < p.a->parameters().size(); ++i) {
      p.b->parameters()[i].copy_(p.a->parameters()[i]);
    }
  }
  auto options = torch::optim::AdamOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(weight_decay);
  p.adam_a = std::make_unique<torch::optim::Adam>(p.a->parameters(), options);
  p.adam_b = std::make_unique<torch::optim::Adam>(p.b->parameters(), options);
  return p;
}

void SetGrads(Pair& p, at::Generator& gen, double scale) {
  for (size_t i = 0; i < p.a->parameters().size(); ++i) {
    const at::Tensor g = at::randn(p.a->parameters()[i].sizes(), gen, at::kFloat) * scale;
    p.a->parameters()[i].mutable_grad() = g.clone();
    p.b->parameters()[i].mutable_grad() = g.clone();
  }
}

double MaxRelativeDiff(const Pair& p) {
  double worst = 0;
  for (size_t i = 0; i < p.a->parameters().size(); ++i) {
    const at::Tensor x = p.a->parameters()[i].detach(), y = p.b->parameters()[i].detach();
    worst = std::max(worst, ((x - y).abs() / (x.abs() + 1e-3)).max().item<double>());
  }
  return worst;
}

TEST(FusedAdamTest, MatchesLibTorchAdam) {
  Pair p = MakePair(1e-2);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int step = 0; step < 25; ++step) {
    // Gradients of very different scales, where the ε and the bias
    // corrections matter.
    SetGrads(p, gen, step % 3 == 0 ? 1e-6 : 3.0);
    p.adam_a->step();
    FusedAdamStep(*p.adam_b);
  }
  EXPECT_LT(MaxRelativeDiff(p), 1e-5);
  // The parameters moved by far more than that.
  Pair fresh = MakePair(1e-2);
  double moved = 0;
  for (size_t i = 0; i < p.a->parameters().size(); ++i) {
    moved = std::max(moved, (p.b->parameters()[i] - fresh.b->parameters()[i]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 0.1);
  // Same state layout: step counts and moments, as LibTorch keeps them.
  auto sa = checkpoint::AdamStateTensors(*p.adam_a, *p.a);
  auto sb = checkpoint::AdamStateTensors(*p.adam_b, *p.b);
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_EQ(sa->size(), sb->size());
  for (size_t i = 0; i < sa->size(); ++i) {
    EXPECT_EQ((*sa)[i].first, (*sb)[i].first);
    EXPECT_TRUE(at::allclose((*sa)[i].second.to(at::kDouble), (*sb)[i].second.to(at::kDouble),
                             1e-5, 1e-6))
        << (*sa)[i].first;
  }
}

TEST(FusedAdamTest, SkipsParametersWithoutGradientsAndDelegatesWeightDecay) {
  Pair p = MakePair(1e-2);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  SetGrads(p, gen, 1.0);
  p.b->bias.mutable_grad().reset();
  const at::Tensor bias = p.b->bias.detach().clone();
  FusedAdamStep(*p.adam_b);
  EXPECT_TRUE(at::equal(p.b->bias.detach(), bias));
  EXPECT_EQ(p.adam_b->state().size(), 1u);  // only the weight has state

  Pair wd = MakePair(1e-2, 0.1);
  SetGrads(wd, gen, 1.0);
  wd.adam_a->step();
  FusedAdamStep(*wd.adam_b);
  EXPECT_EQ(MaxRelativeDiff(wd), 0.0);  // LibTorch's own step, bit for bit
}

}  // namespace
}  // namespace wfm::model
