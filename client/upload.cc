#include "client/upload.h"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

// Encoded size of a string in a repeated field: tag, length, bytes.
int64_t StringBytes(const std::string& s) { return static_cast<int64_t>(s.size()) + 4; }

// The end of the chunk of items [begin, end) that starts at `begin`: items
// are added while their encoded sizes (item_bytes(i)) stay within max_bytes,
// and a chunk holds at least one item.
int64_t ChunkEnd(int64_t begin, int64_t count, int64_t max_bytes,
                 const std::function<int64_t(int64_t)>& item_bytes) {
  int64_t end = begin, bytes = 0;
  while (end < count) {
    const int64_t item = item_bytes(end);
    if (end > begin && bytes + item > max_bytes) break;
    bytes += item;
    ++end;
  }
  return end;
}

// A header of `kind`; discrete or no labels, as `has_labels` says.
v1::DatasetHeader MakeHeader(const UploadInfo& info, v1::DatasetKind kind, int64_t dim,
                             bool has_labels) {
  v1::DatasetHeader header;
  header.set_name(info.name);
  header.set_description(info.description);
  header.set_overwrite(info.overwrite);
  header.set_kind(kind);
  header.set_dim(dim);
  header.set_label_type(has_labels ? v1::LABEL_TYPE_DISCRETE : v1::LABEL_TYPE_NONE);
  return header;
}

}  // namespace

std::vector<std::string> LabelStrings(const io::Labels& labels) {
  std::vector<std::string> out;
  switch (labels.kind) {
    case io::Labels::Kind::kInteger:
      out.reserve(labels.integers.size());
      for (int64_t v : labels.integers) out.push_back(absl::StrCat(v));
      break;
    case io::Labels::Kind::kString:
      out = labels.strings;
      break;
    case io::Labels::Kind::kNone:
    case io::Labels::Kind::kContinuous:
      break;
  }
  return out;
}

absl::StatusOr<v1::DatasetHeader> PointCloudHeader(const UploadInfo& info,
                                                   const io::PointCloudSet& clouds) {
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(clouds, info.name));
  v1::DatasetHeader header = MakeHeader(info, v1::POINT_CLOUDS, clouds.dim, !clouds.labels.empty());
  if (clouds.labels.kind == io::Labels::Kind::kContinuous) {
    header.set_label_type(v1::LABEL_TYPE_CONTINUOUS);
    header.set_condition_dim(clouds.labels.width);
  }
  return header;
}

absl::StatusOr<v1::DatasetHeader> GaussianHeader(const UploadInfo& info,
                                                 const io::GaussianSet& gaussians) {
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(gaussians, info.name));
  v1::DatasetHeader header =
      MakeHeader(info, v1::GAUSSIANS, gaussians.dim, !gaussians.labels.empty());
  if (gaussians.labels.kind == io::Labels::Kind::kContinuous) {
    header.set_label_type(v1::LABEL_TYPE_CONTINUOUS);
    header.set_condition_dim(gaussians.labels.width);
  }
  return header;
}

absl::StatusOr<v1::DatasetHeader> CellHeader(const UploadInfo& info, const SpatialCells& cells) {
  WFM_RETURN_IF_ERROR(ValidateSpatialCells(cells, info.name));
  v1::DatasetHeader header = MakeHeader(info, v1::SPATIAL_CELLS, cells.dim, !cells.labels.empty());
  for (const std::string& name : cells.feature_names) header.add_feature_names(name);
  if (cells.spatial_dim != 2) header.set_spatial_dim(cells.spatial_dim);  // 0 = 2 for old servers
  if (cells.condition_dim > 0) {
    header.set_label_type(v1::LABEL_TYPE_CONTINUOUS);
    header.set_condition_dim(cells.condition_dim);
    for (const v1::ConditionColumn& c : cells.condition_columns) {
      *header.add_condition_columns() = c;
    }
  }
  return header;
}

// ------------------------------------------------------------------ clouds

PointCloudChunker::PointCloudChunker(const io::PointCloudSet& clouds, int64_t max_chunk_bytes)
    : clouds_(clouds), max_chunk_bytes_(max_chunk_bytes), labels_(LabelStrings(clouds.labels)) {}

bool PointCloudChunker::Next(v1::UploadDatasetRequest* request) {
  request->Clear();
  const int64_t c = clouds_.num_clouds();
  if (next_ >= c) return false;
  const bool continuous = clouds_.labels.kind == io::Labels::Kind::kContinuous;
  const int64_t width = continuous ? clouds_.labels.width : 0;
  const int64_t end = ChunkEnd(next_, c, max_chunk_bytes_, [&](int64_t i) {
    const int64_t item = clouds_.cloud_size(i) * clouds_.dim * 4 + 10 + width * 4;
    return labels_.empty() ? item : item + StringBytes(labels_[i]);
  });
  v1::PointCloudChunk* chunk = request->mutable_clouds();
  const float* points = clouds_.points.data();
  chunk->mutable_points()->Add(points + clouds_.offsets[next_] * clouds_.dim,
                               points + clouds_.offsets[end] * clouds_.dim);
  for (int64_t i = next_; i < end; ++i) {
    chunk->add_sizes(clouds_.cloud_size(i));
    if (!labels_.empty()) chunk->add_labels(labels_[i]);
  }
  if (continuous) {
    chunk->mutable_conditions()->Add(clouds_.labels.values.begin() + next_ * width,
                                     clouds_.labels.values.begin() + end * width);
  }
  next_ = end;
  return true;
}

// --------------------------------------------------------------- Gaussians

GaussianChunker::GaussianChunker(const io::GaussianSet& gaussians, int64_t max_chunk_bytes)
    : gaussians_(gaussians),
      max_chunk_bytes_(max_chunk_bytes),
      labels_(LabelStrings(gaussians.labels)) {}

bool GaussianChunker::Next(v1::UploadDatasetRequest* request) {
  request->Clear();
  const int64_t c = gaussians_.num_gaussians(), d = gaussians_.dim;
  if (next_ >= c) return false;
  const bool continuous = gaussians_.labels.kind == io::Labels::Kind::kContinuous;
  const int64_t width = continuous ? gaussians_.labels.width : 0;
  const int64_t end = ChunkEnd(next_, c, max_chunk_bytes_, [&](int64_t i) {
    const int64_t item = (d + d * d) * 8 + width * 4;
    return labels_.empty() ? item : item + StringBytes(labels_[i]);
  });
  v1::GaussianChunk* chunk = request->mutable_gaussians();
  chunk->mutable_means()->Add(gaussians_.means.begin() + next_ * d,
                              gaussians_.means.begin() + end * d);
  chunk->mutable_covs()->Add(gaussians_.covs.begin() + next_ * d * d,
                             gaussians_.covs.begin() + end * d * d);
  if (!labels_.empty()) {
    for (int64_t i = next_; i < end; ++i) chunk->add_labels(labels_[i]);
  }
  if (continuous) {
    chunk->mutable_conditions()->Add(gaussians_.labels.values.begin() + next_ * width,
                                     gaussians_.labels.values.begin() + end * width);
  }
  next_ = end;
  return true;
}

// ------------------------------------------------------------------- cells

CellChunker::CellChunker(const SpatialCells& cells, int64_t max_chunk_bytes)
    : cells_(cells), max_chunk_bytes_(max_chunk_bytes) {}

bool CellChunker::Next(v1::UploadDatasetRequest* request) {
  request->Clear();
  const int64_t n = cells_.num_cells(), d = cells_.dim, sd = cells_.spatial_dim;
  const int64_t k = cells_.condition_dim;
  if (next_ >= n) return false;
  const bool samples = !cells_.sample_ids.empty(), labels = !cells_.labels.empty();
  const int64_t end = ChunkEnd(next_, n, max_chunk_bytes_, [&](int64_t i) {
    int64_t item = (d + sd + k) * 4;
    if (samples) item += StringBytes(cells_.sample_ids[i]);
    if (labels) item += StringBytes(cells_.labels[i]);
    return item;
  });
  v1::CellChunk* chunk = request->mutable_cells();
  chunk->mutable_features()->Add(cells_.features.begin() + next_ * d,
                                 cells_.features.begin() + end * d);
  chunk->mutable_coords()->Add(cells_.coords.begin() + next_ * sd,
                               cells_.coords.begin() + end * sd);
  chunk->mutable_conditions()->Add(cells_.conditions.begin() + next_ * k,
                                   cells_.conditions.begin() + end * k);
  for (int64_t i = next_; i < end; ++i) {
    if (samples) chunk->add_sample_ids(cells_.sample_ids[i]);
    if (labels) chunk->add_labels(cells_.labels[i]);
  }
  next_ = end;
  return true;
}

}  // namespace wfm::client
