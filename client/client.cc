#include "client/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

// Payload key of RPC errors; the value is the method name.
constexpr char kRpcPayload[] = "type.wfm.dev/wfm.client.RpcError";

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(what, " ", path, ": cannot open (",
                                            std::strerror(errno), ")"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": empty"));
  return text.str();
}

// grpc.health.v1: HealthCheckRequest {string service = 1;} and
// HealthCheckResponse {ServingStatus status = 1;}, encoded by hand so the
// client needs no copy of health.proto (whose descriptors could clash with
// another copy linked into the same process).
std::string EncodeHealthRequest(absl::string_view service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back(0x0A);  // field 1, length-delimited
  uint64_t n = service.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7F) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  out.append(service.data(), service.size());
  return out;
}

bool ReadVarint(absl::string_view bytes, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < bytes.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(bytes[(*pos)++]);
    *value |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

absl::StatusOr<int> DecodeHealthStatus(absl::string_view bytes) {
  size_t pos = 0;
  int status = 0;
  while (pos < bytes.size()) {
    uint64_t key = 0, value = 0;
    if (!ReadVarint(bytes, &pos, &key)) break;
    switch (key & 7) {
      case 0:
        if (!ReadVarint(bytes, &pos, &value)) return absl::InternalError("bad health response");
        if ((key >> 3) == 1) status = static_cast<int>(value);
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        if (!ReadVarint(bytes, &pos, &value)) return absl::InternalError("bad health response");
        pos += value;
        break;
      case 5:
        pos += 4;
        break;
      default:
        return absl::InternalError("bad health response");
    }
  }
  if (pos > bytes.size()) return absl::InternalError("truncated health response");
  return status;
}

absl::Status Malformed(absl::string_view method, absl::string_view what) {
  return absl::InternalError(absl::StrCat(method, ": malformed response from the server: ", what));
}

// Appends frames [frames, p, width] of one chunk to per-frame buffers.
template <typename T>
void AppendFrames(const T* values, int64_t frames, int64_t per_frame,
                  std::vector<std::vector<T>>* out) {
  out->resize(frames);
  for (int64_t f = 0; f < frames; ++f) {
    (*out)[f].insert((*out)[f].end(), values + f * per_frame, values + (f + 1) * per_frame);
  }
}

}  // namespace

absl::string_view HealthStatusName(HealthStatus status) {
  // grpc.health.v1's ServingStatus names, in the order of its (and the
  // enum's) values.
  static constexpr absl::string_view kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                                 "SERVICE_UNKNOWN"};
  static_assert(std::size(kNames) == static_cast<size_t>(HealthStatus::kServiceUnknown) + 1);
  return kNames[static_cast<size_t>(status)];
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view method) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  out.SetPayload(kRpcPayload, absl::Cord(method));
  return out;
}

bool IsRpcError(const absl::Status& status) {
  return status.GetPayload(kRpcPayload).has_value();
}

std::string RpcMethod(const absl::Status& status) {
  const absl::optional<absl::Cord> method = status.GetPayload(kRpcPayload);
  return method.has_value() ? std::string(*method) : std::string();
}

// ------------------------------------------------------------------ channel

namespace {

// "a.b.c.d:port" -> 4, "[v6]:port" -> 6, anything else 0.
int IpVersionOf(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size()) return 0;
  const absl::string_view port = address.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit)) return 0;
  const std::string host(address.substr(0, colon));
  unsigned char buffer[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buffer) == 1) return 4;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buffer) == 1) {
    return 6;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::string> ChannelTarget(absl::string_view server) {
  server = absl::StripAsciiWhitespace(server);
  if (server.empty()) {
    return absl::InvalidArgumentError("server address is empty; expected host:port");
  }
  for (absl::string_view scheme : {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:"}) {
    if (absl::StartsWith(server, scheme)) return std::string(server);
  }
  if (!absl::StrContains(server, ',')) return std::string(server);
  int version = 0;
  std::vector<std::string> addresses;
  for (absl::string_view part : absl::StrSplit(server, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const int v = IpVersionOf(part);
    if (v == 0 || (version != 0 && v != version)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "server address '", server, "': a comma-separated list takes IP addresses of one "
          "version with ports (a.b.c.d:port or [v6]:port), not '", part,
          "'; for a name with several addresses use dns:///NAME:PORT"));
    }
    version = v;
    addresses.emplace_back(part);
  }
  return absl::StrCat(version == 4 ? "ipv4:" : "ipv6:", absl::StrJoin(addresses, ","));
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  WFM_ASSIGN_OR_RETURN(const std::string target, ChannelTarget(options.server));
  if (options.load_balancing != "round_robin" && options.load_balancing != "pick_first") {
    return absl::InvalidArgumentError(absl::StrCat(
        "load balancing '", options.load_balancing, "': expected round_robin or pick_first"));
  }
  const bool tls = options.tls || !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_bytes);
  args.SetMaxSendMessageSize(-1);
  args.SetLoadBalancingPolicyName(options.load_balancing);
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      WFM_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadSmallFile(options.tls_ca_file, "TLS CA file"));
    }
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs both the certificate and the key file");
    }
    if (!options.tls_cert_file.empty()) {
      WFM_ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                           ReadSmallFile(options.tls_cert_file, "TLS certificate file"));
      WFM_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadSmallFile(options.tls_key_file, "TLS key file"));
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return std::make_unique<Client>(grpc::CreateCustomChannel(target, credentials, args), options);
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : channel_(std::move(channel)),
      stub_(v1::WfmService::NewStub(channel_)),
      options_(std::move(options)) {}

Client::~Client() = default;

std::unique_ptr<grpc::ClientContext> Client::NewContext(double seconds) const {
  std::call_once(first_connection_, [this] {
    // Not connected by then: the call itself reports why (it fails fast).
    channel_->WaitForConnected(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(
                                   static_cast<int64_t>(kFirstConnectionWait * 1000)));
  });
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  if (seconds > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
  }
  return context;
}

absl::StatusOr<HealthStatus> Client::CheckHealth(absl::string_view service) {
  static const grpc::internal::RpcMethod kCheck("/grpc.health.v1.Health/Check",
                                                grpc::internal::RpcMethod::NORMAL_RPC);
  auto context = NewContext(options_.deadlines.health);
  const std::string request_bytes = EncodeHealthRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  const grpc::Status status =
      grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          channel_.get(), kCheck, context.get(), request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return HealthStatus::kServiceUnknown;
  if (!status.ok()) return FromGrpcStatus(status, "Health.Check");
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return Malformed("Health.Check", "unreadable message");
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  WFM_ASSIGN_OR_RETURN(const int value, DecodeHealthStatus(bytes));
  switch (value) {
    case 1:
      return HealthStatus::kServing;
    case 2:
      return HealthStatus::kNotServing;
    case 3:
      return HealthStatus::kServiceUnknown;
    default:
      return HealthStatus::kUnknown;
  }
}

// ---------------------------------------------------------------- data sets

absl::StatusOr<v1::Dataset> Client::Upload(const v1::DatasetHeader& header, UploadChunker& chunker,
                                           const ProgressCallback& progress) {
  auto context = NewContext(options_.deadlines.upload);
  v1::Dataset dataset;
  std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> writer =
      stub_->UploadDataset(context.get(), &dataset);
  v1::UploadDatasetRequest request;
  *request.mutable_header() = header;
  bool ok = writer->Write(request);
  if (progress) progress(0, chunker.items_total());
  while (ok && chunker.Next(&request)) {
    ok = writer->Write(request);
    if (ok && progress) progress(chunker.items_sent(), chunker.items_total());
  }
  if (ok) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status, "UploadDataset");
  if (!ok) {
    return FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "the server closed the upload stream early"),
                          "UploadDataset");
  }
  return dataset;
}

absl::StatusOr<v1::Dataset> Client::UploadPointClouds(const UploadInfo& info,
                                                      const io::PointCloudSet& clouds,
                                                      const ProgressCallback& progress) {
  WFM_ASSIGN_OR_RETURN(const v1::DatasetHeader header, PointCloudHeader(info, clouds));
  PointCloudChunker chunker(clouds);
  return Upload(header, chunker, progress);
}

absl::StatusOr<v1::Dataset> Client::UploadGaussians(const UploadInfo& info,
                                                    const io::GaussianSet& gaussians,
                                                    const ProgressCallback& progress) {
  WFM_ASSIGN_OR_RETURN(const v1::DatasetHeader header, GaussianHeader(info, gaussians));
  GaussianChunker chunker(gaussians);
  return Upload(header, chunker, progress);
}

absl::StatusOr<v1::Dataset> Client::UploadCells(const UploadInfo& info, const SpatialCells& cells,
                                                const ProgressCallback& progress) {
  WFM_ASSIGN_OR_RETURN(const v1::DatasetHeader header, CellHeader(info, cells));
  CellChunker chunker(cells);
  return Upload(header, chunker, progress);
}

absl::StatusOr<std::vector<v1::Dataset>> Client::ListDatasets() {
  auto context = NewContext(options_.deadlines.unary);
  v1::ListDatasetsResponse response;
  const grpc::Status status = stub_->ListDatasets(context.get(), {}, &response);
  if (!status.ok()) return FromGrpcStatus(status, "ListDatasets");
  return std::vector<v1::Dataset>(response.datasets().begin(), response.datasets().end());
}

absl::StatusOr<v1::Dataset> Client::GetDataset(absl::string_view name) {
  auto context = NewContext(options_.deadlines.unary);
  v1::GetDatasetRequest request;
  request.set_name(std::string(name));
  v1::Dataset response;
  const grpc::Status status = stub_->GetDataset(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "GetDataset");
  return response;
}

absl::Status Client::DeleteDataset(absl::string_view name) {
  auto context = NewContext(options_.deadlines.unary);
  v1::DeleteDatasetRequest request;
  request.set_name(std::string(name));
  v1::DeleteDatasetResponse response;
  return FromGrpcStatus(stub_->DeleteDataset(context.get(), request, &response), "DeleteDataset");
}

// ----------------------------------------------------------------- training

absl::StatusOr<v1::TrainingJob> Client::StartTraining(const v1::StartTrainingRequest& request) {
  auto context = NewContext(options_.deadlines.unary);
  v1::TrainingJob job;
  const grpc::Status status = stub_->StartTraining(context.get(), request, &job);
  if (!status.ok()) return FromGrpcStatus(status, "StartTraining");
  return job;
}

absl::StatusOr<v1::TrainingJob> Client::GetTrainingJob(absl::string_view id) {
  auto context = NewContext(options_.deadlines.unary);
  v1::GetTrainingJobRequest request;
  request.set_id(std::string(id));
  v1::TrainingJob job;
  const grpc::Status status = stub_->GetTrainingJob(context.get(), request, &job);
  if (!status.ok()) return FromGrpcStatus(status, "GetTrainingJob");
  return job;
}

absl::StatusOr<std::vector<v1::TrainingJob>> Client::ListTrainingJobs() {
  auto context = NewContext(options_.deadlines.unary);
  v1::ListTrainingJobsResponse response;
  const grpc::Status status = stub_->ListTrainingJobs(context.get(), {}, &response);
  if (!status.ok()) return FromGrpcStatus(status, "ListTrainingJobs");
  return std::vector<v1::TrainingJob>(response.jobs().begin(), response.jobs().end());
}

absl::StatusOr<v1::TrainingJob> Client::CancelTrainingJob(absl::string_view id) {
  auto context = NewContext(options_.deadlines.unary);
  v1::CancelTrainingJobRequest request;
  request.set_id(std::string(id));
  v1::TrainingJob job;
  const grpc::Status status = stub_->CancelTrainingJob(context.get(), request, &job);
  if (!status.ok()) return FromGrpcStatus(status, "CancelTrainingJob");
  return job;
}

absl::StatusOr<v1::TrainingJob> Client::WatchTrainingJob(
    absl::string_view id, const std::function<void(const v1::TrainingJob&)>& on_update) {
  auto context = NewContext(options_.deadlines.watch);
  v1::WatchTrainingJobRequest request;
  request.set_id(std::string(id));
  std::unique_ptr<grpc::ClientReader<v1::TrainingJob>> reader =
      stub_->WatchTrainingJob(context.get(), request);
  v1::TrainingJob job, last;
  bool any = false;
  while (reader->Read(&job)) {
    if (on_update) on_update(job);
    last = job;
    any = true;
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status, "WatchTrainingJob");
  if (!any) return Malformed("WatchTrainingJob", "the stream ended without an update");
  return last;
}

// ------------------------------------------------------------------- models

absl::StatusOr<std::vector<v1::ModelInfo>> Client::ListModels() {
  auto context = NewContext(options_.deadlines.unary);
  v1::ListModelsResponse response;
  const grpc::Status status = stub_->ListModels(context.get(), {}, &response);
  if (!status.ok()) return FromGrpcStatus(status, "ListModels");
  return std::vector<v1::ModelInfo>(response.models().begin(), response.models().end());
}

absl::StatusOr<v1::ModelInfo> Client::GetModel(absl::string_view name, int64_t version) {
  auto context = NewContext(options_.deadlines.unary);
  v1::GetModelRequest request;
  request.set_name(std::string(name));
  request.set_version(version);
  v1::ModelInfo response;
  const grpc::Status status = stub_->GetModel(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "GetModel");
  return response;
}

absl::Status Client::DeleteModel(absl::string_view name, int64_t version) {
  auto context = NewContext(options_.deadlines.unary);
  v1::DeleteModelRequest request;
  request.set_name(std::string(name));
  request.set_version(version);
  v1::DeleteModelResponse response;
  return FromGrpcStatus(stub_->DeleteModel(context.get(), request, &response), "DeleteModel");
}

absl::StatusOr<v1::ModelInfo> Client::UpdateModel(const v1::UpdateModelRequest& request) {
  auto context = NewContext(options_.deadlines.unary);
  v1::ModelInfo response;
  const grpc::Status status = stub_->UpdateModel(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "UpdateModel");
  return response;
}

// ----------------------------------------------------------------- sampling

absl::StatusOr<SampledClouds> Client::SampleNiches(const v1::SampleNichesRequest& request,
                                                   const ProgressCallback& progress) {
  constexpr absl::string_view kMethod = "SampleNiches";
  auto context = NewContext(options_.deadlines.sample);
  std::unique_ptr<grpc::ClientReader<v1::SampleNichesResponse>> reader =
      stub_->SampleNiches(context.get(), request);
  SampledClouds out;
  io::PointCloudSet& clouds = out.clouds;
  clouds.offsets = {0};
  std::vector<std::string> labels;
  std::vector<float> conditions;
  int64_t condition_dim = -1;  // unknown until the first chunk
  bool with_labels = false;
  std::vector<std::vector<float>> frames;
  v1::SampleNichesResponse chunk;
  int64_t chunks = 0;
  absl::Status problem;
  if (progress) progress(0, request.num_samples());
  while (problem.ok() && reader->Read(&chunk)) {
    const int64_t c = chunk.sizes_size();
    const int64_t first = clouds.num_clouds();
    if (chunks == 0) {
      clouds.dim = chunk.dim();
      with_labels = chunk.labels_size() > 0;
      out.frames = chunk.frames();
      out.network_evaluations = chunk.network_evaluations();
      if (clouds.dim < 1) problem = Malformed(kMethod, absl::StrCat("dim ", chunk.dim()));
    }
    int64_t points = 0;
    for (int64_t s : chunk.sizes()) {
      if (s < 1) problem = Malformed(kMethod, absl::StrCat("a cloud of ", s, " points"));
      points += s;
    }
    if (!problem.ok()) break;
    if (chunk.dim() != clouds.dim) {
      problem = Malformed(kMethod, absl::StrCat("dim ", chunk.dim(), " after ", clouds.dim));
    } else if (chunk.first_sample() != first) {
      problem = Malformed(kMethod, absl::StrCat("first_sample ", chunk.first_sample(),
                                                " after ", first, " clouds"));
    } else if (chunk.points_size() != points * clouds.dim) {
      problem = Malformed(kMethod, absl::StrCat(chunk.points_size(), " point values for ",
                                                points, " points of dimension ", clouds.dim));
    } else if ((chunk.labels_size() > 0) != with_labels ||
               (with_labels && chunk.labels_size() != c)) {
      problem = Malformed(kMethod, absl::StrCat(chunk.labels_size(), " labels for ", c, " clouds"));
    } else if (chunk.frames() != out.frames ||
               chunk.trajectory_size() != out.frames * points * clouds.dim) {
      problem = Malformed(kMethod, absl::StrCat("trajectory of ", chunk.trajectory_size(),
                                                " values for ", chunk.frames(), " frames"));
    } else if (c > 0) {
      const int64_t width = chunk.conditions_size() / c;
      if (chunk.conditions_size() % c != 0 || (condition_dim >= 0 && width != condition_dim)) {
        problem = Malformed(kMethod,
                            absl::StrCat(chunk.conditions_size(), " condition values for ", c,
                                         " clouds"));
      }
      condition_dim = width;
    }
    if (!problem.ok()) break;
    clouds.points.insert(clouds.points.end(), chunk.points().begin(), chunk.points().end());
    for (int64_t s : chunk.sizes()) clouds.offsets.push_back(clouds.offsets.back() + s);
    labels.insert(labels.end(), chunk.labels().begin(), chunk.labels().end());
    conditions.insert(conditions.end(), chunk.conditions().begin(), chunk.conditions().end());
    if (out.frames > 0) {
      AppendFrames(chunk.trajectory().data(), out.frames, points * clouds.dim, &frames);
    }
    ++chunks;
    if (progress) progress(clouds.num_clouds(), request.num_samples());
  }
  if (!problem.ok()) {
    context->TryCancel();
    reader->Finish();
    return problem;
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status, kMethod);
  if (request.num_samples() > 0 && clouds.num_clouds() != request.num_samples()) {
    return Malformed(kMethod, absl::StrCat("the stream ended after ", clouds.num_clouds(), " of ",
                                           request.num_samples(), " samples"));
  }
  if (with_labels) {
    clouds.labels = io::Labels::FromStrings(std::move(labels));
  } else if (condition_dim > 0) {
    clouds.labels = io::Labels::FromContinuous(std::move(conditions), condition_dim);
  }
  for (auto& frame : frames) out.trajectory.insert(out.trajectory.end(), frame.begin(), frame.end());
  return out;
}

absl::StatusOr<SampledGaussians> Client::SampleGaussians(const v1::SampleGaussiansRequest& request) {
  constexpr absl::string_view kMethod = "SampleGaussians";
  auto context = NewContext(options_.deadlines.sample);
  v1::SampleGaussiansResponse response;
  const grpc::Status status = stub_->SampleGaussians(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, kMethod);
  const int64_t d = response.dim();
  if (d < 1) return Malformed(kMethod, absl::StrCat("dim ", d));
  const int64_t n = response.means_size() / d;
  if (response.means_size() != n * d || response.covs_size() != n * d * d) {
    return Malformed(kMethod, absl::StrCat(response.means_size(), " mean and ",
                                           response.covs_size(), " covariance values for dim ", d));
  }
  if (response.labels_size() != 0 && response.labels_size() != n) {
    return Malformed(kMethod, absl::StrCat(response.labels_size(), " labels for ", n, " Gaussians"));
  }
  if (response.conditions_size() % std::max<int64_t>(n, 1) != 0 ||
      (response.conditions_size() > 0 && n == 0)) {
    return Malformed(kMethod, absl::StrCat(response.conditions_size(), " condition values for ", n,
                                           " Gaussians"));
  }
  const int64_t frames = response.frames();
  if (response.trajectory_means_size() != frames * n * d ||
      response.trajectory_covs_size() != frames * n * d * d) {
    return Malformed(kMethod, "trajectory sizes do not match frames");
  }
  if (request.num_samples() > 0 && n != request.num_samples()) {
    return Malformed(kMethod, absl::StrCat(n, " Gaussians for ", request.num_samples(),
                                           " requested"));
  }
  SampledGaussians out;
  out.gaussians.dim = d;
  out.gaussians.means.assign(response.means().begin(), response.means().end());
  out.gaussians.covs.assign(response.covs().begin(), response.covs().end());
  if (response.labels_size() > 0) {
    out.gaussians.labels = io::Labels::FromStrings(
        std::vector<std::string>(response.labels().begin(), response.labels().end()));
  } else if (response.conditions_size() > 0) {
    out.gaussians.labels = io::Labels::FromContinuous(
        std::vector<float>(response.conditions().begin(), response.conditions().end()),
        response.conditions_size() / n);
  }
  out.frames = frames;
  out.network_evaluations = response.network_evaluations();
  out.trajectory_means.assign(response.trajectory_means().begin(),
                              response.trajectory_means().end());
  out.trajectory_covs.assign(response.trajectory_covs().begin(), response.trajectory_covs().end());
  return out;
}

absl::StatusOr<v1::EvaluateResponse> Client::Evaluate(const v1::EvaluateRequest& request) {
  auto context = NewContext(options_.deadlines.evaluate);
  v1::EvaluateResponse response;
  const grpc::Status status = stub_->Evaluate(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "Evaluate");
  return response;
}

}  // namespace wfm::client
