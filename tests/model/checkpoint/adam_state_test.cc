#include "model/checkpoint/adam_state.h"

#include <string>
#include <vector>

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "model/checkpoint/module_state.h"
#include "tests/model/checkpoint/small_net.h"

namespace wfm::model::checkpoint {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::MakeNet;
using testing::Names;
using testing::Randomize;

struct Batch {
  at::Tensor x, y;
};

// Ten fixed regression batches.
std::vector<Batch> Batches() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  std::vector<Batch> batches;
  for (int i = 0; i < 10; ++i)
    batches.push_back({at::randn({16, 3}, gen), at::randn({16, 2}, gen)});
  return batches;
}

void Train(torch::nn::Sequential& net, torch::optim::Adam& adam, const std::vector<Batch>& batches,
           int from, int to) {
  for (int i = from; i < to; ++i) {
    adam.zero_grad();
    const at::Tensor loss = (net->forward(batches[i].x) - batches[i].y).pow(2).mean();
    loss.backward();
    adam.step();
  }
}

NamedTensors Concat(NamedTensors a, const NamedTensors& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

torch::optim::AdamOptions Options(bool amsgrad) {
  return torch::optim::AdamOptions(1e-2).betas({0.8, 0.95}).weight_decay(1e-3).amsgrad(amsgrad);
}

// MakeNet() drawn with seed 1 and its Adam (Options(amsgrad)) after `steps`
// steps on Batches().
struct TrainedNet {
  TrainedNet(bool amsgrad, int steps) : adam(net->parameters(), Options(amsgrad)) {
    Randomize(*net, 1);
    Train(net, adam, Batches(), 0, steps);
  }
  torch::nn::Sequential net = MakeNet();
  torch::optim::Adam adam;
};

class AdamResumeTest : public ::testing::TestWithParam<bool> {};

// Train 5 steps, checkpoint, train 5 more; a fresh model and optimizer loaded
// from the checkpoint and trained on the same 5 batches end bit-identical.
TEST_P(AdamResumeTest, ResumedRunIsBitIdentical) {
  const bool amsgrad = GetParam();
  const std::vector<Batch> batches = Batches();

  TrainedNet trained(amsgrad, 5);
  torch::nn::Sequential& net = trained.net;
  torch::optim::Adam& adam = trained.adam;
  absl::StatusOr<NamedTensors> model_state = StateTensors(*net);
  absl::StatusOr<NamedTensors> adam_state = AdamStateTensors(adam, *net);
  ASSERT_TRUE(model_state.ok()) << model_state.status();
  ASSERT_TRUE(adam_state.ok()) << adam_state.status();
  Checkpoint checkpoint;
  checkpoint.tensors = Concat(*model_state, *adam_state);
  absl::StatusOr<std::string> bytes = Serialize(checkpoint);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  Train(net, adam, batches, 5, 10);

  absl::StatusOr<Checkpoint> loaded = Parse(*bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto resumed = MakeNet();
  Randomize(*resumed, 2);
  // Other hyper-parameters on purpose: the checkpoint's must win.
  torch::optim::Adam resumed_adam(resumed->parameters(), torch::optim::AdamOptions(0.5));
  ASSERT_TRUE(LoadStateTensors(*resumed, loaded->tensors).ok());
  const absl::Status status = LoadAdamState(resumed_adam, *resumed, loaded->tensors);
  ASSERT_TRUE(status.ok()) << status;
  const auto& options =
      static_cast<const torch::optim::AdamOptions&>(resumed_adam.param_groups()[0].options());
  EXPECT_EQ(options.lr(), 1e-2);
  EXPECT_EQ(std::get<1>(options.betas()), 0.95);
  EXPECT_EQ(options.amsgrad(), amsgrad);
  Train(resumed, resumed_adam, batches, 5, 10);

  for (const auto& item : net->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& p = item.value();
    EXPECT_TRUE(at::equal(resumed->named_parameters()[name], p)) << name;
  }

  // Control: the same model state with a fresh optimizer state drifts away, so
  // the comparison above can fail.
  auto fresh = MakeNet();
  ASSERT_TRUE(LoadStateTensors(*fresh, loaded->tensors).ok());
  torch::optim::Adam fresh_adam(fresh->parameters(), Options(amsgrad));
  Train(fresh, fresh_adam, batches, 5, 10);
  EXPECT_FALSE(
      at::equal(fresh->named_parameters()["0.weight"], net->named_parameters()["0.weight"]));
}

INSTANTIATE_TEST_SUITE_P(Amsgrad, AdamResumeTest, ::testing::Bool());

TEST(AdamStateTest, TensorNamesAndValues) {
  TrainedNet trained(/*amsgrad=*/true, 3);
  absl::StatusOr<NamedTensors> state = AdamStateTensors(trained.adam, *trained.net);
  ASSERT_TRUE(state.ok()) << state.status();
  const std::vector<std::string> names = Names(*state);
  EXPECT_EQ(names.size(), 6u + 4u * 4u);
  EXPECT_EQ(names[0], "optimizer.group.0.lr");
  EXPECT_THAT(names, Contains("optimizer.state.2.bias.max_exp_avg_sq"));
  for (const auto& [name, t] : *state) {
    if (name == "optimizer.state.0.weight.step") {
      EXPECT_EQ(t.item<int64_t>(), 3);
    }
    if (name == "optimizer.group.0.betas") {
      EXPECT_TRUE(at::equal(t, at::tensor(std::vector<double>{0.8, 0.95}, at::kDouble)));
    }
    if (name == "optimizer.state.0.weight.exp_avg") {
      EXPECT_EQ(t.sizes(), trained.net->named_parameters()["0.weight"].sizes());
    }
  }
  // Serializable as a whole.
  Checkpoint c;
  c.tensors = *state;
  EXPECT_TRUE(Serialize(c).ok());
}

TEST(AdamStateTest, ParametersWithoutStateAreSkippedAndRestoredAsFresh) {
  auto net = MakeNet();
  Randomize(*net, 1);
  // Only the last layer is trained: the first layer's parameters never get state.
  torch::optim::Adam adam(net->parameters(), Options(false));
  const std::vector<Batch> batches = Batches();
  for (int i = 0; i < 2; ++i) {
    adam.zero_grad();
    for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
    const at::Tensor h =
        torch::tanh(net[0]->as<torch::nn::Linear>()->forward(batches[i].x)).detach();
    (net[2]->as<torch::nn::Linear>()->forward(h) - batches[i].y).pow(2).mean().backward();
    adam.step();
  }
  EXPECT_EQ(adam.state().size(), 2u);
  absl::StatusOr<NamedTensors> state = AdamStateTensors(adam, *net);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_THAT(Names(*state), Not(Contains("optimizer.state.0.weight.step")));
  EXPECT_THAT(Names(*state), Contains("optimizer.state.2.weight.step"));

  auto other = MakeNet();
  torch::optim::Adam other_adam(other->parameters(), Options(false));
  Train(other, other_adam, batches, 0, 1);  // state for all four parameters
  ASSERT_TRUE(LoadAdamState(other_adam, *other, *state).ok());
  EXPECT_EQ(other_adam.state().size(), 2u);  // replaced, not merged
}

TEST(AdamStateTest, MismatchesAreClearAndLeaveTheOptimizerUnchanged) {
  TrainedNet trained(/*amsgrad=*/false, 2);
  absl::StatusOr<NamedTensors> saved = AdamStateTensors(trained.adam, *trained.net);
  ASSERT_TRUE(saved.ok());

  // A wider model: exp_avg shapes differ.
  auto wide = MakeNet(/*hidden=*/16);
  torch::optim::Adam wide_adam(wide->parameters(), torch::optim::AdamOptions(0.25));
  absl::Status status = LoadAdamState(wide_adam, *wide, *saved);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "optimizer state of parameter '0.weight': exp_avg has shape [8, 3] in the "
            "checkpoint, [16, 3] in the model");
  EXPECT_TRUE(wide_adam.state().empty());
  EXPECT_EQ(
      static_cast<const torch::optim::AdamOptions&>(wide_adam.param_groups()[0].options()).lr(),
      0.25);

  // An extra tensor under the prefix.
  NamedTensors extra = *saved;
  extra.emplace_back("optimizer.state.9.weight.step", at::scalar_tensor(int64_t{1}, at::kLong));
  auto same = MakeNet();
  torch::optim::Adam same_adam(same->parameters(), Options(false));
  status = LoadAdamState(same_adam, *same, extra);
  EXPECT_EQ(status.message(),
            "unexpected tensor 'optimizer.state.9.weight.step' in the checkpoint (not a part of "
            "this optimizer's state)");

  // Incomplete state.
  NamedTensors incomplete;
  for (const auto& item : *saved) {
    if (item.first != "optimizer.state.0.bias.exp_avg_sq") incomplete.push_back(item);
  }
  status = LoadAdamState(same_adam, *same, incomplete);
  EXPECT_EQ(status.message(),
            "optimizer state of parameter '0.bias': incomplete, "
            "'optimizer.state.0.bias.exp_avg_sq' missing from the checkpoint");

  // Two param groups in the optimizer, one in the checkpoint.
  auto params = same->parameters();
  torch::optim::Adam two_groups({torch::optim::OptimizerParamGroup({params[0], params[1]}),
                                 torch::optim::OptimizerParamGroup({params[2], params[3]})},
                                Options(false));
  status = LoadAdamState(two_groups, *same, *saved);
  EXPECT_EQ(status.message(),
            "optimizer group 0: 4 parameters in the checkpoint, 2 in the optimizer");

  // Missing group options.
  NamedTensors no_lr(saved->begin() + 1, saved->end());
  status = LoadAdamState(same_adam, *same, no_lr);
  EXPECT_EQ(status.message(),
            "optimizer state: 'optimizer.group.0.lr' missing from the checkpoint");
  EXPECT_TRUE(same_adam.state().empty());

  // amsgrad restored as on, without its max_exp_avg_sq tensors.
  NamedTensors amsgrad_on = *saved;
  for (auto& item : amsgrad_on) {
    if (item.first == "optimizer.group.0.amsgrad") item.second = at::scalar_tensor(true, at::kBool);
  }
  status = LoadAdamState(same_adam, *same, amsgrad_on);
  EXPECT_THAT(std::string(status.message()), HasSubstr("amsgrad is on but"));
}

TEST(AdamStateTest, OptimizerOverForeignParametersIsRejected) {
  auto net = MakeNet();
  auto other = MakeNet();
  torch::optim::Adam adam(other->parameters(), Options(false));
  const absl::Status status = AdamStateTensors(adam, *net).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is not a parameter of the module"));
}

}  // namespace
}  // namespace wfm::model::checkpoint
