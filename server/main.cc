// wfm-server: the wfm gRPC service (see server_app.h and README's server
// section). Logs one line when ready:
//   wfm-server ready: grpc 0.0.0.0:50051, metrics 0.0.0.0:9464, data ./wfm-data, N models, M data sets
// SIGTERM / SIGINT shut it down gracefully within --grace-period-seconds.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "repository/logging.h"
#include "server/server_app.h"

int main(int argc, char** argv) {
  wfm::server::ServerOptions o;
  CLI::App app{"wfm-server: trains and serves Wasserstein Flow Matching models over gRPC"};
  app.add_option("--listen", o.listen, "gRPC address host:port")->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Prometheus /metrics address host:port (empty: off)")
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "folder of data sets, models and jobs")
      ->capture_default_str();
  app.add_option("--auth-token-file", o.auth_token_file,
                 "file holding the bearer token every RPC except health must carry");
  app.add_option("--tls-cert", o.tls_cert, "server certificate chain (PEM)");
  app.add_option("--tls-key", o.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", o.tls_client_ca,
                 "CA (PEM) that client certificates must chain to; requires client certificates");
  app.add_option("--max-jobs", o.max_jobs, "training jobs run at once (more wait in a queue)")
      ->capture_default_str();
  app.add_option("--resume-interrupted-jobs", o.resume_interrupted_jobs,
                 "jobs a restart finds queued or running resume from their last checkpoint, and "
                 "SIGTERM checkpoints running jobs and leaves them to resume (false: SIGTERM "
                 "cancels jobs, a restart reports interrupted ones FAILED)")
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "compute threads (0 = one per physical core the process may use, at most its "
                 "cgroup CPU quota)")
      ->capture_default_str();
  app.add_option("--max-batch-samples", o.max_batch_samples,
                 "samples merged into one batched model call")
      ->capture_default_str();
  app.add_option("--max-queue-delay-ms", o.max_queue_delay_ms,
                 "longest a sampling request waits for others to batch with")
      ->capture_default_str();
  app.add_option("--max-queue", o.max_queue,
                 "sampling requests waiting per model before RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--priority-aging-seconds", o.priority_aging_seconds,
                 "a waiting sampling request rises one priority level per this many seconds "
                 "waited, so low-priority requests are delayed, not starved (0 = strict "
                 "priorities)")
      ->capture_default_str();
  app.add_option("--max-samples-per-request", o.max_samples_per_request,
                 "samples one request may ask for")
      ->capture_default_str();
  app.add_option("--max-points-per-sample", o.max_points_per_sample,
                 "points per generated cloud a request may ask for")
      ->capture_default_str();
  app.add_option("--max-upload-bytes", o.max_upload_bytes, "payload bytes of one data set upload")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "training steps between job checkpoints (0 = only at the end; per-job override)")
      ->capture_default_str();
  app.add_option("--model-rescan-seconds", o.model_rescan_seconds,
                 "how often models published into <data-dir>/models by others (replicas, "
                 "wfm-train) are picked up (0 = never)")
      ->capture_default_str();
  app.add_option("--keep-versions", o.keep_versions,
                 "versions kept per model that sets no retention of its own: the latest ones "
                 "(and the pinned one); older ones are deleted after each publish (0 = all)")
      ->capture_default_str();
  app.add_option("--max-loaded-models", o.max_loaded_models,
                 "model versions whose weights stay in memory; beyond it the least recently "
                 "used are unloaded, and versions load on first use (0 = no limit: every "
                 "version is loaded at start-up)")
      ->capture_default_str();
  app.add_option("--max-loaded-model-mib", o.max_loaded_model_mib,
                 "MiB the weights of the loaded model versions may take (ModelInfo "
                 "memory_bytes); the least recently used are unloaded to stay within it, and "
                 "a version larger than all of it is refused (0 = no limit)")
      ->capture_default_str();
  app.add_option("--grace-period-seconds", o.grace_period_seconds,
                 "time in-flight work gets on SIGTERM / SIGINT")
      ->capture_default_str();
  app.add_option("--max-connection-age-seconds", o.max_connection_age_seconds,
                 "send clients a GOAWAY on connections older than this, so that they reconnect "
                 "and re-resolve the server's name (spreads long-lived clients over replicas "
                 "added later; 0 = never)")
      ->capture_default_str();
  app.add_option("--max-connection-age-grace-seconds", o.max_connection_age_grace_seconds,
                 "time the calls in flight on such a connection get before it closes "
                 "(0 = no limit: they finish)")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "debug | info | warning | error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Every thread started from here on inherits the blocked signals; this
  // thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<wfm::server::ServerApp>> server =
      wfm::server::ServerApp::Start(o);
  if (!server.ok()) {
    wfm::LogError(absl::StrCat("wfm-server: ", server.status().message()));
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  wfm::LogInfo(absl::StrCat("received ", strsignal(signal_number), "; shutting down"));
  const bool clean = (*server)->Shutdown();
  if (!clean) {
    // A training step outlived the grace period: leave without waiting for
    // it. Every file is written atomically; the job resumes from its last
    // periodic checkpoint after a restart (or is reported interrupted).
    std::fflush(nullptr);
    std::_Exit(0);
  }
  server->reset();
  return 0;
}
