// AnnData .h5ad files (HDF5) through the HDF5 C library: reading the parts
// the spatial-niche workflow needs, and writing generated niches back.
//
// Layouts read (as the anndata library writes them):
//  * X: a dense 2-D dataset (float32, float64 or integer), or a sparse
//    group with `data`, `indices`, `indptr` and either the attributes
//    encoding-type = csr_matrix | csc_matrix and `shape` (anndata >= 0.7.x)
//    or h5sparse_format = csr | csc and h5sparse_shape (older files).
//  * obsm/<key>: dense [n_obs, k] datasets, or sparse groups as above.
//  * obs columns:
//      - categorical, anndata >= 0.8: a group (encoding-type categorical)
//        with `codes` (signed integers, -1 = missing) and `categories`
//        (strings or numbers) and the bool attribute `ordered`;
//      - categorical, anndata 0.7: an integer codes dataset whose attribute
//        `categories` is an HDF5 object reference to `obs/__categories/<col>`
//        (a `__categories/<col>` dataset without the attribute is accepted);
//      - categorical, anndata < 0.7: an HDF5 enum dataset;
//      - numeric: integer, float, and bool (h5py's FALSE/TRUE int8 enum);
//      - strings: variable- or fixed-length;
//      - nullable-integer / nullable-boolean groups (`values`, `mask`) of
//        anndata >= 0.10 (masked entries become NaN floats);
//      - the index named by the `_index` attribute (default `_index`, then
//        `index`) holds the obs names; var names likewise.
//
// Layout written (anndata >= 0.8, encoding-type/encoding-version on every
// element, as anndata 0.8–0.10 write): X float32 [n_obs, n_vars] (array
// 0.2.0); obs and var dataframes (0.2.0) with `_index` string arrays;
// integer, float, bool, string and categorical obs columns; obsm float32
// arrays; empty layers, obsp, varm, varp and uns dicts.
//
// Errors: NotFound for a missing file; InvalidArgument naming the element
// and the rule for everything else ("obsm/spatial: not found; available:
// X_pca, X_umap", "X[3, 1] = nan: values must be finite", a truncated or
// non-HDF5 file).
#ifndef WFM_MODEL_IO_H5AD_H_
#define WFM_MODEL_IO_H5AD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/io/point_sets.h"

namespace wfm::model::io {

// A dense float32 matrix.
struct DenseMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;  // [rows, cols] row-major
};

// A dense float64 array of any rank.
struct DenseArray {
  std::vector<int64_t> shape;
  std::vector<double> values;  // row-major
};

// One obs column, [n_obs] values of one kind.
struct ObsColumn {
  enum class Kind { kCategorical, kInteger, kFloat, kBool, kString };
  Kind kind = Kind::kString;
  // kCategorical: the category texts (numeric categories formatted as
  // Python prints them: "3", "2.5") and per-cell codes into them (-1 =
  // missing); `ordered` as stored.
  std::vector<std::string> categories;
  std::vector<int64_t> codes;
  bool ordered = false;
  std::vector<int64_t> integers;     // kInteger; kBool as 0/1
  std::vector<double> floats;        // kFloat (NaN = missing)
  std::vector<std::string> strings;  // kString

  int64_t size() const;
  // One text per cell: category texts ("" for a missing code), numbers as
  // Python prints them, bools as True/False, strings as they are.
  std::vector<std::string> ToStrings() const;
};

// Per-cell labels from an obs column: categorical and string columns give
// string labels, integer and bool columns integer labels, float columns
// continuous labels of width 1. InvalidArgument (naming `name` and the
// cell) for a missing category or a NaN.
absl::StatusOr<Labels> ObsColumnToLabels(const ObsColumn& column, absl::string_view name);

// A read-only .h5ad file. Movable; not copyable. Methods may be called from
// several threads (Debian's HDF5 is built thread-safe and serialises calls).
class H5adFile {
 public:
  static absl::StatusOr<H5adFile> Open(const std::string& path);

  H5adFile(H5adFile&&) noexcept;
  H5adFile& operator=(H5adFile&&) noexcept;
  ~H5adFile();

  const std::string& path() const;
  int64_t n_obs() const;
  int64_t n_vars() const;

  // X densified: [n_obs, n_vars] float32 (converted from any numeric type).
  absl::StatusOr<DenseMatrix> ReadX() const;
  // Keys of obsm, sorted.
  absl::StatusOr<std::vector<std::string>> ObsmKeys() const;
  // obsm/<key> as [n_obs, k] float32 (sparse entries densified).
  absl::StatusOr<DenseMatrix> ReadObsm(absl::string_view key) const;
  // obsm/<key>, a dense dataset of any rank >= 1 whose first dimension is
  // n_obs (e.g. covariances [n_obs, d, d]), as float64 with its shape;
  // every value finite.
  absl::StatusOr<DenseArray> ReadObsmArray(absl::string_view key) const;
  // "X" or "obsm:KEY" (the command-line tool's --features).
  absl::StatusOr<DenseMatrix> ReadFeatures(absl::string_view spec) const;
  // obs column names: the stored column order, then any other members.
  absl::StatusOr<std::vector<std::string>> ObsColumns() const;
  absl::StatusOr<ObsColumn> ReadObsColumn(absl::string_view name) const;
  // [n_obs] and [n_vars] names (numbers formatted as text).
  absl::StatusOr<std::vector<std::string>> ObsNames() const;
  absl::StatusOr<std::vector<std::string>> VarNames() const;

 private:
  struct Impl;
  explicit H5adFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Number of HDF5 objects (files, groups, datasets, attributes, types) open
// in this process; 0 once every H5adFile is destroyed and no read or write
// is running. For tests and diagnostics.
int64_t OpenHdf5ObjectCount();

// --- writing -----------------------------------------------------------------

// One obs column to write, [n_obs] values of one kind.
struct H5adColumn {
  std::string name;
  ObsColumn::Kind kind = ObsColumn::Kind::kInteger;
  std::vector<int64_t> integers;        // kInteger; kBool (0/1)
  std::vector<double> floats;           // kFloat
  std::vector<std::string> strings;     // kString
  std::vector<std::string> categories;  // kCategorical: distinct texts
  std::vector<int64_t> codes;           // kCategorical: [n_obs], -1 = missing
};

// A named [n_obs, cols] float32 matrix for obsm; the viewed values must
// outlive the write.
struct H5adMatrix {
  std::string name;
  int64_t cols = 0;
  absl::Span<const float> values;  // [n_obs, cols] row-major
};

struct H5adContent {
  int64_t n_obs = 0;
  int64_t n_vars = 0;
  absl::Span<const float> x;           // [n_obs, n_vars] row-major
  std::vector<std::string> obs_names;  // [n_obs]; empty: "0", "1", ...
  std::vector<std::string> var_names;  // [n_vars]; empty: "f0", "f1", ...
  std::vector<H5adColumn> obs;
  std::vector<H5adMatrix> obsm;
};

// Validates (sizes, unique names, codes in range, UTF-8 text) and writes
// atomically (temporary file in the same folder, fsync, rename).
absl::Status WriteH5ad(const std::string& path, const H5adContent& content);

struct NichesH5adOptions {
  std::vector<std::string> var_names;  // [d]; empty: "f0".."f{d-1}"
  // Extra obsm entries, [P, cols] each (one row per generated point).
  std::vector<H5adMatrix> obsm;
};

// Writes generated niches: one cell per generated point. X = clouds.points
// [P, d] float32; obs columns `sample` (int64: the index of the point's
// cloud) and, with discrete labels, `condition` (categorical: the cloud's
// label text; categories sorted, integers numerically); continuous labels
// go to obsm["condition"] [P, k] instead. Obs names "0".."P-1".
absl::Status WriteNichesH5ad(const std::string& path, const PointCloudSet& clouds,
                             const NichesH5adOptions& options = {});

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_H5AD_H_
