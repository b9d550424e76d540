// The C++ client of the wfm service: a typed wrapper over the generated
// wfm.v1.WfmService stub (proto/wfm/v1/wfm_service.proto).
//
//  * Channel: plaintext or TLS (CA file, optional client certificate for
//    servers that require one), an optional bearer token sent on every call
//    as the metadata "authorization: Bearer <token>".
//  * Server address (ChannelTarget): "host:port", a gRPC target
//    ("dns:///name:port", "ipv4:a:p,b:p", "ipv6:...", "unix:..."), or a
//    comma-separated list of IP addresses with ports ("10.0.0.1:50051,
//    10.0.0.2:50051"). Calls are balanced round-robin over every address the
//    target resolves to (ClientOptions::load_balancing), and gRPC
//    re-resolves a name when a connection ends: with a headless Kubernetes
//    Service ("dns:///wfm-server-headless.NS.svc.cluster.local:50051") and
//    the server's --max-connection-age-seconds, one client's calls spread
//    over all replicas, new ones included.
//  * Every call has a default deadline by kind (ClientOptions::deadlines).
//  * Results are absl::StatusOr; a failed RPC becomes an absl::Status with the
//    same canonical code and the server's message, tagged with the RPC's name
//    (IsRpcError / RpcMethod) so callers can tell server errors from local
//    ones.
//  * Streaming helpers: uploads from io::PointCloudSet / io::GaussianSet /
//    SpatialCells in chunks of whole items under ~2 MB; SampleNiches collects
//    the streamed chunks into one io::PointCloudSet; WatchTrainingJob calls
//    back on every progress event.
//
// A Client is thread-safe: calls may run concurrently (each has its own
// grpc::ClientContext).
#ifndef WFM_CLIENT_CLIENT_H_
#define WFM_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cells.h"
#include "client/upload.h"
#include "model/io/point_sets.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace wfm::client {

// The service name of grpc.health.v1 checks (DESIGN.md, "API contract").
inline constexpr char kServiceName[] = "wfm.v1.WfmService";

// Default deadlines, in seconds from the start of each call; <= 0 = none.
struct Deadlines {
  double health = 5;       // grpc.health.v1.Health/Check
  double unary = 30;       // list / get / delete / start / cancel
  double upload = 1800;    // UploadDataset (whole stream)
  double sample = 1800;    // SampleNiches (whole stream), SampleGaussians
  double evaluate = 1800;  // Evaluate
  double watch = 0;        // WatchTrainingJob: until the job ends
};

struct ClientOptions {
  std::string server = "localhost:50051";  // see ChannelTarget
  // gRPC load-balancing policy over the target's addresses: "round_robin"
  // (every call to the next ready address) or "pick_first" (one connection).
  std::string load_balancing = "round_robin";
  std::string token;                       // bearer token; empty = none
  // TLS: on when `tls` is set or any TLS file is given. tls_ca_file holds the
  // PEM roots that sign the server's certificate (empty = the system roots);
  // tls_cert_file and tls_key_file a client certificate (both or neither).
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;  // checked against the certificate instead of the host
  Deadlines deadlines;
  // Largest message the client accepts (sample chunks, job lists), bytes.
  int max_receive_bytes = 256 << 20;
};

// The gRPC target of a server address: a gRPC target URI ("dns:///h:p",
// "ipv4:...", "ipv6:...", "unix:...") and "host:port" stay as they are; a
// comma-separated list of "a.b.c.d:port" (or "[v6]:port") addresses becomes
// "ipv4:a,b" ("ipv6:a,b"). InvalidArgument for an empty address and for a
// list with host names, missing ports or both IP versions.
absl::StatusOr<std::string> ChannelTarget(absl::string_view server);

// Serving status of a grpc.health.v1 check.
enum class HealthStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
absl::string_view HealthStatusName(HealthStatus status);  // "SERVING", ...

// grpc::Status -> absl::Status with the same code and message, tagged with
// `method` (e.g. "UploadDataset"). OK stays OK (untagged).
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view method);
// Whether `status` came from a failed RPC, and from which method ("" when not).
bool IsRpcError(const absl::Status& status);
std::string RpcMethod(const absl::Status& status);

// Generated point clouds, as SampleNiches streamed them.
struct SampledClouds {
  // clouds.labels: strings (discrete models), float32 [C, condition_dim]
  // (continuous models) or none.
  model::io::PointCloudSet clouds;
  int64_t frames = 0;             // trajectory frames (steps + 1), 0 without
  std::vector<float> trajectory;  // [frames, P, dim] row-major
  int64_t network_evaluations = 0;  // NFE the server's ODE solver spent
};

// Generated Gaussians.
struct SampledGaussians {
  model::io::GaussianSet gaussians;    // labels: strings, condition vectors or none
  int64_t frames = 0;                  // trajectory frames, 0 without
  std::vector<double> trajectory_means;  // [frames, C, dim]
  std::vector<double> trajectory_covs;   // [frames, C, dim, dim]
  int64_t network_evaluations = 0;       // NFE the server's ODE solver spent
};

// Progress of a streaming call: items (clouds, Gaussians, cells, samples)
// done out of `total`.
using ProgressCallback = std::function<void(int64_t done, int64_t total)>;

class Client {
 public:
  // Builds the channel (reads the TLS files: NotFound / InvalidArgument when
  // they are missing or empty). Does not connect: the first call does, and
  // waits up to kFirstConnectionWait for the connection before it is sent.
  // gRPC 1.51 (Debian 12) can fail a fresh connection attempt spuriously
  // (connect()'s errno is overwritten before it is read; fixed upstream by grpc/grpc#35064),
  // and a call on a channel whose only attempt failed fails at once; the
  // wait lets the channel try again after its 1 s backoff. A server that is
  // down is thus reported after the wait.
  static constexpr double kFirstConnectionWait = 3.0;  // seconds
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  // Over an existing channel (tests, custom credentials).
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options);
  ~Client();

  const ClientOptions& options() const { return options_; }

  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  absl::StatusOr<HealthStatus> CheckHealth(absl::string_view service = kServiceName);

  // ----------------------------------------------------------- data sets
  // `header` names the data set (name, description, overwrite); kind, dim,
  // label type and condition_dim are filled in from the data. Local
  // validation errors are InvalidArgument before anything is sent.
  absl::StatusOr<v1::Dataset> UploadPointClouds(const UploadInfo& info,
                                                const model::io::PointCloudSet& clouds,
                                                const ProgressCallback& progress = nullptr);
  absl::StatusOr<v1::Dataset> UploadGaussians(const UploadInfo& info,
                                              const model::io::GaussianSet& gaussians,
                                              const ProgressCallback& progress = nullptr);
  absl::StatusOr<v1::Dataset> UploadCells(const UploadInfo& info, const SpatialCells& cells,
                                          const ProgressCallback& progress = nullptr);
  // Streams the header, then every chunk `chunker` yields.
  absl::StatusOr<v1::Dataset> Upload(const v1::DatasetHeader& header, UploadChunker& chunker,
                                     const ProgressCallback& progress = nullptr);

  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets();
  absl::StatusOr<v1::Dataset> GetDataset(absl::string_view name);
  absl::Status DeleteDataset(absl::string_view name);

  // ------------------------------------------------------------ training
  absl::StatusOr<v1::TrainingJob> StartTraining(const v1::StartTrainingRequest& request);
  absl::StatusOr<v1::TrainingJob> GetTrainingJob(absl::string_view id);
  absl::StatusOr<std::vector<v1::TrainingJob>> ListTrainingJobs();
  absl::StatusOr<v1::TrainingJob> CancelTrainingJob(absl::string_view id);
  // Calls `on_update` with every update the server streams and returns the
  // last one (the job's final state when the stream ends normally).
  absl::StatusOr<v1::TrainingJob> WatchTrainingJob(
      absl::string_view id, const std::function<void(const v1::TrainingJob&)>& on_update);

  // -------------------------------------------------------------- models
  absl::StatusOr<std::vector<v1::ModelInfo>> ListModels();
  // `version` 0 = the serving version.
  absl::StatusOr<v1::ModelInfo> GetModel(absl::string_view name, int64_t version = 0);
  // `version` 0 = the whole model (every version).
  absl::Status DeleteModel(absl::string_view name, int64_t version = 0);
  // Pin / rollback and retention (UpdateModelRequest).
  absl::StatusOr<v1::ModelInfo> UpdateModel(const v1::UpdateModelRequest& request);

  // ------------------------------------------------------------ sampling
  // Collects the stream; checks every chunk (dimension, sizes, contiguous
  // first_sample, label and trajectory sizes): a malformed stream is
  // Internal. `progress` gets (clouds received, request.num_samples).
  absl::StatusOr<SampledClouds> SampleNiches(const v1::SampleNichesRequest& request,
                                             const ProgressCallback& progress = nullptr);
  absl::StatusOr<SampledGaussians> SampleGaussians(const v1::SampleGaussiansRequest& request);

  absl::StatusOr<v1::EvaluateResponse> Evaluate(const v1::EvaluateRequest& request);

 private:
  // A context with the token metadata and a deadline of `seconds` (<= 0: none).
  // Waits for the first connection, once per client (see Connect).
  std::unique_ptr<grpc::ClientContext> NewContext(double seconds) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WfmService::Stub> stub_;
  ClientOptions options_;
  mutable std::once_flag first_connection_;
};

}  // namespace wfm::client

#endif  // WFM_CLIENT_CLIENT_H_
