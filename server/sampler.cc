#include "server/sampler.h"

#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/config/config.h"
#include "server/metrics.h"

namespace wfm::server {

Sampler::Sampler(ModelRegistry* models, SamplerOptions options, Metrics* metrics)
    : models_(models), options_(options), metrics_(metrics) {}

Sampler::~Sampler() {
  std::map<std::string, std::shared_ptr<CloudBatcher>> clouds;
  std::map<std::string, std::shared_ptr<GaussianBatcher>> gaussians;
  MutexLock lock(&mu_);
  clouds.swap(cloud_batchers_);
  gaussians.swap(gaussian_batchers_);
}

template <typename B>
std::map<std::string, std::shared_ptr<B>>& Sampler::BatchersOf() {
  if constexpr (std::is_same_v<B, CloudBatcher>) {
    return cloud_batchers_;
  } else {
    return gaussian_batchers_;
  }
}

template <typename B>
std::shared_ptr<B> Sampler::BatcherFor(const std::string& name,
                                       const std::shared_ptr<const typename B::ModelType>& model,
                                       const char* family) {
  std::shared_ptr<B> replaced;  // destroyed after the lock is released
  MutexLock lock(&mu_);
  std::shared_ptr<B>& slot = BatchersOf<B>()[name];
  if (slot == nullptr || slot->model() != model) {
    BatchObserver observer;
    if (metrics_ != nullptr) {
      observer.on_batch = [m = metrics_, family](int64_t requests, int64_t samples) {
        m->ObserveSamplingBatch(family, requests, samples);
      };
      observer.on_queue_depth = [m = metrics_, name](int64_t depth) {
        m->SetQueueDepth(name, depth);
      };
      observer.on_queue_wait = [m = metrics_, name](QueuePriority priority, double seconds) {
        m->ObserveQueueWait(name, QueuePriorityName(priority), seconds);
      };
      observer.on_queue_timeout = [m = metrics_, name] { m->AddQueueTimeout(name); };
    }
    replaced = std::exchange(
        slot, std::make_shared<B>(name, model, options_.batching, std::move(observer)));
  }
  return slot;
}

absl::StatusOr<model::GeneratedClouds> Sampler::SampleClouds(
    const std::string& model, const model::CloudSampleRequest& request,
    std::function<bool()> cancelled, const QueuePolicy& policy) {
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const Servable> servable, models_->Get(model));
  if (servable->pointcloud == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model: '", model, "' is a ", model::FamilyName(servable->info.family),
        " model; sample it with SampleGaussians"));
  }
  WFM_RETURN_IF_ERROR(servable->pointcloud->ValidateRequest(request, options_.limits));
  std::shared_ptr<CloudBatcher> batcher =
      BatcherFor<CloudBatcher>(model, servable->pointcloud, "pointcloud");
  WFM_ASSIGN_OR_RETURN(model::GeneratedClouds clouds, batcher->Run(request, policy, std::move(cancelled)));
  if (metrics_ != nullptr) {
    const int64_t points = clouds.offsets.empty() ? 0 : clouds.offsets.back();
    metrics_->AddGenerated(model, "pointcloud", request.num_samples, points);
    metrics_->AddNetworkEvaluations(model, "pointcloud", model::OdeSolverName(request.solver),
                                    clouds.evaluations);
  }
  return clouds;
}

absl::StatusOr<model::GeneratedGaussians> Sampler::SampleGaussians(
    const std::string& model, const model::GaussianSampleRequest& request,
    std::function<bool()> cancelled, const QueuePolicy& policy) {
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const Servable> servable, models_->Get(model));
  if (servable->gaussian == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model: '", model, "' is a ", model::FamilyName(servable->info.family),
        " model; sample it with SampleNiches"));
  }
  WFM_RETURN_IF_ERROR(servable->gaussian->ValidateRequest(request, options_.limits));
  std::shared_ptr<GaussianBatcher> batcher =
      BatcherFor<GaussianBatcher>(model, servable->gaussian, "gaussian");
  WFM_ASSIGN_OR_RETURN(model::GeneratedGaussians gaussians,
                       batcher->Run(request, policy, std::move(cancelled)));
  if (metrics_ != nullptr) {
    metrics_->AddGenerated(model, "gaussian", request.num_samples, 0);
    metrics_->AddNetworkEvaluations(model, "gaussian", model::OdeSolverName(request.solver),
                                    gaussians.evaluations);
  }
  return gaussians;
}

int64_t Sampler::InFlight(const std::string& model) const {
  MutexLock lock(&mu_);
  int64_t n = 0;
  if (auto it = cloud_batchers_.find(model); it != cloud_batchers_.end()) {
    n += it->second->in_flight();
  }
  if (auto it = gaussian_batchers_.find(model); it != gaussian_batchers_.end()) {
    n += it->second->in_flight();
  }
  return n;
}

void Sampler::Forget(const std::string& model) {
  std::shared_ptr<CloudBatcher> clouds;  // destroyed after the lock is released
  std::shared_ptr<GaussianBatcher> gaussians;
  MutexLock lock(&mu_);
  if (auto it = cloud_batchers_.find(model); it != cloud_batchers_.end()) {
    clouds = std::move(it->second);
    cloud_batchers_.erase(it);
  }
  if (auto it = gaussian_batchers_.find(model); it != gaussian_batchers_.end()) {
    gaussians = std::move(it->second);
    gaussian_batchers_.erase(it);
  }
}

}  // namespace wfm::server
