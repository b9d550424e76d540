// The model registry: trained models on disk, one folder per model,
//   <data-dir>/models/<name>/model.wfm   (model/checkpoint format)
// loaded at start-up (a folder whose checkpoint is missing or corrupt is
// logged and skipped, never fatal) and served as immutable shared objects
// (TensorFlow Serving's ServableHandle): Get() copies a
// std::shared_ptr<const Servable> under a mutex and the caller computes
// without the lock; Publish() writes the new checkpoint atomically, then
// swaps the pointer, so readers of the old model finish undisturbed.
//
// The repository may be shared: replicas and wfm-train (distributed training)
// publish into it too. Rescan() (run every --model-rescan-seconds by
// StartRescanning) loads folders that appeared or whose model.wfm changed and
// drops folders that disappeared.
//
// Besides what the trainers store, a published checkpoint's metadata holds
// "server": the TrainingOrigin (the data set, niche size and held-out
// items), which Evaluate's "heldout" split reads. No gRPC here.
#ifndef WFM_SERVER_MODEL_REGISTRY_H_
#define WFM_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/checkpoint/checkpoint.h"
#include "model/common/mutex.h"
#include "model/sample/gaussian_model.h"
#include "model/sample/pointcloud_model.h"
#include "model/config/config.h"
#include "model/config/metadata.h"
#include "repository/fs_util.h"
#include "repository/training_data.h"

namespace wfm::server {

class Metrics;

// Where a model's training data came from (repository/training_data.h).
using repository::TrainingOrigin;

// What the API reports about a model.
struct ModelInfo {
  std::string name;
  model::Family family = model::Family::kPointCloud;
  int64_t dim = 0;
  model::LabelSpace labels;
  // The effective training configuration (one of the two, by family).
  std::optional<model::PointCloudTrainConfig> pointcloud_config;
  std::optional<model::GaussianTrainConfig> gaussian_config;
  nlohmann::json config_json;  // the same, as stored in the checkpoint
  model::TrainingSummary summary;
  TrainingOrigin origin;
  int64_t created_unix_ms = 0;
  int64_t parameters = 0;
  int64_t size_bytes = 0;  // of model.wfm
  double default_guidance = 1.0;
};

// One loaded model, immutable and shared by every reader.
struct Servable {
  ModelInfo info;
  std::shared_ptr<const model::PointCloudModel> pointcloud;  // family kPointCloud
  std::shared_ptr<const model::GaussianModel> gaussian;      // family kGaussian
};

// Builds a servable from a checkpoint of either family; `size_bytes` is
// recorded as given. INVALID_ARGUMENT / DATA_LOSS for a bad checkpoint.
absl::StatusOr<std::shared_ptr<const Servable>> MakeServable(const std::string& name,
                                                             const model::checkpoint::Checkpoint& ckpt,
                                                             int64_t size_bytes);

class ModelRegistry {
 public:
  // Creates `root` when missing and loads every model folder in it.
  // `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(const std::string& root,
                                                             Metrics* metrics = nullptr);

  // Sorted by name.
  std::vector<std::shared_ptr<const Servable>> List() const ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND for an unknown name.
  absl::StatusOr<std::shared_ptr<const Servable>> Get(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  bool Contains(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  // The stored checkpoint of a loaded model (with its training weights
  // "model.*"), read from its file. NOT_FOUND for an unknown name.
  absl::StatusOr<model::checkpoint::Checkpoint> ReadCheckpoint(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Builds the servable from `ckpt` (so a bad checkpoint is never
  // published), writes <root>/<name>/model.wfm atomically and swaps it in.
  // ALREADY_EXISTS when the name is taken and !overwrite.
  absl::StatusOr<std::shared_ptr<const Servable>> Publish(const std::string& name,
                                                          const model::checkpoint::Checkpoint& ckpt,
                                                          bool overwrite)
      ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  // NOT_FOUND for an unknown name. Readers holding the model keep it.
  absl::Status Delete(const std::string& name) ABSL_LOCKS_EXCLUDED(write_mu_, mu_);

  // Brings the registry in line with the folder (see above). A folder that
  // fails to load is logged once per version of its file and skipped.
  struct RescanResult {
    int added = 0;
    int replaced = 0;
    int removed = 0;
  };
  RescanResult Rescan() ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  // Rescan() every `interval` on a background thread until destruction.
  void StartRescanning(absl::Duration interval);
  ~ModelRegistry();

  const std::string& root() const { return root_; }

 private:
  ModelRegistry(std::string root, Metrics* metrics) : root_(std::move(root)), metrics_(metrics) {}
  void LoadAll();
  void UpdateMetrics() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rescan() every `interval` until stop_rescanning_.
  void RescanLoop(absl::Duration interval) ABSL_LOCKS_EXCLUDED(rescan_mu_);
  // Loads <root>/<entry>/model.wfm.
  absl::StatusOr<std::shared_ptr<const Servable>> LoadFolder(const std::string& entry,
                                                             repository::FileStamp* stamp) const;

  const std::string root_;
  Metrics* const metrics_;
  // Serialises writers (publish, delete, rescan) without blocking readers;
  // taken before mu_.
  Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<const Servable>> models_ ABSL_GUARDED_BY(mu_);
  // The version of each loaded file, and of each file that failed to load
  // (so it is logged once).
  std::map<std::string, repository::FileStamp> loaded_stamps_ ABSL_GUARDED_BY(write_mu_);
  std::map<std::string, repository::FileStamp> failed_stamps_ ABSL_GUARDED_BY(write_mu_);

  Mutex rescan_mu_;
  CondVar rescan_cv_;  // stop_rescanning_ turned true
  bool stop_rescanning_ ABSL_GUARDED_BY(rescan_mu_) = false;
  std::thread rescanner_;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_MODEL_REGISTRY_H_
