// Training configurations of the two families, with the reference's defaults
// where the reference has one (the only place defaults are written), and the
// aggregate of a whole run. Every member is an option of the table in
// options.h, which derives validation, JSON, flags and the API mapping.
#ifndef WFM_MODEL_CONFIG_CONFIG_H_
#define WFM_MODEL_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::model {

enum class Family { kPointCloud, kGaussian };
std::string FamilyName(Family family);  // "pointcloud", "gaussian"
absl::StatusOr<Family> ParseFamily(absl::string_view name);

// Network size. Point clouds: transformer width (embedding), heads, layers,
// MLP hidden width, dropout. Gaussians: MLP width, layers, MLP hidden width,
// architecture ("separate" towers for mean and covariance, or "joint").
struct NetworkConfig {
  int64_t width = 128;
  int64_t heads = 4;
  int64_t layers = 3;
  int64_t mlp_hidden = 256;
  double dropout = 0.1;
  std::string architecture = "separate";
};

// Adam (AdamW with a weight decay) at a scheduled learning rate: the
// reference's exponential decay lr · rate^(step / decay_steps)
// (optax.exponential_decay, not staircased; constant when decay_steps = 0) or
// a cosine from lr to 0 over the run, either after a linear warm-up; an
// exponential moving average of the weights for sampling; and the bounds of
// the run (steps, and a wall-clock budget).
struct OptimizerConfig {
  int64_t steps = 2000;
  int64_t batch_size = 16;
  double learning_rate = 2e-4;
  std::string lr_schedule = "exponential";  // exponential | cosine
  int64_t decay_steps = 1000;               // exponential
  double decay_rate = 0.998;                // exponential
  int64_t warmup_steps = 0;  // lr · (step + 1) / warmup_steps for the first steps
  double weight_decay = 0.0;  // decoupled (AdamW); 0 = Adam
  double grad_clip_norm = 0.0;  // 0 = no clipping
  // Decay of the exponential moving average of the weights that sampling
  // uses (0 = none: sampling uses the trained weights). 0.999 by default:
  // held-out 1-NNA improved on shapes and cell states and stayed within seed
  // noise on niches (README, Generation quality).
  double ema_decay = 0.999;
  // Training ends after the step during which this many seconds of training
  // have passed (0 = no budget; `steps` bounds the run either way).
  double time_budget_seconds = 0.0;
  uint64_t seed = 0;
};

// Source ("noise") of the point-cloud flow at t = 1.
enum class PointCloudSource {
  kUniform,      // uniform on the data's [min, max] box
  kNormal,       // truncated N(0,1) at ±3σ rescaled to the data's [min, max]
  kCholNormal,   // Gaussian blobs, Cholesky factor ~ data mean factor ± std
  kMetaNormal,   // Gaussian blobs, Wishart covariance around the data mean
  kGivenRandom,  // user-given source clouds, drawn at random
  kGivenMatched, // user-given source clouds, one-to-one with the data clouds
};
std::string PointCloudSourceName(PointCloudSource source);
absl::StatusOr<PointCloudSource> ParsePointCloudSource(absl::string_view name);

struct PointCloudTrainConfig {
  NetworkConfig network;
  OptimizerConfig optimizer;
  // Per-pair OT between noise and data clouds.
  std::string monge_map = "rounded_matching";  // entropic|argmax|rounded_matching|sample|euclidean
  double epsilon = 0.002;           // relative to each pair's max cost
  int64_t sinkhorn_iterations = 200;  // 0 = until the L1 marginal error < sinkhorn_tolerance
  double sinkhorn_tolerance = 1e-3;
  // Minibatch OT between the batch's data and noise clouds (unconditional only).
  bool minibatch_ot = true;
  std::string minibatch_cost = "chamfer";  // chamfer|entropic|euclidean|frechet
  double minibatch_cost_epsilon = 0.01;    // absolute ε of the 'entropic' cloud cost
  double minibatch_epsilon = 0.002;        // relative ε of the pairing itself
  // Source.
  PointCloudSource source = PointCloudSource::kCholNormal;
  double noise_df_scale = 2.0;
  // Conditioning (when the data set has labels or condition vectors).
  double guidance = 1.5;  // γ used by default at sampling; > 1 enables p_uncond
  double p_uncond = 0.1;
  // Random subsets of at most this many points per data / source cloud per
  // step (0 = whole clouds).
  int64_t subsample_points = 0;
  int64_t source_subsample_points = 0;
  // Distribution of the flow time t in training: uniform | logit_normal.
  std::string time_distribution = "uniform";
  // Transform of the points' coordinates (features) the flow is trained in;
  // samples are mapped back. none | log1p | standardize | log1p_standardize
  // (per-feature mean 0, standard deviation 1, after log1p) | auto
  // (log1p_standardize for count data — every value a non-negative integer —,
  // none otherwise; servers and wfm-train keep auto only for the niches of
  // SPATIAL_CELLS data sets and train other data with none,
  // repository::ConfigForData). See feature_transform.h.
  std::string feature_transform = "auto";
  int64_t checkpoint_every = 0;  // steps between checkpoints (0 = only at the end)
};

enum class GaussianSource { kWishart, kGivenRandom, kGivenMatched };
std::string GaussianSourceName(GaussianSource source);
absl::StatusOr<GaussianSource> ParseGaussianSource(absl::string_view name);

struct GaussianTrainConfig {
  NetworkConfig network;
  OptimizerConfig optimizer;
  bool minibatch_ot = true;          // Bures–Wasserstein cost, ε 0.002 relative
  double minibatch_epsilon = 0.002;
  std::string velocity = "riemannian";  // riemannian|euclidean
  std::string loss = "tangent";         // tangent|euclidean
  GaussianSource source = GaussianSource::kWishart;
  double degrees_of_freedom_scale = 5.0;
  double mean_scale_factor = 1.0;
  double cov_scale_factor = 1.0;
  std::string time_distribution = "uniform";  // uniform | logit_normal
  // Conditioning (labels or condition vectors): as the point-cloud options,
  // but guidance is off unless asked for (γ 1), so that models trained
  // before these options sample as they were trained.
  double guidance = 1.0;  // γ used by default at sampling; > 1 enables p_uncond
  double p_uncond = 0.1;
  int64_t checkpoint_every = 0;
};

// Everything a training run can set (the API's wfm.v1.TrainingConfig): the
// family, that family's configuration, and what the run takes from the data
// set. Both family configurations are always present; only `family`'s is
// used.
struct TrainingConfig {
  Family family = Family::kPointCloud;
  PointCloudTrainConfig pointcloud;
  GaussianTrainConfig gaussian;
  // Data set of user-given source clouds / Gaussians (noise given_random or
  // given_matched); empty otherwise.
  std::string source_dataset;
  // SPATIAL_CELLS data sets: niche size k (nearest spatial neighbours within
  // a sample).
  int64_t niche_size = 8;
  // Fraction of the data set's items held out of training, in [0, 1).
  double holdout_fraction = 0.0;

  // The selected family's network and optimizer settings and checkpoint
  // interval.
  const NetworkConfig& network() const;
  const OptimizerConfig& optimizer() const;
  int64_t steps() const { return optimizer().steps; }
  uint64_t seed() const { return optimizer().seed; }
  int64_t checkpoint_every() const;
};

// The family configurations through the option table (options.h): range
// checks with messages naming the field path ("network.width: ...",
// "optimizer.steps: ..."), and the JSON that checkpoints store (absent keys
// keep their defaults; the result is validated).
absl::Status ValidatePointCloudTrainConfig(const PointCloudTrainConfig& c);
absl::Status ValidateGaussianTrainConfig(const GaussianTrainConfig& c);
nlohmann::json ToJson(const PointCloudTrainConfig& c);
nlohmann::json ToJson(const GaussianTrainConfig& c);
absl::StatusOr<PointCloudTrainConfig> PointCloudTrainConfigFromJson(const nlohmann::json& j);
absl::StatusOr<GaussianTrainConfig> GaussianTrainConfigFromJson(const nlohmann::json& j);

}  // namespace wfm::model

#endif  // WFM_MODEL_CONFIG_CONFIG_H_
