// The model registry: trained models on disk, one folder per model and one
// folder per version inside it (repository/model_folder.h),
//   <data-dir>/models/<name>/<V>/model.wfm   (model/checkpoint format)
//   <data-dir>/models/<name>/serving.json    pinned version, retention
// loaded at start-up (a version whose checkpoint is missing or corrupt is
// logged and skipped, never fatal; a folder of the first layout,
// <name>/model.wfm, is served in place as version 1) and served as immutable
// shared objects (TensorFlow Serving's ServableHandle), one per (name,
// version): Get() copies a std::shared_ptr<const Servable> under a mutex and
// the caller computes without the lock; Publish() writes the new version's
// folder atomically, then inserts it, so readers of other versions finish
// undisturbed.
//
// Versions are integers from 1; publishing into an existing name adds the
// next one. The serving version (what requests without a version get) is
// the pinned one when set, else the latest. Retention keeps the latest
// keep_versions versions (per model, else the registry's default; 0 = all)
// and the pinned one; older ones are deleted after each publish.
//
// The repository may be shared: replicas publish into it too. Rescan() (run
// every --model-rescan-seconds by StartRescanning) loads versions that
// appeared or whose file changed, re-reads the serving policies and drops
// what disappeared.
//
// Residency (README "Load on demand"). Every stored version is listed with
// its metadata (ModelInfo); its weights are in memory ("loaded") or not. A
// scan reads each new version once (to check it and record its metadata,
// memory_bytes included); without limits it stays loaded (every version is
// in memory, the default), with a limit (max_loaded_models,
// max_loaded_bytes) a scanned version is not loaded until first used, so
// nothing is loaded after start-up. Get() (sampling, evaluation) loads a
// version that is not in memory: outside the registry's lock, once however
// many requests ask at the same time (they wait for that one load), then
// unloads the least recently used other versions until the limits hold. A
// published version is loaded (it counts as used). Unload() drops versions
// from memory at once. Requests that resolved a version hold its servable
// (std::shared_ptr) until they finish, so an unload never fails a request:
// the weights are freed when the last one ends, and the next request loads
// them again. A version larger than max_loaded_bytes on its own is never
// loaded (RESOURCE_EXHAUSTED).
//
// Besides what the trainers store, a published checkpoint's metadata holds
// "server": the TrainingOrigin (the data set, niche size and held-out
// items), which Evaluate's "heldout" split reads. No gRPC here.
#ifndef WFM_SERVER_MODEL_REGISTRY_H_
#define WFM_SERVER_MODEL_REGISTRY_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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
#include "repository/model_folder.h"
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
  int64_t size_bytes = 0;    // of model.wfm
  int64_t memory_bytes = 0;  // what the loaded model holds (its memory_bytes())
  double default_guidance = 1.0;
  int64_t version = 1;  // of the model name, from 1
};

// One loaded model, immutable and shared by every reader. What List(),
// ListVersions() and Describe() return is its metadata only: both model
// pointers null.
struct Servable {
  ModelInfo info;
  std::shared_ptr<const model::PointCloudModel> pointcloud;  // family kPointCloud
  std::shared_ptr<const model::GaussianModel> gaussian;      // family kGaussian
};

// Builds a servable from a checkpoint of either family; `size_bytes` is
// recorded as given. INVALID_ARGUMENT / DATA_LOSS for a bad checkpoint.
absl::StatusOr<std::shared_ptr<const Servable>> MakeServable(const std::string& name,
                                                             const model::checkpoint::Checkpoint& ckpt,
                                                             int64_t size_bytes,
                                                             int64_t version = 1);

// A model with its versions, as the API reports it.
struct ModelVersions {
  std::shared_ptr<const Servable> described;  // the version asked for (or the serving one)
  int64_t serving_version = 0;
  int64_t pinned_version = 0;  // 0 = none
  int64_t keep_versions = 0;   // the model's own retention; 0 = the registry's
  std::vector<std::shared_ptr<const Servable>> versions;  // ascending
  std::vector<int64_t> loaded;  // the versions whose weights are in memory, ascending
  // Inline: proto_convert.cc uses it, also in builds without the registry
  // (the fuzzers' server subset).
  bool IsLoaded(int64_t version) const {
    return std::binary_search(loaded.begin(), loaded.end(), version);
  }
};

// Why versions left memory (wfm_model_unloads_total{reason}).
enum class UnloadReason {
  kLru,       // the least recently used one, over max_loaded_models
  kBudget,    // the least recently used one, over max_loaded_bytes
  kExplicit,  // Unload()
};
const char* UnloadReasonName(UnloadReason reason);  // "lru" | "budget" | "explicit"

// The largest retention a model or the server may set.
inline constexpr int64_t kMaxKeepVersions = 1'000'000;

struct ModelRegistryOptions {
  // Retention of models without their own: keep the latest keep_versions
  // versions (and the pinned one); 0 = keep all.
  int64_t keep_versions = 0;
  // Residency limits (see the top): versions with their weights in memory,
  // and the bytes those weights take (ModelInfo::memory_bytes); 0 = no
  // limit. Either one set: versions load on first use.
  int64_t max_loaded_models = 0;
  int64_t max_loaded_bytes = 0;
  bool limited() const { return max_loaded_models > 0 || max_loaded_bytes > 0; }
};

// What is in memory, and what came and went since Open().
struct ResidencyCounts {
  int64_t loaded_versions = 0;
  int64_t loaded_bytes = 0;
  int64_t loads = 0;  // by Get() / Load() (not scans or publishes)
  int64_t unloads_lru = 0;
  int64_t unloads_budget = 0;
  int64_t unloads_explicit = 0;
};

class ModelRegistry {
 public:
  // Creates `root` when missing and loads every model folder in it.
  // `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(const std::string& root,
                                                             Metrics* metrics = nullptr,
                                                             ModelRegistryOptions options = {});

  // The serving version of every model, sorted by name.
  std::vector<std::shared_ptr<const Servable>> List() const ABSL_LOCKS_EXCLUDED(mu_);
  // Every model with its versions, sorted by name.
  std::vector<ModelVersions> ListVersions() const ABSL_LOCKS_EXCLUDED(mu_);
  // `version` of `name`, 0 = the serving version, with its weights: loaded
  // when not in memory (see the top), and marked as used. NOT_FOUND for an
  // unknown name or version; RESOURCE_EXHAUSTED for a version over
  // max_loaded_bytes on its own; the load's error for a file that no longer
  // loads.
  absl::StatusOr<std::shared_ptr<const Servable>> Get(const std::string& name,
                                                      int64_t version = 0) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The metadata of `version` of `name` (0 = serving), loaded or not;
  // NOT_FOUND as Get().
  absl::StatusOr<ModelInfo> Info(const std::string& name, int64_t version = 0) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Loads `version` (0 = serving) now, as Get() does; the same errors.
  absl::Status Load(const std::string& name, int64_t version = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops `version` (0 = every version) of `name` from memory; requests
  // holding it finish. NOT_FOUND for an unknown name or version.
  absl::Status Unload(const std::string& name, int64_t version = 0) ABSL_LOCKS_EXCLUDED(mu_);
  ResidencyCounts Residency() const ABSL_LOCKS_EXCLUDED(mu_);
  // The model with its versions, `described` being `version` (0 = serving).
  absl::StatusOr<ModelVersions> Describe(const std::string& name, int64_t version = 0) const
      ABSL_LOCKS_EXCLUDED(mu_);
  bool Contains(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  bool Contains(const std::string& name, int64_t version) const ABSL_LOCKS_EXCLUDED(mu_);
  // The stored checkpoint of a version (0 = serving; with its
  // training weights "model.*"), read from its file. NOT_FOUND for an
  // unknown name or version.
  absl::StatusOr<model::checkpoint::Checkpoint> ReadCheckpoint(const std::string& name,
                                                               int64_t version = 0) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Models (names).
  int64_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Builds the servable from `ckpt` (so a bad checkpoint is never
  // published) and publishes it as the next version of `name` (1 for a new
  // name), then applies the retention. With `overwrite` the model's whole
  // folder (every version and its serving policy) is replaced atomically by
  // one holding the checkpoint as version 1.
  absl::StatusOr<std::shared_ptr<const Servable>> Publish(const std::string& name,
                                                          const model::checkpoint::Checkpoint& ckpt,
                                                          bool overwrite)
      ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  // Deletes the model, every version. NOT_FOUND for an unknown name.
  // Readers holding a version keep it.
  absl::Status Delete(const std::string& name) ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  // Deletes one version: NOT_FOUND for an unknown name or version;
  // FAILED_PRECONDITION for the pinned version and for a model's only one.
  absl::Status DeleteVersion(const std::string& name, int64_t version)
      ABSL_LOCKS_EXCLUDED(write_mu_, mu_);
  // Pins `serving_version` (0 = unpin: the latest serves; NOT_FOUND for a
  // version not stored) and/or sets the model's retention (0 = the
  // registry's), applied at once; unset = unchanged. Written to
  // serving.json atomically.
  absl::StatusOr<ModelVersions> Update(const std::string& name,
                                       std::optional<int64_t> serving_version,
                                       std::optional<int64_t> keep_versions)
      ABSL_LOCKS_EXCLUDED(write_mu_, mu_);

  // Brings the registry in line with the folder (see above). A version that
  // fails to load is logged once per version of its file and skipped; counts
  // are of versions.
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
  // One load of a version in flight: the requests that find it wait for its
  // outcome.
  struct PendingLoad;
  // Where a version's weights stand; shared by the copies of models_ a scan
  // makes, so that it sees what requests did meanwhile. Guarded by mu_.
  struct Residence {
    std::shared_ptr<const Servable> loaded;  // null while not in memory
    std::shared_ptr<PendingLoad> loading;    // a load in flight
    uint64_t last_used = 0;                  // of use_clock_
  };
  struct Version {
    std::shared_ptr<const Servable> meta;  // without weights
    std::shared_ptr<Residence> residency;  // never null
  };
  // A model in the registry: its stored versions and serving policy.
  struct Entry {
    std::map<int64_t, Version> versions;  // never empty
    repository::ServingPolicy policy;
    int64_t serving() const;
  };
  using VersionKey = std::pair<std::string, int64_t>;
  // A version in the registry, loaded (`servable`) when `resident`.
  Version MakeVersion(const std::shared_ptr<const Servable>& servable, bool resident) const;
  // The file of `version` of `name`.
  std::string VersionFile(const std::string& name, int64_t version) const;
  // `version` (0 = serving) of `name`, or NOT_FOUND.
  absl::StatusOr<const Version*> Find(const std::string& name, int64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads `version` of `name` from its file into `residency` for the
  // requests waiting on `load`.
  absl::StatusOr<std::shared_ptr<const Servable>> LoadResident(
      const std::string& name, int64_t version, const std::shared_ptr<Residence>& residency,
      const std::shared_ptr<PendingLoad>& load) const ABSL_LOCKS_EXCLUDED(mu_);
  // Unloads the least recently used loaded versions other than `keep` until
  // the limits hold; what it unloads lands in `freed` (released after the
  // lock).
  void EvictLocked(const Residence* keep, std::vector<std::shared_ptr<const Servable>>* freed) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountUnloadLocked(UnloadReason reason, int64_t versions) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateResidencyMetrics() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The versions in memory, and the bytes of some of them.
  std::vector<Residence*> LoadedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static int64_t BytesOf(const std::vector<Residence*>& loaded);

  ModelRegistry(std::string root, Metrics* metrics, ModelRegistryOptions options)
      : root_(std::move(root)), metrics_(metrics), options_(options) {}
  void LoadAll();
  void UpdateMetrics() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rescan() every `interval` until stop_rescanning_.
  void RescanLoop(absl::Duration interval) ABSL_LOCKS_EXCLUDED(rescan_mu_);
  // Loads the checkpoint at `path` as `version` of `name`.
  absl::StatusOr<std::shared_ptr<const Servable>> LoadVersion(const std::string& name,
                                                              int64_t version,
                                                              const std::string& path,
                                                              repository::FileStamp* stamp) const;
  static ModelVersions View(const Entry& entry, int64_t described);
  // Deletes what the retention of `name` leaves out (logged, never fatal).
  void ApplyRetention(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes `version` of `name` from disk and memory.
  absl::Status RemoveVersion(const std::string& name, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string root_;
  Metrics* const metrics_;
  const ModelRegistryOptions options_;
  // Serialises writers (publish, delete, update, rescan) without blocking
  // readers; taken before mu_.
  Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  // Ticks at every use; orders Residence::last_used.
  mutable std::atomic<uint64_t> use_clock_{0};
  mutable ResidencyCounts counts_ ABSL_GUARDED_BY(mu_);
  // The version of each loaded file, and of each file that failed to load
  // (so it is logged once).
  std::map<VersionKey, repository::FileStamp> loaded_stamps_ ABSL_GUARDED_BY(write_mu_);
  std::map<VersionKey, repository::FileStamp> failed_stamps_ ABSL_GUARDED_BY(write_mu_);

  Mutex rescan_mu_;
  CondVar rescan_cv_;  // stop_rescanning_ turned true
  bool stop_rescanning_ ABSL_GUARDED_BY(rescan_mu_) = false;
  std::thread rescanner_;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_MODEL_REGISTRY_H_
