// FuzzRequests (see targets.h): kept apart from targets.cc because it links
// the server libraries, which the reader targets do not need.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/logging.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/targets.h"
#include "fuzz/util.h"
#include "model/config/config.h"
#include "repository/logging.h"
#include "repository/model_folder.h"
#include "repository/names.h"
#include "repository/training_data.h"
#include "server/dataset_store.h"
#include "server/job_record.h"
#include "server/proto_convert.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::fuzz {
namespace {

namespace pb = ::wfm::v1;

// ---------------------------------------------------------------- requests

// The dataset store the upload checks run against: a per-process folder.
server::DatasetStore& Store() {
  static server::DatasetStore* const store = [] {
    SetLogLevel(LogLevel::kWarning);  // no line per stored data set
    server::DatasetStoreOptions options;
    options.root = absl::StrCat(ScratchPath(), "/datasets");
    options.max_upload_bytes = int64_t{1} << 20;
    absl::StatusOr<std::unique_ptr<server::DatasetStore>> opened =
        server::DatasetStore::Open(options);
    if (!opened.ok()) {
      Fail(absl::StrCat("cannot open the data set store: ", opened.status().ToString()));
    }
    return opened->release();
  }();
  return *store;
}

// The upload stream: varint-length-prefixed UploadDatasetRequest messages.
void FuzzUpload(absl::string_view bytes) {
  std::vector<pb::UploadDatasetRequest> messages;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (messages.size() < 64) {
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) break;
    const void* chunk = nullptr;
    int available = 0;
    if (!in.GetDirectBufferPointer(&chunk, &available) && length > 0) break;
    if (static_cast<uint32_t>(available) < length) break;
    pb::UploadDatasetRequest message;
    // A message that does not parse is rejected by the server's gRPC layer.
    if (!message.ParseFromArray(chunk, static_cast<int>(length))) return;
    messages.push_back(std::move(message));
    in.Skip(static_cast<int>(length));
  }
  // As WfmServiceImpl::UploadDataset: header first, then chunks.
  if (messages.empty() || !messages[0].has_header()) return;
  absl::StatusOr<server::DatasetHeader> header = server::HeaderFromProto(messages[0].header());
  if (!header.ok()) return;
  server::DatasetStore& store = Store();
  absl::StatusOr<std::unique_ptr<server::DatasetUpload>> upload = store.BeginUpload(*header);
  if (!upload.ok()) return;
  for (size_t i = 1; i < messages.size(); ++i) {
    const pb::UploadDatasetRequest& m = messages[i];
    absl::Status status;
    switch (m.payload_case()) {
      case pb::UploadDatasetRequest::kClouds:
        status = (*upload)->AddClouds(server::ChunkView(m.clouds()));
        break;
      case pb::UploadDatasetRequest::kGaussians:
        status = (*upload)->AddGaussians(server::ChunkView(m.gaussians()));
        break;
      case pb::UploadDatasetRequest::kCells:
        status = (*upload)->AddCells(server::ChunkView(m.cells()));
        break;
      default:
        return;  // a second header or no payload: rejected by the service
    }
    if (!status.ok()) return;
  }
  absl::StatusOr<server::DatasetInfo> info = (*upload)->Finish();
  if (!info.ok()) return;
  // What was accepted is stored completely: it loads back.
  absl::StatusOr<std::shared_ptr<const server::DatasetData>> loaded = store.Load(info->name);
  if (!loaded.ok()) {
    Fail(absl::StrCat("accepted data set does not load: ", loaded.status().ToString()));
  }
  pb::Dataset reply;
  server::ToProto(info.value(), &reply);
  loaded->reset();
  if (absl::Status s = store.Delete(info->name); !s.ok()) {
    Fail(absl::StrCat("cannot delete an accepted data set: ", s.ToString()));
  }
}

// What the job manager checks without a stored data set
// (server/job_validation.cc), then the config's JSON round trip a checkpoint
// relies on.
void FuzzStartTraining(const pb::StartTrainingRequest& req) {
  absl::StatusOr<server::TrainingRequest> r = server::TrainingRequestFromProto(req, 100);
  if (!r.ok()) return;
  pb::TrainingConfig effective;
  server::ToProto(*r, &effective);
  if (!repository::ValidateName("dataset", r->dataset).ok()) return;
  if (!repository::ValidateName("model", r->model).ok()) return;
  const model::TrainingConfig& c = r->config;
  if (!c.source_dataset.empty() && !repository::ValidateName("source", c.source_dataset).ok()) return;
  if (!(c.holdout_fraction >= 0.0 && c.holdout_fraction < 1.0)) return;
  (void)repository::HoldoutIndices(100, c.holdout_fraction, c.seed());
  if (c.family == model::Family::kPointCloud) {
    if (!model::ValidatePointCloudTrainConfig(c.pointcloud).ok()) return;
    absl::StatusOr<model::PointCloudTrainConfig> back =
        model::PointCloudTrainConfigFromJson(model::ToJson(c.pointcloud));
    if (!back.ok()) {
      Fail(absl::StrCat("valid pointcloud config does not survive JSON: ",
                        back.status().ToString()));
    }
    if (!model::ValidatePointCloudTrainConfig(*back).ok()) {
      Fail("pointcloud config invalid after JSON");
    }
  } else {
    if (!model::ValidateGaussianTrainConfig(c.gaussian).ok()) return;
    absl::StatusOr<model::GaussianTrainConfig> back =
        model::GaussianTrainConfigFromJson(model::ToJson(c.gaussian));
    if (!back.ok()) {
      Fail(absl::StrCat("valid gaussian config does not survive JSON: ", back.status().ToString()));
    }
    if (!model::ValidateGaussianTrainConfig(*back).ok()) Fail("gaussian config invalid after JSON");
  }
}

template <typename Message>
bool Parse(absl::string_view bytes, Message* message) {
  return message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// An accepted queue policy has a known priority and a timeout in (0, max]
// or none.
template <typename Request>
void CheckQueuePolicy(const Request& req) {
  const absl::StatusOr<server::QueuePolicy> policy = server::QueuePolicyFromProto(req);
  if (!policy.ok()) return;
  const double timeout = absl::ToDoubleSeconds(policy->timeout);
  if (policy->timeout != absl::InfiniteDuration() &&
      !(timeout > 0 && timeout <= server::kMaxQueueTimeoutSeconds)) {
    Fail(absl::StrCat("accepted queue_timeout_seconds ", timeout));
  }
  if (static_cast<int>(policy->priority) < 0 ||
      static_cast<int>(policy->priority) >= server::kQueuePriorities) {
    Fail("accepted an unknown priority");
  }
}

// A model version field is accepted exactly when it is 0 or a version
// number, and refused with a message naming the field.
void CheckVersion(absl::string_view field, int64_t version) {
  const absl::Status s = server::ValidateVersionField(field, version);
  if (s.ok() != (version >= 0 && version <= repository::kMaxModelVersion)) {
    Fail(absl::StrCat(field, " ", version, ": ", s.ToString()));
  }
  if (!s.ok() && !absl::StartsWith(s.message(), field)) Fail(std::string(s.message()));
}

}  // namespace

int FuzzRequests(const uint8_t* data, size_t size) {
  // Parsing invalid UTF-8 into a string field logs an error per message;
  // the parse fails either way (as it does in the server).
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const int type = data[0] % kNumRequestTypes;
  const absl::string_view rest = Bytes(data + 1, size - 1);
  switch (type) {
    case 0:
      FuzzUpload(rest);
      break;
    case 1: {
      pb::ListDatasetsRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 2: {
      pb::GetDatasetRequest req;
      if (Parse(rest, &req)) (void)repository::ValidateName("name", req.name());
      break;
    }
    case 3: {
      pb::DeleteDatasetRequest req;
      if (Parse(rest, &req)) (void)repository::ValidateName("name", req.name());
      break;
    }
    case 4: {
      pb::StartTrainingRequest req;
      if (Parse(rest, &req)) FuzzStartTraining(req);
      break;
    }
    case 5: {
      pb::GetTrainingJobRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 6: {
      pb::ListTrainingJobsRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 7: {
      pb::CancelTrainingJobRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 8: {
      pb::WatchTrainingJobRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 9: {
      pb::ListModelsRequest req;
      (void)Parse(rest, &req);
      break;
    }
    case 10: {
      pb::GetModelRequest req;
      if (Parse(rest, &req)) {
        (void)repository::ValidateName("name", req.name());
        CheckVersion("version", req.version());
      }
      break;
    }
    case 11: {
      pb::DeleteModelRequest req;
      if (Parse(rest, &req)) {
        (void)repository::ValidateName("name", req.name());
        CheckVersion("version", req.version());
      }
      break;
    }
    case 12: {
      pb::SampleNichesRequest req;
      if (Parse(rest, &req) && repository::ValidateName("model", req.model()).ok()) {
        (void)server::CloudRequestFromProto(req);
        CheckQueuePolicy(req);
        CheckVersion("version", req.version());
      }
      break;
    }
    case 13: {
      pb::SampleGaussiansRequest req;
      if (Parse(rest, &req) && repository::ValidateName("model", req.model()).ok()) {
        CheckQueuePolicy(req);
        CheckVersion("version", req.version());
        const absl::StatusOr<model::GaussianSampleRequest> r = server::GaussianRequestFromProto(req);
        // Given sources that define num_samples make whole [n, d] and [n, d, d].
        if (r.ok() && req.num_samples() == 0 && !r->init_means.empty()) {
          const int64_t m = static_cast<int64_t>(r->init_means.size());
          const int64_t d = m / r->num_samples;
          if (r->num_samples < 1 || d * r->num_samples != m ||
              static_cast<int64_t>(r->init_covs.size()) != r->num_samples * d * d) {
            Fail("num_samples from init_means/init_covs is inconsistent");
          }
        }
      }
      break;
    }
    case 14: {
      pb::EvaluateRequest req;
      if (Parse(rest, &req) && repository::ValidateName("model", req.model()).ok() &&
          repository::ValidateName("dataset", req.dataset()).ok()) {
        (void)server::EvaluateOptionsFromProto(req);
        CheckVersion("version", req.version());
      }
      break;
    }
    case 15: {
      pb::UpdateModelRequest req;
      if (Parse(rest, &req)) {
        (void)repository::ValidateName("name", req.name());
        if (req.has_serving_version()) CheckVersion("serving_version", req.serving_version());
        CheckVersion("version", req.version());
      }
      break;
    }
    default:
      break;
  }
  return 0;
}

}  // namespace wfm::fuzz
