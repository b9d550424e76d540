#include "server/dataset_store.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/io/npz.h"
#include "repository/fs_util.h"
#include "repository/logging.h"
#include "repository/names.h"
#include "server/metrics.h"

namespace wfm::server {
namespace {

using repository::FileSize;
using repository::FsyncDir;
using repository::ListDir;
using repository::MakeDirs;
using repository::MakeStagingDir;
using repository::PublishDir;
using repository::RecoverDirs;
using repository::RemovePublishedDir;
using repository::ValidateName;

using model::io::Labels;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> SortedUnique(const std::vector<std::string>& values) {
  std::set<std::string> s(values.begin(), values.end());
  return {s.begin(), s.end()};
}

}  // namespace

// ---------------------------------------------------------------- upload

DatasetUpload::DatasetUpload(DatasetStore* store, DatasetHeader header)
    : store_(store), header_(std::move(header)) {
  clouds_.dim = header_.dim;
  clouds_.offsets.push_back(0);
  gaussians_.dim = header_.dim;
  cells_.dim = header_.dim;
}

DatasetUpload::~DatasetUpload() = default;

absl::Status DatasetUpload::Fail(absl::Status status) {
  if (error_.ok() && !status.ok()) error_ = status;
  return status;
}

absl::Status DatasetUpload::AddBytes(int64_t bytes) {
  bytes_ += bytes;
  if (bytes_ > store_->options().max_upload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "upload: the data set exceeds the server's limit of ", store_->options().max_upload_bytes,
        " bytes (--max-upload-bytes)"));
  }
  return absl::OkStatus();
}

absl::Status DatasetUpload::AddClouds(const CloudChunkView& chunk) {
  if (!error_.ok()) return error_;
  const int64_t index = chunks_++;
  WFM_RETURN_IF_ERROR(Fail(CheckChunkKind(header_, index, DatasetKind::kPointClouds)));
  WFM_RETURN_IF_ERROR(Fail(AddBytes(ChunkBytes(chunk))));
  WFM_RETURN_IF_ERROR(Fail(ValidateCloudChunk(header_, index, clouds_.num_clouds(), chunk)));
  const int64_t n = static_cast<int64_t>(chunk.sizes.size());
  clouds_.points.insert(clouds_.points.end(), chunk.points.begin(), chunk.points.end());
  for (int64_t c = 0; c < n; ++c) clouds_.offsets.push_back(clouds_.offsets.back() + chunk.sizes[c]);
  cloud_labels_.insert(cloud_labels_.end(), chunk.labels.begin(), chunk.labels.end());
  cloud_conditions_.insert(cloud_conditions_.end(), chunk.conditions.begin(),
                           chunk.conditions.end());
  return absl::OkStatus();
}

absl::Status DatasetUpload::AddGaussians(const GaussianChunkView& chunk) {
  if (!error_.ok()) return error_;
  const int64_t index = chunks_++;
  WFM_RETURN_IF_ERROR(Fail(CheckChunkKind(header_, index, DatasetKind::kGaussians)));
  WFM_RETURN_IF_ERROR(Fail(AddBytes(ChunkBytes(chunk))));
  WFM_RETURN_IF_ERROR(
      Fail(ValidateGaussianChunk(header_, index, gaussians_.num_gaussians(), chunk)));
  gaussians_.means.insert(gaussians_.means.end(), chunk.means.begin(), chunk.means.end());
  gaussians_.covs.insert(gaussians_.covs.end(), chunk.covs.begin(), chunk.covs.end());
  gaussian_labels_.insert(gaussian_labels_.end(), chunk.labels.begin(), chunk.labels.end());
  gaussian_conditions_.insert(gaussian_conditions_.end(), chunk.conditions.begin(),
                              chunk.conditions.end());
  return absl::OkStatus();
}

absl::Status DatasetUpload::AddCells(const CellChunkView& chunk) {
  if (!error_.ok()) return error_;
  const int64_t index = chunks_++;
  WFM_RETURN_IF_ERROR(Fail(CheckChunkKind(header_, index, DatasetKind::kSpatialCells)));
  WFM_RETURN_IF_ERROR(Fail(AddBytes(ChunkBytes(chunk))));
  WFM_RETURN_IF_ERROR(Fail(
      ValidateCellChunk(header_, index, cells_.num_cells(), cells_have_sample_ids_, chunk)));
  if (!chunk.features.empty()) cells_have_sample_ids_ = !chunk.sample_ids.empty();
  cells_.features.insert(cells_.features.end(), chunk.features.begin(), chunk.features.end());
  cells_.coords.insert(cells_.coords.end(), chunk.coords.begin(), chunk.coords.end());
  cells_.sample_ids.insert(cells_.sample_ids.end(), chunk.sample_ids.begin(),
                           chunk.sample_ids.end());
  cell_labels_.insert(cell_labels_.end(), chunk.labels.begin(), chunk.labels.end());
  cell_conditions_.insert(cell_conditions_.end(), chunk.conditions.begin(), chunk.conditions.end());
  return absl::OkStatus();
}

absl::StatusOr<DatasetInfo> DatasetUpload::Finish() {
  if (!error_.ok()) return error_;
  if (finished_) return absl::FailedPreconditionError("upload: already finished");
  finished_ = true;
  const DatasetHeader& h = header_;
  DatasetInfo info;
  info.name = h.name;
  info.kind = h.kind;
  info.dim = h.dim;
  info.label_type = h.label_type;
  info.condition_dim = h.label_type == LabelType::kContinuous ? h.condition_dim : 0;
  info.description = h.description;
  info.feature_names = h.feature_names;
  info.condition_columns = h.condition_columns;
  info.created_unix_ms = NowUnixMs();

  WFM_ASSIGN_OR_RETURN(const repository::StagingDir staging_dir,
                       MakeStagingDir(store_->options().root, h.name));
  const std::string& staging = staging_dir.path();
  const std::string data_path = absl::StrCat(staging, "/", repository::kDatasetDataFile);
  absl::Status written = [&]() -> absl::Status {
    switch (h.kind) {
      case DatasetKind::kPointClouds: {
        if (clouds_.num_clouds() == 0) {
          return absl::InvalidArgumentError("upload: no clouds received after the header");
        }
        if (h.label_type == LabelType::kDiscrete) {
          clouds_.labels = Labels::FromStrings(std::move(cloud_labels_));
        } else if (h.label_type == LabelType::kContinuous) {
          clouds_.labels = Labels::FromContinuous(std::move(cloud_conditions_), h.condition_dim);
        }
        info.items = clouds_.num_clouds();
        info.points = clouds_.num_points();
        info.min_size = info.max_size = clouds_.cloud_size(0);
        for (int64_t c = 0; c < info.items; ++c) {
          info.min_size = std::min(info.min_size, clouds_.cloud_size(c));
          info.max_size = std::max(info.max_size, clouds_.cloud_size(c));
        }
        if (h.label_type == LabelType::kDiscrete) info.label_names = SortedUnique(clouds_.labels.strings);
        return model::io::WritePointCloudsNpz(data_path, clouds_);
      }
      case DatasetKind::kGaussians: {
        if (gaussians_.num_gaussians() == 0) {
          return absl::InvalidArgumentError("upload: no Gaussians received after the header");
        }
        if (h.label_type == LabelType::kDiscrete) {
          gaussians_.labels = Labels::FromStrings(std::move(gaussian_labels_));
          info.label_names = SortedUnique(gaussians_.labels.strings);
        } else if (h.label_type == LabelType::kContinuous) {
          gaussians_.labels =
              Labels::FromContinuous(std::move(gaussian_conditions_), h.condition_dim);
        }
        info.items = gaussians_.num_gaussians();
        return model::io::WriteGaussiansNpz(data_path, gaussians_);
      }
      case DatasetKind::kSpatialCells: {
        const int64_t n = cells_.num_cells();
        if (n == 0) return absl::InvalidArgumentError("upload: no cells received after the header");
        std::vector<std::pair<std::string, model::io::ArrayView>> arrays;
        arrays.emplace_back("features", model::io::ArrayView::Of({n, h.dim}, cells_.features));
        info.spatial_dim = SpatialDim(h);
        arrays.emplace_back("coords", model::io::ArrayView::Of({n, info.spatial_dim}, cells_.coords));
        if (!cells_.sample_ids.empty()) {
          arrays.emplace_back("sample_ids", model::io::ArrayView::Of({n}, cells_.sample_ids));
        }
        if (h.label_type == LabelType::kDiscrete) {
          arrays.emplace_back("labels", model::io::ArrayView::Of({n}, cell_labels_));
          info.label_names = SortedUnique(cell_labels_);
        } else if (h.label_type == LabelType::kContinuous) {
          arrays.emplace_back("conditions",
                              model::io::ArrayView::Of({n, h.condition_dim}, cell_conditions_));
        }
        info.items = n;
        info.samples = cells_.sample_ids.empty()
                           ? 1
                           : static_cast<int64_t>(SortedUnique(cells_.sample_ids).size());
        return model::io::WriteNpz(data_path, arrays);
      }
    }
    return absl::InternalError("unknown kind");
  }();
  if (written.ok()) {
    absl::StatusOr<int64_t> size = FileSize(data_path);
    written = size.status();
    if (size.ok()) {
      info.size_bytes = *size;
      written = repository::WriteDatasetRecord(staging, info);
    }
  }
  if (written.ok()) written = FsyncDir(staging);
  if (!written.ok() && !absl::IsInvalidArgument(written)) {
    // A storage failure (disk full, file size limit): the log keeps the
    // paths, the client gets the cause without the server's folders.
    LogError(absl::StrCat("upload '", h.name, "': ", written.message()));
    const absl::string_view message = written.message();
    const size_t colon = message.rfind(": ");
    const absl::string_view cause =
        colon == absl::string_view::npos ? message : message.substr(colon + 2);
    written = absl::Status(written.code(), absl::StrCat("upload '", h.name,
                                                        "': cannot store the data set: ", cause));
  }
  absl::StatusOr<DatasetInfo> published =
      written.ok() ? store_->Publish(staging_dir, info, h.overwrite) : written;
  return published;
}

// ---------------------------------------------------------------- store

absl::StatusOr<std::unique_ptr<DatasetStore>> DatasetStore::Open(const DatasetStoreOptions& options,
                                                                  Metrics* metrics) {
  if (options.root.empty()) return absl::InvalidArgumentError("data set store: root is empty");
  if (options.max_upload_bytes < 1) {
    return absl::InvalidArgumentError("max-upload-bytes: must be >= 1");
  }
  WFM_RETURN_IF_ERROR(MakeDirs(options.root));
  std::unique_ptr<DatasetStore> store(new DatasetStore(options, metrics));
  store->LoadAll();
  return store;
}

void DatasetStore::LoadAll() {
  RecoverDirs(options_.root);
  absl::StatusOr<std::vector<std::string>> entries = ListDir(options_.root);
  if (!entries.ok()) {
    LogError(absl::StrCat("cannot list data sets: ", entries.status().message()));
    return;
  }
  MutexLock lock(&mu_);
  for (const std::string& entry : *entries) {
    // Only the store's own temporary folders (".~staging-", ".~trash-",
    // ".~deleted-") and their lock files (".~lock-"), handled by
    // RecoverDirs, are skipped: valid names may start with '.' (".hidden")
    // and must survive a restart.
    if (absl::StartsWith(entry, ".~")) continue;
    const std::string folder = absl::StrCat(options_.root, "/", entry);
    absl::StatusOr<DatasetInfo> info = [&]() -> absl::StatusOr<DatasetInfo> {
      WFM_RETURN_IF_ERROR(ValidateName("folder", entry));
      return repository::ReadDatasetRecord(folder, entry);
    }();
    if (!info.ok()) {
      LogWarning(absl::StrCat("skipping data set folder ", folder, ": ", info.status().message()));
      continue;
    }
    datasets_.emplace(entry, *std::move(info));
  }
  UpdateMetrics();
}

void DatasetStore::UpdateMetrics() const {
  if (metrics_ != nullptr) metrics_->SetDatasetsStored(static_cast<int64_t>(datasets_.size()));
}

absl::StatusOr<std::unique_ptr<DatasetUpload>> DatasetStore::BeginUpload(
    const DatasetHeader& header) {
  WFM_RETURN_IF_ERROR(ValidateDatasetHeader(header));
  if (!header.overwrite) {
    MutexLock lock(&mu_);
    if (datasets_.count(header.name) > 0) {
      return absl::AlreadyExistsError(absl::StrCat(
          "header.name: data set '", header.name, "' already exists (set overwrite to replace it)"));
    }
  }
  return std::unique_ptr<DatasetUpload>(new DatasetUpload(this, header));
}

absl::StatusOr<DatasetInfo> DatasetStore::Publish(const repository::StagingDir& staging,
                                                  DatasetInfo info,
                                                  bool overwrite) {
  MutexLock lock(&mu_);
  absl::Status published = PublishDir(staging, options_.root, info.name, overwrite);
  if (absl::IsAlreadyExists(published)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "header.name: data set '", info.name, "' already exists (set overwrite to replace it)"));
  }
  WFM_RETURN_IF_ERROR(published);
  datasets_[info.name] = info;
  cache_.erase(info.name);
  UpdateMetrics();
  LogInfo(absl::StrCat("stored data set '", info.name, "': ", DatasetKindName(info.kind), ", ",
                       info.items, " items, dim ", info.dim, ", ", info.size_bytes, " bytes"));
  return info;
}

std::vector<DatasetInfo> DatasetStore::List() const {
  MutexLock lock(&mu_);
  std::vector<DatasetInfo> out;
  out.reserve(datasets_.size());
  for (const auto& [name, info] : datasets_) out.push_back(info);
  return out;
}

absl::StatusOr<DatasetInfo> DatasetStore::Get(const std::string& name) const {
  {
    MutexLock lock(&mu_);
    auto it = datasets_.find(name);
    if (it != datasets_.end()) return it->second;
  }
  // One that another server on this data folder published since start-up.
  const std::string folder = absl::StrCat(options_.root, "/", name);
  if (ValidateName("name", name).ok() && repository::Exists(folder)) {
    absl::StatusOr<DatasetInfo> info = repository::ReadDatasetRecord(folder, name);
    if (info.ok()) return info;
  }
  return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
}

int64_t DatasetStore::size() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(datasets_.size());
}

absl::StatusOr<std::shared_ptr<const DatasetData>> DatasetStore::Load(const std::string& name) const {
  WFM_ASSIGN_OR_RETURN(const DatasetInfo info, Get(name));
  {
    MutexLock lock(&mu_);
    auto cached = cache_.find(name);
    if (cached != cache_.end()) {
      std::shared_ptr<const DatasetData> data = cached->second.lock();
      if (data != nullptr && data->info.created_unix_ms == info.created_unix_ms) return data;
    }
  }
  WFM_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetData> data,
                       repository::ReadDatasetFolder(absl::StrCat(options_.root, "/", name), info));
  MutexLock lock(&mu_);
  cache_[name] = data;
  return data;
}

absl::Status DatasetStore::Delete(const std::string& name) {
  MutexLock lock(&mu_);
  if (datasets_.count(name) == 0) {
    return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
  }
  WFM_RETURN_IF_ERROR(RemovePublishedDir(options_.root, name));
  datasets_.erase(name);
  cache_.erase(name);
  UpdateMetrics();
  LogInfo(absl::StrCat("deleted data set '", name, "'"));
  return absl::OkStatus();
}

}  // namespace wfm::server
