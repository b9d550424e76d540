// Client helpers for the server suites, built on the generated stubs (the
// same calls any client makes): uploads, training, sampling, health checks.
#ifndef WFM_TESTS_SERVER_CLIENT_UTIL_H_
#define WFM_TESTS_SERVER_CLIENT_UTIL_H_

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "model/io/point_sets.h"
#include "tests/server/server_test_util.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::testing {

namespace pb = ::wfm::v1;

// ------------------------------------------------------------ uploads

inline std::vector<pb::UploadDatasetRequest> CloudChunks(const model::io::PointCloudSet& set,
                                                         int64_t per_chunk) {
  std::vector<pb::UploadDatasetRequest> out;
  for (int64_t c = 0; c < set.num_clouds(); c += per_chunk) {
    const int64_t end = std::min(set.num_clouds(), c + per_chunk);
    pb::UploadDatasetRequest m;
    pb::PointCloudChunk* chunk = m.mutable_clouds();
    for (int64_t i = c; i < end; ++i) {
      chunk->add_sizes(set.cloud_size(i));
      if (set.labels.kind == model::io::Labels::Kind::kString) {
        chunk->add_labels(set.labels.strings[i]);
      }
    }
    chunk->mutable_points()->Add(set.points.begin() + set.offsets[c] * set.dim,
                                 set.points.begin() + set.offsets[end] * set.dim);
    out.push_back(std::move(m));
  }
  return out;
}

inline std::vector<pb::UploadDatasetRequest> GaussianChunks(const model::io::GaussianSet& set,
                                                            int64_t per_chunk) {
  std::vector<pb::UploadDatasetRequest> out;
  const int64_t d = set.dim;
  for (int64_t g = 0; g < set.num_gaussians(); g += per_chunk) {
    const int64_t end = std::min(set.num_gaussians(), g + per_chunk);
    pb::UploadDatasetRequest m;
    pb::GaussianChunk* chunk = m.mutable_gaussians();
    chunk->mutable_means()->Add(set.means.begin() + g * d, set.means.begin() + end * d);
    chunk->mutable_covs()->Add(set.covs.begin() + g * d * d, set.covs.begin() + end * d * d);
    for (int64_t i = g; i < end && !set.labels.strings.empty(); ++i) {
      chunk->add_labels(set.labels.strings[i]);
    }
    if (set.labels.kind == model::io::Labels::Kind::kContinuous) {
      const int64_t w = set.labels.width;
      chunk->mutable_conditions()->Add(set.labels.values.begin() + g * w,
                                       set.labels.values.begin() + end * w);
    }
    out.push_back(std::move(m));
  }
  return out;
}

inline std::vector<pb::UploadDatasetRequest> CellChunks(const Cells& cells, int64_t per_chunk) {
  std::vector<pb::UploadDatasetRequest> out;
  for (int64_t c = 0; c < cells.size(); c += per_chunk) {
    const int64_t end = std::min(cells.size(), c + per_chunk);
    pb::UploadDatasetRequest m;
    pb::CellChunk* chunk = m.mutable_cells();
    chunk->mutable_features()->Add(cells.features.begin() + c * cells.dim,
                                   cells.features.begin() + end * cells.dim);
    chunk->mutable_coords()->Add(cells.coords.begin() + c * 2, cells.coords.begin() + end * 2);
    for (int64_t i = c; i < end; ++i) {
      chunk->add_sample_ids(cells.sample_ids[i]);
      chunk->add_labels(cells.labels[i]);
    }
    out.push_back(std::move(m));
  }
  return out;
}

inline pb::DatasetHeader Header(const std::string& name, pb::DatasetKind kind, int64_t dim,
                                pb::LabelType labels = pb::LABEL_TYPE_NONE) {
  pb::DatasetHeader h;
  h.set_name(name);
  h.set_kind(kind);
  h.set_dim(dim);
  h.set_label_type(labels);
  return h;
}

// Streams the header and the chunks; the server's status and reply.
inline grpc::Status Upload(pb::WfmService::Stub& stub, const pb::DatasetHeader& header,
                           const std::vector<pb::UploadDatasetRequest>& chunks,
                           pb::Dataset* out = nullptr,
                           const std::function<void(grpc::ClientContext&)>& prepare = nullptr) {
  grpc::ClientContext context;
  if (prepare) prepare(context);
  pb::Dataset reply;
  std::unique_ptr<grpc::ClientWriter<pb::UploadDatasetRequest>> writer =
      stub.UploadDataset(&context, &reply);
  pb::UploadDatasetRequest first;
  *first.mutable_header() = header;
  if (writer->Write(first)) {
    for (const auto& chunk : chunks) {
      if (!writer->Write(chunk)) break;
    }
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (out != nullptr) *out = reply;
  return status;
}

// ------------------------------------------------------------ training

inline pb::TrainingConfig TinyConfig(pb::Family family, int64_t steps, uint64_t seed = 1) {
  pb::TrainingConfig c;
  c.set_family(family);
  c.mutable_network()->set_width(16);
  c.mutable_network()->set_layers(1);
  c.mutable_network()->set_mlp_hidden(32);
  c.mutable_optimizer()->set_steps(steps);
  c.mutable_optimizer()->set_learning_rate(1e-3);
  c.mutable_optimizer()->set_seed(seed);
  if (family == pb::FAMILY_POINTCLOUD) {
    c.mutable_network()->set_heads(2);
    c.mutable_network()->set_dropout(0.0);
    c.mutable_optimizer()->set_batch_size(4);
    c.mutable_pointcloud()->set_sinkhorn_iterations(20);
    c.mutable_pointcloud()->set_minibatch_ot(false);
  } else {
    c.mutable_optimizer()->set_batch_size(8);
  }
  return c;
}

// Watches the job until it ends; every streamed update.
inline std::vector<pb::TrainingJob> Watch(pb::WfmService::Stub& stub, const std::string& id,
                                          grpc::Status* status = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  pb::WatchTrainingJobRequest request;
  request.set_id(id);
  auto reader = stub.WatchTrainingJob(&context, request);
  std::vector<pb::TrainingJob> updates;
  pb::TrainingJob job;
  while (reader->Read(&job)) updates.push_back(job);
  grpc::Status s = reader->Finish();
  if (status != nullptr) *status = s;
  return updates;
}

// Starts a job (the server's status; the job in *job).
inline grpc::Status StartTraining(pb::WfmService::Stub& stub, const std::string& dataset,
                                  const std::string& model, const pb::TrainingConfig& config,
                                  pb::TrainingJob* job) {
  grpc::ClientContext context;
  pb::StartTrainingRequest request;
  request.set_dataset(dataset);
  request.set_model(model);
  *request.mutable_config() = config;
  return stub.StartTraining(&context, request, job);
}

// Starts a job and watches it to its end; the final job.
inline pb::TrainingJob Train(pb::WfmService::Stub& stub, const std::string& dataset,
                             const std::string& model, const pb::TrainingConfig& config) {
  pb::TrainingJob job;
  grpc::Status s = StartTraining(stub, dataset, model, config, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  if (!s.ok()) return job;
  std::vector<pb::TrainingJob> updates = Watch(stub, job.id());
  EXPECT_FALSE(updates.empty());
  return updates.empty() ? job : updates.back();
}

// ------------------------------------------------------------ single calls

template <typename Request, typename Reply>
using UnaryMethod = grpc::Status (pb::WfmService::Stub::*)(grpc::ClientContext*, const Request&,
                                                            Reply*);

// One unary call with a fresh context (`request` may be {}): the server's
// status, the reply in *reply.
template <typename Request, typename Reply>
grpc::Status Call(pb::WfmService::Stub& stub, UnaryMethod<Request, Reply> method,
                  const Request& request, Reply* reply) {
  grpc::ClientContext context;
  return (stub.*method)(&context, request, reply);
}

// A call whose request holds just a name (GetDataset, GetModel,
// DeleteDataset, DeleteModel): the server's status, the reply in *reply.
template <typename Request, typename Reply>
grpc::Status CallNamed(pb::WfmService::Stub& stub, UnaryMethod<Request, Reply> method,
                       const std::string& name, Reply* reply) {
  Request request;
  request.set_name(name);
  return Call(stub, method, request, reply);
}

// The training job `id` (the server's status; the job in *job).
inline grpc::Status GetTrainingJob(pb::WfmService::Stub& stub, const std::string& id,
                                   pb::TrainingJob* job) {
  pb::GetTrainingJobRequest request;
  request.set_id(id);
  return Call(stub, &pb::WfmService::Stub::GetTrainingJob, request, job);
}

// Cancels the training job `id` (the server's status; the job in *job).
inline grpc::Status CancelTrainingJob(pb::WfmService::Stub& stub, const std::string& id,
                                      pb::TrainingJob* job) {
  pb::CancelTrainingJobRequest request;
  request.set_id(id);
  return Call(stub, &pb::WfmService::Stub::CancelTrainingJob, request, job);
}

inline grpc::Status DeleteDataset(pb::WfmService::Stub& stub, const std::string& name) {
  pb::DeleteDatasetResponse reply;
  return CallNamed(stub, &pb::WfmService::Stub::DeleteDataset, name, &reply);
}

inline grpc::Status DeleteModel(pb::WfmService::Stub& stub, const std::string& name) {
  pb::DeleteModelResponse reply;
  return CallNamed(stub, &pb::WfmService::Stub::DeleteModel, name, &reply);
}

// ------------------------------------------------------------ sampling

struct Niches {
  grpc::Status status;
  std::vector<pb::SampleNichesResponse> messages;
  // The clouds concatenated over the messages.
  std::vector<int64_t> sizes;
  std::vector<float> points;
  std::vector<std::string> labels;
};

inline Niches SampleNiches(pb::WfmService::Stub& stub, const pb::SampleNichesRequest& request,
                           const std::function<void(grpc::ClientContext&)>& prepare = nullptr) {
  grpc::ClientContext context;
  if (prepare) prepare(context);
  Niches out;
  auto reader = stub.SampleNiches(&context, request);
  pb::SampleNichesResponse m;
  while (reader->Read(&m)) {
    out.sizes.insert(out.sizes.end(), m.sizes().begin(), m.sizes().end());
    out.points.insert(out.points.end(), m.points().begin(), m.points().end());
    out.labels.insert(out.labels.end(), m.labels().begin(), m.labels().end());
    out.messages.push_back(m);
  }
  out.status = reader->Finish();
  return out;
}

inline pb::SampleNichesRequest NicheRequest(const std::string& model, int64_t num, int64_t points,
                                            uint64_t seed, int64_t steps = 10) {
  pb::SampleNichesRequest r;
  r.set_model(model);
  r.set_num_samples(num);
  r.set_points_per_sample(points);
  r.set_seed(seed);
  r.set_steps(steps);
  return r;
}

// ------------------------------------------------------------ evaluation

// An evaluation of `model` against the `split` ("all" when empty, or
// "heldout") of `dataset`, sampled with `steps` steps.
inline pb::EvaluateRequest EvaluationRequest(const std::string& model, const std::string& dataset,
                                             const std::string& split, int64_t steps) {
  pb::EvaluateRequest request;
  request.set_model(model);
  request.set_dataset(dataset);
  request.set_split(split);
  request.set_steps(steps);
  return request;
}

// Runs the evaluation into *reply; a failed call fails the test (fatally,
// with the server's message: call it in ASSERT_NO_FATAL_FAILURE).
inline void Evaluate(pb::WfmService::Stub& stub, const pb::EvaluateRequest& request,
                     pb::EvaluateResponse* reply) {
  const grpc::Status s = Call(stub, &pb::WfmService::Stub::Evaluate, request, reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// ------------------------------------------------------------ health

// grpc.health.v1.Health/Check by hand (the health proto is not installed):
// request {1: service}, response {1: status} with SERVING = 1,
// NOT_SERVING = 2, SERVICE_UNKNOWN = 3. -1 when the call fails.
inline int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string bytes;
  bytes.push_back(0x0A);
  bytes.push_back(static_cast<char>(service.size()));
  bytes += service;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string reply;
  for (const auto& s : slices) reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (reply.empty()) return 0;  // UNKNOWN (the default value is not sent)
  return reply.size() >= 2 && reply[0] == 0x08 ? reply[1] : -1;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_SERVER_CLIENT_UTIL_H_
