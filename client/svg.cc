#include "client/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMaxPcaPoints = 20000;
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string Num(double v) {
  std::string s = absl::StrFormat("%.2f", v);
  // Trim "1.50" -> "1.5", "2.00" -> "2".
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

// Symmetric k x k eigen-decomposition (cyclic Jacobi): eigenvalues in
// `values`, eigenvectors in the columns of `vectors` (row-major k x k).
void JacobiEigen(std::vector<double> a, int k, std::vector<double>* values,
                 std::vector<double>* vectors) {
  std::vector<double>& v = *vectors;
  v.assign(k * k, 0.0);
  for (int i = 0; i < k; ++i) v[i * k + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (int i = 0; i < k; ++i) {
      diag += a[i * k + i] * a[i * k + i];
      for (int j = i + 1; j < k; ++j) off += a[i * k + j] * a[i * k + j];
    }
    if (off <= 1e-30 * std::max(diag, 1e-300)) break;
    for (int p = 0; p < k; ++p) {
      for (int q = p + 1; q < k; ++q) {
        const double apq = a[p * k + q];
        if (std::abs(apq) < 1e-300) continue;
        const double theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int r = 0; r < k; ++r) {  // A <- A J
          const double arp = a[r * k + p], arq = a[r * k + q];
          a[r * k + p] = c * arp - s * arq;
          a[r * k + q] = s * arp + c * arq;
        }
        for (int r = 0; r < k; ++r) {  // A <- J^T A
          const double apr = a[p * k + r], aqr = a[q * k + r];
          a[p * k + r] = c * apr - s * aqr;
          a[q * k + r] = s * apr + c * aqr;
        }
        for (int r = 0; r < k; ++r) {
          const double vrp = v[r * k + p], vrq = v[r * k + q];
          v[r * k + p] = c * vrp - s * vrq;
          v[r * k + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  values->resize(k);
  for (int i = 0; i < k; ++i) (*values)[i] = a[i * k + i];
}

// Deterministic pseudo-random start vectors (SplitMix64).
double StartValue(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) / 9007199254740992.0 - 0.5;
}

// Orthonormalises the k columns of q [d, k] (modified Gram-Schmidt); a
// column that vanishes is replaced by a fresh start vector.
void Orthonormalize(std::vector<double>* q, int64_t d, int k, uint64_t* state) {
  for (int j = 0; j < k; ++j) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      for (int i = 0; i < j; ++i) {
        double dot = 0;
        for (int64_t r = 0; r < d; ++r) dot += (*q)[r * k + i] * (*q)[r * k + j];
        for (int64_t r = 0; r < d; ++r) (*q)[r * k + j] -= dot * (*q)[r * k + i];
      }
      double norm = 0;
      for (int64_t r = 0; r < d; ++r) norm += (*q)[r * k + j] * (*q)[r * k + j];
      norm = std::sqrt(norm);
      if (norm > 1e-12) {
        for (int64_t r = 0; r < d; ++r) (*q)[r * k + j] /= norm;
        break;
      }
      for (int64_t r = 0; r < d; ++r) (*q)[r * k + j] = StartValue(state);
    }
  }
}

// Label text per item and the colour of each text.
struct Colouring {
  std::vector<std::string> texts;          // [C] ("" = unlabelled)
  std::vector<std::string> legend;         // distinct texts, drawing order
  std::map<std::string, std::string> colour;
};

Colouring ColourLabels(const io::Labels& labels, int64_t count) {
  Colouring out;
  out.texts.resize(count);
  if (labels.empty()) return out;
  for (int64_t i = 0; i < count; ++i) out.texts[i] = labels.Text(i);
  std::vector<std::string> distinct = out.texts;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  bool numeric = true;
  for (const std::string& t : distinct) {
    double v;
    numeric = numeric && absl::SimpleAtod(t, &v);
  }
  if (numeric) {
    std::stable_sort(distinct.begin(), distinct.end(), [](const std::string& a, const std::string& b) {
      double x = 0, y = 0;
      (void)absl::SimpleAtod(a, &x);
      (void)absl::SimpleAtod(b, &y);
      return x < y;
    });
  }
  out.legend = distinct;
  for (size_t i = 0; i < distinct.size(); ++i) {
    out.colour[distinct[i]] = kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
  }
  return out;
}

struct Bounds {
  double min_x = INFINITY, max_x = -INFINITY, min_y = INFINITY, max_y = -INFINITY;
  void Add(double x, double y) {
    min_x = std::min(min_x, x);
    max_x = std::max(max_x, x);
    min_y = std::min(min_y, y);
    max_y = std::max(max_y, y);
  }
};

// Maps plane coordinates into a square panel of `size` px with `pad` px of
// padding, keeping the aspect ratio; y grows upwards in the plane.
struct PanelMap {
  double scale = 1, cx = 0, cy = 0, size = 0;
  PanelMap(const Bounds& b, double size_px, double pad) : size(size_px) {
    const double w = std::max(b.max_x - b.min_x, 1e-12), h = std::max(b.max_y - b.min_y, 1e-12);
    scale = (size_px - 2 * pad) / std::max(w, h);
    cx = 0.5 * (b.min_x + b.max_x);
    cy = 0.5 * (b.min_y + b.max_y);
  }
  double X(double x) const { return size / 2 + (x - cx) * scale; }
  double Y(double y) const { return size / 2 - (y - cy) * scale; }
};

struct Header {
  double width, height, top;  // `top`: y where the panels start
};

// Opens the document and draws the title and legend.
Header BeginDocument(std::string* svg, const SvgOptions& options, const Colouring& colouring,
                     double content_width, double content_height) {
  constexpr double kMargin = 10;
  double top = kMargin;
  const double title_h = options.title.empty() ? 0 : 24;
  const double legend_h = colouring.legend.empty() ? 0 : 22;
  top += title_h + legend_h;
  Header h{content_width + 2 * kMargin, top + content_height + kMargin, top};
  absl::StrAppend(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", Num(h.width),
                  "\" height=\"", Num(h.height), "\" viewBox=\"0 0 ", Num(h.width), " ",
                  Num(h.height), "\" font-family=\"sans-serif\" font-size=\"12\">\n",
                  "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  if (!options.title.empty()) {
    absl::StrAppend(svg, "<text class=\"title\" x=\"", Num(kMargin), "\" y=\"", Num(kMargin + 15),
                    "\" font-size=\"15\">", XmlEscape(options.title), "</text>\n");
  }
  if (!colouring.legend.empty()) {
    absl::StrAppend(svg, "<g class=\"legend\">\n");
    double x = kMargin;
    const double y = kMargin + title_h + 4;
    for (const std::string& label : colouring.legend) {
      absl::StrAppend(svg, "<g class=\"legend-entry\" data-label=\"", XmlEscape(label),
                      "\"><rect x=\"", Num(x), "\" y=\"", Num(y), "\" width=\"12\" height=\"12\" fill=\"",
                      colouring.colour.at(label), "\"/><text x=\"", Num(x + 16), "\" y=\"",
                      Num(y + 10), "\">", XmlEscape(label), "</text></g>\n");
      x += 16 + 7.0 * static_cast<double>(label.size()) + 18;
    }
    absl::StrAppend(svg, "</g>\n");
  }
  return h;
}

}  // namespace

std::string Projection::Describe() const {
  switch (kind) {
    case Kind::kIdentity:
      return dim == 1 ? "the line (x, 0)" : "the coordinates";
    case Kind::kFixed3D:
      return "a fixed 3D view (azimuth 35°, elevation 25°)";
    case Kind::kPca: {
      if (total_variance <= 0) return "principal components (no variance)";
      return absl::StrFormat("principal components (PC1 %.1f%%, PC2 %.1f%% of the variance)",
                             100 * variances[0] / total_variance,
                             100 * variances[1] / total_variance);
    }
  }
  return "";
}

std::vector<double> Projection::Apply(absl::Span<const float> points) const {
  const int64_t p = static_cast<int64_t>(points.size()) / dim;
  std::vector<double> out(2 * p);
  for (int64_t i = 0; i < p; ++i) {
    double x = 0, y = 0;
    for (int64_t j = 0; j < dim; ++j) {
      const double v = points[i * dim + j] - center[j];
      x += axes[j] * v;
      y += axes[dim + j] * v;
    }
    out[2 * i] = x;
    out[2 * i + 1] = y;
  }
  return out;
}

Projection IdentityProjection(int64_t dim) {
  Projection p;
  p.kind = Projection::Kind::kIdentity;
  p.dim = dim;
  p.center.assign(dim, 0.0);
  p.axes.assign(2 * dim, 0.0);
  p.axes[0] = 1;
  if (dim >= 2) p.axes[dim + 1] = 1;
  return p;
}

Projection FixedView3D() {
  const double a = 35 * kPi / 180, e = 25 * kPi / 180;
  Projection p;
  p.kind = Projection::Kind::kFixed3D;
  p.dim = 3;
  p.center.assign(3, 0.0);
  p.axes = {-std::sin(a), std::cos(a), 0.0,
            -std::sin(e) * std::cos(a), -std::sin(e) * std::sin(a), std::cos(e)};
  return p;
}

absl::StatusOr<Projection> PcaProjection(absl::Span<const float> points, int64_t dim) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("PCA: dimension ", dim));
  const int64_t total = static_cast<int64_t>(points.size()) / dim;
  if (total < 1 || static_cast<int64_t>(points.size()) != total * dim) {
    return absl::InvalidArgumentError("PCA: needs [P, dim] points with P >= 1");
  }
  // An even stride through at most kMaxPcaPoints points.
  std::vector<int64_t> rows;
  const int64_t n = std::min(total, kMaxPcaPoints);
  rows.reserve(n);
  for (int64_t i = 0; i < n; ++i) rows.push_back(i * total / n);
  for (float v : points) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("PCA: points must be finite");
  }
  Projection proj;
  proj.kind = Projection::Kind::kPca;
  proj.dim = dim;
  proj.center.assign(dim, 0.0);
  for (int64_t r : rows) {
    for (int64_t j = 0; j < dim; ++j) proj.center[j] += points[r * dim + j];
  }
  for (double& c : proj.center) c /= static_cast<double>(n);
  // Centred rows in double precision.
  std::vector<double> x(n * dim);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < dim; ++j) x[i * dim + j] = points[rows[i] * dim + j] - proj.center[j];
  }
  for (double v : x) proj.total_variance += v * v;
  proj.total_variance /= std::max<int64_t>(n - 1, 1);

  const int k = static_cast<int>(std::min<int64_t>(dim, 8));
  uint64_t state = 0x5EED;
  std::vector<double> q(dim * k), z(dim * k), xq(n * k);
  for (double& v : q) v = StartValue(&state);
  Orthonormalize(&q, dim, k, &state);
  std::vector<double> values, vectors, previous(2, -1.0);
  const double norm = 1.0 / static_cast<double>(std::max<int64_t>(n - 1, 1));
  for (int iter = 0; iter < 500; ++iter) {
    // z = C q = X^T (X q) / (n - 1)
    std::fill(xq.begin(), xq.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        const double v = x[i * dim + j];
        for (int c = 0; c < k; ++c) xq[i * k + c] += v * q[j * k + c];
      }
    }
    std::fill(z.begin(), z.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        const double v = x[i * dim + j] * norm;
        for (int c = 0; c < k; ++c) z[j * k + c] += v * xq[i * k + c];
      }
    }
    // Rayleigh-Ritz: H = q^T C q, rotate q to H's eigenvectors.
    std::vector<double> h(k * k, 0.0);
    for (int64_t j = 0; j < dim; ++j) {
      for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) h[a * k + b] += q[j * k + a] * z[j * k + b];
      }
    }
    for (int a = 0; a < k; ++a) {
      for (int b = a + 1; b < k; ++b) h[a * k + b] = h[b * k + a] = 0.5 * (h[a * k + b] + h[b * k + a]);
    }
    JacobiEigen(h, k, &values, &vectors);
    std::vector<int> order(k);
    for (int i = 0; i < k; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return values[a] > values[b]; });
    std::vector<double> rotated(dim * k, 0.0);
    for (int64_t j = 0; j < dim; ++j) {
      for (int c = 0; c < k; ++c) {
        double s = 0;
        for (int a = 0; a < k; ++a) s += q[j * k + a] * vectors[a * k + order[c]];
        rotated[j * k + c] = s;
      }
    }
    q = rotated;
    proj.variances = {std::max(values[order[0]], 0.0),
                      k > 1 ? std::max(values[order[1]], 0.0) : 0.0};
    const double scale = std::max(proj.variances[0], 1e-300);
    const bool converged = iter > 2 && std::abs(proj.variances[0] - previous[0]) <= 1e-13 * scale &&
                           std::abs(proj.variances[1] - previous[1]) <= 1e-13 * scale;
    previous = proj.variances;
    if (converged || k == dim) break;
    // Next block: z rotated the same way, orthonormalised.
    std::vector<double> next(dim * k, 0.0);
    for (int64_t j = 0; j < dim; ++j) {
      for (int c = 0; c < k; ++c) {
        double s = 0;
        for (int a = 0; a < k; ++a) s += z[j * k + a] * vectors[a * k + order[c]];
        next[j * k + c] = s;
      }
    }
    q = next;
    Orthonormalize(&q, dim, k, &state);
  }
  proj.axes.assign(2 * dim, 0.0);
  for (int c = 0; c < std::min(k, 2); ++c) {
    int64_t arg = 0;
    for (int64_t j = 0; j < dim; ++j) {
      if (std::abs(q[j * k + c]) > std::abs(q[arg * k + c])) arg = j;
    }
    const double sign = q[arg * k + c] < 0 ? -1.0 : 1.0;
    for (int64_t j = 0; j < dim; ++j) proj.axes[c * dim + j] = sign * q[j * k + c];
  }
  if (dim == 1) proj.variances[1] = 0;
  return proj;
}

absl::StatusOr<Projection> DefaultProjection(absl::Span<const float> points, int64_t dim) {
  if (dim <= 2) return IdentityProjection(dim);
  if (dim == 3) return FixedView3D();
  return PcaProjection(points, dim);
}

absl::Span<const char* const> Palette() { return absl::MakeConstSpan(kPalette); }

std::string XmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

absl::StatusOr<std::string> RenderCloudsSvg(const io::PointCloudSet& clouds,
                                            const SvgOptions& options) {
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(clouds, "svg"));
  Projection projection;
  if (options.projection.has_value()) {
    projection = *options.projection;
    if (projection.dim != clouds.dim) {
      return absl::InvalidArgumentError(absl::StrCat("svg: the projection is for dimension ",
                                                     projection.dim, ", the clouds have ",
                                                     clouds.dim));
    }
  } else {
    WFM_ASSIGN_OR_RETURN(projection, DefaultProjection(clouds.points, clouds.dim));
  }
  const int64_t c = clouds.num_clouds();
  const std::vector<double> plane = projection.Apply(clouds.points);
  Bounds bounds;
  for (size_t i = 0; i < plane.size(); i += 2) bounds.Add(plane[i], plane[i + 1]);
  const Colouring colouring = ColourLabels(clouds.labels, c);

  const int64_t columns =
      options.columns > 0 ? options.columns
                          : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(c))));
  const int64_t rows = (c + columns - 1) / columns;
  const double cell = options.cell_size, gap = 6;
  const double mean_size = static_cast<double>(clouds.num_points()) / static_cast<double>(c);
  const double radius = options.point_radius > 0
                            ? options.point_radius
                            : std::clamp(cell / (5 * std::sqrt(mean_size)), 0.6, 3.0);
  const PanelMap map(bounds, cell, 4 + radius);

  std::string svg;
  const Header header = BeginDocument(&svg, options, colouring, columns * cell + (columns - 1) * gap,
                                      rows * cell + (rows - 1) * gap);
  absl::StrAppend(&svg, "<desc>", c, " point clouds of dimension ", clouds.dim,
                  " drawn through ", XmlEscape(projection.Describe()), "</desc>\n");
  for (int64_t i = 0; i < c; ++i) {
    const double x0 = 10 + static_cast<double>(i % columns) * (cell + gap);
    const double y0 = header.top + static_cast<double>(i / columns) * (cell + gap);
    const std::string& label = colouring.texts[i];
    const std::string colour = label.empty() && colouring.legend.empty()
                                   ? std::string(kUnlabelledColor)
                                   : colouring.colour.at(label);
    absl::StrAppend(&svg, "<g class=\"sample\" id=\"sample-", i, "\"");
    if (!colouring.legend.empty()) absl::StrAppend(&svg, " data-label=\"", XmlEscape(label), "\"");
    absl::StrAppend(&svg, " fill=\"", colour, "\" transform=\"translate(", Num(x0), ",", Num(y0),
                    ")\">\n<title>sample ", i, label.empty() ? "" : ": ", XmlEscape(label), " (",
                    clouds.cloud_size(i), " points)</title>\n<rect class=\"frame\" width=\"",
                    Num(cell), "\" height=\"", Num(cell),
                    "\" fill=\"none\" stroke=\"#dddddd\"/>\n");
    for (int64_t p = clouds.offsets[i]; p < clouds.offsets[i + 1]; ++p) {
      absl::StrAppend(&svg, "<circle cx=\"", Num(map.X(plane[2 * p])), "\" cy=\"",
                      Num(map.Y(plane[2 * p + 1])), "\" r=\"", Num(radius), "\"/>\n");
    }
    absl::StrAppend(&svg, "</g>\n");
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

absl::StatusOr<std::string> RenderGaussiansSvg(const io::GaussianSet& gaussians,
                                               const SvgOptions& options) {
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(gaussians, "svg"));
  const int64_t d = gaussians.dim, c = gaussians.num_gaussians();
  std::vector<float> means(gaussians.means.begin(), gaussians.means.end());
  Projection projection;
  if (options.projection.has_value()) {
    projection = *options.projection;
    if (projection.dim != d) {
      return absl::InvalidArgumentError(absl::StrCat("svg: the projection is for dimension ",
                                                     projection.dim, ", the Gaussians have ", d));
    }
  } else {
    WFM_ASSIGN_OR_RETURN(projection, DefaultProjection(means, d));
  }
  const std::vector<double> centers = projection.Apply(means);
  // Projected covariances A S A^T [2, 2] and their 2σ ellipses.
  struct Ellipse {
    double rx, ry, angle_deg;
  };
  std::vector<Ellipse> ellipses(c);
  Bounds bounds;
  const double* a = projection.axes.data();
  for (int64_t g = 0; g < c; ++g) {
    const double* s = gaussians.covs.data() + g * d * d;
    double m[2][2] = {{0, 0}, {0, 0}};
    for (int r = 0; r < 2; ++r) {
      for (int q = 0; q < 2; ++q) {
        double sum = 0;
        for (int64_t i = 0; i < d; ++i) {
          for (int64_t j = 0; j < d; ++j) sum += a[r * d + i] * s[i * d + j] * a[q * d + j];
        }
        m[r][q] = sum;
      }
    }
    const double tr = m[0][0] + m[1][1], det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    const double disc = std::sqrt(std::max(0.25 * tr * tr - det, 0.0));
    const double l1 = std::max(0.5 * tr + disc, 0.0), l2 = std::max(0.5 * tr - disc, 0.0);
    const double angle = 0.5 * std::atan2(2 * m[0][1], m[0][0] - m[1][1]);
    ellipses[g] = {2 * std::sqrt(l1), 2 * std::sqrt(l2), angle * 180 / kPi};
    const double ext = ellipses[g].rx;
    bounds.Add(centers[2 * g] - ext, centers[2 * g + 1] - ext);
    bounds.Add(centers[2 * g] + ext, centers[2 * g + 1] + ext);
  }
  const Colouring colouring = ColourLabels(gaussians.labels, c);
  const double size = options.cell_size * 3;
  const PanelMap map(bounds, size, 6);
  std::string svg;
  const Header header = BeginDocument(&svg, options, colouring, size, size);
  absl::StrAppend(&svg, "<desc>", c, " Gaussians of dimension ", d,
                  " (2-sigma ellipses) drawn through ", XmlEscape(projection.Describe()),
                  "</desc>\n<g class=\"panel\" transform=\"translate(10,", Num(header.top),
                  ")\">\n<rect class=\"frame\" width=\"", Num(size), "\" height=\"", Num(size),
                  "\" fill=\"none\" stroke=\"#dddddd\"/>\n");
  for (int64_t g = 0; g < c; ++g) {
    const std::string& label = colouring.texts[g];
    const std::string colour =
        colouring.legend.empty() ? std::string(kUnlabelledColor) : colouring.colour.at(label);
    const double x = map.X(centers[2 * g]), y = map.Y(centers[2 * g + 1]);
    absl::StrAppend(&svg, "<g class=\"gaussian\" id=\"gaussian-", g, "\"");
    if (!colouring.legend.empty()) absl::StrAppend(&svg, " data-label=\"", XmlEscape(label), "\"");
    // The plane's y axis points up and SVG's down: the angle changes sign.
    absl::StrAppend(&svg, " stroke=\"", colour, "\" fill=\"", colour, "\"><ellipse cx=\"", Num(x),
                    "\" cy=\"", Num(y), "\" rx=\"", Num(std::max(ellipses[g].rx * map.scale, 0.3)),
                    "\" ry=\"", Num(std::max(ellipses[g].ry * map.scale, 0.3)),
                    "\" transform=\"rotate(", Num(-ellipses[g].angle_deg), " ", Num(x), " ", Num(y),
                    ")\" fill-opacity=\"0.08\"/><circle cx=\"", Num(x), "\" cy=\"", Num(y),
                    "\" r=\"1.5\" stroke=\"none\"/></g>\n");
  }
  absl::StrAppend(&svg, "</g>\n</svg>\n");
  return svg;
}

absl::Status WriteSvgFile(const std::string& path, const std::string& svg) {
  return io::WriteFileAtomically(path, svg);
}

}  // namespace wfm::client
