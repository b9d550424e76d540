// Training of point-cloud WFM models (DESIGN.md, point clouds steps 1-7):
// per step, a batch of data clouds, source clouds, optional minibatch OT
// re-pairing, per-pair entropic OT and a Monge map, the interpolant
// y + (1 - t)(T(y) - y) with target -(T(y) - y) at t drawn from
// config.time_distribution, and an Adam step on the weighted squared error of
// the velocity network (optimization_state.h: schedule, AdamW, moving
// average). The flow runs in the space of config.feature_transform: the data
// (and user-given source clouds) are transformed once, and the checkpoint's
// metadata "feature_transform" tells the sampler how to map samples back.
#ifndef WFM_MODEL_TRAIN_POINTCLOUD_TRAINER_H_
#define WFM_MODEL_TRAIN_POINTCLOUD_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/checkpoint/checkpoint.h"
#include "model/io/point_sets.h"
#include "model/nn/pointcloud_net.h"
#include "model/noise/pointcloud_noise.h"
#include "model/ot/cloud_costs.h"
#include "model/ot/monge.h"
#include "model/sample/pointcloud_model.h"
#include "model/config/config.h"
#include "model/config/feature_transform.h"
#include "model/config/metadata.h"
#include "model/train/optimization_state.h"
#include "model/train/train_hooks.h"

namespace wfm::model {

class PointCloudTrainer {
 public:
  // A new model for `data` (validated: see io::ValidatePointCloudSet).
  // `source` holds the user-given source clouds for the given_random /
  // given_matched sources (given_matched needs one source cloud per data
  // cloud, same dimension); nullptr otherwise. `dataset` names the data set in
  // the training summary. Labels of `data` make the model conditional
  // (discrete or continuous), which turns minibatch OT off as the reference
  // does. INVALID_ARGUMENT names the field of a bad config or input.
  static absl::StatusOr<std::unique_ptr<PointCloudTrainer>> Create(
      const io::PointCloudSet& data, const PointCloudTrainConfig& config,
      const std::string& dataset, const io::PointCloudSet* source = nullptr,
      const DistributedRole& role = {});

  // Continues a run from a checkpoint made by MakeCheckpoint(true): same
  // parameters, optimizer state, step count and random stream, so the
  // continued run equals an uninterrupted one. `data` and `source` must be
  // the data the run started with; `steps`, when > 0, replaces the total.
  static absl::StatusOr<std::unique_ptr<PointCloudTrainer>> Resume(
      const io::PointCloudSet& data, const checkpoint::Checkpoint& ckpt,
      const io::PointCloudSet* source = nullptr, int64_t steps = 0,
      const DistributedRole& role = {});

  // Fine-tuning: starts from the weights of a served model of this family
  // (its checkpoint; see OptimizationState::InitWeightsFrom). Call before
  // the first step. INVALID_ARGUMENT for another family's checkpoint or a
  // network of another shape.
  absl::Status InitWeightsFrom(const checkpoint::Checkpoint& ckpt);

  // One optimisation step; returns its loss.
  absl::StatusOr<double> Step(const TrainHooks& hooks = {});

  // Steps until config.optimizer.steps are done, reporting progress after
  // every step, checking the cancel flag before every step (CANCELLED), and
  // calling on_checkpoint every config.checkpoint_every steps.
  absl::Status Train(const TrainHooks& hooks = {});

  int64_t step() const { return state_->step(); }
  int64_t total_steps() const { return config_.optimizer.steps; }
  const PointCloudTrainConfig& config() const { return config_; }
  const LabelSpace& labels() const { return labels_.space; }
  TrainingSummary Summary() const;
  const PhaseTimes& phase_times() const { return phases_; }
  void ResetPhaseTimes() { phases_ = {}; }
  nn::PointCloudVelocityNet& network() { return net_; }

  // Everything needed to serve the model, and (with_optimizer) to resume.
  absl::StatusOr<checkpoint::Checkpoint> MakeCheckpoint(bool with_optimizer) const;
  // The current model, as a loaded checkpoint would give it.
  absl::StatusOr<std::shared_ptr<const PointCloudModel>> MakeModel() const;

 private:
  PointCloudTrainer() = default;
  absl::Status Init(const io::PointCloudSet& data, const PointCloudTrainConfig& config,
                    const std::string& dataset, const io::PointCloudSet* source,
                    const DistributedRole& role);

  // A padded batch: clouds [B,N,d] and weights [B,N].
  struct Batch {
    at::Tensor x, w;
  };
  // Clouds `ids` of a set given by points [P,d] and offsets, each cut to a
  // random `subsample` of its points when larger (0 = whole), padded to
  // `pad_to` points (at least the largest cloud).
  Batch Gather(const at::Tensor& points, const std::vector<int64_t>& offsets,
               const std::vector<int64_t>& ids, int64_t subsample, int64_t pad_to);

  PointCloudTrainConfig config_;
  DistributedRole role_;
  std::string dataset_;
  int64_t dim_ = 0;
  at::Tensor points_;              // float32 [P,d]
  std::vector<int64_t> offsets_;   // [C+1]
  EncodedLabels labels_;
  at::Tensor codes_;               // int64 [C] (discrete)
  at::Tensor conditions_;          // float32 [C,k] (continuous)
  at::Tensor source_points_;       // float32 [P_s,d] (given sources)
  std::vector<int64_t> source_offsets_;
  // The features' transform (points_ and source_points_ are transformed).
  FeatureTransform transform_;
  noise::PointCloudStats stats_;
  ot::MongeMapKind monge_ = ot::MongeMapKind::kRoundedMatching;
  ot::CloudCostKind minibatch_cost_ = ot::CloudCostKind::kChamfer;
  bool minibatch_ot_ = false;
  double p_uncond_ = 0.0;

  nn::PointCloudVelocityNet net_{nullptr};
  std::unique_ptr<OptimizationState> state_;
  PhaseTimes phases_;
};

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_POINTCLOUD_TRAINER_H_
