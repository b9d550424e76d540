// Evaluate: samples a served model and compares the samples with a stored
// data set, or with the items its training held out (model/eval metrics:
// 1-NNA, MMD and COV under the Chamfer and EMD distances for point clouds,
// under the squared Bures–Wasserstein distance for Gaussians). SPATIAL_CELLS
// data sets are compared through their niches (the model's niche size) or
// niche Gaussians. No gRPC here.
#ifndef WFM_SERVER_EVALUATOR_H_
#define WFM_SERVER_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "model/eval/metrics.h"
#include "model/sample/pointcloud_model.h"
#include "model/config/config.h"
#include "server/dataset_store.h"
#include "server/model_registry.h"

namespace wfm::server {

struct EvaluateOptions {
  std::string split = "all";  // "all" | "heldout"
  int64_t num_samples = 0;    // 0 = as many as the reference, at most kDefaultEvaluateItems
  int64_t max_reference = 0;  // 0 = at most kDefaultEvaluateItems, drawn with the seed
  int64_t steps = 100;
  std::string solver;  // ODE solver name; empty = the family's default
  std::optional<double> rtol, atol;  // adaptive solver only
  uint64_t seed = 0;
  bool emd = true;
};

inline constexpr int64_t kDefaultEvaluateItems = 256;
inline constexpr int64_t kMaxEvaluateItems = 4096;

struct EvaluationResult {
  model::Family family = model::Family::kPointCloud;
  int64_t generated = 0;
  int64_t reference = 0;
  model::eval::DistributionMetrics chamfer;  // point clouds
  model::eval::DistributionMetrics emd;      // point clouds, when has_emd
  bool has_emd = false;
  model::eval::DistributionMetrics bures;    // Gaussians
  double mean_error = 0.0;
  double covariance_error = 0.0;
  double seconds = 0.0;
};

// INVALID_ARGUMENT: bad options, a data set of another family or dimension;
// FAILED_PRECONDITION: "heldout" for a model that held nothing out of this
// data set, or whose data set changed since; RESOURCE_EXHAUSTED: beyond
// kMaxEvaluateItems or the sampling limits; CANCELLED when `cancelled`
// turns true during sampling.
absl::StatusOr<EvaluationResult> EvaluateModel(const Servable& servable, const DatasetData& data,
                                               const EvaluateOptions& options,
                                               const model::SampleLimits& limits,
                                               const std::function<bool()>& cancelled);

}  // namespace wfm::server

#endif  // WFM_SERVER_EVALUATOR_H_
