#include "server/server_app.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/nn/cpu_runtime.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "server/auth.h"
#include "server/auth_credentials.h"
#include "server/dataset_store.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/sampler.h"
#include "server/wfm_service_impl.h"

#ifndef WFM_VERSION
#define WFM_VERSION "unknown"
#endif

namespace wfm::server {

using repository::MakeDirs;
using repository::ReadFileToString;

namespace {

// Upload chunks may be larger than gRPC's default 4 MiB receive limit.
constexpr int kMaxReceiveMessageBytes = 64 << 20;
constexpr int kMaxServerThreads = 1024;

// "host:port" -> host ("[::]" stays bracketed).
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

absl::Status CheckPositive(absl::string_view flag, int64_t v) {
  if (v >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": must be >= 1, got ", v));
}

// A gRPC duration argument in seconds: 0 (no limit) up to INT_MAX ms.
absl::Status CheckConnectionSeconds(absl::string_view flag, double v) {
  constexpr double kMax = INT_MAX / 1000.0;
  if (std::isfinite(v) && v >= 0 && v <= kMax) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": must be a number of seconds from 0 ",
                                                 "(no limit) to ", static_cast<int64_t>(kMax),
                                                 ", got ", v));
}

// Seconds -> whole milliseconds of a gRPC channel argument (checked above).
int Milliseconds(double seconds) { return static_cast<int>(std::llround(seconds * 1000.0)); }

// The method names of WfmService, from its descriptor.
std::set<std::string> ServiceMethods() {
  std::set<std::string> methods;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          wfm::v1::WfmService::service_full_name());
  for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
    methods.insert(service->method(i)->name());
  }
  return methods;
}

}  // namespace

absl::Status ValidateServerOptions(const ServerOptions& o) {
  if (o.listen.empty() || o.listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: expected host:port, got '", o.listen, "'"));
  }
  if (!o.metrics_listen.empty() && o.metrics_listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: expected host:port, got '", o.metrics_listen, "'"));
  }
  if (o.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: must not be empty");
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key: give both or neither");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca: needs --tls-cert and --tls-key");
  }
  WFM_RETURN_IF_ERROR(CheckPositive("max-jobs", o.max_jobs));
  if (o.threads < 0) {
    return absl::InvalidArgumentError(
        "--threads: must be >= 0 (0 = one per physical core, at most the CPU quota)");
  }
  WFM_RETURN_IF_ERROR(CheckPositive("max-batch-samples", o.max_batch_samples));
  if (o.max_queue_delay_ms < 0) {
    return absl::InvalidArgumentError("--max-queue-delay-ms: must be >= 0");
  }
  WFM_RETURN_IF_ERROR(CheckPositive("max-queue", o.max_queue));
  if (!(o.priority_aging_seconds >= 0 && o.priority_aging_seconds <= 86400)) {
    return absl::InvalidArgumentError(
        "--priority-aging-seconds: must be in [0, 86400] (0 = strict priorities)");
  }
  WFM_RETURN_IF_ERROR(CheckPositive("max-samples-per-request", o.max_samples_per_request));
  WFM_RETURN_IF_ERROR(CheckPositive("max-points-per-sample", o.max_points_per_sample));
  WFM_RETURN_IF_ERROR(CheckPositive("max-upload-bytes", o.max_upload_bytes));
  if (o.checkpoint_every < 0) {
    return absl::InvalidArgumentError("--checkpoint-every: must be >= 0 (0 = only at the end)");
  }
  if (!(o.model_rescan_seconds >= 0)) {
    return absl::InvalidArgumentError("--model-rescan-seconds: must be >= 0 (0 = never)");
  }
  if (o.keep_versions < 0 || o.keep_versions > kMaxKeepVersions) {
    return absl::InvalidArgumentError(
        absl::StrCat("--keep-versions: must be 0 (all) to ", kMaxKeepVersions));
  }
  if (o.max_loaded_models < 0) {
    return absl::InvalidArgumentError("--max-loaded-models: must be >= 0 (0 = no limit)");
  }
  if (o.max_loaded_model_mib < 0 || o.max_loaded_model_mib > kMaxLoadedModelMib) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-loaded-model-mib: must be 0 (no limit) to ", kMaxLoadedModelMib));
  }
  if (!(o.grace_period_seconds >= 0)) {
    return absl::InvalidArgumentError("--grace-period-seconds: must be >= 0");
  }
  WFM_RETURN_IF_ERROR(CheckConnectionSeconds("max-connection-age-seconds",
                                             o.max_connection_age_seconds));
  WFM_RETURN_IF_ERROR(CheckConnectionSeconds("max-connection-age-grace-seconds",
                                             o.max_connection_age_grace_seconds));
  return ParseLogLevel(o.log_level).status();
}

ServerApp::ServerApp(ServerOptions options) : options_(std::move(options)) {}

ServerApp::~ServerApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerOptions& options) {
  WFM_RETURN_IF_ERROR(ValidateServerOptions(options));
  std::unique_ptr<ServerApp> app(new ServerApp(options));
  absl::Status s = app->Init();
  if (!s.ok()) {
    app->shut_down_ = true;  // nothing to drain
    if (app->server_ != nullptr) {
      app->server_->Shutdown();
      app->server_->Wait();
    }
    return s;
  }
  return app;
}

absl::Status ServerApp::Init() {
  const ServerOptions& o = options_;
  WFM_ASSIGN_OR_RETURN(const LogLevel level, ParseLogLevel(o.log_level));
  SetLogLevel(level);
  model::nn::CpuRuntimeOptions cpu;
  cpu.threads = o.threads;  // 0: the default policy (model/nn/cpu_runtime.h)
  WFM_RETURN_IF_ERROR(model::nn::ConfigureCpuRuntime(cpu));
  LogInfo(absl::StrCat("cpu: ", model::nn::DescribeCpuRuntime(model::nn::CurrentCpuRuntime())));

  auth_ = std::make_unique<TokenAuth>();
  if (!o.auth_token_file.empty()) {
    WFM_ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::FromFile(o.auth_token_file));
    *auth_ = std::move(auth);
  }
  std::optional<grpc::SslServerCredentialsOptions> tls;
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl(
        o.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    WFM_ASSIGN_OR_RETURN(pair.private_key, ReadFileToString(o.tls_key));
    WFM_ASSIGN_OR_RETURN(pair.cert_chain, ReadFileToString(o.tls_cert));
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    if (!o.tls_client_ca.empty()) {
      WFM_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileToString(o.tls_client_ca));
    }
    tls = std::move(ssl);
  }

  metrics_ = std::make_unique<Metrics>(WFM_VERSION);
  const std::set<std::string> methods = ServiceMethods();
  metrics_->InitRpcMethods({methods.begin(), methods.end()});
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (auth_->enabled()) {
    // Calls refused for their token never reach the service: they are
    // counted here as the service counts every other outcome (the methods of
    // WfmService only, so that the labels stay bounded).
    const std::string prefix = absl::StrCat("/", wfm::v1::WfmService::service_full_name(), "/");
    RejectedCallFn on_rejected = [m = metrics_.get(), prefix,
                                  known = methods](absl::string_view path) {
      if (!absl::StartsWith(path, prefix)) return;
      const std::string method(path.substr(prefix.size()));
      if (known.count(method) == 0) return;
      m->ObserveRpc(method, "UNAUTHENTICATED", 0.0);
      LogDebug(absl::StrCat(method, " UNAUTHENTICATED: refused at its headers, before any ",
                            "message was read (no valid bearer token)"));
    };
    credentials = TokenCheckingServerCredentials(auth_.get(), std::move(tls), on_rejected);
  } else if (tls.has_value()) {
    credentials = grpc::SslServerCredentials(*tls);
  } else {
    credentials = grpc::InsecureServerCredentials();
  }
  WFM_RETURN_IF_ERROR(MakeDirs(o.data_dir));
  DatasetStoreOptions store;
  store.root = absl::StrCat(o.data_dir, "/datasets");
  store.max_upload_bytes = o.max_upload_bytes;
  WFM_ASSIGN_OR_RETURN(datasets_, DatasetStore::Open(store, metrics_.get()));
  WFM_ASSIGN_OR_RETURN(models_,
                       ModelRegistry::Open(absl::StrCat(o.data_dir, "/models"), metrics_.get(),
                                           ModelRegistryOptions{
                                               o.keep_versions, o.max_loaded_models,
                                               o.max_loaded_model_mib * (int64_t{1} << 20)}));
  models_->StartRescanning(absl::Seconds(o.model_rescan_seconds));
  JobManagerOptions jobs;
  jobs.root = absl::StrCat(o.data_dir, "/jobs");
  jobs.max_jobs = o.max_jobs;
  jobs.resume_interrupted = o.resume_interrupted_jobs;
  // Jobs of replicas that stopped are taken over on the models' rescan
  // interval.
  jobs.claim_interval = absl::Seconds(o.model_rescan_seconds);
  WFM_ASSIGN_OR_RETURN(jobs_, JobManager::Open(jobs, datasets_.get(), models_.get(),
                                               metrics_.get()));
  SamplerOptions sampling;
  sampling.batching.max_batch_samples = o.max_batch_samples;
  sampling.batching.max_queue_delay = absl::Milliseconds(o.max_queue_delay_ms);
  sampling.batching.max_queue = o.max_queue;
  sampling.batching.priority_aging = o.priority_aging_seconds > 0
                                         ? absl::Seconds(o.priority_aging_seconds)
                                         : absl::InfiniteDuration();
  sampling.limits.max_samples = o.max_samples_per_request;
  sampling.limits.max_points = o.max_points_per_sample;
  sampler_ = std::make_unique<Sampler>(models_.get(), sampling, metrics_.get());

  ServiceDeps deps;
  deps.datasets = datasets_.get();
  deps.models = models_.get();
  deps.jobs = jobs_.get();
  deps.sampler = sampler_.get();
  deps.metrics = metrics_.get();
  deps.auth = auth_.get();
  deps.default_checkpoint_every = o.checkpoint_every;
  service_ = std::make_unique<WfmServiceImpl>(deps);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, &grpc_port_);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // A second server on a busy port must fail, not share it silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (o.max_connection_age_seconds > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               std::max(1, Milliseconds(o.max_connection_age_seconds)));
  }
  if (o.max_connection_age_grace_seconds > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               std::max(1, Milliseconds(o.max_connection_age_grace_seconds)));
  }
  grpc::ResourceQuota quota("wfm-server");
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("--listen ", o.listen, ": cannot listen there"));
  }
  grpc_address_ = absl::StrCat(HostOf(o.listen), ":", grpc_port_);
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(kHealthServiceName, true);
    health->SetServingStatus(true);
  }
  if (!o.metrics_listen.empty()) {
    WFM_ASSIGN_OR_RETURN(metrics_port_, metrics_->Serve(o.metrics_listen));
    metrics_address_ = absl::StrCat(HostOf(o.metrics_listen), ":", metrics_port_);
  }
  ready_line_ = absl::StrCat("wfm-server ready: grpc ", grpc_address_, ", metrics ",
                             metrics_address_.empty() ? "off" : metrics_address_, ", data ",
                             o.data_dir, ", ", models_->size(), " models, ", datasets_->size(),
                             " data sets");
  LogInfo(ready_line_);
  return absl::OkStatus();
}

bool ServerApp::Shutdown() {
  return Shutdown(absl::Seconds(options_.grace_period_seconds));
}

bool ServerApp::Shutdown(absl::Duration grace) {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shut_down_) return clean_;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + grace;
  LogInfo(absl::StrCat("draining (grace period ", absl::FormatDuration(grace),
                       "): health NOT_SERVING, ",
                       options_.resume_interrupted_jobs
                           ? "stopping training jobs to resume after the restart"
                           : "cancelling training jobs"));
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(kHealthServiceName, false);
    health->SetServingStatus(false);
  }
  clean_ = jobs_->Shutdown(deadline);
  // Stops accepting calls; in-flight ones run until the deadline, then are
  // cancelled (sampling and watches poll for that).
  server_->Shutdown(absl::ToChronoTime(deadline));
  server_->Wait();
  sampler_.reset();
  metrics_->StopServing();
  LogInfo(clean_ ? "wfm-server stopped" : "wfm-server stopped with a training job still running");
  return clean_;
}

}  // namespace wfm::server
