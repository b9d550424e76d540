// A trained point-cloud WFM model, immutable once built, and its sampler:
// integration of the learned velocity from noise at t = 1 to generated
// clouds at t = 0 (DESIGN.md, point clouds step 8) with a request's ODE
// solver (ode_solver.h; midpoint by default).
//
// Readers share one model through std::shared_ptr<const PointCloudModel>;
// Sample() is const and thread-safe (the network runs in eval mode under
// c10::InferenceMode).
#ifndef WFM_MODEL_SAMPLE_POINTCLOUD_MODEL_H_
#define WFM_MODEL_SAMPLE_POINTCLOUD_MODEL_H_

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
#include "model/nn/pointcloud_inference.h"
#include "model/nn/pointcloud_net.h"
#include "model/noise/pointcloud_noise.h"
#include "model/sample/ode_solver.h"
#include "model/sample/sample_limits.h"
#include "model/config/config.h"
#include "model/config/feature_transform.h"
#include "model/config/metadata.h"

namespace wfm::model {

// The checkpoint metadata "format" of point-cloud models and its version.
inline constexpr char kPointCloudModelFormat[] = "wfm.pointcloud_model";
inline constexpr int kPointCloudModelVersion = 1;

// One request for generated clouds.
struct CloudSampleRequest {
  int64_t num_samples = 1;
  // Points per cloud; 0 = each cloud's size is drawn from the training clouds
  // (of the requested label, for discrete labels). Must be 0 for models whose
  // source clouds were given by the user (a generated cloud has the size of
  // the source cloud it starts from).
  int64_t points = 0;
  // Discrete models: a label name; empty = a label drawn per sample from the
  // training labels. Other models: must be empty.
  std::string label;
  // Continuous models: a condition vector [cond_dim]; empty = drawn per sample
  // from the training conditions. Other models: must be empty.
  std::vector<float> condition;
  // Classifier-free guidance γ (v_u + γ (v_c − v_u)); unset = the model's.
  std::optional<double> guidance;
  OdeSolver solver = OdeSolver::kMidpoint;
  // Fixed-step solvers: steps of size 1/steps; adaptive: the step cap. The
  // default (midpoint, 1 step: 2 network evaluations) is the cheapest setting
  // within seed noise of 100 midpoint steps (wfm_bench nfe; README).
  int64_t steps = 1;
  double rtol = kDefaultRtol;  // adaptive only
  double atol = kDefaultAtol;  // adaptive only
  uint64_t seed = 0;
  bool trajectory = false;
  // Given source clouds (the reference's init_noise): when init_sizes is not
  // empty, sample s starts at t = 1 from its own cloud, points
  // init_points[sum(init_sizes[0..s)) .. + init_sizes[s]) in the data's space
  // (mapped into the space the flow was trained in first), instead of a drawn
  // noise cloud; no sizes or sources are drawn. One cloud per sample
  // (init_sizes.size() == num_samples), each of 1 to limits.max_points
  // points, init_points [sum(init_sizes), dim] finite (non-negative under a
  // log1p feature transform); `points` must then be 0 or equal every size.
  std::vector<float> init_points;
  std::vector<int64_t> init_sizes;

  OdeSettings ode() const { return {solver, steps, rtol, atol}; }
};

// The clouds of one request.
struct GeneratedClouds {
  int64_t dim = 0;
  std::vector<int64_t> offsets;     // [num_samples + 1]
  std::vector<float> points;        // [P, dim] row-major
  std::vector<std::string> labels;  // discrete: the label of each sample
  std::vector<float> conditions;    // continuous: [num_samples, cond_dim]
  // When requested: [frames, P, dim], frame 0 = the source clouds; frames =
  // steps + 1 (adaptive: accepted steps + 1), at the times trajectory_times
  // (1 down to 0).
  std::vector<float> trajectory;
  std::vector<double> trajectory_times;
  int64_t evaluations = 0;  // network evaluations of the ODE solver (NFE)
};

// The generated clouds as a point-cloud set (dimension, points and offsets),
// e.g. to evaluate them against data.
io::PointCloudSet ToPointCloudSet(GeneratedClouds generated);

// The network configuration of a model: the training config's sizes, the
// data's dimension and the label space's conditioning.
nn::PointCloudNetConfig PointCloudNetConfigFor(const PointCloudTrainConfig& config,
                                               const LabelSpace& labels, int64_t dim);

class PointCloudModel {
 public:
  // A model from a checkpoint written by PointCloudTrainer (optimizer state,
  // if any, is ignored; the weights are the moving average "ema.*" when the
  // checkpoint has one, "model.*" otherwise). INVALID_ARGUMENT / DATA_LOSS
  // for a checkpoint of another family or with inconsistent content.
  static absl::StatusOr<std::shared_ptr<const PointCloudModel>> FromCheckpoint(
      const checkpoint::Checkpoint& ckpt);
  // Read + FromCheckpoint.
  static absl::StatusOr<std::shared_ptr<const PointCloudModel>> Load(const std::string& path);

  int64_t dim() const { return stats_.dim; }
  const LabelSpace& labels() const { return labels_; }
  const PointCloudTrainConfig& config() const { return config_; }
  const TrainingSummary& summary() const { return summary_; }
  // The checkpoint metadata this model was built from.
  const nlohmann::json& metadata() const { return metadata_; }
  // γ used when a request leaves it unset: the training guidance when > 1
  // (a model trained with label dropout), else 1 (conditional only).
  double default_guidance() const;
  int64_t parameter_count() const;
  // Bytes the model holds: the network's parameters and buffers, its packed
  // inference copy and the stored conditions and source clouds.
  int64_t memory_bytes() const;

  // Field-named INVALID_ARGUMENT (bad values, unknown label, wrong condition
  // length) or RESOURCE_EXHAUSTED (over `limits`).
  absl::Status ValidateRequest(const CloudSampleRequest& request,
                               const SampleLimits& limits = {}) const;

  // Generates every request's clouds. Requests of one fixed-step solver, step
  // count and guidance mode are integrated together (clouds of one size in
  // one batch), whatever request they belong to; an adaptive request is
  // integrated on its own time grid. Each request draws its labels, sizes and
  // source clouds from its own seed and each cloud's velocity depends on that
  // cloud alone, so its result does not depend on the other requests. `cancelled`, when set,
  // is polled every integration step (CANCELLED once it returns true).
  absl::StatusOr<std::vector<GeneratedClouds>> Sample(
      const std::vector<CloudSampleRequest>& requests,
      const std::function<bool()>& cancelled = nullptr) const;

 private:
  PointCloudModel() = default;

  // The init_* fields of a request (field-named errors).
  absl::Status ValidateInit(const CloudSampleRequest& request, const SampleLimits& limits) const;

  // One cloud to generate: request r, sample s.
  struct CloudJob;
  absl::Status PrepareJobs(const CloudSampleRequest& request, size_t r,
                           std::vector<CloudJob>* jobs, GeneratedClouds* out) const;

  nlohmann::json metadata_;
  PointCloudTrainConfig config_;
  LabelSpace labels_;
  TrainingSummary summary_;
  noise::PointCloudStats stats_;
  // Training cloud sizes: all of them, and per discrete label code.
  std::vector<int64_t> sizes_;
  std::vector<std::vector<int64_t>> sizes_by_label_;
  // Continuous models: the training condition vectors [C, cond_dim].
  std::vector<float> train_conditions_;
  // User-given source clouds (points [P,d], offsets [S+1]) when the model was
  // trained from them.
  std::vector<float> source_points_;
  std::vector<int64_t> source_offsets_;
  // The network is stateless in eval mode; forward() is not const in
  // LibTorch, hence mutable.
  mutable nn::PointCloudVelocityNet net_{nullptr};
  // The features' transform the flow was trained in (samples are mapped
  // back with its inverse; the identity for older checkpoints).
  FeatureTransform transform_;
  // Its weights packed for sampling (nn/pointcloud_inference.h).
  std::unique_ptr<const nn::PointCloudInference> inference_;
};

}  // namespace wfm::model

#endif  // WFM_MODEL_SAMPLE_POINTCLOUD_MODEL_H_
