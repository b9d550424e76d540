#include "server/wfm_service_impl.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/common/status.h"
#include "proto/training_options.h"
#include "repository/logging.h"
#include "repository/names.h"
#include "server/evaluator.h"
#include "server/grpc_status.h"
#include "server/proto_convert.h"

namespace wfm::server {

using repository::ValidateName;

namespace {

namespace pb = ::wfm::v1;

std::optional<absl::string_view> AuthorizationOf(const grpc::ServerContext* context) {
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

// [first, end) cloud ranges of the messages of a SampleNiches reply: at most
// `per_message` clouds and kSampleMessageBudgetBytes bytes each (a larger
// cloud alone). RESOURCE_EXHAUSTED when one cloud exceeds
// kMaxSampleMessageBytes.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> PlanMessages(
    const model::GeneratedClouds& g, int64_t per_message, int64_t frames) {
  const int64_t n = static_cast<int64_t>(g.offsets.size()) - 1;
  const int64_t cond_dim = n > 0 ? static_cast<int64_t>(g.conditions.size()) / n : 0;
  std::vector<std::pair<int64_t, int64_t>> plan;
  int64_t first = 0, bytes = 0;
  for (int64_t c = 0; c < n; ++c) {
    const int64_t points = g.offsets[c + 1] - g.offsets[c];
    int64_t cloud = points * g.dim * 4 * (1 + frames) + 8 + cond_dim * 4;
    if (!g.labels.empty()) cloud += static_cast<int64_t>(g.labels[c].size()) + 2;
    if (cloud > kMaxSampleMessageBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "sample ", c, " takes ", cloud, " bytes (", points, " points",
          frames > 0 ? absl::StrCat(" x ", frames, " trajectory frames") : std::string(),
          "), over the ", kMaxSampleMessageBytes,
          "-byte message limit; ask for fewer points or steps"));
    }
    const bool full = c > first && (c - first >= per_message || bytes + cloud > kSampleMessageBudgetBytes);
    if (full) {
      plan.emplace_back(first, c);
      first = c;
      bytes = 0;
    }
    bytes += cloud;
  }
  if (n > first) plan.emplace_back(first, n);
  return plan;
}

void FillMessage(const model::GeneratedClouds& g, int64_t first, int64_t end, int64_t frames,
                 pb::SampleNichesResponse* out) {
  const int64_t n = static_cast<int64_t>(g.offsets.size()) - 1;
  const int64_t d = g.dim;
  const int64_t cond_dim = n > 0 ? static_cast<int64_t>(g.conditions.size()) / n : 0;
  out->set_first_sample(first);
  out->set_dim(d);
  for (int64_t c = first; c < end; ++c) out->add_sizes(g.offsets[c + 1] - g.offsets[c]);
  const int64_t p0 = g.offsets[first], p1 = g.offsets[end];
  out->mutable_points()->Add(g.points.begin() + p0 * d, g.points.begin() + p1 * d);
  for (int64_t c = first; c < end && !g.labels.empty(); ++c) out->add_labels(g.labels[c]);
  if (cond_dim > 0) {
    out->mutable_conditions()->Add(g.conditions.begin() + first * cond_dim,
                                   g.conditions.begin() + end * cond_dim);
  }
  out->set_network_evaluations(g.evaluations);
  if (frames > 0) {
    out->set_frames(frames);
    out->mutable_trajectory_times()->Add(g.trajectory_times.begin(), g.trajectory_times.end());
    const int64_t total = g.offsets.back();
    auto* t = out->mutable_trajectory();
    t->Reserve(static_cast<int>(frames * (p1 - p0) * d));
    for (int64_t f = 0; f < frames; ++f) {
      const auto begin = g.trajectory.begin() + (f * total + p0) * d;
      t->Add(begin, begin + (p1 - p0) * d);
    }
  }
}

}  // namespace

WfmServiceImpl::WfmServiceImpl(ServiceDeps deps) : deps_(deps) {}

grpc::Status WfmServiceImpl::Handle(const char* method, grpc::ServerContext* context,
                                    const std::function<absl::Status()>& body) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status =
      deps_.auth != nullptr ? deps_.auth->Check(AuthorizationOf(context)) : absl::OkStatus();
  if (status.ok()) {
    try {
      status = body();
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat(method, ": ", e.what()));
    } catch (...) {
      status = absl::InternalError(absl::StrCat(method, ": unknown exception"));
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (deps_.metrics != nullptr) deps_.metrics->ObserveRpc(method, CodeName(status.code()), seconds);
  if (!status.ok()) {
    const std::string line = absl::StrCat(method, " ", CodeName(status.code()), ": ",
                                          TruncateMessage(status.message(), 512));
    const absl::StatusCode code = status.code();
    if (code == absl::StatusCode::kInternal || code == absl::StatusCode::kDataLoss ||
        code == absl::StatusCode::kUnknown) {
      LogError(line);
    } else {
      LogDebug(line);
    }
  }
  return ToGrpcStatus(status);
}

// ---------------------------------------------------------------- data sets

grpc::Status WfmServiceImpl::UploadDataset(grpc::ServerContext* context,
                                           grpc::ServerReader<pb::UploadDatasetRequest>* reader,
                                           pb::Dataset* response) {
  return Handle("UploadDataset", context, [&]() -> absl::Status {
    pb::UploadDatasetRequest message;
    if (!reader->Read(&message)) {
      return absl::InvalidArgumentError("upload: the stream ended before the header");
    }
    if (!message.has_header()) {
      return absl::InvalidArgumentError("upload: the first message must be the header");
    }
    WFM_ASSIGN_OR_RETURN(const DatasetHeader header, HeaderFromProto(message.header()));
    WFM_ASSIGN_OR_RETURN(std::unique_ptr<DatasetUpload> upload,
                         deps_.datasets->BeginUpload(header));
    int64_t index = 0;
    while (reader->Read(&message)) {
      ++index;
      switch (message.payload_case()) {
        case pb::UploadDatasetRequest::kClouds:
          WFM_RETURN_IF_ERROR(upload->AddClouds(ChunkView(message.clouds())));
          break;
        case pb::UploadDatasetRequest::kGaussians:
          WFM_RETURN_IF_ERROR(upload->AddGaussians(ChunkView(message.gaussians())));
          break;
        case pb::UploadDatasetRequest::kCells:
          WFM_RETURN_IF_ERROR(upload->AddCells(ChunkView(message.cells())));
          break;
        case pb::UploadDatasetRequest::kHeader:
          return absl::InvalidArgumentError(
              absl::StrCat("upload: message ", index, " is a second header"));
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("upload: message ", index, " carries no payload"));
      }
    }
    if (context->IsCancelled()) return absl::CancelledError("upload cancelled by the client");
    WFM_ASSIGN_OR_RETURN(const DatasetInfo info, upload->Finish());
    ToProto(info, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::ListDatasets(grpc::ServerContext* context,
                                          const pb::ListDatasetsRequest* request,
                                          pb::ListDatasetsResponse* response) {
  return Handle("ListDatasets", context, [&]() -> absl::Status {
    for (const DatasetInfo& info : deps_.datasets->List()) ToProto(info, response->add_datasets());
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::GetDataset(grpc::ServerContext* context,
                                        const pb::GetDatasetRequest* request,
                                        pb::Dataset* response) {
  return Handle("GetDataset", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("name", request->name()));
    WFM_ASSIGN_OR_RETURN(const DatasetInfo info, deps_.datasets->Get(request->name()));
    ToProto(info, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::DeleteDataset(grpc::ServerContext* context,
                                           const pb::DeleteDatasetRequest* request,
                                           pb::DeleteDatasetResponse* response) {
  return Handle("DeleteDataset", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("name", request->name()));
    return deps_.datasets->Delete(request->name());
  });
}

// ---------------------------------------------------------------- training

grpc::Status WfmServiceImpl::StartTraining(grpc::ServerContext* context,
                                           const pb::StartTrainingRequest* request,
                                           pb::TrainingJob* response) {
  return Handle("StartTraining", context, [&]() -> absl::Status {
    WFM_ASSIGN_OR_RETURN(const TrainingRequest training,
                         TrainingRequestFromProto(*request, deps_.default_checkpoint_every));
    WFM_ASSIGN_OR_RETURN(const JobStatus job, deps_.jobs->Start(training));
    ToProto(job, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::GetTrainingJob(grpc::ServerContext* context,
                                            const pb::GetTrainingJobRequest* request,
                                            pb::TrainingJob* response) {
  return Handle("GetTrainingJob", context, [&]() -> absl::Status {
    if (request->id().empty()) return absl::InvalidArgumentError("id: a job id is required");
    WFM_ASSIGN_OR_RETURN(const JobStatus job, deps_.jobs->Get(request->id()));
    ToProto(job, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::ListTrainingJobs(grpc::ServerContext* context,
                                              const pb::ListTrainingJobsRequest* request,
                                              pb::ListTrainingJobsResponse* response) {
  return Handle("ListTrainingJobs", context, [&]() -> absl::Status {
    for (const JobStatus& job : deps_.jobs->List()) ToProto(job, response->add_jobs());
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::DescribeTrainingOptions(
    grpc::ServerContext* context, const pb::DescribeTrainingOptionsRequest* request,
    pb::DescribeTrainingOptionsResponse* response) {
  return Handle("DescribeTrainingOptions", context, [&]() -> absl::Status {
    api::DescribeTrainingOptions(response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::CancelTrainingJob(grpc::ServerContext* context,
                                               const pb::CancelTrainingJobRequest* request,
                                               pb::TrainingJob* response) {
  return Handle("CancelTrainingJob", context, [&]() -> absl::Status {
    if (request->id().empty()) return absl::InvalidArgumentError("id: a job id is required");
    WFM_ASSIGN_OR_RETURN(const JobStatus job, deps_.jobs->Cancel(request->id()));
    ToProto(job, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::WatchTrainingJob(grpc::ServerContext* context,
                                              const pb::WatchTrainingJobRequest* request,
                                              grpc::ServerWriter<pb::TrainingJob>* writer) {
  return Handle("WatchTrainingJob", context, [&]() -> absl::Status {
    if (request->id().empty()) return absl::InvalidArgumentError("id: a job id is required");
    int64_t sent_version = -1;
    absl::Time sent_at = absl::InfinitePast();
    while (true) {
      WFM_ASSIGN_OR_RETURN(const JobStatus job, deps_.jobs->WaitForUpdate(
                                                    request->id(), sent_version,
                                                    absl::Milliseconds(200)));
      if (context->IsCancelled()) return absl::CancelledError("watch cancelled by the client");
      const absl::Time now = absl::Now();
      // Every new version, and a heartbeat at least every second.
      if (job.version != sent_version || now - sent_at >= absl::Seconds(1)) {
        pb::TrainingJob message;
        ToProto(job, &message);
        if (!writer->Write(message)) return absl::CancelledError("the watching client went away");
        sent_version = job.version;
        sent_at = now;
      }
      if (IsTerminal(job.state)) return absl::OkStatus();
    }
  });
}

// ---------------------------------------------------------------- models

grpc::Status WfmServiceImpl::ListModels(grpc::ServerContext* context,
                                        const pb::ListModelsRequest* request,
                                        pb::ListModelsResponse* response) {
  return Handle("ListModels", context, [&]() -> absl::Status {
    for (const ModelVersions& model : deps_.models->ListVersions()) {
      ToProto(model, response->add_models());
    }
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::GetModel(grpc::ServerContext* context,
                                      const pb::GetModelRequest* request,
                                      pb::ModelInfo* response) {
  return Handle("GetModel", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("name", request->name()));
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    WFM_ASSIGN_OR_RETURN(const ModelVersions model,
                         deps_.models->Describe(request->name(), request->version()));
    ToProto(model, response);
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::DeleteModel(grpc::ServerContext* context,
                                         const pb::DeleteModelRequest* request,
                                         pb::DeleteModelResponse* response) {
  return Handle("DeleteModel", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("name", request->name()));
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    if (request->version() > 0) {
      WFM_RETURN_IF_ERROR(deps_.models->DeleteVersion(request->name(), request->version()));
    } else {
      WFM_RETURN_IF_ERROR(deps_.models->Delete(request->name()));
    }
    deps_.sampler->Forget(request->name(), request->version());
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::UpdateModel(grpc::ServerContext* context,
                                         const pb::UpdateModelRequest* request,
                                         pb::ModelInfo* response) {
  return Handle("UpdateModel", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("name", request->name()));
    std::optional<int64_t> serving_version;
    std::optional<int64_t> keep_versions;
    if (request->has_serving_version()) {
      WFM_RETURN_IF_ERROR(ValidateVersionField("serving_version", request->serving_version()));
      serving_version = request->serving_version();
    }
    if (request->has_keep_versions()) {
      if (request->keep_versions() < 0 || request->keep_versions() > kMaxKeepVersions) {
        return absl::InvalidArgumentError(
            absl::StrCat("keep_versions: must be 0 (the server's default) to ", kMaxKeepVersions,
                         ", got ", request->keep_versions()));
      }
      keep_versions = request->keep_versions();
    }
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    if (!pb::ModelResidency_IsValid(request->residency())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "residency: unknown value ", request->residency(),
          "; MODEL_RESIDENCY_UNCHANGED, MODEL_RESIDENCY_LOAD or MODEL_RESIDENCY_UNLOAD"));
    }
    if (request->version() > 0 && request->residency() == pb::MODEL_RESIDENCY_UNCHANGED) {
      return absl::InvalidArgumentError(
          "version: only with residency MODEL_RESIDENCY_LOAD or MODEL_RESIDENCY_UNLOAD");
    }
    if (serving_version.has_value() || keep_versions.has_value()) {
      WFM_RETURN_IF_ERROR(
          deps_.models->Update(request->name(), serving_version, keep_versions).status());
    }
    switch (request->residency()) {
      case pb::MODEL_RESIDENCY_LOAD:
        WFM_RETURN_IF_ERROR(deps_.models->Load(request->name(), request->version()));
        break;
      case pb::MODEL_RESIDENCY_UNLOAD:
        WFM_RETURN_IF_ERROR(deps_.models->Unload(request->name(), request->version()));
        break;
      default:
        break;
    }
    WFM_ASSIGN_OR_RETURN(const ModelVersions model, deps_.models->Describe(request->name()));
    ToProto(model, response);
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- sampling

grpc::Status WfmServiceImpl::SampleNiches(grpc::ServerContext* context,
                                          const pb::SampleNichesRequest* request,
                                          grpc::ServerWriter<pb::SampleNichesResponse>* writer) {
  return Handle("SampleNiches", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("model", request->model()));
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    WFM_ASSIGN_OR_RETURN(const model::CloudSampleRequest sample, CloudRequestFromProto(*request));
    WFM_ASSIGN_OR_RETURN(const QueuePolicy policy, QueuePolicyFromProto(*request));
    // At most steps + 1 frames (fewer for the adaptive solver).
    const int64_t frames = sample.trajectory ? sample.steps + 1 : 0;
    if (sample.points > 0 &&
        sample.points * std::max<int64_t>(1, frames) * 4 > kMaxSampleMessageBytes) {
      // Checked exactly (with the dimension) after sampling; this catches the
      // hopeless cases before any work.
      return absl::ResourceExhaustedError(absl::StrCat(
          "points_per_sample: ", sample.points, " points", frames > 0 ? " with a trajectory" : "",
          " exceed the ", kMaxSampleMessageBytes, "-byte message limit per sample"));
    }
    // Resolved once, so that the reply names the version that generated it
    // (the sampler loads it when it is not in memory).
    WFM_ASSIGN_OR_RETURN(const ModelInfo info,
                         deps_.models->Info(request->model(), request->version()));
    const int64_t version = info.version;
    WFM_ASSIGN_OR_RETURN(
        const model::GeneratedClouds clouds,
        deps_.sampler->SampleClouds(request->model(), sample,
                                    [context] { return context->IsCancelled(); }, policy, version));
    const int64_t per_message = request->samples_per_message() > 0
                                    ? request->samples_per_message()
                                    : sample.num_samples;
    const int64_t taken = sample.trajectory ? static_cast<int64_t>(clouds.trajectory_times.size()) : 0;
    WFM_ASSIGN_OR_RETURN(const auto plan, PlanMessages(clouds, per_message, taken));
    for (const auto& [first, end] : plan) {
      pb::SampleNichesResponse message;
      FillMessage(clouds, first, end, taken, &message);
      message.set_version(version);
      if (!writer->Write(message)) return absl::CancelledError("the sampling client went away");
    }
    return absl::OkStatus();
  });
}

grpc::Status WfmServiceImpl::SampleGaussians(grpc::ServerContext* context,
                                             const pb::SampleGaussiansRequest* request,
                                             pb::SampleGaussiansResponse* response) {
  return Handle("SampleGaussians", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("model", request->model()));
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    WFM_ASSIGN_OR_RETURN(const model::GaussianSampleRequest sample,
                         GaussianRequestFromProto(*request));
    WFM_ASSIGN_OR_RETURN(const QueuePolicy policy, QueuePolicyFromProto(*request));
    WFM_ASSIGN_OR_RETURN(const ModelInfo info,
                         deps_.models->Info(request->model(), request->version()));
    // One unary reply: refuse what would not fit a message before any work.
    const int64_t d = info.dim;
    // At most steps + 1 frames (fewer for the adaptive solver).
    const int64_t frames = sample.trajectory ? sample.steps + 1 : 0;
    const int64_t per_sample = (d + d * d) * 8 * (1 + frames) + 16;
    if (sample.num_samples > 0 && sample.num_samples * per_sample > kMaxSampleMessageBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "num_samples: ", sample.num_samples, " Gaussians of dim ", d,
          frames > 0 ? absl::StrCat(" with ", frames, " trajectory frames") : std::string(),
          " take ", sample.num_samples * per_sample, " bytes, over the ", kMaxSampleMessageBytes,
          "-byte message limit; ask for at most ",
          std::max<int64_t>(1, kMaxSampleMessageBytes / per_sample), " per call"));
    }
    WFM_ASSIGN_OR_RETURN(
        const model::GeneratedGaussians gaussians,
        deps_.sampler->SampleGaussians(request->model(), sample,
                                       [context] { return context->IsCancelled(); }, policy,
                                       info.version));
    ToProto(gaussians,
            sample.trajectory ? static_cast<int64_t>(gaussians.trajectory_times.size()) : 0,
            response);
    response->set_version(info.version);
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- evaluation

grpc::Status WfmServiceImpl::Evaluate(grpc::ServerContext* context,
                                      const pb::EvaluateRequest* request,
                                      pb::EvaluateResponse* response) {
  return Handle("Evaluate", context, [&]() -> absl::Status {
    WFM_RETURN_IF_ERROR(ValidateName("model", request->model()));
    WFM_RETURN_IF_ERROR(ValidateName("dataset", request->dataset()));
    WFM_RETURN_IF_ERROR(ValidateVersionField("version", request->version()));
    WFM_ASSIGN_OR_RETURN(const auto servable,
                         deps_.models->Get(request->model(), request->version()));
    WFM_ASSIGN_OR_RETURN(const auto data, deps_.datasets->Load(request->dataset()));
    WFM_ASSIGN_OR_RETURN(const EvaluationResult result,
                         EvaluateModel(*servable, *data, EvaluateOptionsFromProto(*request),
                                       deps_.sampler->options().limits,
                                       [context] { return context->IsCancelled(); }));
    ToProto(result, response);
    response->set_version(servable->info.version);
    return absl::OkStatus();
  });
}

}  // namespace wfm::server
