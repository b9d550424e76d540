// The wfm.v1.WfmService implementation: thin (TensorFlow Serving's
// prediction_service_impl). Each RPC authenticates, converts the request,
// calls one core (dataset store, job manager, model registry, sampler,
// evaluator), converts the status once (grpc_status.h) and records
// wfm_rpc_requests_total / wfm_rpc_latency_seconds.
#ifndef WFM_SERVER_WFM_SERVICE_IMPL_H_
#define WFM_SERVER_WFM_SERVICE_IMPL_H_

#include <cstdint>
#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "server/auth.h"
#include "server/dataset_store.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/sampler.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::server {

// What one SampleNiches message may hold: whole clouds up to this many bytes
// (a cloud larger than that travels alone, up to kMaxSampleMessageBytes,
// below gRPC's default 4 MiB receive limit).
inline constexpr int64_t kSampleMessageBudgetBytes = int64_t{1} << 20;
inline constexpr int64_t kMaxSampleMessageBytes = (int64_t{4} << 20) - (int64_t{64} << 10);

struct ServiceDeps {
  DatasetStore* datasets = nullptr;
  ModelRegistry* models = nullptr;
  JobManager* jobs = nullptr;
  Sampler* sampler = nullptr;
  Metrics* metrics = nullptr;
  const TokenAuth* auth = nullptr;
  int64_t default_checkpoint_every = 0;
};

class WfmServiceImpl final : public wfm::v1::WfmService::Service {
 public:
  explicit WfmServiceImpl(ServiceDeps deps);

  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<wfm::v1::UploadDatasetRequest>* reader,
                             wfm::v1::Dataset* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context, const wfm::v1::ListDatasetsRequest* request,
                            wfm::v1::ListDatasetsResponse* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context, const wfm::v1::GetDatasetRequest* request,
                          wfm::v1::Dataset* response) override;
  grpc::Status DeleteDataset(grpc::ServerContext* context,
                             const wfm::v1::DeleteDatasetRequest* request,
                             wfm::v1::DeleteDatasetResponse* response) override;

  grpc::Status StartTraining(grpc::ServerContext* context,
                             const wfm::v1::StartTrainingRequest* request,
                             wfm::v1::TrainingJob* response) override;
  grpc::Status GetTrainingJob(grpc::ServerContext* context,
                              const wfm::v1::GetTrainingJobRequest* request,
                              wfm::v1::TrainingJob* response) override;
  grpc::Status ListTrainingJobs(grpc::ServerContext* context,
                                const wfm::v1::ListTrainingJobsRequest* request,
                                wfm::v1::ListTrainingJobsResponse* response) override;
  grpc::Status DescribeTrainingOptions(grpc::ServerContext* context,
                                       const wfm::v1::DescribeTrainingOptionsRequest* request,
                                       wfm::v1::DescribeTrainingOptionsResponse* response) override;
  grpc::Status CancelTrainingJob(grpc::ServerContext* context,
                                 const wfm::v1::CancelTrainingJobRequest* request,
                                 wfm::v1::TrainingJob* response) override;
  grpc::Status WatchTrainingJob(grpc::ServerContext* context,
                                const wfm::v1::WatchTrainingJobRequest* request,
                                grpc::ServerWriter<wfm::v1::TrainingJob>* writer) override;

  grpc::Status ListModels(grpc::ServerContext* context, const wfm::v1::ListModelsRequest* request,
                          wfm::v1::ListModelsResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* context, const wfm::v1::GetModelRequest* request,
                        wfm::v1::ModelInfo* response) override;
  grpc::Status DeleteModel(grpc::ServerContext* context, const wfm::v1::DeleteModelRequest* request,
                           wfm::v1::DeleteModelResponse* response) override;
  grpc::Status UpdateModel(grpc::ServerContext* context, const wfm::v1::UpdateModelRequest* request,
                           wfm::v1::ModelInfo* response) override;

  grpc::Status SampleNiches(grpc::ServerContext* context,
                            const wfm::v1::SampleNichesRequest* request,
                            grpc::ServerWriter<wfm::v1::SampleNichesResponse>* writer) override;
  grpc::Status SampleGaussians(grpc::ServerContext* context,
                               const wfm::v1::SampleGaussiansRequest* request,
                               wfm::v1::SampleGaussiansResponse* response) override;

  grpc::Status Evaluate(grpc::ServerContext* context, const wfm::v1::EvaluateRequest* request,
                        wfm::v1::EvaluateResponse* response) override;

 private:
  // Authenticates, runs `body`, converts its status and records the metrics.
  grpc::Status Handle(const char* method, grpc::ServerContext* context,
                      const std::function<absl::Status()>& body);

  const ServiceDeps deps_;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_WFM_SERVICE_IMPL_H_
