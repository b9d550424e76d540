// Tiny trained models for the server's unit tests: checkpoints of either
// family (trained a few steps on the synthetic data sets of
// server_test_util.h) with an optional training origin, and servables made
// from them.
#ifndef WFM_TESTS_SERVER_SERVABLE_UTIL_H_
#define WFM_TESTS_SERVER_SERVABLE_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/checkpoint/checkpoint.h"
#include "model/common/status.h"
#include "model/train/gaussian_trainer.h"
#include "model/train/pointcloud_trainer.h"
#include "server/model_registry.h"
#include "tests/server/server_test_util.h"

namespace wfm::testing {

// The checkpoint of a `Trainer` (model::PointCloudTrainer,
// model::GaussianTrainer) trained on `data` with `config`, the server's
// `origin` in its metadata.
template <typename Trainer, typename Data, typename Config>
absl::StatusOr<model::checkpoint::Checkpoint> TrainedCheckpoint(
    const Data& data, const Config& config, const std::string& name,
    const server::TrainingOrigin& origin) {
  WFM_ASSIGN_OR_RETURN(const std::unique_ptr<Trainer> trainer,
                       Trainer::Create(data, config, name));
  WFM_RETURN_IF_ERROR(trainer->Train());
  WFM_ASSIGN_OR_RETURN(model::checkpoint::Checkpoint ckpt, trainer->MakeCheckpoint(false));
  ckpt.metadata["server"] = origin.ToJson();
  return ckpt;
}

// A point-cloud model trained `steps` steps on `data`.
inline absl::StatusOr<model::checkpoint::Checkpoint> TrainedPointCloudCheckpoint(
    const model::io::PointCloudSet& data, int64_t steps = 3, uint64_t seed = 1,
    const server::TrainingOrigin& origin = {}) {
  return TrainedCheckpoint<model::PointCloudTrainer>(data, TinyPointCloudConfig(steps, seed),
                                                     "clouds", origin);
}

// A Gaussian model trained `steps` steps on `data`.
inline absl::StatusOr<model::checkpoint::Checkpoint> TrainedGaussianCheckpoint(
    const model::io::GaussianSet& data, int64_t steps = 3, uint64_t seed = 1,
    const server::TrainingOrigin& origin = {}) {
  return TrainedCheckpoint<model::GaussianTrainer>(data, TinyGaussianConfig(steps, seed),
                                                   "gaussians", origin);
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_SERVER_SERVABLE_UTIL_H_
