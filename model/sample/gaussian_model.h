// A trained Gaussian (Bures–Wasserstein) WFM model, immutable once built, and
// its sampler: integration of the learned velocity from source Gaussians at
// t = 1 to generated Gaussians at t = 0 (DESIGN.md, Gaussians step 5) with a
// request's ODE solver (ode_solver.h; Euler by default).
//
// The network predicts (u [d], W [d,d] symmetric) trained so that −u ≈ dm/ds
// and −W ≈ V (Riemannian: dS/ds = V S + S V) or −W ≈ dS/ds (Euclidean), with
// s = 1 − t. A state advances by h along a velocity (u, W) — a single stage's
// or a Runge–Kutta combination Σ w·(u, W) of stages, the tangent quantities
// combined as in any Runge–Kutta scheme — from t to t − h:
//   m ← m − h·u
//   Riemannian: S ← U S Uᵀ,  U = I − h·W  (= I + h·V, the SPD-preserving
//               update; the reference's sampler uses U = I + h·W, a sign bug,
//               see anchors/README.md "Deviations" 1 — reproducible with
//               GaussianSampleRequest::reference_cov_sign for comparisons)
//   Euclidean:  S ← ProjectSpd(S − h·W)  (eigenvalues floored at
//               1e-4 · mean |λ|, as the reference's project_to_psd)
// Stage states and accepted states alike are made by this update, so every
// state the network sees is symmetric positive definite (while U is
// nonsingular). The update matches the exact flow to first order in h only,
// so the higher-order solvers gain their order on the means (and on
// covariances whose W commute along the path), not in general on the
// Riemannian covariances.
// The state is integrated in float64; the network sees float32 inputs.
// Every returned covariance is exactly symmetric and positive definite: a
// final covariance whose Cholesky factorisation fails or whose smallest pivot
// is below 1e-12 of its largest diagonal entry (possible only when a trained
// network drives U singular, or in float64 underflow) is projected with
// ProjectSpd, eigenvalues floored at max(1e-4 · mean |λ|, 1e-8 · the data's
// mean covariance diagonal). Non-finite network outputs fail the request
// with FAILED_PRECONDITION.
//
// Readers share one model through std::shared_ptr<const GaussianModel>;
// Sample() is const and thread-safe (the network runs in eval mode under
// c10::InferenceMode).
#ifndef WFM_MODEL_SAMPLE_GAUSSIAN_MODEL_H_
#define WFM_MODEL_SAMPLE_GAUSSIAN_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/checkpoint/checkpoint.h"
#include "model/io/point_sets.h"
#include "model/nn/gaussian_net.h"
#include "model/noise/gaussian_noise.h"
#include "model/sample/ode_solver.h"
#include "model/sample/sample_limits.h"
#include "model/config/config.h"
#include "model/config/metadata.h"

namespace wfm::model {

// The checkpoint metadata "format" of Gaussian models and its version.
inline constexpr char kGaussianModelFormat[] = "wfm.gaussian_model";
inline constexpr int kGaussianModelVersion = 1;

// One request for generated Gaussians.
struct GaussianSampleRequest {
  int64_t num_samples = 1;
  // Discrete models: a label name; empty = a label drawn uniformly per sample
  // from the model's labels. Other models: must be empty.
  std::string label;
  // Continuous models: one condition vector [cond_dim] shared by every
  // sample, or one per sample [num_samples, cond_dim] row-major; empty = a
  // vector drawn per sample from the training conditions. Other models: must
  // be empty.
  std::vector<float> condition;
  // Classifier-free guidance γ of conditional models: the velocity is
  // v_u + γ (v_c − v_u), v_u under the null condition (label -1, the zero
  // vector); γ 1 is the conditional velocity alone, γ 0 the unconditional
  // one. Unset = default_guidance(). Finite and >= 0; ignored by
  // unconditional models.
  std::optional<double> guidance;
  OdeSolver solver = OdeSolver::kEuler;
  // Fixed-step solvers: steps of size 1/steps; adaptive: the step cap. The
  // default (Euler, 16 steps) is the cheapest setting within seed noise of
  // 100 midpoint steps (wfm_bench nfe; README).
  int64_t steps = 16;
  double rtol = kDefaultRtol;  // adaptive only
  double atol = kDefaultAtol;  // adaptive only
  uint64_t seed = 0;
  bool trajectory = false;
  // Reproduces the reference's covariance update sign (U = I + dt·W), which
  // moves covariances away from the data. For tests and benchmarks only.
  bool reference_cov_sign = false;
  // Given source Gaussians (the reference's init_noise): when init_means is
  // not empty, sample s starts at t = 1 from N(init_means[s], init_covs[s])
  // instead of a drawn source. init_means [num_samples, dim] and init_covs
  // [num_samples, dim, dim], finite; every covariance symmetric positive
  // definite by gaussian::ValidateCovariances (model/gaussian/spd.h).
  std::vector<double> init_means;
  std::vector<double> init_covs;

  OdeSettings ode() const { return {solver, steps, rtol, atol}; }
};

// The Gaussians of one request.
struct GeneratedGaussians {
  int64_t dim = 0;
  std::vector<double> means;        // [num_samples, dim] row-major
  std::vector<double> covs;         // [num_samples, dim, dim] row-major, SPD
  std::vector<std::string> labels;  // discrete: the label of each sample
  std::vector<float> conditions;    // continuous: [num_samples, cond_dim], each sample's
  // When requested: [frames, num_samples, dim] and
  // [frames, num_samples, dim, dim]; frame 0 = the source Gaussians; frames =
  // steps + 1 (adaptive: accepted steps + 1) at the times trajectory_times
  // (1 down to 0). The last frame is the integrator's state before the final
  // SPD safeguard (identical to `covs` unless the safeguard had to act).
  std::vector<double> trajectory_means;
  std::vector<double> trajectory_covs;
  std::vector<double> trajectory_times;
  int64_t evaluations = 0;  // network evaluations of the ODE solver (NFE)
};

// The generated Gaussians as a Gaussian set (dimension, means and
// covariances), e.g. to evaluate them against data.
io::GaussianSet ToGaussianSet(GeneratedGaussians generated);

// The network configuration of a model: the training config's sizes and
// architecture, the data's dimension and the number of discrete labels or
// the condition vectors' length.
// INVALID_ARGUMENT for an unknown architecture name.
absl::StatusOr<nn::GaussianNetConfig> GaussianNetConfigFor(const GaussianTrainConfig& config,
                                                           const LabelSpace& labels, int64_t dim);

class GaussianModel {
 public:
  // A model from a checkpoint written by GaussianTrainer (optimizer state, if
  // any, is ignored; the weights are the moving average "ema.*" when the
  // checkpoint has one, "model.*" otherwise). INVALID_ARGUMENT / DATA_LOSS
  // for a checkpoint of another family or with inconsistent content.
  static absl::StatusOr<std::shared_ptr<const GaussianModel>> FromCheckpoint(
      const checkpoint::Checkpoint& ckpt);
  // Read + FromCheckpoint.
  static absl::StatusOr<std::shared_ptr<const GaussianModel>> Load(const std::string& path);

  int64_t dim() const { return stats_.dim; }
  const LabelSpace& labels() const { return labels_; }
  const GaussianTrainConfig& config() const { return config_; }
  const TrainingSummary& summary() const { return summary_; }
  const noise::GaussianStats& data_stats() const { return stats_; }
  // The checkpoint metadata this model was built from.
  const nlohmann::json& metadata() const { return metadata_; }
  int64_t parameter_count() const;
  // Bytes the model holds: the network's parameters and buffers and the
  // stored conditions and source Gaussians.
  int64_t memory_bytes() const;
  // γ used when a request leaves it unset: the training guidance when > 1
  // (the model learned the null condition), 1 otherwise.
  double default_guidance() const;

  // Field-named INVALID_ARGUMENT (bad values, unknown label, a label or
  // condition the model does not take, a condition of the wrong length or
  // not finite) or RESOURCE_EXHAUSTED (over `limits`; max_points is not
  // used).
  absl::Status ValidateRequest(const GaussianSampleRequest& request,
                               const SampleLimits& limits = {}) const;

  // Generates every request's Gaussians. Samples of one fixed-step solver,
  // step count and update rule are integrated together in one batch,
  // whatever request they belong to; an adaptive request is integrated on its
  // own time grid. Each request draws its labels (or condition vectors, when
  // it gives none) and source Gaussians from its own seed, and every
  // per-sample computation is independent of the other rows of the batch, so
  // a request's result is bit-identical whatever it is batched with.
  // `cancelled`, when set, is polled every integration step (CANCELLED once
  // it returns true).
  absl::StatusOr<std::vector<GeneratedGaussians>> Sample(
      const std::vector<GaussianSampleRequest>& requests,
      const std::function<bool()>& cancelled = nullptr) const;

 private:
  GaussianModel() = default;

  // The init_* fields of a request (field-named errors).
  absl::Status ValidateInit(const GaussianSampleRequest& request) const;

  // The source Gaussians and label codes of one request; its condition
  // vectors go to out->conditions.
  absl::Status PrepareRequest(const GaussianSampleRequest& request, std::vector<double>* means,
                              std::vector<double>* covs, std::vector<int64_t>* codes,
                              GeneratedGaussians* out) const;

  nlohmann::json metadata_;
  GaussianTrainConfig config_;
  LabelSpace labels_;
  TrainingSummary summary_;
  noise::GaussianStats stats_;
  noise::WishartSource wishart_;
  bool riemannian_ = true;
  // User-given source Gaussians (means [S,d], covs [S,d,d]) when the model
  // was trained from them; sampling draws from them uniformly.
  std::vector<double> source_means_;
  std::vector<double> source_covs_;
  // Continuous models: the training items' condition vectors [C, cond_dim],
  // from which requests without one draw.
  std::vector<float> train_conditions_;
  // The network is stateless in eval mode; forward() is not const in
  // LibTorch, hence mutable.
  mutable nn::GaussianVelocityNet net_{nullptr};
};

}  // namespace wfm::model

#endif  // WFM_MODEL_SAMPLE_GAUSSIAN_MODEL_H_
