// Pictures of generated samples as SVG (DESIGN.md, "Files users bring and
// get"): a grid with one panel per point cloud, or one panel of Gaussian
// ellipses, coloured by label.
//
// Points of dimension d are drawn through a linear map to the plane,
// y = A (x - center) with A [2, d] orthonormal rows:
//  * d = 1: (x, 0); d = 2: the coordinates themselves;
//  * d = 3: a fixed oblique view (FixedView3D: azimuth 35°, elevation 25°),
//    the same for every file, so pictures of 3D shapes are comparable;
//  * d > 3: the first two principal components, by default of the drawn
//    points themselves (the server has no RPC that returns its training
//    data), or of any other point set the caller chooses (the command-line
//    tool's `sample --pca-from FILE` uses a data set file, e.g. the one the
//    model was trained on, so samples of several runs share one view).
// All panels share one scale and one centre, so sizes compare across panels.
#ifndef WFM_CLIENT_SVG_H_
#define WFM_CLIENT_SVG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/io/point_sets.h"

namespace wfm::client {

struct Projection {
  enum class Kind { kIdentity, kFixed3D, kPca };
  Kind kind = Kind::kIdentity;
  int64_t dim = 2;
  std::vector<double> center;     // [dim]
  std::vector<double> axes;       // [2, dim] row-major, orthonormal rows
  std::vector<double> variances;  // kPca: variance along each axis [2]
  double total_variance = 0;      // kPca: trace of the covariance

  // "identity", "fixed 3D view", "PCA (PC1 62.0%, PC2 21.3% of variance)".
  std::string Describe() const;
  // [P, dim] points -> [P, 2] plane coordinates.
  std::vector<double> Apply(absl::Span<const float> points) const;
};

// d = 1 or 2: the identity (centre 0).
Projection IdentityProjection(int64_t dim);
// d = 3: rows r = (-sin a, cos a, 0), u = (-sin e cos a, -sin e sin a, cos e)
// with a = 35°, e = 25° (screen right and up for a camera at azimuth a,
// elevation e), centre 0.
Projection FixedView3D();
// The top two principal axes of `points` [P, dim] (P >= 1): centre = the
// mean, rows = unit eigenvectors of the covariance for its two largest
// eigenvalues, each signed so its largest-magnitude entry is positive. At
// most 20000 points are used (an even stride through the set); block
// subspace iteration with oversampling, so dimensions in the thousands stay
// fast. InvalidArgument for non-finite points or dim < 1.
absl::StatusOr<Projection> PcaProjection(absl::Span<const float> points, int64_t dim);
// The default view for `dim`: identity, fixed 3D view, or PCA of `points`.
absl::StatusOr<Projection> DefaultProjection(absl::Span<const float> points, int64_t dim);

// Distinct label texts in drawing order (sorted; numbers numerically) and
// their colours: a 10-colour qualitative palette, repeated when there are
// more labels. Unlabelled items use kUnlabelledColor.
inline constexpr char kUnlabelledColor[] = "#1f77b4";
absl::Span<const char* const> Palette();

struct SvgOptions {
  int64_t columns = 0;       // panels per row; 0 = ceil(sqrt(C))
  double cell_size = 150;    // panel width and height, px
  double point_radius = 0;   // px; 0 = from the panel size and the cloud sizes
  std::string title;         // drawn on top; empty = none
  // The view; unset = DefaultProjection of the drawn points (for Gaussians,
  // of the means).
  std::optional<Projection> projection;
};

// One <g class="sample" id="sample-I" data-label="L" fill="COLOUR"> per
// cloud, holding a <title>, the panel frame and one <circle> per point; a
// <g class="legend"> with one entry per label. InvalidArgument when the set
// is invalid or the projection's dimension does not match.
absl::StatusOr<std::string> RenderCloudsSvg(const model::io::PointCloudSet& clouds,
                                            const SvgOptions& options);
// One panel; one <g class="gaussian" id="gaussian-I" data-label="L"> per
// Gaussian holding the projected 2σ ellipse (A S Aᵀ) and its mean.
absl::StatusOr<std::string> RenderGaussiansSvg(const model::io::GaussianSet& gaussians,
                                               const SvgOptions& options);

// Writes `svg` atomically (temporary file, fsync, rename).
absl::Status WriteSvgFile(const std::string& path, const std::string& svg);

// Text escaped for XML attributes and content (& < > " ').
std::string XmlEscape(absl::string_view text);

}  // namespace wfm::client

#endif  // WFM_CLIENT_SVG_H_
