#include "server/dataset_validation.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/gaussian/spd_check.h"
#include "repository/names.h"

namespace wfm::server {
namespace {

constexpr int64_t kMaxDim = 100000;
constexpr int64_t kMaxConditionDim = 4096;
constexpr size_t kMaxDescription = 4096;
constexpr size_t kMaxLabelBytes = 256;

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
    return absl::InvalidArgumentError(
        absl::StrCat(item, ".label: ", label.size(), " bytes, the limit is ", kMaxLabelBytes));
  }
  return absl::OkStatus();
}

// Checks the labels of `n` items of a chunk against the header's label type.
absl::Status CheckChunkLabels(const DatasetHeader& h, int64_t chunk, absl::string_view items,
                              int64_t first, int64_t n, const std::vector<std::string>& labels) {
  if (h.label_type != LabelType::kDiscrete) {
    if (!labels.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk ", chunk, ": labels given but the header's label_type is ",
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

// Checks the condition vectors of `n` items of a chunk against the header's
// label type: [n, condition_dim] finite values with continuous labels, none
// otherwise.
absl::Status CheckChunkConditions(const DatasetHeader& h, int64_t chunk, absl::string_view items,
                                  int64_t first, int64_t n, absl::Span<const float> conditions) {
  if (h.label_type != LabelType::kContinuous) {
    if (!conditions.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk ", chunk, ": conditions given but the header's label_type is ",
                       LabelTypeName(h.label_type)));
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(conditions.size()) != n * h.condition_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", chunk, ": conditions holds ", conditions.size(), " values for ", n, " ", items,
        " of condition_dim ", h.condition_dim, " (need ", items, " x condition_dim)"));
  }
  const int64_t nf = FirstNonFinite(conditions);
  if (nf >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(items, "[", first + nf / h.condition_dim, "].condition: ",
                     NonFiniteName(conditions[nf]), " at index ", nf % h.condition_dim));
  }
  return absl::OkStatus();
}

const char* ChunkName(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kPointClouds: return "clouds";
    case DatasetKind::kGaussians: return "gaussians";
    case DatasetKind::kSpatialCells: return "cells";
  }
  return "?";
}

int64_t TextBytes(const std::vector<std::string>& texts) {
  int64_t bytes = 0;
  for (const std::string& t : texts) bytes += static_cast<int64_t>(t.size());
  return bytes;
}

// The header's feature names: none, or one per dimension, unique, each
// 1 to kMaxLabelBytes bytes.
absl::Status CheckFeatureNames(const DatasetHeader& header) {
  const std::vector<std::string>& names = header.feature_names;
  if (names.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(names.size()) != header.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.feature_names: ", names.size(), " names for dim ", header.dim,
                     "; give one per dimension or none"));
  }
  std::map<absl::string_view, size_t> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string field = absl::StrCat("header.feature_names[", i, "]");
    if (names[i].empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty"));
    if (names[i].size() > kMaxLabelBytes) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", names[i].size(),
                                                     " bytes, the limit is ", kMaxLabelBytes));
    }
    const auto [it, inserted] = seen.emplace(names[i], i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", names[i],
                                                     "' repeats header.feature_names[", it->second,
                                                     "]; names must be unique"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateDatasetHeader(const DatasetHeader& header) {
  WFM_RETURN_IF_ERROR(repository::ValidateName("header.name", header.name));
  const bool cells = header.kind == DatasetKind::kSpatialCells;
  const int64_t max_dim = header.kind == DatasetKind::kGaussians ? kMaxGaussianDim : kMaxDim;
  if (header.dim < 1 || header.dim > max_dim) {
    return absl::InvalidArgumentError(absl::StrCat("header.dim: must be in [1, ", max_dim, "] for ",
                                                   DatasetKindName(header.kind), ", got ",
                                                   header.dim));
  }
  if (header.label_type == LabelType::kContinuous) {
    if (header.condition_dim < 1 || header.condition_dim > kMaxConditionDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("header.condition_dim: must be in [1, ", kMaxConditionDim,
                       "] for continuous labels, got ", header.condition_dim));
    }
    WFM_RETURN_IF_ERROR(repository::CheckConditionColumns(
        header.condition_columns, header.condition_dim, "header.condition_columns"));
  } else if (header.condition_dim != 0) {
    return absl::InvalidArgumentError(
        "header.condition_dim: only meaningful with label_type continuous; leave it 0");
  } else if (!header.condition_columns.empty()) {
    return absl::InvalidArgumentError(
        "header.condition_columns: only meaningful with label_type continuous; leave it empty");
  }
  if (cells && (SpatialDim(header) < 1 || SpatialDim(header) > kMaxSpatialDim)) {
    return absl::InvalidArgumentError(absl::StrCat("header.spatial_dim: must be in [1, ",
                                                   kMaxSpatialDim, "] for SPATIAL_CELLS (0 = 2), got ",
                                                   header.spatial_dim));
  }
  if (!cells && header.spatial_dim != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header.spatial_dim: only meaningful for SPATIAL_CELLS; leave it 0 for ",
        DatasetKindName(header.kind)));
  }
  if (header.description.size() > kMaxDescription) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.description: ", header.description.size(), " bytes, the limit is ",
                     kMaxDescription));
  }
  return CheckFeatureNames(header);
}

absl::Status CheckChunkKind(const DatasetHeader& header, int64_t index, DatasetKind kind) {
  if (header.kind != kind) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": a ", ChunkName(kind),
                                                   " chunk in a ", DatasetKindName(header.kind),
                                                   " upload"));
  }
  return absl::OkStatus();
}

int64_t ChunkBytes(const CloudChunkView& chunk) {
  return static_cast<int64_t>(chunk.points.size()) * 4 +
         static_cast<int64_t>(chunk.sizes.size()) * 8 +
         static_cast<int64_t>(chunk.conditions.size()) * 4 + TextBytes(chunk.labels);
}

int64_t ChunkBytes(const GaussianChunkView& chunk) {
  return static_cast<int64_t>(chunk.means.size() + chunk.covs.size()) * 8 +
         static_cast<int64_t>(chunk.conditions.size()) * 4 + TextBytes(chunk.labels);
}

int64_t ChunkBytes(const CellChunkView& chunk) {
  return static_cast<int64_t>(chunk.features.size() + chunk.coords.size() +
                              chunk.conditions.size()) * 4 +
         TextBytes(chunk.labels) + TextBytes(chunk.sample_ids);
}

absl::Status ValidateCloudChunk(const DatasetHeader& h, int64_t index, int64_t first,
                                const CloudChunkView& chunk) {
  const int64_t n = static_cast<int64_t>(chunk.sizes.size());
  const int64_t available = static_cast<int64_t>(chunk.points.size()) / h.dim;
  int64_t total = 0;
  for (int64_t c = 0; c < n; ++c) {
    if (chunk.sizes[c] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("clouds[", first + c, "].size: must be >= 1, got ", chunk.sizes[c]));
    }
    // Never overflows: total stays <= available + 1.
    if (chunk.sizes[c] > available - total) {
      total = available + 1;
      break;
    }
    total += chunk.sizes[c];
  }
  if (total > available || total * h.dim != static_cast<int64_t>(chunk.points.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", index, ": points holds ", chunk.points.size(), " values, but the sizes of its ",
        n, " clouds need ", total > available ? "more" : absl::StrCat(total * h.dim),
        " (sum(sizes) x dim ", h.dim, ")"));
  }
  const int64_t bad = FirstNonFinite(chunk.points);
  if (bad >= 0) {
    int64_t point = bad / h.dim, c = 0;
    while (point >= chunk.sizes[c]) point -= chunk.sizes[c++];
    return absl::InvalidArgumentError(absl::StrCat(
        "clouds[", first + c, "].points: ", NonFiniteName(chunk.points[bad]), " at point ", point));
  }
  WFM_RETURN_IF_ERROR(CheckChunkLabels(h, index, "clouds", first, n, chunk.labels));
  return CheckChunkConditions(h, index, "clouds", first, n, chunk.conditions);
}

absl::Status ValidateGaussianChunk(const DatasetHeader& h, int64_t index, int64_t first,
                                   const GaussianChunkView& chunk) {
  const int64_t d = h.dim;
  if (chunk.means.size() % d != 0) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": means holds ",
                                                   chunk.means.size(),
                                                   " values, not a multiple of dim ", d));
  }
  const int64_t n = static_cast<int64_t>(chunk.means.size()) / d;
  if (static_cast<int64_t>(chunk.covs.size()) != n * d * d) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": covs holds ", chunk.covs.size(), " values for ", n,
                     " Gaussians of dim ", d, " (need n x dim x dim = ", n * d * d, ")"));
  }
  for (int64_t g = 0; g < n; ++g) {
    const std::string item = absl::StrCat("gaussians[", first + g, "]");
    const int64_t bm = FirstNonFinite(chunk.means.subspan(g * d, d));
    if (bm >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(item, ".mean: ", NonFiniteName(chunk.means[g * d + bm]), " at index ", bm));
    }
    const double* s = chunk.covs.data() + g * d * d;
    // The acceptance rule every reader of covariances shares (spd_check.h).
    const model::gaussian::SpdVerdict v = model::gaussian::CheckSpd(s, d);
    const int64_t i = v.row, j = v.col;
    switch (v.kind) {
      case model::gaussian::SpdVerdict::Kind::kSpd: break;
      case model::gaussian::SpdVerdict::Kind::kNotFinite:
        return absl::InvalidArgumentError(absl::StrCat(item, ".cov: ", NonFiniteName(s[i * d + j]),
                                                       " at [", i, ", ", j, "]"));
      case model::gaussian::SpdVerdict::Kind::kNotSymmetric:
        return absl::InvalidArgumentError(absl::StrCat(item, ".cov: not symmetric ([", i, ", ", j,
                                                       "] = ", s[i * d + j], ", [", j, ", ", i,
                                                       "] = ", s[j * d + i], ")"));
      case model::gaussian::SpdVerdict::Kind::kNotPositiveDefinite:
        return absl::InvalidArgumentError(absl::StrCat(item, ".cov: not positive definite"));
    }
  }
  WFM_RETURN_IF_ERROR(CheckChunkLabels(h, index, "gaussians", first, n, chunk.labels));
  return CheckChunkConditions(h, index, "gaussians", first, n, chunk.conditions);
}

absl::Status ValidateCellChunk(const DatasetHeader& h, int64_t index, int64_t first,
                               bool had_sample_ids, const CellChunkView& chunk) {
  const int64_t d = h.dim;
  if (chunk.features.size() % d != 0) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": features holds ",
                                                   chunk.features.size(),
                                                   " values, not a multiple of dim ", d));
  }
  const int64_t n = static_cast<int64_t>(chunk.features.size()) / d;
  const int64_t sd = SpatialDim(h);
  if (static_cast<int64_t>(chunk.coords.size()) != sd * n) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": coords holds ", chunk.coords.size(), " values for ", n,
                     " cells; coords must be [cells, ", sd, "] (header.spatial_dim)"));
  }
  const int64_t bf = FirstNonFinite(chunk.features);
  if (bf >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cells[", first + bf / d, "].features: ", NonFiniteName(chunk.features[bf]),
                     " at feature ", bf % d));
  }
  const int64_t bc = FirstNonFinite(chunk.coords);
  if (bc >= 0) {
    return absl::InvalidArgumentError(absl::StrCat("cells[", first + bc / sd,
                                                   "].coords: ", NonFiniteName(chunk.coords[bc]),
                                                   " at index ", bc % sd));
  }
  if (n > 0) {
    const bool has_ids = !chunk.sample_ids.empty();
    if (has_ids && static_cast<int64_t>(chunk.sample_ids.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": ", chunk.sample_ids.size(),
                                                     " sample_ids for ", n,
                                                     " cells (one per cell, or none)"));
    }
    if (first > 0 && has_ids != had_sample_ids) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk ", index, ": sample_ids ", has_ids ? "given" : "missing", " but earlier chunks ",
          had_sample_ids ? "gave them" : "gave none", " (give them in every chunk or in none)"));
    }
    for (int64_t i = 0; has_ids && i < n; ++i) {
      if (chunk.sample_ids[i].size() > kMaxLabelBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cells[", first + i, "].sample_id: longer than ", kMaxLabelBytes, " bytes"));
      }
    }
  } else if (!chunk.sample_ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": sample_ids given for a chunk without cells"));
  }
  WFM_RETURN_IF_ERROR(CheckChunkLabels(h, index, "cells", first, n, chunk.labels));
  return CheckChunkConditions(h, index, "cells", first, n, chunk.conditions);
}

}  // namespace wfm::server
