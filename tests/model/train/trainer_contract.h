// What both trainers (PointCloudTrainer, GaussianTrainer) promise alike, as
// checks that each family's test calls with its data and configuration.
// `create(config)` makes a trainer of the family on the test's data
// (Trainer::Create), `resume(checkpoint)` resumes one (Trainer::Resume).
#ifndef WFM_TESTS_MODEL_TRAIN_TRAINER_CONTRACT_H_
#define WFM_TESTS_MODEL_TRAIN_TRAINER_CONTRACT_H_

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/checkpoint/checkpoint.h"
#include "model/train/train_hooks.h"
#include "tests/testing/status.h"
#include "tests/testing/temp_dir.h"

namespace wfm::testing {

// The trainer's network parameters, flattened into one tensor.
template <typename Trainer>
at::Tensor Parameters(Trainer& t) {
  std::vector<at::Tensor> flat;
  for (const auto& p : t.network()->parameters()) flat.push_back(p.detach().reshape({-1}));
  return at::cat(flat);
}

// Two trainers of one configuration make the same run; another seed makes
// another run.
template <typename Create, typename Config>
void ExpectSameSeedSameRunOtherSeedOtherRun(const Create& create, Config c) {
  auto a = create(c);
  auto b = create(c);
  c.optimizer.seed = 1;
  auto other = create(c);
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  ASSERT_TRUE((*a)->Train().ok() && (*b)->Train().ok() && (*other)->Train().ok());
  EXPECT_TRUE(at::equal(Parameters(**a), Parameters(**b)));
  EXPECT_FALSE(at::equal(Parameters(**a), Parameters(**other)));
  EXPECT_EQ((*a)->Summary().final_loss, (*b)->Summary().final_loss);
}

// A run of c's steps (10) stopped after 4 steps, checkpointed with its
// optimizer to a file and resumed from it ends with the parameters of the
// uninterrupted run; a serving-only checkpoint cannot resume. `*read` (when
// given): the checkpoint read back from the file, for the family's own checks.
template <typename Create, typename Resume, typename Config>
void ExpectResumeContinuesTheSameRun(const Create& create, const Resume& resume, const Config& c,
                                     model::checkpoint::Checkpoint* read = nullptr) {
  auto straight = create(c);
  ASSERT_TRUE(straight.ok());
  ASSERT_TRUE((*straight)->Train().ok());

  auto first = create(c);
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*first)->Step().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint ckpt,
                           (*first)->MakeCheckpoint(/*with_optimizer=*/true));
  const TempDir dir;
  const std::string path = dir.File("resume.wfm");
  ASSERT_TRUE(model::checkpoint::Write(path, ckpt).ok());
  WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint back, model::checkpoint::Read(path));
  if (read != nullptr) *read = back;
  auto resumed = resume(back);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->step(), 4);
  ASSERT_TRUE((*resumed)->Train().ok());
  EXPECT_EQ((*resumed)->step(), c.optimizer.steps);
  EXPECT_TRUE(at::equal(Parameters(**straight), Parameters(**resumed)));
  EXPECT_EQ((*straight)->Summary().final_loss, (*resumed)->Summary().final_loss);
  WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint serving,
                           (*first)->MakeCheckpoint(false));
  EXPECT_EQ(resume(serving).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A trained trainer, the model loaded from its serving checkpoint, and one
// request's samples from each (the first reply).
template <typename Trainer, typename Model, typename Generated>
struct RoundTrip {
  std::unique_ptr<Trainer> trainer;
  std::shared_ptr<const Model> loaded;
  Generated live, reloaded;
};

// Trains a trainer of `c`, writes its serving checkpoint to a file and loads
// it (Model::Load); a request for 4 samples of `label` in 5 steps, seed 42,
// with the trajectory, sampled from the trainer's own model and from the
// loaded one. The loaded model reports the run; the file cut to half its size
// is refused as truncated.
template <typename Request, typename Create, typename Config, typename Trainer, typename Model,
          typename Generated>
void SampleLiveAndReloaded(const Create& create, const Config& c, const std::string& label,
                           RoundTrip<Trainer, Model, Generated>* out) {
  WFM_ASSERT_OK_AND_ASSIGN(out->trainer, create(c));
  ASSERT_TRUE(out->trainer->Train().ok());
  WFM_ASSERT_OK_AND_ASSIGN(const std::shared_ptr<const Model> own, out->trainer->MakeModel());
  WFM_ASSERT_OK_AND_ASSIGN(const model::checkpoint::Checkpoint ckpt,
                           out->trainer->MakeCheckpoint(false));
  const TempDir dir;
  const std::string path = dir.File("model.wfm");
  ASSERT_TRUE(model::checkpoint::Write(path, ckpt).ok());
  WFM_ASSERT_OK_AND_ASSIGN(out->loaded, Model::Load(path));
  Request r;
  r.num_samples = 4;
  r.steps = 5;
  r.seed = 42;
  r.label = label;
  r.trajectory = true;
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<Generated> a, own->Sample({r}));
  WFM_ASSERT_OK_AND_ASSIGN(const std::vector<Generated> b, out->loaded->Sample({r}));
  out->live = a[0];
  out->reloaded = b[0];
  EXPECT_EQ(out->loaded->summary().steps, c.optimizer.steps);
  EXPECT_EQ(out->loaded->config().network.width, c.network.width);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const auto truncated = Model::Load(path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(std::string(truncated.status().message()), ::testing::HasSubstr("truncated"));
}

// A run of `fifty` (a configuration of 50 steps) reports every step's
// progress and stops before the step after the cancel flag is set (at step
// 7); a run of 9 steps with checkpoint_every 4 asks for checkpoints after
// steps 4 and 8, not after the last.
template <typename Create, typename Config>
void ExpectCancelAndProgress(const Create& create, const Config& fifty) {
  auto t = create(fifty);
  ASSERT_TRUE(t.ok());
  std::atomic<bool> cancel{false};
  int64_t last_step = 0, checkpoints = 0;
  model::TrainHooks hooks;
  hooks.cancel = &cancel;
  hooks.on_progress = [&](const model::TrainProgress& p) {
    EXPECT_EQ(p.step, last_step + 1);
    EXPECT_EQ(p.total_steps, 50);
    EXPECT_TRUE(std::isfinite(p.loss));
    last_step = p.step;
    if (p.step == 7) cancel = true;
  };
  EXPECT_EQ((*t)->Train(hooks).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*t)->step(), 7);
  Config c = fifty;
  c.optimizer.steps = 9;
  c.checkpoint_every = 4;
  auto u = create(c);
  ASSERT_TRUE(u.ok());
  model::TrainHooks periodic;
  periodic.on_checkpoint = [&](int64_t step) {
    EXPECT_EQ(step % 4, 0);
    ++checkpoints;
    return absl::OkStatus();
  };
  ASSERT_TRUE((*u)->Train(periodic).ok());
  EXPECT_EQ(checkpoints, 2);
  EXPECT_EQ((*u)->phase_times().steps, 9);
}

// The tensors of a serving checkpoint with the weights' moving average as the
// network's weights ("ema.*" renamed "model.*"), or (use_average false) the
// trained weights without the average.
inline model::checkpoint::Checkpoint WithWeights(const model::checkpoint::Checkpoint& ckpt,
                                                 bool use_average) {
  model::checkpoint::Checkpoint out;
  out.metadata = ckpt.metadata;
  for (const auto& [name, tensor] : ckpt.tensors) {
    const bool trained = name.rfind("model.", 0) == 0, ema = name.rfind("ema.", 0) == 0;
    if (ema && use_average) out.tensors.emplace_back("model." + name.substr(4), tensor);
    if ((trained && !use_average) || (!trained && !ema)) out.tensors.emplace_back(name, tensor);
  }
  return out;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_MODEL_TRAIN_TRAINER_CONTRACT_H_
