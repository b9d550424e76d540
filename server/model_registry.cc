#include "server/model_registry.h"

#include <algorithm>
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
using repository::StatFile;
using repository::ValidateName;

absl::StatusOr<std::shared_ptr<const Servable>> MakeServable(
    const std::string& name, const model::checkpoint::Checkpoint& ckpt, int64_t size_bytes) {
  auto s = std::make_shared<Servable>();
  ModelInfo& info = s->info;
  info.name = name;
  info.size_bytes = size_bytes;
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

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(const std::string& root,
                                                                    Metrics* metrics) {
  if (root.empty()) return absl::InvalidArgumentError("model registry: root is empty");
  WFM_RETURN_IF_ERROR(MakeDirs(root));
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(root, metrics));
  registry->LoadAll();
  return registry;
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::LoadFolder(
    const std::string& entry, FileStamp* stamp) const {
  const std::string path = repository::ModelFilePath(root_, entry);
  WFM_RETURN_IF_ERROR(ValidateName("folder", entry));
  WFM_ASSIGN_OR_RETURN(*stamp, StatFile(path));
  WFM_ASSIGN_OR_RETURN(const model::checkpoint::Checkpoint ckpt, model::checkpoint::Read(path));
  return MakeServable(entry, ckpt, stamp->size);
}

absl::StatusOr<model::checkpoint::Checkpoint> ModelRegistry::ReadCheckpoint(
    const std::string& name) const {
  WFM_RETURN_IF_ERROR(Get(name).status());
  return model::checkpoint::Read(repository::ModelFilePath(root_, name));
}

void ModelRegistry::LoadAll() {
  RecoverDirs(root_);
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
  std::map<std::string, std::shared_ptr<const Servable>> changed;
  std::map<std::string, FileStamp> stamps;
  for (const std::string& entry : *entries) {
    // ".~" entries are staging and trash folders of a publish in progress
    // (no valid name holds '~'); other names starting with '.' are models.
    if (absl::StartsWith(entry, ".~")) continue;
    absl::StatusOr<FileStamp> current =
        StatFile(repository::ModelFilePath(root_, entry));
    if (current.ok()) {
      auto known = loaded_stamps_.find(entry);
      if (known != loaded_stamps_.end() && known->second == *current) {
        stamps.emplace(entry, *current);
        continue;
      }
      auto failed = failed_stamps_.find(entry);
      if (failed != failed_stamps_.end() && failed->second == *current) continue;
    }
    FileStamp stamp;
    absl::StatusOr<std::shared_ptr<const Servable>> servable = LoadFolder(entry, &stamp);
    if (!servable.ok()) {
      LogWarning(absl::StrCat("skipping model folder ", root_, "/", entry, ": ",
                              servable.status().message()));
      if (current.ok()) failed_stamps_[entry] = *current;
      continue;
    }
    failed_stamps_.erase(entry);
    stamps.emplace(entry, stamp);
    changed.emplace(entry, *std::move(servable));
  }
  std::vector<std::string> removed;
  {
    MutexLock lock(&mu_);
    for (auto it = models_.begin(); it != models_.end();) {
      if (stamps.count(it->first) == 0) {
        removed.push_back(it->first);
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [name, servable] : changed) {
      auto [it, inserted] = models_.insert_or_assign(name, std::move(servable));
      ++(inserted ? result.added : result.replaced);
    }
    UpdateMetrics();
  }
  loaded_stamps_ = std::move(stamps);
  result.removed = static_cast<int>(removed.size());
  for (const auto& [name, stamp] : loaded_stamps_) {
    if (changed.count(name) > 0) LogInfo(absl::StrCat("loaded model '", name, "' from ", root_));
  }
  for (const std::string& name : removed) {
    LogInfo(absl::StrCat("model '", name, "' disappeared from ", root_, "; unloaded"));
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
  std::vector<std::pair<std::string, std::string>> served;
  served.reserve(models_.size());
  for (const auto& [name, servable] : models_) {
    served.emplace_back(name, model::FamilyName(servable->info.family));
  }
  metrics_->SyncModels(served);
}

std::vector<std::shared_ptr<const Servable>> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Servable>> out;
  out.reserve(models_.size());
  for (const auto& [name, servable] : models_) out.push_back(servable);
  return out;
}

absl::StatusOr<std::shared_ptr<const Servable>> ModelRegistry::Get(const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  return it->second;
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
  if (!overwrite && repository::Exists(absl::StrCat(root_, "/", name))) {
    return absl::AlreadyExistsError(
        absl::StrCat("model '", name, "' already exists (set overwrite to replace it)"));
  }
  // In an existing folder the checkpoint writer replaces the file
  // atomically; a new folder is staged and renamed into place.
  WFM_RETURN_IF_ERROR(repository::WriteModelFolder(
      root_, name, [&](const std::string& path) { return model::checkpoint::Write(path, ckpt); }));
  const std::string path = repository::ModelFilePath(root_, name);
  WFM_ASSIGN_OR_RETURN(const FileStamp stamp, StatFile(path));
  loaded_stamps_[name] = stamp;
  failed_stamps_.erase(name);
  const int64_t size = stamp.size;
  auto servable = std::make_shared<Servable>(*probe);
  servable->info.size_bytes = size;
  std::shared_ptr<const Servable> published = servable;
  std::shared_ptr<const Servable> previous;
  {
    MutexLock lock(&mu_);
    previous = std::exchange(models_[name], published);
    UpdateMetrics();
  }
  LogInfo(absl::StrCat(previous ? "replaced" : "published", " model '", name, "' (",
                       model::FamilyName(published->info.family), ", dim ", published->info.dim,
                       ", ", published->info.parameters, " parameters, ", size, " bytes)"));
  return published;
}

absl::Status ModelRegistry::Delete(const std::string& name) {
  MutexLock write_lock(&write_mu_);
  if (!Contains(name)) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  WFM_RETURN_IF_ERROR(RemovePublishedDir(root_, name));
  loaded_stamps_.erase(name);
  std::shared_ptr<const Servable> previous;
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

}  // namespace wfm::server
