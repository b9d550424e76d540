// Checks of a training request against the stores (StartTraining): names,
// the data set (NOT_FOUND when missing) and whether its kind fits the
// family, the family's configuration, niche size, holdout fraction and
// batch size against the data set's items, the user-given sources, the
// fine-tuning base model (init_from_model and init_from_version: they exist,
// NOT_FOUND otherwise, and its family, data dimension, labels and network
// shape fit the request). An existing model name is no error: the job adds
// a version. Messages name the API field ("config.holdout_fraction: ...").
// No gRPC here.
#ifndef WFM_SERVER_JOB_VALIDATION_H_
#define WFM_SERVER_JOB_VALIDATION_H_

#include "absl/status/status.h"
#include "server/dataset_store.h"
#include "server/job_record.h"
#include "server/model_registry.h"

namespace wfm::server {

absl::Status ValidateTrainingRequest(const TrainingRequest& request, const DatasetStore& datasets,
                                     const ModelRegistry& models);

}  // namespace wfm::server

#endif  // WFM_SERVER_JOB_VALIDATION_H_
