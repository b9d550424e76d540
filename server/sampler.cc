#include "server/sampler.h"

#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/config/config.h"
#include "server/metrics.h"

namespace wfm::server {

Sampler::Sampler(ModelRegistry* models, SamplerOptions options, Metrics* metrics)
    : models_(models), options_(options), metrics_(metrics) {}

Sampler::~Sampler() {
  std::map<BatcherKey, std::shared_ptr<CloudBatcher>> clouds;
  std::map<BatcherKey, std::shared_ptr<GaussianBatcher>> gaussians;
  MutexLock lock(&mu_);
  clouds.swap(cloud_batchers_);
  gaussians.swap(gaussian_batchers_);
}

template <typename B>
std::map<Sampler::BatcherKey, std::shared_ptr<B>>& Sampler::BatchersOf() {
  if constexpr (std::is_same_v<B, CloudBatcher>) {
    return cloud_batchers_;
  } else {
    return gaussian_batchers_;
  }
}

template <typename B>
std::shared_ptr<B> Sampler::BatcherFor(const BatcherKey& key,
                                       const std::shared_ptr<const typename B::ModelType>& model,
                                       const char* family) {
  // Destroyed after the lock is released.
  std::shared_ptr<B> replaced;
  std::vector<std::shared_ptr<B>> stale;
  const std::string& name = key.first;
  MutexLock lock(&mu_);
  std::map<BatcherKey, std::shared_ptr<B>>& batchers = BatchersOf<B>();
  std::shared_ptr<B>& slot = batchers[key];
  if (slot == nullptr || slot->model() != model) {
    // The batchers of this model's versions that left the registry
    // (deleted, retention, a rescan) go, so that they free their model.
    for (auto it = batchers.begin(); it != batchers.end();) {
      if (it->first.first == name && it->first != key &&
          !models_->Contains(name, it->first.second)) {
        stale.push_back(std::move(it->second));
        it = batchers.erase(it);
      } else {
        ++it;
      }
    }
    BatchObserver observer;
    if (metrics_ != nullptr) {
      observer.on_batch = [m = metrics_, family](int64_t requests, int64_t samples) {
        m->ObserveSamplingBatch(family, requests, samples);
      };
      observer.on_queue_depth = [this, key](int64_t depth) { ReportQueueDepth(key, depth); };
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

void Sampler::ReportQueueDepth(const BatcherKey& key, int64_t depth) {
  MutexLock lock(&depth_mu_);
  if (depth > 0) {
    depths_[key] = depth;
  } else {
    depths_.erase(key);
  }
  int64_t total = 0;
  for (auto it = depths_.lower_bound({key.first, 0});
       it != depths_.end() && it->first.first == key.first; ++it) {
    total += it->second;
  }
  metrics_->SetQueueDepth(key.first, total);
}

absl::StatusOr<model::GeneratedClouds> Sampler::SampleClouds(
    const std::string& model, const model::CloudSampleRequest& request,
    std::function<bool()> cancelled, const QueuePolicy& policy, int64_t version) {
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const Servable> servable,
                       models_->Get(model, version));
  const int64_t v = servable->info.version;
  if (servable->pointcloud == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model: '", model, "' is a ", model::FamilyName(servable->info.family),
        " model; sample it with SampleGaussians"));
  }
  WFM_RETURN_IF_ERROR(servable->pointcloud->ValidateRequest(request, options_.limits));
  std::shared_ptr<CloudBatcher> batcher =
      BatcherFor<CloudBatcher>({model, v}, servable->pointcloud, "pointcloud");
  WFM_ASSIGN_OR_RETURN(model::GeneratedClouds clouds, batcher->Run(request, policy, std::move(cancelled)));
  if (metrics_ != nullptr) {
    const int64_t points = clouds.offsets.empty() ? 0 : clouds.offsets.back();
    metrics_->AddGenerated(model, v, "pointcloud", request.num_samples, points);
    metrics_->AddNetworkEvaluations(model, "pointcloud", model::OdeSolverName(request.solver),
                                    clouds.evaluations);
  }
  return clouds;
}

absl::StatusOr<model::GeneratedGaussians> Sampler::SampleGaussians(
    const std::string& model, const model::GaussianSampleRequest& request,
    std::function<bool()> cancelled, const QueuePolicy& policy, int64_t version) {
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const Servable> servable,
                       models_->Get(model, version));
  const int64_t v = servable->info.version;
  if (servable->gaussian == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model: '", model, "' is a ", model::FamilyName(servable->info.family),
        " model; sample it with SampleNiches"));
  }
  WFM_RETURN_IF_ERROR(servable->gaussian->ValidateRequest(request, options_.limits));
  std::shared_ptr<GaussianBatcher> batcher =
      BatcherFor<GaussianBatcher>({model, v}, servable->gaussian, "gaussian");
  WFM_ASSIGN_OR_RETURN(model::GeneratedGaussians gaussians,
                       batcher->Run(request, policy, std::move(cancelled)));
  if (metrics_ != nullptr) {
    metrics_->AddGenerated(model, v, "gaussian", request.num_samples, 0);
    metrics_->AddNetworkEvaluations(model, "gaussian", model::OdeSolverName(request.solver),
                                    gaussians.evaluations);
  }
  return gaussians;
}

int64_t Sampler::InFlight(const std::string& model) const {
  MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [key, batcher] : cloud_batchers_) {
    if (key.first == model) n += batcher->in_flight();
  }
  for (const auto& [key, batcher] : gaussian_batchers_) {
    if (key.first == model) n += batcher->in_flight();
  }
  return n;
}

namespace {

// Moves the batchers of `model` (of `version` only when > 0) out of `from`.
template <typename Map>
Map Extract(Map& from, const std::string& model, int64_t version) {
  Map out;
  for (auto it = from.begin(); it != from.end();) {
    if (it->first.first == model && (version <= 0 || it->first.second == version)) {
      out.insert(from.extract(it++));
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace

void Sampler::Forget(const std::string& model, int64_t version) {
  // Destroyed after the lock is released.
  std::map<BatcherKey, std::shared_ptr<CloudBatcher>> clouds;
  std::map<BatcherKey, std::shared_ptr<GaussianBatcher>> gaussians;
  MutexLock lock(&mu_);
  clouds = Extract(cloud_batchers_, model, version);
  gaussians = Extract(gaussian_batchers_, model, version);
}

}  // namespace wfm::server
