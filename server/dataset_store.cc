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
using repository::RemoveTree;
using repository::ValidateName;

using model::io::Labels;

constexpr int64_t kMaxDim = 100000;
constexpr int64_t kMaxGaussianDim = 512;
constexpr int64_t kMaxConditionDim = 4096;
constexpr size_t kMaxDescription = 4096;
constexpr size_t kMaxLabelBytes = 256;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* NonFiniteName(double v) { return std::isnan(v) ? "NaN" : "infinity"; }

// Index of the first non-finite value, or -1.
template <typename T>
int64_t FirstNonFinite(absl::Span<const T> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

absl::Status CheckLabelText(absl::string_view item, const std::string& label) {
  if (label.empty()) return absl::InvalidArgumentError(absl::StrCat(item, ".label: empty"));
  if (label.size() > kMaxLabelBytes) {
    return absl::InvalidArgumentError(absl::StrCat(item, ".label: ", label.size(),
                                                   " bytes, the limit is ", kMaxLabelBytes));
  }
  return absl::OkStatus();
}

// Checks the labels of `n` items of a chunk against the header's label type.
absl::Status CheckChunkLabels(const DatasetHeader& h, int64_t chunk, absl::string_view items,
                              int64_t first, int64_t n, const std::vector<std::string>& labels) {
  if (h.label_type != LabelType::kDiscrete) {
    if (!labels.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk ", chunk, ": labels given but the header's label_type is ",
          LabelTypeName(h.label_type)));
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(labels.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", chunk, ": ", labels.size(),
                                                   " labels for ", n, " ", items,
                                                   " (label_type discrete needs one per item)"));
  }
  for (int64_t i = 0; i < n; ++i) {
    WFM_RETURN_IF_ERROR(CheckLabelText(absl::StrCat(items, "[", first + i, "]"), labels[i]));
  }
  return absl::OkStatus();
}

// Cholesky in double precision: true when `a` [d, d] is positive definite.
bool IsPositiveDefinite(const double* a, int64_t d) {
  std::vector<double> l(static_cast<size_t>(d * d), 0.0);
  for (int64_t j = 0; j < d; ++j) {
    double diag = a[j * d + j];
    for (int64_t k = 0; k < j; ++k) diag -= l[j * d + k] * l[j * d + k];
    if (!(diag > 0.0) || !std::isfinite(diag)) return false;
    const double ljj = std::sqrt(diag);
    l[j * d + j] = ljj;
    for (int64_t i = j + 1; i < d; ++i) {
      double v = a[i * d + j];
      for (int64_t k = 0; k < j; ++k) v -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = v / ljj;
    }
  }
  return true;
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
  const DatasetHeader& h = header_;
  if (h.kind != DatasetKind::kPointClouds) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": a clouds chunk in a ", DatasetKindName(h.kind), " upload")));
  }
  int64_t label_bytes = 0;
  for (const auto& l : chunk.labels) label_bytes += static_cast<int64_t>(l.size());
  WFM_RETURN_IF_ERROR(Fail(AddBytes(static_cast<int64_t>(chunk.points.size()) * 4 +
                                    static_cast<int64_t>(chunk.sizes.size()) * 8 +
                                    static_cast<int64_t>(chunk.conditions.size()) * 4 +
                                    label_bytes)));
  const int64_t first = clouds_.num_clouds();
  const int64_t n = static_cast<int64_t>(chunk.sizes.size());
  const int64_t available = static_cast<int64_t>(chunk.points.size()) / h.dim;
  int64_t total = 0;
  for (int64_t c = 0; c < n; ++c) {
    if (chunk.sizes[c] < 1) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "clouds[", first + c, "].size: must be >= 1, got ", chunk.sizes[c])));
    }
    // Never overflows: total stays <= available + 1.
    if (chunk.sizes[c] > available - total) {
      total = available + 1;
      break;
    }
    total += chunk.sizes[c];
  }
  if (total > available || total * h.dim != static_cast<int64_t>(chunk.points.size())) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": points holds ", chunk.points.size(),
        " values, but the sizes of its ", n, " clouds need ",
        total > available ? "more" : absl::StrCat(total * h.dim), " (sum(sizes) x dim ", h.dim,
        ")")));
  }
  const int64_t bad = FirstNonFinite(chunk.points);
  if (bad >= 0) {
    int64_t point = bad / h.dim, c = 0;
    while (point >= chunk.sizes[c]) point -= chunk.sizes[c++];
    return Fail(absl::InvalidArgumentError(absl::StrCat("clouds[", first + c, "].points: ",
                                                        NonFiniteName(chunk.points[bad]),
                                                        " at point ", point)));
  }
  WFM_RETURN_IF_ERROR(Fail(CheckChunkLabels(h, index, "clouds", first, n, chunk.labels)));
  if (h.label_type == LabelType::kContinuous) {
    if (static_cast<int64_t>(chunk.conditions.size()) != n * h.condition_dim) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "chunk ", index, ": conditions holds ", chunk.conditions.size(), " values for ", n,
          " clouds of condition_dim ", h.condition_dim, " (need clouds x condition_dim)")));
    }
    const int64_t nf = FirstNonFinite(chunk.conditions);
    if (nf >= 0) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "clouds[", first + nf / h.condition_dim, "].condition: ",
          NonFiniteName(chunk.conditions[nf]), " at index ", nf % h.condition_dim)));
    }
  } else if (!chunk.conditions.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": conditions given but the header's label_type is ",
                     LabelTypeName(h.label_type))));
  }
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
  const DatasetHeader& h = header_;
  if (h.kind != DatasetKind::kGaussians) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": a gaussians chunk in a ", DatasetKindName(h.kind), " upload")));
  }
  int64_t label_bytes = 0;
  for (const auto& l : chunk.labels) label_bytes += static_cast<int64_t>(l.size());
  WFM_RETURN_IF_ERROR(Fail(AddBytes(
      static_cast<int64_t>(chunk.means.size() + chunk.covs.size()) * 8 + label_bytes)));
  const int64_t d = h.dim;
  const int64_t first = gaussians_.num_gaussians();
  if (chunk.means.size() % d != 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": means holds ", chunk.means.size(), " values, not a multiple of dim ", d)));
  }
  const int64_t n = static_cast<int64_t>(chunk.means.size()) / d;
  if (static_cast<int64_t>(chunk.covs.size()) != n * d * d) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": covs holds ", chunk.covs.size(), " values for ", n,
        " Gaussians of dim ", d, " (need n x dim x dim = ", n * d * d, ")")));
  }
  for (int64_t g = 0; g < n; ++g) {
    const std::string item = absl::StrCat("gaussians[", first + g, "]");
    const int64_t bm = FirstNonFinite(chunk.means.subspan(g * d, d));
    if (bm >= 0) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          item, ".mean: ", NonFiniteName(chunk.means[g * d + bm]), " at index ", bm)));
    }
    const double* s = chunk.covs.data() + g * d * d;
    const int64_t bc = FirstNonFinite(chunk.covs.subspan(g * d * d, d * d));
    if (bc >= 0) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(item, ".cov: ", NonFiniteName(s[bc]),
                                                          " at [", bc / d, ", ", bc % d, "]")));
    }
    double largest = 0.0;
    for (int64_t i = 0; i < d * d; ++i) largest = std::max(largest, std::abs(s[i]));
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = i + 1; j < d; ++j) {
        if (std::abs(s[i * d + j] - s[j * d + i]) > 1e-6 * largest) {
          return Fail(absl::InvalidArgumentError(
              absl::StrCat(item, ".cov: not symmetric ([", i, ", ", j, "] = ", s[i * d + j],
                           ", [", j, ", ", i, "] = ", s[j * d + i], ")")));
        }
      }
    }
    if (!IsPositiveDefinite(s, d)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(item, ".cov: not positive definite")));
    }
  }
  WFM_RETURN_IF_ERROR(Fail(CheckChunkLabels(h, index, "gaussians", first, n, chunk.labels)));
  gaussians_.means.insert(gaussians_.means.end(), chunk.means.begin(), chunk.means.end());
  gaussians_.covs.insert(gaussians_.covs.end(), chunk.covs.begin(), chunk.covs.end());
  gaussian_labels_.insert(gaussian_labels_.end(), chunk.labels.begin(), chunk.labels.end());
  return absl::OkStatus();
}

absl::Status DatasetUpload::AddCells(const CellChunkView& chunk) {
  if (!error_.ok()) return error_;
  const int64_t index = chunks_++;
  const DatasetHeader& h = header_;
  if (h.kind != DatasetKind::kSpatialCells) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": a cells chunk in a ", DatasetKindName(h.kind), " upload")));
  }
  int64_t text_bytes = 0;
  for (const auto& l : chunk.labels) text_bytes += static_cast<int64_t>(l.size());
  for (const auto& l : chunk.sample_ids) text_bytes += static_cast<int64_t>(l.size());
  WFM_RETURN_IF_ERROR(Fail(AddBytes(
      static_cast<int64_t>(chunk.features.size() + chunk.coords.size()) * 4 + text_bytes)));
  const int64_t d = h.dim;
  const int64_t first = cells_.num_cells();
  if (chunk.features.size() % d != 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": features holds ",
                                                        chunk.features.size(),
                                                        " values, not a multiple of dim ", d)));
  }
  const int64_t n = static_cast<int64_t>(chunk.features.size()) / d;
  if (static_cast<int64_t>(chunk.coords.size()) != 2 * n) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": coords holds ", chunk.coords.size(), " values for ", n,
        " cells; coords must be [cells, 2]")));
  }
  const int64_t bf = FirstNonFinite(chunk.features);
  if (bf >= 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("cells[", first + bf / d, "].features: ",
                                                        NonFiniteName(chunk.features[bf]),
                                                        " at feature ", bf % d)));
  }
  const int64_t bc = FirstNonFinite(chunk.coords);
  if (bc >= 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("cells[", first + bc / 2, "].coords: ",
                                                        NonFiniteName(chunk.coords[bc]),
                                                        " at index ", bc % 2)));
  }
  if (n > 0) {
    const bool has_ids = !chunk.sample_ids.empty();
    if (has_ids && static_cast<int64_t>(chunk.sample_ids.size()) != n) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": ",
                                                          chunk.sample_ids.size(),
                                                          " sample_ids for ", n,
                                                          " cells (one per cell, or none)")));
    }
    if (first > 0 && has_ids != cells_have_sample_ids_) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "chunk ", index, ": sample_ids ", has_ids ? "given" : "missing",
          " but earlier chunks ", cells_have_sample_ids_ ? "gave them" : "gave none",
          " (give them in every chunk or in none)")));
    }
    cells_have_sample_ids_ = has_ids;
    for (int64_t i = 0; has_ids && i < n; ++i) {
      if (chunk.sample_ids[i].size() > kMaxLabelBytes) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "cells[", first + i, "].sample_id: longer than ", kMaxLabelBytes, " bytes")));
      }
    }
  } else if (!chunk.sample_ids.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": sample_ids given for a chunk without cells")));
  }
  WFM_RETURN_IF_ERROR(Fail(CheckChunkLabels(h, index, "cells", first, n, chunk.labels)));
  cells_.features.insert(cells_.features.end(), chunk.features.begin(), chunk.features.end());
  cells_.coords.insert(cells_.coords.end(), chunk.coords.begin(), chunk.coords.end());
  cells_.sample_ids.insert(cells_.sample_ids.end(), chunk.sample_ids.begin(),
                           chunk.sample_ids.end());
  cell_labels_.insert(cell_labels_.end(), chunk.labels.begin(), chunk.labels.end());
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
  info.created_unix_ms = NowUnixMs();

  WFM_ASSIGN_OR_RETURN(const std::string staging,
                       MakeStagingDir(store_->options().root, h.name));
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
        }
        info.items = gaussians_.num_gaussians();
        return model::io::WriteGaussiansNpz(data_path, gaussians_);
      }
      case DatasetKind::kSpatialCells: {
        const int64_t n = cells_.num_cells();
        if (n == 0) return absl::InvalidArgumentError("upload: no cells received after the header");
        std::vector<std::pair<std::string, model::io::ArrayView>> arrays;
        arrays.emplace_back("features", model::io::ArrayView::Of({n, h.dim}, cells_.features));
        arrays.emplace_back("coords", model::io::ArrayView::Of({n, 2}, cells_.coords));
        if (!cells_.sample_ids.empty()) {
          arrays.emplace_back("sample_ids", model::io::ArrayView::Of({n}, cells_.sample_ids));
        }
        if (h.label_type == LabelType::kDiscrete) {
          arrays.emplace_back("labels", model::io::ArrayView::Of({n}, cell_labels_));
          info.label_names = SortedUnique(cell_labels_);
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
      written.ok() ? store_->Publish(staging, info, h.overwrite) : written;
  if (!published.ok()) (void)RemoveTree(staging);
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
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& entry : *entries) {
    // Only the store's own temporary folders (".~staging-", ".~trash-",
    // ".~deleted-", handled by RecoverDirs) are skipped: valid names may
    // start with '.' (".hidden") and must survive a restart.
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
  WFM_RETURN_IF_ERROR(ValidateName("header.name", header.name));
  const bool cells = header.kind == DatasetKind::kSpatialCells;
  const int64_t max_dim = header.kind == DatasetKind::kGaussians ? kMaxGaussianDim : kMaxDim;
  if (header.dim < 1 || header.dim > max_dim) {
    return absl::InvalidArgumentError(absl::StrCat("header.dim: must be in [1, ", max_dim,
                                                   "] for ", DatasetKindName(header.kind),
                                                   ", got ", header.dim));
  }
  if (header.label_type == LabelType::kContinuous) {
    if (header.kind != DatasetKind::kPointClouds) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.label_type: continuous condition vectors are only supported for POINT_CLOUDS, "
          "not ", DatasetKindName(header.kind), cells ? " (cells take discrete labels)" : ""));
    }
    if (header.condition_dim < 1 || header.condition_dim > kMaxConditionDim) {
      return absl::InvalidArgumentError(absl::StrCat("header.condition_dim: must be in [1, ",
                                                     kMaxConditionDim,
                                                     "] for continuous labels, got ",
                                                     header.condition_dim));
    }
  } else if (header.condition_dim != 0) {
    return absl::InvalidArgumentError(
        "header.condition_dim: only meaningful with label_type continuous; leave it 0");
  }
  if (header.description.size() > kMaxDescription) {
    return absl::InvalidArgumentError(absl::StrCat("header.description: ",
                                                   header.description.size(),
                                                   " bytes, the limit is ", kMaxDescription));
  }
  if (!header.overwrite) {
    std::lock_guard<std::mutex> lock(mu_);
    if (datasets_.count(header.name) > 0) {
      return absl::AlreadyExistsError(absl::StrCat(
          "header.name: data set '", header.name, "' already exists (set overwrite to replace it)"));
    }
  }
  return std::unique_ptr<DatasetUpload>(new DatasetUpload(this, header));
}

absl::StatusOr<DatasetInfo> DatasetStore::Publish(const std::string& staging, DatasetInfo info,
                                                  bool overwrite) {
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DatasetInfo> out;
  out.reserve(datasets_.size());
  for (const auto& [name, info] : datasets_) out.push_back(info);
  return out;
}

absl::StatusOr<DatasetInfo> DatasetStore::Get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = datasets_.find(name);
  if (it == datasets_.end()) {
    return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
  }
  return it->second;
}

int64_t DatasetStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(datasets_.size());
}

absl::StatusOr<std::shared_ptr<const DatasetData>> DatasetStore::Load(const std::string& name) const {
  DatasetInfo info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = datasets_.find(name);
    if (it == datasets_.end()) {
      return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
    }
    info = it->second;
    auto cached = cache_.find(name);
    if (cached != cache_.end()) {
      std::shared_ptr<const DatasetData> data = cached->second.lock();
      if (data != nullptr && data->info.created_unix_ms == info.created_unix_ms) return data;
    }
  }
  WFM_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetData> data,
                       repository::ReadDatasetFolder(absl::StrCat(options_.root, "/", name), info));
  std::lock_guard<std::mutex> lock(mu_);
  cache_[name] = data;
  return data;
}

absl::Status DatasetStore::Delete(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
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
