#include "model/io/point_sets.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"
#include "model/gaussian/spd_check.h"
#include "model/io/check.h"

namespace wfm::model::io {
namespace {

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

std::string ArrayNames(const NpzArrays& arrays) {
  std::vector<std::string> names;
  for (const auto& entry : arrays) names.push_back(entry.first);
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// "[3, 1]" index text for messages.
std::string Index(std::initializer_list<int64_t> index) {
  return absl::StrCat("[", absl::StrJoin(index, ", "), "]");
}

// `item` is the singular noun of what is labelled ("cloud").
absl::Status CheckLabelCount(const Labels& labels, int64_t count, absl::string_view item,
                             absl::string_view source) {
  if (labels.empty()) return absl::OkStatus();
  if (labels.count() != count) {
    return Invalid(source, absl::StrCat("labels: ", labels.count(), " labels for ", count, " ",
                                        item, "s; there must be one label per ", item));
  }
  if (labels.kind == Labels::Kind::kContinuous) {
    if (labels.width < 1 || static_cast<int64_t>(labels.values.size()) != count * labels.width) {
      return Invalid(source, "labels: continuous labels need count * width values");
    }
    for (size_t i = 0; i < labels.values.size(); ++i) {
      if (!std::isfinite(labels.values[i])) {
        return Invalid(
            source, absl::StrCat("labels",
                                 Index({static_cast<int64_t>(i) / labels.width,
                                        static_cast<int64_t>(i) % labels.width}),
                                 " = ", FormatDouble(labels.values[i]), ": labels must be finite"));
      }
    }
  }
  return absl::OkStatus();
}

const Array* Find(const NpzArrays& arrays, absl::string_view name) {
  const auto it = arrays.find(std::string(name));
  return it == arrays.end() ? nullptr : &it->second;
}

Array* FindMutable(NpzArrays& arrays, absl::string_view name) {
  const auto it = arrays.find(std::string(name));
  return it == arrays.end() ? nullptr : &it->second;
}

// Appends the labels array (when present) to `out`.
void AddLabels(const Labels& labels, std::vector<std::pair<std::string, ArrayView>>* out) {
  const int64_t c = labels.count();
  switch (labels.kind) {
    case Labels::Kind::kNone:
      return;
    case Labels::Kind::kInteger:
      out->emplace_back("labels", ArrayView::Of({c}, labels.integers));
      return;
    case Labels::Kind::kString:
      out->emplace_back("labels", ArrayView::Of({c}, labels.strings));
      return;
    case Labels::Kind::kContinuous: {
      std::vector<int64_t> shape = {c, labels.width};
      if (!labels.rank2 && labels.width == 1) shape = {c};
      out->emplace_back("labels", ArrayView::Of(std::move(shape), labels.values));
      return;
    }
  }
}

}  // namespace

int64_t Labels::count() const {
  switch (kind) {
    case Kind::kNone:
      return 0;
    case Kind::kInteger:
      return static_cast<int64_t>(integers.size());
    case Kind::kString:
      return static_cast<int64_t>(strings.size());
    case Kind::kContinuous:
      return width > 0 ? static_cast<int64_t>(values.size()) / width : 0;
  }
  return 0;
}

Labels Labels::Take(const std::vector<int64_t>& indices) const {
  Labels out;
  out.kind = kind;
  out.width = width;
  out.rank2 = rank2;
  const int64_t c = count();
  for (int64_t i : indices) {
    WFM_IO_CHECK(i >= 0 && i < c, "Labels::Take: index out of range");
    switch (kind) {
      case Kind::kNone:
        break;
      case Kind::kInteger:
        out.integers.push_back(integers[i]);
        break;
      case Kind::kString:
        out.strings.push_back(strings[i]);
        break;
      case Kind::kContinuous:
        out.values.insert(out.values.end(), values.begin() + i * width,
                          values.begin() + (i + 1) * width);
        break;
    }
  }
  return out;
}

std::string Labels::Text(int64_t i) const {
  switch (kind) {
    case Kind::kNone:
      return "";
    case Kind::kInteger:
      return absl::StrCat(integers[i]);
    case Kind::kString:
      return strings[i];
    case Kind::kContinuous: {
      std::vector<std::string> parts;
      for (int64_t j = 0; j < width; ++j) parts.push_back(FormatDouble(values[i * width + j]));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
  }
  return "";
}

Labels Labels::FromIntegers(std::vector<int64_t> values) {
  Labels labels;
  labels.kind = Kind::kInteger;
  labels.integers = std::move(values);
  return labels;
}

Labels Labels::FromStrings(std::vector<std::string> values) {
  Labels labels;
  labels.kind = Kind::kString;
  labels.strings = std::move(values);
  return labels;
}

Labels Labels::FromContinuous(std::vector<float> values, int64_t width, bool rank2) {
  WFM_IO_CHECK(width >= 1, "Labels::FromContinuous: width must be >= 1");
  Labels labels;
  labels.kind = Kind::kContinuous;
  labels.values = std::move(values);
  labels.width = width;
  labels.rank2 = rank2 || width != 1;
  return labels;
}

absl::Status ValidatePointCloudSet(const PointCloudSet& set, absl::string_view source) {
  if (set.dim < 1) {
    return Invalid(source, absl::StrCat("points: dimension ", set.dim, "; must be >= 1"));
  }
  if (set.points.size() % set.dim != 0) {
    return Invalid(source,
                   absl::StrCat("points: ", set.points.size(), " values are not a whole number of ",
                                set.dim, "-dimensional points"));
  }
  const int64_t p = set.num_points();
  if (set.offsets.size() < 2) {
    return Invalid(source, absl::StrCat("offsets: ", set.offsets.size(),
                                        " entries; needs C+1 >= 2 (at least one cloud)"));
  }
  if (set.offsets.front() != 0) {
    return Invalid(source,
                   absl::StrCat("offsets[0] = ", set.offsets.front(), ": offsets must start at 0"));
  }
  const int64_t c = set.num_clouds();
  for (int64_t i = 1; i <= c; ++i) {
    const int64_t lo = set.offsets[i - 1], hi = set.offsets[i];
    if (hi < lo) {
      return Invalid(source, absl::StrCat("offsets[", i, "] = ", hi, " < offsets[", i - 1,
                                          "] = ", lo, ": offsets must be non-decreasing"));
    }
    if (hi == lo) {
      return Invalid(
          source, absl::StrCat("offsets[", i - 1, "] = offsets[", i, "] = ", lo, ": cloud ", i - 1,
                               " is empty; every cloud needs a point"));
    }
  }
  if (set.offsets.back() != p) {
    return Invalid(source, absl::StrCat("offsets[", c, "] = ", set.offsets.back(),
                                        ": offsets must end at the number of points P = ", p));
  }
  for (size_t i = 0; i < set.points.size(); ++i) {
    if (!std::isfinite(set.points[i])) {
      return Invalid(
          source, absl::StrCat(
                      "points",
                      Index({static_cast<int64_t>(i) / set.dim, static_cast<int64_t>(i) % set.dim}),
                      " = ", FormatDouble(set.points[i]), ": points must be finite"));
    }
  }
  return CheckLabelCount(set.labels, c, "cloud", source);
}

absl::Status ValidateGaussianSet(const GaussianSet& set, absl::string_view source) {
  const int64_t d = set.dim;
  if (d < 1) {
    return Invalid(source, absl::StrCat("means: dimension ", d, "; must be >= 1"));
  }
  if (set.means.empty() || set.means.size() % d != 0) {
    return Invalid(source, absl::StrCat("means: ", set.means.size(),
                                        " values; needs C*d with C >= 1 and d = ", d));
  }
  const int64_t c = set.num_gaussians();
  if (static_cast<int64_t>(set.covs.size()) != c * d * d) {
    return Invalid(source, absl::StrCat("covs: ", set.covs.size(), " values; needs C*d*d = ",
                                        c * d * d, " for C = ", c, ", d = ", d));
  }
  for (size_t i = 0; i < set.means.size(); ++i) {
    if (!std::isfinite(set.means[i])) {
      return Invalid(
          source,
          absl::StrCat("means", Index({static_cast<int64_t>(i) / d, static_cast<int64_t>(i) % d}),
                       " = ", FormatDouble(set.means[i]), ": means must be finite"));
    }
  }
  using Verdict = model::gaussian::SpdVerdict::Kind;
  for (int64_t g = 0; g < c; ++g) {
    const double* s = set.covs.data() + g * d * d;
    const model::gaussian::SpdVerdict v = model::gaussian::CheckSpd(s, d);
    const int64_t i = v.row, j = v.col;
    switch (v.kind) {
      case Verdict::kSpd: break;
      case Verdict::kNotFinite:
        return Invalid(source, absl::StrCat("covs", Index({g, i, j}), " = ",
                                            FormatDouble(s[i * d + j]),
                                            ": covariances must be finite"));
      case Verdict::kNotSymmetric:
        return Invalid(source,
                       absl::StrCat("covs[", g, "]: not symmetric (covs", Index({g, i, j}), " = ",
                                    FormatDouble(s[i * d + j]), ", covs", Index({g, j, i}), " = ",
                                    FormatDouble(s[j * d + i]), ")"));
      case Verdict::kNotPositiveDefinite:
        return Invalid(source, absl::StrCat("covs[", g, "]: not positive definite"));
    }
  }
  return CheckLabelCount(set.labels, c, "Gaussian", source);
}

absl::StatusOr<NpzKind> DetectNpzKind(const NpzArrays& arrays, absl::string_view source) {
  const bool clouds = Find(arrays, "points") != nullptr || Find(arrays, "offsets") != nullptr;
  const bool gaussians = Find(arrays, "means") != nullptr || Find(arrays, "covs") != nullptr;
  if (clouds && gaussians) {
    return Invalid(source,
                   "holds both point-cloud arrays (points, offsets) and Gaussian "
                   "arrays (means, covs); a file holds one data set");
  }
  if (clouds) return NpzKind::kPointClouds;
  if (gaussians) return NpzKind::kGaussians;
  return Invalid(source,
                 absl::StrCat("neither point clouds (arrays 'points' [P,d], 'offsets' [C+1]) "
                              "nor Gaussians (arrays 'means' [C,d], 'covs' [C,d,d]); arrays "
                              "found: ",
                              ArrayNames(arrays)));
}

absl::StatusOr<Labels> LabelsFromArray(const Array& array, absl::string_view source) {
  const std::string where = absl::StrCat(source, ": labels");
  if (array.ndim() == 1 && (IsInteger(array.dtype()) || array.dtype() == DType::kBool)) {
    absl::StatusOr<std::vector<int64_t>> values = array.ToInt64();
    if (!values.ok()) return Invalid(where, values.status().message());
    return Labels::FromIntegers(*std::move(values));
  }
  if (array.ndim() == 1 && array.dtype() == DType::kString) {
    return Labels::FromStrings(array.values<std::string>());
  }
  if (IsFloat(array.dtype()) && (array.ndim() == 1 || array.ndim() == 2)) {
    if (array.ndim() == 2 && array.shape()[1] < 1) {
      return Invalid(where, absl::StrCat("shape ", ShapeString(array.shape()),
                                         ": continuous labels need k >= 1 values each"));
    }
    absl::StatusOr<std::vector<float>> values = array.ToFloat32();
    if (!values.ok()) return Invalid(where, values.status().message());
    const int64_t width = array.ndim() == 2 ? array.shape()[1] : 1;
    return Labels::FromContinuous(*std::move(values), width, array.ndim() == 2);
  }
  return Invalid(where, absl::StrCat("dtype ", DTypeName(array.dtype()), ", shape ",
                                     ShapeString(array.shape()),
                                     "; labels must be int or string [C] (discrete) or "
                                     "float [C] / [C, k] (continuous)"));
}

absl::StatusOr<PointCloudSet> PointCloudsFromArrays(NpzArrays arrays, absl::string_view source) {
  Array* points = FindMutable(arrays, "points");
  const Array* offsets = Find(arrays, "offsets");
  const char* kLayout = ": point clouds need 'points' float32 [P, d] and 'offsets' int64 [C+1]";
  if (points == nullptr) {
    return Invalid(source, absl::StrCat("array 'points' is missing", kLayout));
  }
  if (offsets == nullptr) {
    return Invalid(source, absl::StrCat("array 'offsets' is missing", kLayout));
  }
  if (!IsFloat(points->dtype()) || points->ndim() != 2) {
    return Invalid(source, absl::StrCat("points: dtype ", DTypeName(points->dtype()), ", shape ",
                                        ShapeString(points->shape()),
                                        "; must be float32 (or float64) [P, d]"));
  }
  if (!IsInteger(offsets->dtype()) || offsets->ndim() != 1) {
    return Invalid(source, absl::StrCat("offsets: dtype ", DTypeName(offsets->dtype()), ", shape ",
                                        ShapeString(offsets->shape()), "; must be int64 [C+1]"));
  }
  PointCloudSet set;
  set.dim = points->shape()[1];
  if (points->dtype() == DType::kFloat32) {
    set.points = std::move(points->mutable_values<float>());
  } else {
    WFM_ASSIGN_OR_RETURN(set.points, points->ToFloat32());
  }
  absl::StatusOr<std::vector<int64_t>> offset_values = offsets->ToInt64();
  if (!offset_values.ok()) {
    return Invalid(absl::StrCat(source, ": offsets"), offset_values.status().message());
  }
  set.offsets = *std::move(offset_values);
  if (const Array* labels = Find(arrays, "labels")) {
    WFM_ASSIGN_OR_RETURN(set.labels, LabelsFromArray(*labels, source));
  }
  WFM_RETURN_IF_ERROR(ValidatePointCloudSet(set, source));
  return set;
}

absl::StatusOr<GaussianSet> GaussiansFromArrays(NpzArrays arrays, absl::string_view source) {
  Array* means = FindMutable(arrays, "means");
  Array* covs = FindMutable(arrays, "covs");
  const char* kLayout = ": Gaussians need 'means' [C, d] and 'covs' [C, d, d]";
  if (means == nullptr) return Invalid(source, absl::StrCat("array 'means' is missing", kLayout));
  if (covs == nullptr) return Invalid(source, absl::StrCat("array 'covs' is missing", kLayout));
  if (!IsFloat(means->dtype()) || means->ndim() != 2) {
    return Invalid(
        source, absl::StrCat("means: dtype ", DTypeName(means->dtype()), ", shape ",
                             ShapeString(means->shape()), "; must be float64 (or float32) [C, d]"));
  }
  const int64_t c = means->shape()[0], d = means->shape()[1];
  if (!IsFloat(covs->dtype()) || covs->ndim() != 3 || covs->shape()[0] != c ||
      covs->shape()[1] != d || covs->shape()[2] != d) {
    return Invalid(source, absl::StrCat("covs: dtype ", DTypeName(covs->dtype()), ", shape ",
                                        ShapeString(covs->shape()), "; must be float [C, d, d] = ",
                                        ShapeString({c, d, d}), " to match means"));
  }
  GaussianSet set;
  set.dim = d;
  for (auto [array, out] : {std::make_pair(means, &set.means), std::make_pair(covs, &set.covs)}) {
    if (array->dtype() == DType::kFloat64) {
      *out = std::move(array->mutable_values<double>());
    } else {
      WFM_ASSIGN_OR_RETURN(*out, array->ToFloat64());
    }
  }
  if (const Array* labels = Find(arrays, "labels")) {
    WFM_ASSIGN_OR_RETURN(set.labels, LabelsFromArray(*labels, source));
  }
  WFM_RETURN_IF_ERROR(ValidateGaussianSet(set, source));
  return set;
}

namespace {

// The arrays of the .npz file `path`, which must hold a set of `kind`
// (`other` names what it holds otherwise).
absl::StatusOr<NpzArrays> ReadNpzOfKind(const std::string& path, NpzKind kind,
                                        absl::string_view other) {
  WFM_ASSIGN_OR_RETURN(NpzArrays arrays, ReadNpz(path));
  WFM_ASSIGN_OR_RETURN(const NpzKind found, DetectNpzKind(arrays, path));
  if (found != kind) return Invalid(path, other);
  return arrays;
}

}  // namespace

absl::StatusOr<PointCloudSet> ReadPointCloudsNpz(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(NpzArrays arrays,
                       ReadNpzOfKind(path, NpzKind::kPointClouds,
                                     "holds Gaussians (means, covs), not point clouds"));
  return PointCloudsFromArrays(std::move(arrays), path);
}

absl::StatusOr<GaussianSet> ReadGaussiansNpz(const std::string& path) {
  WFM_ASSIGN_OR_RETURN(NpzArrays arrays,
                       ReadNpzOfKind(path, NpzKind::kGaussians,
                                     "holds point clouds (points, offsets), not Gaussians"));
  return GaussiansFromArrays(std::move(arrays), path);
}

absl::Status WritePointCloudsNpz(const std::string& path, const PointCloudSet& set,
                                 const NpzWriteOptions& options) {
  WFM_RETURN_IF_ERROR(ValidatePointCloudSet(set, path));
  std::vector<std::pair<std::string, ArrayView>> arrays;
  arrays.emplace_back("points", ArrayView::Of({set.num_points(), set.dim}, set.points));
  arrays.emplace_back("offsets", ArrayView::Of({set.num_clouds() + 1}, set.offsets));
  AddLabels(set.labels, &arrays);
  return WriteNpz(path, arrays, options);
}

absl::Status WriteGaussiansNpz(const std::string& path, const GaussianSet& set,
                               const NpzWriteOptions& options) {
  WFM_RETURN_IF_ERROR(ValidateGaussianSet(set, path));
  const int64_t c = set.num_gaussians(), d = set.dim;
  std::vector<std::pair<std::string, ArrayView>> arrays;
  arrays.emplace_back("means", ArrayView::Of({c, d}, set.means));
  arrays.emplace_back("covs", ArrayView::Of({c, d, d}, set.covs));
  AddLabels(set.labels, &arrays);
  return WriteNpz(path, arrays, options);
}

}  // namespace wfm::model::io
