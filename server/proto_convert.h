// Conversions between the wfm.v1 messages and the cores' plain C++ types.
// Requests come in with unset optional fields replaced by the server's
// defaults (the model layer's config defaults); replies carry the effective
// values. Errors are INVALID_ARGUMENT naming the proto field.
#ifndef WFM_SERVER_PROTO_CONVERT_H_
#define WFM_SERVER_PROTO_CONVERT_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "model/sample/gaussian_model.h"
#include "model/sample/pointcloud_model.h"
#include "server/dataset_store.h"
#include "server/evaluator.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/queue_policy.h"
#include "wfm/v1/types.pb.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::server {

// Data sets.
absl::StatusOr<DatasetHeader> HeaderFromProto(const wfm::v1::DatasetHeader& header);
void ToProto(const DatasetInfo& info, wfm::v1::Dataset* out);
// Views of a chunk's arrays (valid while `chunk` lives).
CloudChunkView ChunkView(const wfm::v1::PointCloudChunk& chunk);
GaussianChunkView ChunkView(const wfm::v1::GaussianChunk& chunk);
CellChunkView ChunkView(const wfm::v1::CellChunk& chunk);

// Training. `default_checkpoint_every` fills an unset checkpoint_every.
absl::StatusOr<TrainingRequest> TrainingRequestFromProto(const wfm::v1::StartTrainingRequest& req,
                                                         int64_t default_checkpoint_every);
// The effective configuration of a request.
void ToProto(const TrainingRequest& request, wfm::v1::TrainingConfig* out);
void ToProto(const JobStatus& status, wfm::v1::TrainingJob* out);

// Models.
void ToProto(const ModelInfo& info, wfm::v1::ModelInfo* out);
// The described version's info with the version list and serving policy.
void ToProto(const ModelVersions& model, wfm::v1::ModelInfo* out);
// A request's model version field (`field`, e.g. "version"): 0 (the serving
// version) or a version number (1 to repository::kMaxModelVersion);
// INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateVersionField(absl::string_view field, int64_t version);

// Sampling. Steps 0 become 100; an empty solver is the family's default
// (point clouds midpoint, Gaussians euler); rtol/atol only with "adaptive".
absl::StatusOr<model::CloudSampleRequest> CloudRequestFromProto(
    const wfm::v1::SampleNichesRequest& req);

absl::StatusOr<model::GaussianSampleRequest> GaussianRequestFromProto(
    const wfm::v1::SampleGaussiansRequest& req);
void ToProto(const model::GeneratedGaussians& g, int64_t frames,
             wfm::v1::SampleGaussiansResponse* out);

// The queue policy of a sampling request (priority, queue_timeout_seconds):
// INVALID_ARGUMENT naming the field for an unknown priority value or a
// timeout that is not in (0, kMaxQueueTimeoutSeconds]; unset = no timeout.
absl::StatusOr<QueuePolicy> QueuePolicyFromProto(const wfm::v1::SampleNichesRequest& req);
absl::StatusOr<QueuePolicy> QueuePolicyFromProto(const wfm::v1::SampleGaussiansRequest& req);

// Evaluation.
EvaluateOptions EvaluateOptionsFromProto(const wfm::v1::EvaluateRequest& req);
void ToProto(const EvaluationResult& result, wfm::v1::EvaluateResponse* out);

}  // namespace wfm::server

#endif  // WFM_SERVER_PROTO_CONVERT_H_
