// The data sets users bring and get as .npz files (DESIGN.md, "Files users
// bring and get"), their validation, and their .npz layouts:
//
//   point clouds: points  float32 [P, d]  all clouds concatenated (float64 is
//                                         accepted on reading)
//                 offsets int64   [C+1]   cloud c = rows offsets[c] ..
//                                         offsets[c+1]-1 (any integer dtype
//                                         is accepted on reading)
//                 labels  optional [C]    int or string: discrete labels
//                                 or [C] / [C, k] float: continuous condition
//                                         vectors
//   Gaussians:    means   float64 [C, d]  (float32 accepted on reading)
//                 covs    float64 [C, d, d] symmetric positive definite
//                 labels  optional, as above
//
// Every error is InvalidArgument with one message naming the file, the array
// and the rule, e.g. "a.npz: offsets[2] = 3 < offsets[1] = 5: offsets must be
// non-decreasing" or "g.npz: covs[7]: not positive definite".
#ifndef WFM_MODEL_IO_POINT_SETS_H_
#define WFM_MODEL_IO_POINT_SETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/array.h"
#include "model/io/npz.h"

namespace wfm::model::io {

// One label per item (cloud, Gaussian or cell), of one kind.
struct Labels {
  enum class Kind {
    kNone,        // no labels
    kInteger,     // discrete labels: integers [C]
    kString,      // discrete labels: UTF-8 strings [C]
    kContinuous,  // condition vectors: float32 [C, width]
  };
  Kind kind = Kind::kNone;
  std::vector<int64_t> integers;     // [C] when kInteger
  std::vector<std::string> strings;  // [C] when kString
  std::vector<float> values;         // [C * width] row-major when kContinuous
  int64_t width = 0;                 // kContinuous: values per item (>= 1)
  // kContinuous: true when the file held a rank-2 [C, width] array, false for
  // a rank-1 [C] array (width 1). Writing restores the same rank.
  bool rank2 = true;

  bool empty() const { return kind == Kind::kNone; }
  // C, the number of labelled items (0 for kNone).
  int64_t count() const;
  // Labels of the items `indices` (each in [0, count())), in that order.
  Labels Take(const std::vector<int64_t>& indices) const;
  // The label of item `i` as text: integers in decimal, strings as they are,
  // continuous vectors as "[0.5, 1.0]". Empty for kNone.
  std::string Text(int64_t i) const;

  static Labels FromIntegers(std::vector<int64_t> values);
  static Labels FromStrings(std::vector<std::string> values);
  // values [count * width], row-major.
  static Labels FromContinuous(std::vector<float> values, int64_t width, bool rank2 = true);
};

// A set of C point clouds in R^dim.
struct PointCloudSet {
  int64_t dim = 0;               // d >= 1
  std::vector<float> points;     // [P, d] row-major, clouds concatenated
  std::vector<int64_t> offsets;  // [C+1]; offsets[0] = 0, offsets[C] = P
  Labels labels;                 // none, or C labels

  int64_t num_clouds() const {
    return offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  }
  int64_t num_points() const { return dim > 0 ? static_cast<int64_t>(points.size()) / dim : 0; }
  // Points of cloud c: offsets[c+1] - offsets[c].
  int64_t cloud_size(int64_t c) const { return offsets[c + 1] - offsets[c]; }
};

// A set of C Gaussians N(mean, cov) in R^dim, in double precision.
struct GaussianSet {
  int64_t dim = 0;            // d >= 1
  std::vector<double> means;  // [C, d] row-major
  std::vector<double> covs;   // [C, d, d] row-major, symmetric positive definite
  Labels labels;              // none, or C labels

  int64_t num_gaussians() const { return dim > 0 ? static_cast<int64_t>(means.size()) / dim : 0; }
};

// Checks the rules: dim >= 1; points.size() = P*d; offsets start at 0, are
// non-decreasing, end at P; no empty cloud; at least one cloud; finite
// points; labels count = C, finite continuous labels. `source` prefixes the
// message (e.g. a file name).
absl::Status ValidatePointCloudSet(const PointCloudSet& set, absl::string_view source);

// Checks: dim >= 1; at least one Gaussian; sizes C*d and C*d*d; finite
// values; each covariance symmetric (|S_ij - S_ji| <= 1e-6 * max|S|) and
// positive definite (a Cholesky factorisation in double precision succeeds
// with positive pivots); labels count = C.
absl::Status ValidateGaussianSet(const GaussianSet& set, absl::string_view source);

// Which data set an .npz holds, from the arrays present.
enum class NpzKind {
  kPointClouds,  // `points` (and `offsets`)
  kGaussians,    // `means` and `covs`
};
// InvalidArgument when the arrays fit neither layout, or both.
absl::StatusOr<NpzKind> DetectNpzKind(const NpzArrays& arrays, absl::string_view source);

// Builds and validates a data set from arrays read from `source`. The
// arrays are taken by value: pass them with std::move to reuse float32
// points (float64 means/covs) without a copy.
absl::StatusOr<PointCloudSet> PointCloudsFromArrays(NpzArrays arrays, absl::string_view source);
absl::StatusOr<GaussianSet> GaussiansFromArrays(NpzArrays arrays, absl::string_view source);
// `labels` [C] or [C, k] (name used in messages).
absl::StatusOr<Labels> LabelsFromArray(const Array& labels, absl::string_view source);

absl::StatusOr<PointCloudSet> ReadPointCloudsNpz(const std::string& path);
absl::StatusOr<GaussianSet> ReadGaussiansNpz(const std::string& path);

// Validate, then write atomically: points float32, offsets int64, means and
// covs float64, labels int64 / unicode strings / float32.
absl::Status WritePointCloudsNpz(const std::string& path, const PointCloudSet& set,
                                 const NpzWriteOptions& options = {});
absl::Status WriteGaussiansNpz(const std::string& path, const GaussianSet& set,
                               const NpzWriteOptions& options = {});

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_POINT_SETS_H_
