#include "server/model_registry.h"

#include <algorithm>
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
  view.described = entry.versions.at(described > 0 ? described : view.serving_version);
  view.versions.reserve(entry.versions.size());
  for (const auto& [version, servable] : entry.versions) view.versions.push_back(servable);
  return view;
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(const std::string& root,
                                                                    Metrics* metrics,
                                                                    ModelRegistryOptions options) {
  if (root.empty()) return absl::InvalidArgumentError("model registry: root is empty");
  if (options.keep_versions < 0) {
    return absl::InvalidArgumentError("model registry: keep_versions must be >= 0");
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
  WFM_ASSIGN_OR_RETURN(const std::shared_ptr<const Servable> servable, Get(name, version));
  const int64_t v = servable->info.version;
  const std::string path = repository::ModelVersionPath(root_, name, v);
  if (v == 1 && !repository::Exists(path)) {
    return model::checkpoint::Read(repository::ModelFilePath(root_, name));
  }
  return model::checkpoint::Read(path);
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
      model.versions.emplace(stored.version, *std::move(servable));
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
    models_ = std::move(now);
    UpdateMetrics();
  }
  loaded_stamps_ = std::move(stamps);
  for (const auto& [name, version] : loaded) {
    LogInfo(absl::StrCat("loaded version ", version, " of model '", name, "' from ", root_));
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
    for (const auto& [version, servable] : entry.versions) {
      served.push_back({name, model::FamilyName(servable->info.family), version});
    }
  }
  metrics_->SyncModels(served);
}

std::vector<std::shared_ptr<const Servable>> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Servable>> out;
  out.reserve(models_.size());
  for (const auto& [name, entry] : models_) out.push_back(entry.versions.at(entry.serving()));
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
  MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return UnknownModel(name);
  const Entry& entry = it->second;
  auto v = entry.versions.find(version > 0 ? version : entry.serving());
  if (v == entry.versions.end()) return UnknownVersion(name, version);
  return v->second;
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
  {
    MutexLock lock(&mu_);
    Entry& entry = models_[name];
    if (overwrite) entry = Entry{};
    entry.versions[version] = published;
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
  std::shared_ptr<const Servable> previous;  // released after the lock
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
