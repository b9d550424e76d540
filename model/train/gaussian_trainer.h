// Training of Gaussian (Bures–Wasserstein) WFM models (DESIGN.md, Gaussians
// steps 1-4 and 6). Per step, with time running from the source at t = 1 to
// the data at t = 0 and s = 1 − t:
//   1. a batch of B data Gaussians N(m1, S1) (drawn with replacement) and B
//      source Gaussians N(m0, S0) (Wishart, or user-given: drawn at random,
//      or the data item's own for given_matched);
//   2. optionally (unconditional models whose sources are not matched) the
//      minibatch OT re-pairing: the B×B squared Bures–Wasserstein cost
//      between data and sources, entropic OT at ε = minibatch_epsilon relative
//      to its largest entry (200 iterations) and a rounded matching (the
//      reference always uses ε = 0.002, the config's default, whatever its
//      minibatch_ot_eps says);
//   3. t per item (U(0,1), or config.time_distribution); the Monge map (A, b) from source to data, the
//      McCann point (m_s, S_s) and the target velocity (dm/ds, V) with
//      dS/ds = V S_s + S_s V (Riemannian, the default) or (dm/ds, dS/ds)
//      (Euclidean);
//   4. the network sees (m_s, lower triangle of S_s, t [, condition]) and predicts
//      (u, L); with W = L + Lᵀ the loss is the tangent norm
//      |−u − dm/ds|² + tr(S_s ΔV ΔV), ΔV = −W − V (default) or the Euclidean
//      norm |−u − dm/ds|² + |−W − target|²_F / d, averaged over the batch;
//   5. an Adam step (FusedAdamStep: torch::optim::Adam's update and state in
//      one pass; optimization_state.h for the other schedules, AdamW and the
//      moving average) at lr · rate^(step / decay_steps) with, as the reference,
//      decay_steps replaced by min(decay_steps, total_steps / 100) (integer
//      division; a constant learning rate when that is 0). The effective value
//      is fixed when the run is created and kept on resume.
// The geometry runs in float64 (model/gaussian), the network in float32.
//
// Conditions: discrete labels or continuous condition vectors (one per data
// Gaussian) make the model conditional (and turn minibatch OT off, as the
// reference does); each item is seen with its own label or vector. With
// guidance > 1 (classifier-free guidance at sampling) each item's label or
// vector is replaced by the null one (label -1, the zero vector) with
// probability p_uncond, drawn from the run's stream after the flow times, so
// the same network learns the unconditional velocity too.
#ifndef WFM_MODEL_TRAIN_GAUSSIAN_TRAINER_H_
#define WFM_MODEL_TRAIN_GAUSSIAN_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/checkpoint/checkpoint.h"
#include "model/io/point_sets.h"
#include "model/nn/gaussian_net.h"
#include "model/noise/gaussian_noise.h"
#include "model/sample/gaussian_model.h"
#include "model/config/config.h"
#include "model/config/metadata.h"
#include "model/train/optimization_state.h"
#include "model/train/train_hooks.h"

namespace wfm::model {

// Gaussian data from point clouds: per cloud the mean and the covariance
// Σ (x − mean)(x − mean)ᵀ / (n − ddof) + ridge · I (ddof 1: numpy.cov, the
// reference's mean_and_cov_from_pointclouds without its global min-max
// rescaling; ddof 0: the population covariance). Labels are carried over.
// INVALID_ARGUMENT for an invalid set, ddof outside {0, 1}, ridge < 0, a cloud
// with <= ddof points, or a resulting covariance that is not positive
// definite (naming the cloud; add a ridge for clouds of fewer than d + ddof
// points).
absl::StatusOr<io::GaussianSet> GaussiansFromPointClouds(const io::PointCloudSet& clouds,
                                                         int ddof = 1, double ridge = 0.0);

class GaussianTrainer {
 public:
  // A new model for `data` (validated: see io::ValidateGaussianSet).
  // `source` holds the user-given source Gaussians for the given_random /
  // given_matched sources (given_matched needs one per data Gaussian, same
  // dimension); nullptr otherwise. `dataset` names the data set in the
  // training summary. INVALID_ARGUMENT names the field of a bad config or
  // input.
  static absl::StatusOr<std::unique_ptr<GaussianTrainer>> Create(
      const io::GaussianSet& data, const GaussianTrainConfig& config, const std::string& dataset,
      const io::GaussianSet* source = nullptr, const DistributedRole& role = {});

  // Continues a run from a checkpoint made by MakeCheckpoint(true): same
  // parameters, optimizer state, step count, learning-rate schedule and
  // random stream, so the continued run equals an uninterrupted one. `data`
  // and `source` must be the data the run started with; `steps`, when > 0,
  // replaces the total.
  static absl::StatusOr<std::unique_ptr<GaussianTrainer>> Resume(
      const io::GaussianSet& data, const checkpoint::Checkpoint& ckpt,
      const io::GaussianSet* source = nullptr, int64_t steps = 0,
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
  const GaussianTrainConfig& config() const { return config_; }
  const LabelSpace& labels() const { return labels_.space; }
  const noise::GaussianStats& data_stats() const { return stats_; }
  // The decay_steps the learning-rate schedule uses (see step 5 above).
  int64_t effective_decay_steps() const { return state_->decay_steps(); }
  // Whether minibatch OT runs (config, unconditional, sources not matched).
  bool minibatch_ot() const { return minibatch_ot_; }
  // The probability of the null condition per item (0 unless conditional
  // with guidance > 1).
  double p_uncond() const { return p_uncond_; }
  TrainingSummary Summary() const;
  const PhaseTimes& phase_times() const { return phases_; }
  void ResetPhaseTimes() { phases_ = {}; }
  nn::GaussianVelocityNet& network() { return net_; }

  // Everything needed to serve the model, and (with_optimizer) to resume.
  // Tensors: "model.*" (network), "ema.*" (its moving average, with
  // optimizer.ema_decay > 0; what sampling uses), "source.means" float64 [S,d] and
  // "source.covs" float64 [S,d,d] (given sources), "data.label_codes" int64
  // [C] (labelled data), "data.conditions" float32 [C, cond_dim] (condition
  // vectors); with_optimizer adds "optimizer.*" and "trainer.rng".
  // Metadata: ModelMetadata(...) + "data_stats" (+ "trainer").
  absl::StatusOr<checkpoint::Checkpoint> MakeCheckpoint(bool with_optimizer) const;
  // The current model, as a loaded checkpoint would give it.
  absl::StatusOr<std::shared_ptr<const GaussianModel>> MakeModel() const;

 private:
  GaussianTrainer() = default;
  absl::Status Init(const io::GaussianSet& data, const GaussianTrainConfig& config,
                    const std::string& dataset, const io::GaussianSet* source,
                    const DistributedRole& role);

  GaussianTrainConfig config_;
  DistributedRole role_;
  std::string dataset_;
  int64_t dim_ = 0;
  int64_t count_ = 0;
  at::Tensor means_;         // float64 [C,d]
  at::Tensor covs_;          // float64 [C,d,d]
  EncodedLabels labels_;
  at::Tensor codes_;         // int64 [C] (discrete)
  at::Tensor conditions_;    // float32 [C, cond_dim] (continuous)
  at::Tensor source_means_;  // float64 [S,d] (given sources)
  at::Tensor source_covs_;   // float64 [S,d,d]
  noise::GaussianStats stats_;
  noise::WishartSource wishart_;
  bool minibatch_ot_ = false;
  double p_uncond_ = 0.0;
  bool riemannian_ = true;
  bool tangent_loss_ = true;

  nn::GaussianVelocityNet net_{nullptr};
  std::unique_ptr<OptimizationState> state_;
  PhaseTimes phases_;
};

}  // namespace wfm::model

#endif  // WFM_MODEL_TRAIN_GAUSSIAN_TRAINER_H_
