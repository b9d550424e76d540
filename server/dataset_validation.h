// Checks of an upload (README, "Uploads"): the header, and every chunk as
// it arrives against the header and the chunks before it, with messages
// that name the field and the item across chunks ("clouds[12].points: NaN
// at point 3"). Pure functions: the store (dataset_store.h) keeps the
// upload's state and calls them. No gRPC here.
#ifndef WFM_SERVER_DATASET_VALIDATION_H_
#define WFM_SERVER_DATASET_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "repository/dataset_record.h"

namespace wfm::server {

// The stored data set's types (repository/dataset_record.h), as the server's
// data set store and service name them.
using repository::CellSet;
using repository::ConditionColumn;
using repository::ConditionKind;
using repository::DatasetData;
using repository::DatasetInfo;
using repository::DatasetKind;
using repository::DatasetKindName;
using repository::LabelType;
using repository::LabelTypeName;
using repository::ParseDatasetKind;
using repository::ParseLabelType;

// The largest dimension of Gaussians (uploaded, or made from point clouds
// at training): a dim x dim covariance per item.
inline constexpr int64_t kMaxGaussianDim = 512;
// Spatial coordinates of cells: 2-D sections, 3-D tissue, at most this many.
inline constexpr int64_t kMaxSpatialDim = 16;

// The first message of an upload.
struct DatasetHeader {
  std::string name;
  DatasetKind kind = DatasetKind::kPointClouds;
  int64_t dim = 0;                 // point / Gaussian / feature dimension, >= 1
  LabelType label_type = LabelType::kNone;
  int64_t condition_dim = 0;       // kContinuous, >= 1
  std::string description;         // at most 4096 bytes
  bool overwrite = false;
  // None, or one per dimension: unique, each 1 to 256 bytes.
  std::vector<std::string> feature_names;
  // SPATIAL_CELLS: columns of the coordinates, 1 to kMaxSpatialDim; 0 = 2.
  // Other kinds: 0.
  int64_t spatial_dim = 0;
  // kContinuous: the vectors' encoding from named columns, or none
  // (repository::CheckConditionColumns).
  std::vector<ConditionColumn> condition_columns;
};

// The coordinate columns of a SPATIAL_CELLS header (its 0 means 2).
inline int64_t SpatialDim(const DatasetHeader& header) {
  return header.spatial_dim == 0 ? 2 : header.spatial_dim;
}

// Upload chunks as views of the received arrays (row-major).
struct CloudChunkView {
  absl::Span<const int64_t> sizes;       // points of each cloud
  absl::Span<const float> points;        // [sum(sizes), dim]
  std::vector<std::string> labels;       // discrete: one per cloud
  absl::Span<const float> conditions;    // continuous: [clouds, condition_dim]
};
struct GaussianChunkView {
  absl::Span<const double> means;        // [n, dim]
  absl::Span<const double> covs;         // [n, dim, dim]
  std::vector<std::string> labels;       // discrete: one per Gaussian
  absl::Span<const float> conditions;    // continuous: [n, condition_dim]
};
struct CellChunkView {
  absl::Span<const float> features;      // [n, dim]
  absl::Span<const float> coords;        // [n, 2]
  std::vector<std::string> sample_ids;   // one per cell, or empty (one sample)
  std::vector<std::string> labels;       // discrete: one per cell
  absl::Span<const float> conditions;    // continuous: [n, condition_dim]
};

// INVALID_ARGUMENT naming the header field: the name rule, dim in [1,
// 100000] ([1, 512] for Gaussians), continuous labels with condition_dim in
// [1, 4096] (0 otherwise) and
// condition_columns that follow repository::CheckConditionColumns (none
// without continuous labels), description at most 4096 bytes, feature_names
// none or dim of them, unique, each 1 to 256 bytes.
absl::Status ValidateDatasetHeader(const DatasetHeader& header);

// A chunk of `kind` (its payload) is the kind the header announced; `index`
// counts the upload's chunks from 0.
absl::Status CheckChunkKind(const DatasetHeader& header, int64_t index, DatasetKind kind);

// The payload bytes of a chunk, counted against the upload limit.
int64_t ChunkBytes(const CloudChunkView& chunk);
int64_t ChunkBytes(const GaussianChunkView& chunk);
int64_t ChunkBytes(const CellChunkView& chunk);

// The content of chunk `index` of an upload of `header`'s kind, whose first
// item is item `first` of the data set: shapes, finite values, labels that
// match the header's label type; Gaussians symmetric positive definite;
// cells with sample ids in every chunk or in none (`had_sample_ids`: the
// earlier chunks gave them; read when first > 0).
absl::Status ValidateCloudChunk(const DatasetHeader& header, int64_t index, int64_t first,
                                const CloudChunkView& chunk);
absl::Status ValidateGaussianChunk(const DatasetHeader& header, int64_t index, int64_t first,
                                   const GaussianChunkView& chunk);
absl::Status ValidateCellChunk(const DatasetHeader& header, int64_t index, int64_t first,
                               bool had_sample_ids, const CellChunkView& chunk);

}  // namespace wfm::server

#endif  // WFM_SERVER_DATASET_VALIDATION_H_
