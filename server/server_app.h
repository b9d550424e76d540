// One running wfm-server: options (the command-line flags), the cores, the
// gRPC server (WfmService, health checking, reflection; TLS / mTLS and bearer
// tokens when configured) and the metrics endpoint. Used by main() and, in
// process, by the tests and benchmarks. With a token, every call but health
// checking is authenticated from its headers, before its request message is
// read (auth_credentials.h).
//
// On-disk layout below --data-dir (nothing is written elsewhere):
//   datasets/<name>/{data.npz,dataset.json}   data sets
//   models/<name>/model.wfm                   published models
//   jobs/<id>.json                            training job records
//   jobs/<id>/checkpoint.wfm                  periodic checkpoint of a job
#ifndef WFM_SERVER_SERVER_APP_H_
#define WFM_SERVER_SERVER_APP_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace wfm::server {

class DatasetStore;
class JobManager;
class Metrics;
class ModelRegistry;
class Sampler;
class TokenAuth;
class WfmServiceImpl;

// The health-checking service name of WfmService.
inline constexpr char kHealthServiceName[] = "wfm.v1.WfmService";
// The largest --max-loaded-model-mib (2^40 MiB: its bytes fit an int64).
inline constexpr int64_t kMaxLoadedModelMib = int64_t{1} << 40;

struct ServerOptions {
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9464";  // empty: no metrics endpoint
  std::string data_dir = "./wfm-data";
  std::string auth_token_file;  // empty: no authentication
  std::string tls_cert;         // PEM files; cert and key together
  std::string tls_key;
  std::string tls_client_ca;    // client certificates required when given (mTLS)
  int max_jobs = 1;
  // Jobs a restart finds QUEUED or RUNNING resume from their last
  // checkpoint, and a graceful shutdown leaves its jobs so (job_manager.h);
  // off: they are reported FAILED, and a shutdown cancels its jobs.
  bool resume_interrupted_jobs = true;
  int threads = 0;              // compute threads; 0 = the default policy (model/nn/cpu_runtime.h)
  int64_t max_batch_samples = 64;
  int64_t max_queue_delay_ms = 5;
  int64_t max_queue = 256;
  // A waiting sampling request rises one priority level per this many
  // seconds waited (batcher.h); 0 = strict priorities (LOW can starve).
  double priority_aging_seconds = 10.0;
  int64_t max_samples_per_request = 1024;
  int64_t max_points_per_sample = 8192;
  int64_t max_upload_bytes = int64_t{1} << 30;
  int64_t checkpoint_every = 500;
  double model_rescan_seconds = 10.0;  // 0: never rescan <data-dir>/models
  // Versions kept per model without its own retention (the latest ones and
  // the pinned one); 0 = all.
  int64_t keep_versions = 0;
  // Load on demand (model_registry.h, residency): model versions whose
  // weights stay in memory, and the MiB those weights may take; 0 = no limit
  // (every version loaded at start-up). Either one set: versions load on
  // first use and the least recently used ones are unloaded.
  int64_t max_loaded_models = 0;
  int64_t max_loaded_model_mib = 0;
  double grace_period_seconds = 30.0;
  // Connections older than this get a GOAWAY, so that clients reconnect and
  // re-resolve the server's name (client-side balancing reaches replicas
  // that came later); 0 = no limit. Calls in flight on such a connection get
  // max_connection_age_grace_seconds more (0 = no limit).
  double max_connection_age_seconds = 0.0;
  double max_connection_age_grace_seconds = 0.0;
  std::string log_level = "info";
};

// Range checks; INVALID_ARGUMENT naming the flag.
absl::Status ValidateServerOptions(const ServerOptions& options);

class ServerApp {
 public:
  // Opens the stores under data_dir, binds both ports and starts serving;
  // logs the ready line. UNAVAILABLE when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServerApp>> Start(const ServerOptions& options);
  // Shutdown(grace period) unless already done.
  ~ServerApp();

  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }  // 0 without metrics endpoint
  // "host:port" with the bound port.
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  // "wfm-server ready: grpc H:P, metrics H:P, data DIR, N models, M data sets"
  const std::string& ready_line() const { return ready_line_; }

  // Graceful shutdown: health NOT_SERVING, training jobs stopped (with
  // resume_interrupted_jobs: checkpointed at the step reached and left
  // queued to resume at the next start; else recorded CANCELLED), in-flight
  // RPCs finish until the grace period ends and are cancelled then, ports
  // closed. true when everything stopped in time.
  // Idempotent.
  bool Shutdown(absl::Duration grace);
  bool Shutdown();  // with the configured grace period

  Metrics& metrics() { return *metrics_; }
  DatasetStore& datasets() { return *datasets_; }
  ModelRegistry& models() { return *models_; }
  JobManager& jobs() { return *jobs_; }
  Sampler& sampler() { return *sampler_; }

 private:
  explicit ServerApp(ServerOptions options);
  absl::Status Init();

  const ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<TokenAuth> auth_;
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<WfmServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string grpc_address_;
  std::string metrics_address_;
  std::string ready_line_;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;
  bool clean_ = true;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_SERVER_APP_H_
