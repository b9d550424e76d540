#include "server/metrics.h"

#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "model/common/mutex.h"
#include "server/http_endpoint.h"
#include "server/queue_policy.h"

namespace wfm::server {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

const Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *b;
}
// 1 ms to 5 minutes.
const Histogram::BucketBoundaries& QueueWaitBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return *b;
}
const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b =
      new Histogram::BucketBoundaries{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128};
  return *b;
}
const Histogram::BucketBoundaries& SampleBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{1,   2,   4,    8,    16,   32,  64,
                                                         128, 256, 512, 1024, 2048, 4096};
  return *b;
}

std::string S(absl::string_view v) { return std::string(v); }

// Removes the series of `family` with exactly `labels`, if there is one
// (`args`: what Add needs to name it, a histogram's buckets).
template <typename T, typename... Args>
void RemoveSeries(Family<T>* family, const prometheus::Labels& labels, const Args&... args) {
  if (family->Has(labels)) family->Remove(&family->Add(labels, args...));
}

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  Family<Counter>* rpc_requests;
  Family<Histogram>* rpc_latency;
  Family<Counter>* generated_samples;
  Family<Counter>* generated_points;
  Family<Counter>* network_evaluations;
  Family<Histogram>* batch_size;
  Family<Histogram>* batch_samples;
  Family<Gauge>* queue_depth;
  Family<Histogram>* queue_wait;
  Family<Counter>* queue_timeouts;
  Family<Counter>* training_steps;
  Family<Gauge>* training_loss;
  Family<Gauge>* training_speed;
  Family<Gauge>* training_jobs;
  Gauge* models_loaded;
  Gauge* resident_versions;
  Gauge* resident_bytes;
  Counter* model_loads;
  Family<Counter>* model_unloads;
  // Held around every use of a series labelled with a served model, so that
  // SyncModels never removes a series while another thread updates it.
  Mutex model_series_mu;
  // name -> family and (name, version) -> family, as SyncModels last
  // reported them.
  std::map<std::string, std::string> models ABSL_GUARDED_BY(model_series_mu);
  std::map<std::pair<std::string, int64_t>, std::string> versions
      ABSL_GUARDED_BY(model_series_mu);
  Gauge* datasets_stored;

  std::mutex exposer_mu;
  std::unique_ptr<HttpEndpoint> exposer;
};

Metrics::Metrics(absl::string_view version) : impl_(std::make_unique<Impl>()) {
  auto& r = *impl_->registry;
  impl_->rpc_requests = &prometheus::BuildCounter()
                             .Name("wfm_rpc_requests_total")
                             .Help("Finished RPCs by method and status code.")
                             .Register(r);
  impl_->rpc_latency = &prometheus::BuildHistogram()
                            .Name("wfm_rpc_latency_seconds")
                            .Help("RPC wall time by method and status code.")
                            .Register(r);
  impl_->generated_samples = &prometheus::BuildCounter()
                                  .Name("wfm_generated_samples_total")
                                  .Help("Generated samples (point clouds or Gaussians) returned.")
                                  .Register(r);
  impl_->generated_points = &prometheus::BuildCounter()
                                 .Name("wfm_generated_points_total")
                                 .Help("Points of the generated point clouds returned.")
                                 .Register(r);
  impl_->network_evaluations =
      &prometheus::BuildCounter()
           .Name("wfm_network_evaluations_total")
           .Help("Network evaluations (NFE) of the sampling ODE solver, as reported to each "
                 "request (requests merged into one batch share evaluations).")
           .Register(r);
  impl_->batch_size = &prometheus::BuildHistogram()
                           .Name("wfm_sampling_batch_size")
                           .Help("Requests merged into one batched model call (dynamic "
                                 "batching); _count is the number of calls.")
                           .Register(r);
  impl_->batch_samples = &prometheus::BuildHistogram()
                              .Name("wfm_sampling_batch_samples")
                              .Help("Samples generated by one batched model call.")
                              .Register(r);
  impl_->queue_depth = &prometheus::BuildGauge()
                            .Name("wfm_sampling_queue_depth")
                            .Help("Sampling requests waiting to be batched, per model.")
                            .Register(r);
  impl_->queue_wait = &prometheus::BuildHistogram()
                           .Name("wfm_sampling_queue_wait_seconds")
                           .Help("Time a sampling request waited in its model's queue, observed "
                                 "when it left it (taken into a call, timed out or cancelled), "
                                 "by model and priority.")
                           .Register(r);
  impl_->queue_timeouts = &prometheus::BuildCounter()
                               .Name("wfm_sampling_queue_timeouts_total")
                               .Help("Sampling requests that waited longer than their queue "
                                     "timeout and ended DEADLINE_EXCEEDED without computing.")
                               .Register(r);
  impl_->training_steps = &prometheus::BuildCounter()
                               .Name("wfm_training_steps_total")
                               .Help("Training steps done, by the model being trained.")
                               .Register(r);
  impl_->training_loss = &prometheus::BuildGauge()
                              .Name("wfm_training_loss")
                              .Help("Loss of the last training step, by model.")
                              .Register(r);
  impl_->training_speed = &prometheus::BuildGauge()
                               .Name("wfm_training_steps_per_second")
                               .Help("Training speed of the job training the model.")
                               .Register(r);
  impl_->training_jobs = &prometheus::BuildGauge()
                              .Name("wfm_training_jobs")
                              .Help("Known training jobs by state.")
                              .Register(r);
  impl_->models_loaded = &prometheus::BuildGauge()
                              .Name("wfm_models_loaded")
                              .Help("Models in the registry (their weights in memory or not).")
                              .Register(r)
                              .Add({});
  impl_->resident_versions = &prometheus::BuildGauge()
                                  .Name("wfm_model_versions_resident")
                                  .Help("Model versions whose weights are in memory.")
                                  .Register(r)
                                  .Add({});
  impl_->resident_bytes = &prometheus::BuildGauge()
                               .Name("wfm_model_resident_bytes")
                               .Help("Bytes the weights of the model versions in memory take.")
                               .Register(r)
                               .Add({});
  impl_->model_loads = &prometheus::BuildCounter()
                            .Name("wfm_model_loads_total")
                            .Help("Model versions loaded into memory on demand (first use, "
                                  "explicit load).")
                            .Register(r)
                            .Add({});
  impl_->model_unloads = &prometheus::BuildCounter()
                              .Name("wfm_model_unloads_total")
                              .Help("Model versions dropped from memory, by reason: lru "
                                    "(--max-loaded-models), budget (--max-loaded-model-mib), "
                                    "explicit.")
                              .Register(r);
  for (const char* reason : {"lru", "budget", "explicit"}) {
    impl_->model_unloads->Add({{"reason", reason}});
  }
  impl_->datasets_stored = &prometheus::BuildGauge()
                                .Name("wfm_datasets_stored")
                                .Help("Data sets in the store.")
                                .Register(r)
                                .Add({});
  prometheus::BuildGauge()
      .Name("wfm_build_info")
      .Help("Build of the running server (always 1).")
      .Register(r)
      .Add({{"version", S(version)}})
      .Set(1);
  for (const char* state : {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    impl_->training_jobs->Add({{"state", state}}).Set(0);
  }
}

Metrics::~Metrics() { StopServing(); }

void Metrics::ObserveRpc(absl::string_view method, absl::string_view code, double seconds) {
  const prometheus::Labels labels{{"method", S(method)}, {"code", S(code)}};
  impl_->rpc_requests->Add(labels).Increment();
  impl_->rpc_latency->Add(labels, LatencyBuckets()).Observe(seconds);
}

void Metrics::InitRpcMethods(const std::vector<std::string>& methods) {
  for (const std::string& method : methods) {
    const prometheus::Labels labels{{"method", method}, {"code", "OK"}};
    impl_->rpc_requests->Add(labels);
    impl_->rpc_latency->Add(labels, LatencyBuckets());
  }
}

void Metrics::AddGenerated(absl::string_view model, int64_t version, absl::string_view family,
                           int64_t samples, int64_t points) {
  const prometheus::Labels labels{
      {"model", S(model)}, {"family", S(family)}, {"version", absl::StrCat(version)}};
  MutexLock lock(&impl_->model_series_mu);
  impl_->generated_samples->Add(labels).Increment(static_cast<double>(samples));
  if (points > 0) impl_->generated_points->Add(labels).Increment(static_cast<double>(points));
}

void Metrics::AddNetworkEvaluations(absl::string_view model, absl::string_view family,
                                    absl::string_view solver, int64_t evaluations) {
  const prometheus::Labels labels{{"model", S(model)}, {"family", S(family)}, {"solver", S(solver)}};
  impl_->network_evaluations->Add(labels).Increment(static_cast<double>(evaluations));
}

void Metrics::ObserveSamplingBatch(absl::string_view family, int64_t requests, int64_t samples) {
  const prometheus::Labels labels{{"family", S(family)}};
  impl_->batch_size->Add(labels, BatchBuckets()).Observe(static_cast<double>(requests));
  impl_->batch_samples->Add(labels, SampleBuckets()).Observe(static_cast<double>(samples));
}

void Metrics::SetQueueDepth(absl::string_view model, int64_t depth) {
  MutexLock lock(&impl_->model_series_mu);
  impl_->queue_depth->Add({{"model", S(model)}}).Set(static_cast<double>(depth));
}

void Metrics::ObserveQueueWait(absl::string_view model, absl::string_view priority,
                               double seconds) {
  MutexLock lock(&impl_->model_series_mu);
  impl_->queue_wait->Add({{"model", S(model)}, {"priority", S(priority)}}, QueueWaitBuckets())
      .Observe(seconds);
}

void Metrics::AddQueueTimeout(absl::string_view model) {
  MutexLock lock(&impl_->model_series_mu);
  impl_->queue_timeouts->Add({{"model", S(model)}}).Increment();
}

void Metrics::SyncModels(const std::vector<ServedModel>& served) {
  MutexLock lock(&impl_->model_series_mu);
  std::map<std::string, std::string> now;
  std::map<std::pair<std::string, int64_t>, std::string> now_versions;
  for (const ServedModel& m : served) {
    now[m.name] = m.family;
    now_versions[{m.name, m.version}] = m.family;
  }
  const auto throughput_labels = [](const std::pair<std::string, int64_t>& key,
                                    const std::string& family) {
    return prometheus::Labels{
        {"model", key.first}, {"family", family}, {"version", absl::StrCat(key.second)}};
  };
  // Gone, or now of the other family: the version's throughput series go.
  for (const auto& [key, family] : impl_->versions) {
    auto it = now_versions.find(key);
    if (it != now_versions.end() && it->second == family) continue;
    RemoveSeries(impl_->generated_samples, throughput_labels(key, family));
    RemoveSeries(impl_->generated_points, throughput_labels(key, family));
  }
  // Gone models lose their queue series.
  for (const auto& [model, family] : impl_->models) {
    if (now.count(model) > 0) continue;
    RemoveSeries(impl_->queue_depth, {{"model", model}});
    RemoveSeries(impl_->queue_timeouts, {{"model", model}});
    for (QueuePriority priority : kAllQueuePriorities) {
      RemoveSeries(impl_->queue_wait, {{"model", model}, {"priority", QueuePriorityName(priority)}},
                   QueueWaitBuckets());
    }
  }
  // New: every series at 0; Add keeps one that exists already.
  for (const auto& [key, family] : now_versions) {
    auto it = impl_->versions.find(key);
    if (it != impl_->versions.end() && it->second == family) continue;
    impl_->generated_samples->Add(throughput_labels(key, family));
    if (family == "pointcloud") impl_->generated_points->Add(throughput_labels(key, family));
  }
  for (const auto& [model, family] : now) {
    if (impl_->models.count(model) > 0) continue;
    impl_->queue_depth->Add({{"model", model}});
    impl_->queue_timeouts->Add({{"model", model}});
    for (QueuePriority priority : kAllQueuePriorities) {
      impl_->queue_wait->Add({{"model", model}, {"priority", QueuePriorityName(priority)}},
                             QueueWaitBuckets());
    }
  }
  impl_->models = std::move(now);
  impl_->versions = std::move(now_versions);
}

void Metrics::AddTrainingSteps(absl::string_view model, int64_t new_steps, double loss,
                               double steps_per_second) {
  const prometheus::Labels labels{{"model", S(model)}};
  if (new_steps > 0) impl_->training_steps->Add(labels).Increment(static_cast<double>(new_steps));
  impl_->training_loss->Add(labels).Set(loss);
  impl_->training_speed->Add(labels).Set(steps_per_second);
}

void Metrics::SetTrainingJobs(absl::string_view state, int64_t count) {
  impl_->training_jobs->Add({{"state", S(state)}}).Set(static_cast<double>(count));
}

void Metrics::SetModelsLoaded(int64_t count) {
  impl_->models_loaded->Set(static_cast<double>(count));
}

void Metrics::SetResidentModels(int64_t versions, int64_t bytes) {
  impl_->resident_versions->Set(static_cast<double>(versions));
  impl_->resident_bytes->Set(static_cast<double>(bytes));
}

void Metrics::AddModelLoad() { impl_->model_loads->Increment(); }

void Metrics::AddModelUnloads(absl::string_view reason, int64_t versions) {
  impl_->model_unloads->Add({{"reason", S(reason)}}).Increment(static_cast<double>(versions));
}

void Metrics::SetDatasetsStored(int64_t count) {
  impl_->datasets_stored->Set(static_cast<double>(count));
}

std::string Metrics::Text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry->Collect());
  return out.str();
}

absl::StatusOr<int> Metrics::Serve(const std::string& listen) {
  std::lock_guard<std::mutex> lock(impl_->exposer_mu);
  if (impl_->exposer != nullptr) {
    return absl::FailedPreconditionError("metrics: already serving");
  }
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint = HttpEndpoint::Start(
      listen, "/metrics", "text/plain; version=0.0.4; charset=utf-8", [this] { return Text(); });
  if (!endpoint.ok()) {
    return absl::Status(endpoint.status().code(),
                        absl::StrCat("metrics-listen: ", endpoint.status().message()));
  }
  impl_->exposer = *std::move(endpoint);
  return impl_->exposer->port();
}

void Metrics::StopServing() {
  std::unique_ptr<HttpEndpoint> exposer;
  {
    std::lock_guard<std::mutex> lock(impl_->exposer_mu);
    exposer = std::move(impl_->exposer);
  }
}

}  // namespace wfm::server
