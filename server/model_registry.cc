#include "server/model_registry.h"

#include <algorithm>
#include <exception>
#include <future>
#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/common/status.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "repository/model_folder.h"
#include "repository/names.h"
#include "server/metrics.h"

namespace wfm::server {

using repository::FileStamp;
using repository::ListDir;
using repository::MakeDirs;
using repository::RecoverDirs;
using repository::RemovePublishedDir;
using repository::ServingPolicy;
using repository::StatFile;
using repository::StoredVersion;
using repository::ValidateName;

namespace {

absl::Status UnknownModel(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
}

absl::Status UnknownVersion(const std::string& name, int64_t version) {
  return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
}

}  // namespace

const char* UnloadReasonName(UnloadReason reason) {
  switch (reason) {
    case UnloadReason::kLru:
      return "lru";
    case UnloadReason::kBudget:
      return "budget";
    case UnloadReason::kExplicit:
      return "explicit";
  }
  return "explicit";
}

struct ModelRegistry::PendingLoad {
  std::promise<absl::StatusOr<std::shared_ptr<const Servable>>> promise;
  std::shared_future<absl::StatusOr<std::shared_ptr<const Servable>>> outcome =
      promise.get_future().share();
};

absl::StatusOr<std::shared_ptr<const Servable>> MakeServable(
    const std::string& name, const model::checkpoint::Checkpoint& ckpt, int64_t size_bytes,
    int64_t version) {
  auto s = std::make_shared<Servable>();
  ModelInfo& info = s->info;
  info.name = name;
  info.size_bytes = size_bytes;
  info.version = version;
  const nlohmann::json& meta = ckpt.metadata;
  if (!meta.is_object() || !meta.contains("family") || !meta["family"].is_string()) {
    return absl::InvalidArgumentError("checkpoint: metadata names no model family");
  }
  WFM_ASSIGN_OR_RETURN(info.family, model::ParseFamily(meta["family"].get<std::string>()));
  if (meta.contains("server")) {
    WFM_ASSIGN_OR_RETURN(info.origin, TrainingOrigin::FromJson(meta["server"]));
  }
  info.created_unix_ms = meta.value("created_unix_ms", int64_t{0});
  switch (info.family) {
    case model::Family::kPointCloud: {
      WFM_ASSIGN_OR_RETURN(s->pointcloud, model::PointCloudModel::FromCheckpoint(ckpt));
      const model::PointCloudModel& m = *s->pointcloud;
      info.dim = m.dim();
      info.labels = m.labels();
      info.pointcloud_config = m.config();
      info.config_json = model::ToJson(m.config());
      info.summary = m.summary();
      info.parameters = m.parameter_count();
      info.memory_bytes = m.memory_bytes();
      info.default_guidance = m.default_guidance();
      break;
    }
    case model::Family::kGaussian: {
      WFM_ASSIGN_OR_RETURN(s->gaussian, model::GaussianModel::FromCheckpoint(ckpt));
      const model::GaussianModel& m = *s->gaussian;
      info.dim = m.dim();
      info.labels = m.labels();
      info.gaussian_config = m.config();
      info.config_json = model::ToJson(m.config());
      info.summary = m.summary();
      info.parameters = m.parameter_count();
      info.memory_bytes = m.memory_bytes();
      info.default_guidance = m.default_guidance();
      break;
    }
  }
  return std::shared_ptr<const Servable>(std::move(s));
}

int64_t ModelRegistry::Entry::serving() const {
  if (policy.pinned_version > 0 && versions.count(policy.pinned_version) > 0) {
    return policy.pinned_version;
  }
  return versions.rbegin()->first;
}

ModelVersions ModelRegistry::View(const Entry& entry, int64_t described) {
  ModelVersions view;
  view.serving_version = entry.serving();
  view.pinned_version = entry.policy.pinned_version;
  view.keep_versions = entry.policy.keep_versions;
  view.described = entry.versions.at(described > 0 ? described : view.serving_version).meta;
  view.versions.reserve(entry.versions.size());
  for (const auto& [version, slot] : entry.versions) {
    view.versions.push_back(slot.meta);
    if (slot.residency->loaded != nullptr) view.loaded.push_back(version);
  }
  return view;
}

ModelRegistry::Version ModelRegistry::MakeVersion(const std::shared_ptr<const Servable>& servable,
                                                  bool resident) const {
  auto meta = std::make_shared<Servable>();
  meta->info = servable->info;
  Version version{std::move(meta), std::make_shared<Residence>()};
  if (resident) {
    version.residency->loaded = servable;
    version.residency->last_used = ++use_clock_;
  }
  return version;
}

absl::StatusOr<const ModelRegistry::Version*> ModelRegistry::Find(const std::string& name,
                                                                  int64_t version) const {
  auto it = models_.find(name);
  if (it == models_.end()) return UnknownModel(name);
  const Entry& entry = it->second;
  auto v = entry.versions.find(version > 0 ? version : entry.serving());
  if (v == entry.versions.end()) return UnknownVersion(name, version);
  return &v->second;
}

std::string ModelRegistry::VersionFile(const std::string& name, int64_t version) const {
  const std::string path = repository::ModelVersionPath(root_, name, version);
  // A folder of the first layout holds version 1 as <name>/model.wfm.
  if (version == 1 && !repository::Exists(path)) return repository::ModelFilePath(root_, name);
  return path;
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(const std::string& root,
                                                                    Metrics* metrics,
                                                                    ModelRegistryOptions options) {
  if (root.empty()) return absl::InvalidArgumentError("model registry: root is empty");
  if (options.keep_versions < 0) {
    return absl::InvalidArgumentError("model registry: keep_versions must be >= 0");
  }
  if (options.max_loaded_models < 0 || options.max_loaded_bytes < 0) {
    return absl::InvalidArgumentError(
        "model registry: max_loaded_models and max_loaded_bytes must be >= 0 (0 = no limit)");
  }
  WFM_RETURN_IF_ERROR(MakeDirs(root));
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(root, metrics, options));
  registry->LoadAll();
  return registry;
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::LoadVersion(
    const std::string& name, int64_t version, const std::string& path, FileStamp* stamp) const {
  WFM_ASSIGN_OR_RETURN(*stamp, StatFile(path));
  WFM_ASSIGN_OR_RETURN(const model::checkpoint::Checkpoint ckpt, model::checkpoint::Read(path));
  return MakeServable(name, ckpt, stamp->size, version);
}

absl::StatusOr<model::checkpoint::Checkpoint> ModelRegistry::ReadCheckpoint(
    const std::string& name, int64_t version) const {
  WFM_ASSIGN_OR_RETURN(const ModelInfo info, Info(name, version));
  return model::checkpoint::Read(VersionFile(name, info.version));
}

void ModelRegistry::LoadAll() {
  RecoverDirs(root_);
  absl::StatusOr<std::vector<std::string>> entries = ListDir(root_);
  if (entries.ok()) {
    for (const std::string& entry : *entries) {
      if (!absl::StartsWith(entry, ".~")) RecoverDirs(absl::StrCat(root_, "/", entry));
    }
  }
  Rescan();
}

ModelRegistry::RescanResult ModelRegistry::Rescan() {
  RescanResult result;
  MutexLock write_lock(&write_mu_);
  absl::StatusOr<std::vector<std::string>> entries = ListDir(root_);
  if (!entries.ok()) {
    LogError(absl::StrCat("cannot list models: ", entries.status().message()));
    return result;
  }
  // What the folder holds now; unchanged versions keep their servable.
  std::map<std::string, Entry> now;
  std::map<VersionKey, FileStamp> stamps;
  std::vector<VersionKey> loaded;
  std::map<std::string, Entry> before;
  {
    MutexLock lock(&mu_);
    before = models_;
  }
  for (const std::string& entry : *entries) {
    // ".~" entries are staging and trash folders of a publish in progress
    // (no valid name holds '~'); other names starting with '.' are models.
    if (absl::StartsWith(entry, ".~")) continue;
    if (!ValidateName("folder", entry).ok()) {
      // Logged once (version 0 stands for the folder).
      if (failed_stamps_.emplace(VersionKey{entry, 0}, FileStamp{}).second) {
        LogWarning(absl::StrCat("skipping model folder ", root_, "/", entry, ": not a model name"));
      }
      continue;
    }
    absl::StatusOr<std::vector<StoredVersion>> versions = repository::ListModelVersions(root_, entry);
    if (!versions.ok()) continue;  // a file, or gone meanwhile
    Entry model;
    absl::StatusOr<ServingPolicy> policy = repository::ReadServingPolicy(root_, entry);
    if (policy.ok()) {
      model.policy = *policy;
    } else {
      LogWarning(absl::StrCat("model '", entry, "': ", policy.status().message(),
                              "; serving the latest version"));
    }
    const auto old = before.find(entry);
    for (const StoredVersion& stored : *versions) {
      const VersionKey key{entry, stored.version};
      absl::StatusOr<FileStamp> current = StatFile(stored.path);
      if (current.ok()) {
        auto known = loaded_stamps_.find(key);
        if (known != loaded_stamps_.end() && known->second == *current && old != before.end() &&
            old->second.versions.count(stored.version) > 0) {
          stamps.emplace(key, *current);
          // The same Residence: what requests loaded meanwhile stays.
          model.versions.emplace(stored.version, old->second.versions.at(stored.version));
          continue;
        }
        auto failed = failed_stamps_.find(key);
        if (failed != failed_stamps_.end() && failed->second == *current) continue;
      }
      FileStamp stamp;
      absl::StatusOr<std::shared_ptr<const Servable>> servable =
          LoadVersion(entry, stored.version, stored.path, &stamp);
      if (!servable.ok()) {
        LogWarning(absl::StrCat("skipping version ", stored.version, " of model folder ", root_,
                                "/", entry, ": ", servable.status().message()));
        if (current.ok()) failed_stamps_[key] = *current;
        continue;
      }
      failed_stamps_.erase(key);
      stamps.emplace(key, stamp);
      // Without limits every version stays in memory; with one, it waits
      // for its first use.
      model.versions.emplace(stored.version, MakeVersion(*servable, !options_.limited()));
      loaded.push_back(key);
      const bool replaced = old != before.end() && old->second.versions.count(stored.version) > 0;
      ++(replaced ? result.replaced : result.added);
    }
    if (!model.versions.empty()) now.emplace(entry, std::move(model));
  }
  for (const auto& [name, model] : before) {
    const auto kept = now.find(name);
    for (const auto& [version, servable] : model.versions) {
      if (kept == now.end() || kept->second.versions.count(version) == 0) ++result.removed;
    }
    if (kept == now.end()) {
      LogInfo(absl::StrCat("model '", name, "' disappeared from ", root_, "; unloaded"));
    }
  }
  {
    MutexLock lock(&mu_);
    std::swap(models_, now);  // the old map goes after the lock
    UpdateMetrics();
  }
  loaded_stamps_ = std::move(stamps);
  for (const auto& [name, version] : loaded) {
    LogInfo(absl::StrCat(options_.limited() ? "found version " : "loaded version ", version,
                         " of model '", name, "' in ", root_,
                         options_.limited() ? " (loaded on first use)" : ""));
  }
  return result;
}

void ModelRegistry::StartRescanning(absl::Duration interval) {
  if (rescanner_.joinable() || interval <= absl::ZeroDuration()) return;
  rescanner_ = std::thread([this, interval] { RescanLoop(interval); });
}

void ModelRegistry::RescanLoop(absl::Duration interval) {
  while (true) {
    {
      MutexLock lock(&rescan_mu_);
      const absl::Time deadline = absl::Now() + interval;
      while (!stop_rescanning_ && !rescan_cv_.WaitWithDeadline(&rescan_mu_, deadline)) {
      }
      if (stop_rescanning_) return;
    }
    Rescan();
  }
}

ModelRegistry::~ModelRegistry() {
  {
    MutexLock lock(&rescan_mu_);
    stop_rescanning_ = true;
  }
  rescan_cv_.SignalAll();
  if (rescanner_.joinable()) rescanner_.join();
}

void ModelRegistry::UpdateMetrics() const {
  if (metrics_ == nullptr) return;
  metrics_->SetModelsLoaded(static_cast<int64_t>(models_.size()));
  std::vector<ServedModel> served;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      served.push_back({name, model::FamilyName(slot.meta->info.family), version});
    }
  }
  metrics_->SyncModels(served);
  UpdateResidencyMetrics();
}

std::vector<ModelRegistry::Residence*> ModelRegistry::LoadedLocked() const {
  std::vector<Residence*> out;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      if (slot.residency->loaded != nullptr) out.push_back(slot.residency.get());
    }
  }
  return out;
}

int64_t ModelRegistry::BytesOf(const std::vector<Residence*>& loaded) {
  int64_t bytes = 0;
  for (const Residence* r : loaded) bytes += r->loaded->info.memory_bytes;
  return bytes;
}

ResidencyCounts ModelRegistry::Residency() const {
  MutexLock lock(&mu_);
  ResidencyCounts counts = counts_;
  const std::vector<Residence*> loaded = LoadedLocked();
  counts.loaded_versions = static_cast<int64_t>(loaded.size());
  counts.loaded_bytes = BytesOf(loaded);
  return counts;
}

void ModelRegistry::UpdateResidencyMetrics() const {
  if (metrics_ == nullptr) return;
  const std::vector<Residence*> loaded = LoadedLocked();
  metrics_->SetResidentModels(static_cast<int64_t>(loaded.size()), BytesOf(loaded));
}

void ModelRegistry::CountUnloadLocked(UnloadReason reason, int64_t versions) const {
  if (versions == 0) return;
  switch (reason) {
    case UnloadReason::kLru:
      counts_.unloads_lru += versions;
      break;
    case UnloadReason::kBudget:
      counts_.unloads_budget += versions;
      break;
    case UnloadReason::kExplicit:
      counts_.unloads_explicit += versions;
      break;
  }
  if (metrics_ != nullptr) metrics_->AddModelUnloads(UnloadReasonName(reason), versions);
}

void ModelRegistry::EvictLocked(const Residence* keep,
                                std::vector<std::shared_ptr<const Servable>>* freed) const {
  if (!options_.limited()) return;
  std::vector<Residence*> loaded = LoadedLocked();
  int64_t count = static_cast<int64_t>(loaded.size());
  int64_t bytes = BytesOf(loaded);
  // Least recently used first.
  std::sort(loaded.begin(), loaded.end(),
            [](const Residence* a, const Residence* b) { return a->last_used < b->last_used; });
  for (Residence* r : loaded) {
    const bool over_count = options_.max_loaded_models > 0 && count > options_.max_loaded_models;
    const bool over_bytes = options_.max_loaded_bytes > 0 && bytes > options_.max_loaded_bytes;
    if (!over_count && !over_bytes) break;
    if (r == keep) continue;
    --count;
    bytes -= r->loaded->info.memory_bytes;
    LogInfo(absl::StrCat("unloaded version ", r->loaded->info.version, " of model '",
                         r->loaded->info.name, "' from memory (least recently used, ",
                         over_count ? "--max-loaded-models" : "--max-loaded-model-mib", ")"));
    freed->push_back(std::move(r->loaded));
    r->loaded = nullptr;
    CountUnloadLocked(over_count ? UnloadReason::kLru : UnloadReason::kBudget, 1);
  }
}

std::vector<std::shared_ptr<const Servable>> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Servable>> out;
  out.reserve(models_.size());
  for (const auto& [name, entry] : models_) out.push_back(entry.versions.at(entry.serving()).meta);
  return out;
}

std::vector<ModelVersions> ModelRegistry::ListVersions() const {
  MutexLock lock(&mu_);
  std::vector<ModelVersions> out;
  out.reserve(models_.size());
  for (const auto& [name, entry] : models_) out.push_back(View(entry, 0));
  return out;
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::Get(const std::string& name,
                                                                   int64_t version) const {
  std::shared_ptr<Residence> residency;
  std::shared_ptr<PendingLoad> load;
  bool first = false;
  int64_t v = 0;
  {
    MutexLock lock(&mu_);
    WFM_ASSIGN_OR_RETURN(const Version* slot, Find(name, version));
    slot->residency->last_used = ++use_clock_;
    if (slot->residency->loaded != nullptr) return slot->residency->loaded;
    const ModelInfo& info = slot->meta->info;
    v = info.version;
    if (options_.max_loaded_bytes > 0 && info.memory_bytes > options_.max_loaded_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model '", name, "' version ", v, " takes ", info.memory_bytes,
          " bytes in memory, more than the whole --max-loaded-model-mib budget (",
          options_.max_loaded_bytes, " bytes); raise it to serve this model"));
    }
    residency = slot->residency;
    if (residency->loading == nullptr) {
      residency->loading = std::make_shared<PendingLoad>();
      first = true;
    }
    load = residency->loading;
  }
  // Later requests wait for the first one's load.
  if (!first) return load->outcome.get();
  return LoadResident(name, v, residency, load);
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::LoadResident(
    const std::string& name, int64_t version, const std::shared_ptr<Residence>& residency,
    const std::shared_ptr<PendingLoad>& load) const {
  FileStamp stamp;
  // Every outcome, an exception included, settles `load`: requests waiting
  // on it must never wait forever.
  absl::StatusOr<std::shared_ptr<const Servable>> loaded = absl::InternalError("not loaded");
  try {
    loaded = LoadVersion(name, version, VersionFile(name, version), &stamp);
  } catch (const std::exception& e) {
    loaded = absl::InternalError(absl::StrCat("loading version ", version, " of model '", name,
                                              "': ", e.what()));
  }
  std::vector<std::shared_ptr<const Servable>> freed;  // released after the lock
  bool resident = false;
  {
    MutexLock lock(&mu_);
    // Not when an Unload() (or a replacement of the version) came first:
    // the waiting requests still get what was read.
    if (residency->loading == load) {
      residency->loading = nullptr;
      if (loaded.ok()) {
        residency->loaded = *loaded;
        resident = true;
        ++counts_.loads;
        if (metrics_ != nullptr) metrics_->AddModelLoad();
        EvictLocked(residency.get(), &freed);
        UpdateResidencyMetrics();
      }
    }
  }
  load->promise.set_value(loaded);
  if (!loaded.ok()) {
    LogWarning(absl::StrCat("cannot load version ", version, " of model '", name,
                            "': ", loaded.status().message()));
  } else if (resident) {
    LogInfo(absl::StrCat("loaded version ", version, " of model '", name, "' into memory (",
                         (*loaded)->info.memory_bytes, " bytes)"));
  }
  return loaded;
}

absl::StatusOr<ModelInfo> ModelRegistry::Info(const std::string& name, int64_t version) const {
  MutexLock lock(&mu_);
  WFM_ASSIGN_OR_RETURN(const Version* slot, Find(name, version));
  return slot->meta->info;
}

absl::Status ModelRegistry::Load(const std::string& name, int64_t version) {
  return Get(name, version).status();
}

absl::Status ModelRegistry::Unload(const std::string& name, int64_t version) {
  std::vector<std::shared_ptr<const Servable>> freed;  // released after the lock
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return UnknownModel(name);
    if (version > 0 && it->second.versions.count(version) == 0) {
      return UnknownVersion(name, version);
    }
    for (auto& [v, slot] : it->second.versions) {
      if (version > 0 && v != version) continue;
      slot.residency->loading = nullptr;
      if (slot.residency->loaded != nullptr) {
        freed.push_back(std::move(slot.residency->loaded));
        slot.residency->loaded = nullptr;
      }
    }
    CountUnloadLocked(UnloadReason::kExplicit, static_cast<int64_t>(freed.size()));
    UpdateResidencyMetrics();
  }
  for (const auto& servable : freed) {
    LogInfo(absl::StrCat("unloaded version ", servable->info.version, " of model '", name,
                         "' from memory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelVersions> ModelRegistry::Describe(const std::string& name,
                                                      int64_t version) const {
  MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return UnknownModel(name);
  if (version > 0 && it->second.versions.count(version) == 0) return UnknownVersion(name, version);
  return View(it->second, version);
}

bool ModelRegistry::Contains(const std::string& name) const {
  MutexLock lock(&mu_);
  return models_.count(name) > 0;
}

bool ModelRegistry::Contains(const std::string& name, int64_t version) const {
  MutexLock lock(&mu_);
  return Find(name, version).ok();
}

int64_t ModelRegistry::size() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(models_.size());
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::Publish(
    const std::string& name, const model::checkpoint::Checkpoint& ckpt, bool overwrite) {
  WFM_RETURN_IF_ERROR(ValidateName("model", name));
  // Build first: a checkpoint that does not load is never written.
  WFM_ASSIGN_OR_RETURN(std::shared_ptr<const Servable> probe, MakeServable(name, ckpt, 0));
  MutexLock write_lock(&write_mu_);
  const auto write = [&](const std::string& path) { return model::checkpoint::Write(path, ckpt); };
  WFM_ASSIGN_OR_RETURN(const int64_t version,
                       repository::PublishModel(root_, name, overwrite, write));
  const std::string path = repository::ModelVersionPath(root_, name, version);
  WFM_ASSIGN_OR_RETURN(const FileStamp stamp, StatFile(path));
  if (overwrite) {
    for (auto it = loaded_stamps_.begin(); it != loaded_stamps_.end();) {
      it = it->first.first == name ? loaded_stamps_.erase(it) : std::next(it);
    }
  }
  loaded_stamps_[{name, version}] = stamp;
  failed_stamps_.erase({name, version});
  auto servable = std::make_shared<Servable>(*probe);
  servable->info.size_bytes = stamp.size;
  servable->info.version = version;
  std::shared_ptr<const Servable> published = servable;
  // A new version counts as used: it stays in memory (unless it is over
  // the whole budget, then it loads on use and fails there).
  const bool resident = options_.max_loaded_bytes == 0 ||
                        published->info.memory_bytes <= options_.max_loaded_bytes;
  Entry previous;                                // released after the lock
  std::vector<std::shared_ptr<const Servable>> freed;  // likewise
  {
    MutexLock lock(&mu_);
    Entry& entry = models_[name];
    if (overwrite) previous = std::exchange(entry, Entry{});
    Version& slot = entry.versions[version] = MakeVersion(published, resident);
    EvictLocked(slot.residency.get(), &freed);
    UpdateMetrics();
  }
  LogInfo(absl::StrCat(overwrite ? "replaced model '" : "published model '", name, "' version ",
                       version, " (", model::FamilyName(published->info.family), ", dim ",
                       published->info.dim, ", ", published->info.parameters, " parameters, ",
                       stamp.size, " bytes)"));
  ApplyRetention(name);
  return published;
}

absl::Status ModelRegistry::RemoveVersion(const std::string& name, int64_t version) {
  WFM_RETURN_IF_ERROR(repository::RemoveModelVersion(root_, name, version));
  loaded_stamps_.erase({name, version});
  Version previous;  // released after the lock
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      auto v = it->second.versions.find(version);
      if (v != it->second.versions.end()) {
        previous = std::move(v->second);
        it->second.versions.erase(v);
      }
      if (it->second.versions.empty()) models_.erase(it);
    }
    UpdateMetrics();
  }
  LogInfo(absl::StrCat("deleted version ", version, " of model '", name, "'"));
  return absl::OkStatus();
}

void ModelRegistry::ApplyRetention(const std::string& name) {
  std::vector<int64_t> doomed;
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    const Entry& entry = it->second;
    const int64_t keep =
        entry.policy.keep_versions > 0 ? entry.policy.keep_versions : options_.keep_versions;
    if (keep <= 0) return;
    std::vector<int64_t> versions;
    for (const auto& [version, servable] : entry.versions) versions.push_back(version);
    doomed = repository::VersionsBeyondRetention(versions, keep, entry.policy.pinned_version);
  }
  for (int64_t version : doomed) {
    const absl::Status removed = RemoveVersion(name, version);
    if (!removed.ok()) {
      LogWarning(absl::StrCat("retention of model '", name, "': ", removed.message()));
    }
  }
}

absl::Status ModelRegistry::Delete(const std::string& name) {
  MutexLock write_lock(&write_mu_);
  if (!Contains(name)) return UnknownModel(name);
  WFM_RETURN_IF_ERROR(RemovePublishedDir(root_, name));
  for (auto it = loaded_stamps_.begin(); it != loaded_stamps_.end();) {
    it = it->first.first == name ? loaded_stamps_.erase(it) : std::next(it);
  }
  Entry previous;  // released after the lock
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      previous = std::move(it->second);
      models_.erase(it);
    }
    UpdateMetrics();
  }
  LogInfo(absl::StrCat("deleted model '", name, "'"));
  return absl::OkStatus();
}

absl::Status ModelRegistry::DeleteVersion(const std::string& name, int64_t version) {
  MutexLock write_lock(&write_mu_);
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return UnknownModel(name);
    const Entry& entry = it->second;
    if (entry.versions.count(version) == 0) return UnknownVersion(name, version);
    if (entry.policy.pinned_version == version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "version: ", version, " of model '", name,
          "' is pinned as its serving version; pin another version (or unpin) first"));
    }
    if (entry.versions.size() == 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "version: ", version, " is the only version of model '", name,
          "'; delete the model instead"));
    }
  }
  return RemoveVersion(name, version);
}

absl::StatusOr<ModelVersions> ModelRegistry::Update(const std::string& name,
                                                    std::optional<int64_t> serving_version,
                                                    std::optional<int64_t> keep_versions) {
  MutexLock write_lock(&write_mu_);
  ServingPolicy policy;
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return UnknownModel(name);
    policy = it->second.policy;
    if (serving_version.has_value()) {
      if (*serving_version > 0 && it->second.versions.count(*serving_version) == 0) {
        return absl::NotFoundError(absl::StrCat("serving_version: model '", name,
                                                "' has no version ", *serving_version));
      }
      policy.pinned_version = *serving_version;
    }
    if (keep_versions.has_value()) policy.keep_versions = *keep_versions;
  }
  WFM_RETURN_IF_ERROR(repository::WriteServingPolicy(root_, name, policy));
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) it->second.policy = policy;
  }
  LogInfo(absl::StrCat("model '", name, "': ",
                       policy.pinned_version > 0
                           ? absl::StrCat("version ", policy.pinned_version, " pinned")
                           : std::string("the latest version serves"),
                       policy.keep_versions > 0
                           ? absl::StrCat(", keeping the latest ", policy.keep_versions)
                           : std::string()));
  ApplyRetention(name);
  return Describe(name);
}

}  // namespace wfm::server
