// Sampling of served models through one dynamic batcher per model version
// (see batcher.h): request limits, the batcher map (a new batcher when a
// version is replaced), and the generated-sample metrics. No gRPC here.
#ifndef WFM_SERVER_SAMPLER_H_
#define WFM_SERVER_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "model/common/mutex.h"
#include "model/sample/gaussian_model.h"
#include "model/sample/pointcloud_model.h"
#include "server/batcher.h"
#include "server/model_registry.h"
#include "server/queue_policy.h"

namespace wfm::server {

class Metrics;

struct SamplerOptions {
  BatcherOptions batching;
  model::SampleLimits limits;  // max_samples (per request), max_points (per sample), ...
};

class Sampler {
 public:
  using CloudBatcher =
      Batcher<model::PointCloudModel, model::CloudSampleRequest, model::GeneratedClouds>;
  using GaussianBatcher =
      Batcher<model::GaussianModel, model::GaussianSampleRequest, model::GeneratedGaussians>;

  // `metrics` may be null.
  Sampler(ModelRegistry* models, SamplerOptions options, Metrics* metrics = nullptr);
  ~Sampler();

  // The clouds of one request to `version` (0 = the serving one) of the
  // point-cloud model `model`: NOT_FOUND (unknown model or version),
  // FAILED_PRECONDITION (a model of the other family),
  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED (the request against the model and
  // the limits), then the batcher's codes (DEADLINE_EXCEEDED when it waited
  // longer than policy.timeout in the queue). `cancelled` may be null.
  absl::StatusOr<model::GeneratedClouds> SampleClouds(const std::string& model,
                                                      const model::CloudSampleRequest& request,
                                                      std::function<bool()> cancelled,
                                                      const QueuePolicy& policy = {},
                                                      int64_t version = 0);

  // The same for Gaussian models.
  absl::StatusOr<model::GeneratedGaussians> SampleGaussians(
      const std::string& model, const model::GaussianSampleRequest& request,
      std::function<bool()> cancelled, const QueuePolicy& policy = {}, int64_t version = 0);

  // Drops the batchers of `model` (after a delete; of its `version` only
  // when > 0); in-flight requests finish.
  void Forget(const std::string& model, int64_t version = 0);

  // Requests of `model` waiting in its batcher or being sampled (0 for a
  // model without a batcher): lets tests and diagnostics see a request
  // arrive, which the queue-depth metric, at 0 from the start, cannot show.
  int64_t InFlight(const std::string& model) const;

  const SamplerOptions& options() const { return options_; }

 private:
  using BatcherKey = std::pair<std::string, int64_t>;  // (model, version)
  // The batcher of `key` serving `model`; a new one when the model changed.
  template <typename B>
  std::shared_ptr<B> BatcherFor(const BatcherKey& key,
                                const std::shared_ptr<const typename B::ModelType>& model,
                                const char* family) ABSL_LOCKS_EXCLUDED(mu_);
  // The batchers of B's family.
  template <typename B>
  std::map<BatcherKey, std::shared_ptr<B>>& BatchersOf() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Records the queue depth of one version's batcher and reports the sum
  // over the model's versions (wfm_sampling_queue_depth is per model).
  void ReportQueueDepth(const BatcherKey& key, int64_t depth) ABSL_LOCKS_EXCLUDED(depth_mu_);

  ModelRegistry* const models_;
  const SamplerOptions options_;
  Metrics* const metrics_;
  Mutex depth_mu_;
  std::map<BatcherKey, int64_t> depths_ ABSL_GUARDED_BY(depth_mu_);  // non-zero ones
  mutable Mutex mu_;
  std::map<BatcherKey, std::shared_ptr<CloudBatcher>> cloud_batchers_ ABSL_GUARDED_BY(mu_);
  std::map<BatcherKey, std::shared_ptr<GaussianBatcher>> gaussian_batchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wfm::server

#endif  // WFM_SERVER_SAMPLER_H_
