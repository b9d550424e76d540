#include "model/checkpoint/module_state.h"

#include <string>
#include <vector>

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "tests/model/checkpoint/small_net.h"
#include "tests/testing/temp_dir.h"

namespace wfm::model::checkpoint {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeNet;
using testing::Names;
using testing::Randomize;

NamedTensors StateOrDie(const torch::nn::Module& module, absl::string_view prefix = kModelPrefix) {
  absl::StatusOr<NamedTensors> state = StateTensors(module, prefix);
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? *state : NamedTensors();
}

// A module with nested, registered submodules: blocks.<i>.ff.fc1 etc.
struct FeedForwardImpl : torch::nn::Module {
  FeedForwardImpl(int64_t dim, int64_t hidden)
      : fc1(register_module("fc1", torch::nn::Linear(dim, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, dim))) {}
  at::Tensor forward(const at::Tensor& x) { return fc2(torch::relu(fc1(x))); }
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(FeedForward);

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t dim, int64_t hidden)
      : norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        ff(register_module("ff", FeedForward(dim, hidden))) {
    register_buffer("scale", torch::ones({dim}));
  }
  at::Tensor forward(const at::Tensor& x) { return x + ff(norm(x)) * named_buffers()["scale"]; }
  torch::nn::LayerNorm norm;
  FeedForward ff;
};
TORCH_MODULE(Block);

struct StackImpl : torch::nn::Module {
  StackImpl(int64_t dim, int64_t hidden, int blocks_count)
      : blocks(register_module("blocks", torch::nn::ModuleList())) {
    for (int i = 0; i < blocks_count; ++i) blocks->push_back(Block(dim, hidden));
  }
  at::Tensor forward(at::Tensor x) {
    for (const auto& b : *blocks) x = b->as<Block>()->forward(x);
    return x;
  }
  torch::nn::ModuleList blocks;
};
TORCH_MODULE(Stack);

TEST(ModuleStateTest, NamesAreRegisteredRecursiveNamesBehindThePrefix) {
  Stack stack(4, 6, 2);
  const NamedTensors state = StateOrDie(*stack);
  EXPECT_THAT(Names(state),
              ElementsAre("model.blocks.0.norm.weight", "model.blocks.0.norm.bias",
                          "model.blocks.0.ff.fc1.weight", "model.blocks.0.ff.fc1.bias",
                          "model.blocks.0.ff.fc2.weight", "model.blocks.0.ff.fc2.bias",
                          "model.blocks.1.norm.weight", "model.blocks.1.norm.bias",
                          "model.blocks.1.ff.fc1.weight", "model.blocks.1.ff.fc1.bias",
                          "model.blocks.1.ff.fc2.weight", "model.blocks.1.ff.fc2.bias",
                          "model.blocks.0.scale", "model.blocks.1.scale"));
  EXPECT_THAT(Names(StateOrDie(*MakeNet(), "")),
              ElementsAre("0.weight", "0.bias", "2.weight", "2.bias"));
}

TEST(ModuleStateTest, StateIsASnapshot) {
  auto net = MakeNet();
  Randomize(*net, 1);
  const NamedTensors state = StateOrDie(*net);
  const at::Tensor before = state[0].second.clone();
  EXPECT_FALSE(state[0].second.requires_grad());
  Randomize(*net, 2);
  EXPECT_TRUE(at::equal(state[0].second, before));
  EXPECT_FALSE(at::equal(state[0].second, net->named_parameters()["0.weight"]));
}

TEST(ModuleStateTest, LoadedModelComputesExactlyWhatTheSavedOneComputed) {
  const ::wfm::testing::TempDir dir("wfm-module");
  const std::string path = dir.File("model.wfm");

  Stack saved(4, 16, 2);
  Randomize(*saved, 3);
  Checkpoint checkpoint;
  checkpoint.metadata = {{"family", "pointcloud"}, {"config", {{"emb", 4}, {"layers", 2}}}};
  checkpoint.tensors = StateOrDie(*saved);
  ASSERT_TRUE(Write(path, checkpoint).ok());

  Stack loaded(4, 16, 2);
  Randomize(*loaded, 4);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor x = at::randn({7, 4}, gen);
  const at::Tensor want = saved->forward(x).detach();
  ASSERT_FALSE(at::equal(loaded->forward(x), want));  // different values before loading

  absl::StatusOr<Checkpoint> read = Read(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->metadata, checkpoint.metadata);
  ASSERT_TRUE(LoadStateTensors(*loaded, read->tensors).ok());
  EXPECT_TRUE(at::equal(loaded->forward(x), want));  // bit-exact
  for (const auto& item : loaded->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& t = item.value();
    EXPECT_TRUE(t.requires_grad()) << name;  // still trainable parameters
  }
}

TEST(ModuleStateTest, OtherPrefixesAreIgnored) {
  auto a = MakeNet();
  auto b = MakeNet();
  Randomize(*a, 1);
  Randomize(*b, 2);
  NamedTensors tensors = StateOrDie(*a, "model.");
  for (auto& item : StateOrDie(*b, "ema.")) tensors.push_back(item);
  tensors.emplace_back("optimizer.group.0.lr", at::scalar_tensor(0.1, at::kDouble));

  auto target = MakeNet();
  ASSERT_TRUE(LoadStateTensors(*target, tensors, "ema.").ok());
  for (const auto& item : target->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& t = item.value();
    EXPECT_TRUE(at::equal(t, b->named_parameters()[name])) << name;
  }
  // With an empty prefix every tensor must belong to the module.
  const absl::Status status = LoadStateTensors(*target, tensors, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("parameter '0.weight': missing from the checkpoint"));
}

TEST(ModuleStateTest, ShapeMismatchNamesTheParameterAndBothShapes) {
  Stack saved(128, 256, 1);
  Stack other(128, 512, 1);
  const absl::Status status = LoadStateTensors(*other, StateOrDie(*saved));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "parameter 'blocks.0.ff.fc1.weight': shape [256, 128] in the checkpoint, [512, 128] "
            "in the model");
}

TEST(ModuleStateTest, MissingExtraAndDtypeMismatchesAreClearAndLeaveTheModuleUnchanged) {
  auto saved = MakeNet();
  Randomize(*saved, 1);
  auto target = MakeNet();
  Randomize(*target, 2);
  const NamedTensors before = StateOrDie(*target);
  auto expect_unchanged = [&] {
    const NamedTensors now = StateOrDie(*target);
    for (size_t i = 0; i < now.size(); ++i) {
      EXPECT_TRUE(at::equal(now[i].second, before[i].second)) << now[i].first;
    }
  };

  NamedTensors missing = StateOrDie(*saved);
  missing.erase(missing.begin() + 3);  // model.2.bias
  absl::Status status = LoadStateTensors(*target, missing);
  EXPECT_EQ(status.message(), "parameter '2.bias': missing from the checkpoint");
  expect_unchanged();

  NamedTensors extra = StateOrDie(*saved);
  extra.emplace_back("model.3.weight", at::zeros({2, 2}));
  status = LoadStateTensors(*target, extra);
  EXPECT_EQ(status.message(),
            "unexpected tensor 'model.3.weight' in the checkpoint (the model has no parameter "
            "or buffer '3.weight')");
  expect_unchanged();

  NamedTensors wrong_dtype = StateOrDie(*saved);
  wrong_dtype[1].second = wrong_dtype[1].second.to(at::kDouble);
  status = LoadStateTensors(*target, wrong_dtype);
  EXPECT_EQ(status.message(),
            "parameter '0.bias': dtype float64 in the checkpoint, float32 in the model");
  expect_unchanged();

  NamedTensors twice = StateOrDie(*saved);
  twice.push_back(twice[0]);
  status = LoadStateTensors(*target, twice);
  EXPECT_EQ(status.message(), "tensor 'model.0.weight' appears twice in the checkpoint");
  expect_unchanged();

  ASSERT_TRUE(LoadStateTensors(*target, StateOrDie(*saved)).ok());
  for (const auto& item : target->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& t = item.value();
    EXPECT_TRUE(at::equal(t, saved->named_parameters()[name])) << name;
  }
}

TEST(ModuleStateTest, BuffersAreSavedAndChecked) {
  torch::nn::BatchNorm1d saved(3);
  Randomize(*saved, 1);
  {
    torch::NoGradGuard no_grad;
    saved->named_buffers()["num_batches_tracked"].fill_(17);
  }
  const NamedTensors state = StateOrDie(*saved);
  EXPECT_THAT(Names(state), ElementsAre("model.weight", "model.bias", "model.running_mean",
                                        "model.running_var", "model.num_batches_tracked"));
  torch::nn::BatchNorm1d loaded(3);
  ASSERT_TRUE(LoadStateTensors(*loaded, state).ok());
  EXPECT_EQ(loaded->named_buffers()["num_batches_tracked"].item<int64_t>(), 17);
  EXPECT_TRUE(
      at::equal(loaded->named_buffers()["running_var"], saved->named_buffers()["running_var"]));

  NamedTensors no_mean = state;
  no_mean.erase(no_mean.begin() + 2);
  EXPECT_EQ(LoadStateTensors(*loaded, no_mean).message(),
            "buffer 'running_mean': missing from the checkpoint");
}

}  // namespace
}  // namespace wfm::model::checkpoint
