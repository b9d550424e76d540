#include "client/demo_data.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
constexpr double kPi = 3.14159265358979323846;

// SplitMix64: the same stream on every platform (std distributions are not).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // U[0, 1)
  double Uniform() { return static_cast<double>(Next() >> 11) / 9007199254740992.0; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // U{lo .. hi}
  int64_t Integer(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // N(0, 1) (Box-Muller).
  double Normal() {
    const double u = 1.0 - Uniform(), v = Uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * kPi * v);
  }

 private:
  uint64_t state_;
};

// A point of class `cls` (dimension 2) with radius r and rotation theta.
void Shape2D(int cls, double r, double theta, Random& rng, double* out) {
  double x = 0, y = 0;
  switch (cls) {
    case 0: {  // ring
      const double a = rng.Uniform(0, 2 * kPi), rr = r * (1 + 0.02 * rng.Normal());
      x = rr * std::cos(a);
      y = rr * std::sin(a);
      break;
    }
    case 1: {  // square outline
      const double t = rng.Uniform(-r, r);
      switch (rng.Integer(0, 3)) {
        case 0: x = t; y = r; break;
        case 1: x = t; y = -r; break;
        case 2: x = r; y = t; break;
        default: x = -r; y = t; break;
      }
      break;
    }
    default: {  // cross
      const double t = rng.Uniform(-r, r);
      if (rng.Integer(0, 1) == 0) {
        x = t;
      } else {
        y = t;
      }
      break;
    }
  }
  out[0] = std::cos(theta) * x - std::sin(theta) * y;
  out[1] = std::sin(theta) * x + std::cos(theta) * y;
}

void Shape3D(int cls, double r, double theta, Random& rng, double* out) {
  double x = 0, y = 0, z = 0;
  switch (cls) {
    case 0: {  // sphere
      const double a = rng.Normal(), b = rng.Normal(), c = rng.Normal();
      const double n = std::max(std::sqrt(a * a + b * b + c * c), 1e-12);
      x = r * a / n;
      y = r * b / n;
      z = r * c / n;
      break;
    }
    case 1: {  // torus tilted about x
      const double u = rng.Uniform(0, 2 * kPi), v = rng.Uniform(0, 2 * kPi), minor = r / 3;
      const double px = (r + minor * std::cos(v)) * std::cos(u);
      const double py = (r + minor * std::cos(v)) * std::sin(u);
      const double pz = minor * std::sin(v);
      x = px;
      y = std::cos(theta) * py - std::sin(theta) * pz;
      z = std::sin(theta) * py + std::cos(theta) * pz;
      out[0] = x;
      out[1] = y;
      out[2] = z;
      return;
    }
    default: {  // cube surface rotated about z
      double p[3] = {rng.Uniform(-r, r), rng.Uniform(-r, r), rng.Uniform(-r, r)};
      const int64_t face = rng.Integer(0, 5);
      p[face / 2] = face % 2 == 0 ? r : -r;
      x = p[0];
      y = p[1];
      z = p[2];
      break;
    }
  }
  out[0] = std::cos(theta) * x - std::sin(theta) * y;
  out[1] = std::sin(theta) * x + std::cos(theta) * y;
  out[2] = z;
}

}  // namespace

std::vector<std::string> ShapeClasses(int64_t dim) {
  if (dim == 3) return {"sphere", "torus", "cube"};
  return {"ring", "square", "cross"};
}

absl::StatusOr<io::PointCloudSet> MakeShapes(const ShapeOptions& options) {
  if (options.dim != 2 && options.dim != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("demo shapes: dimension ", options.dim, "; must be 2 or 3"));
  }
  if (options.clouds < 1 || options.min_points < 1 || options.max_points < options.min_points) {
    return absl::InvalidArgumentError(absl::StrCat(
        "demo shapes: ", options.clouds, " clouds of ", options.min_points, "..",
        options.max_points, " points; needs clouds >= 1 and 1 <= min_points <= max_points"));
  }
  const std::vector<std::string> classes = ShapeClasses(options.dim);
  Random rng(options.seed);
  io::PointCloudSet set;
  set.dim = options.dim;
  set.offsets = {0};
  std::vector<std::string> labels;
  double point[3];
  for (int64_t c = 0; c < options.clouds; ++c) {
    const int cls = static_cast<int>(c % 3);
    const int64_t n = rng.Integer(options.min_points, options.max_points);
    const double r = rng.Uniform(0.5, 1.0), theta = rng.Uniform(0, 2 * kPi);
    double offset[3];
    for (int64_t j = 0; j < options.dim; ++j) offset[j] = rng.Uniform(-0.25, 0.25);
    for (int64_t i = 0; i < n; ++i) {
      if (options.dim == 2) {
        Shape2D(cls, r, theta, rng, point);
      } else {
        Shape3D(cls, r, theta, rng, point);
      }
      for (int64_t j = 0; j < options.dim; ++j) {
        set.points.push_back(static_cast<float>(point[j] + offset[j]));
      }
    }
    set.offsets.push_back(set.offsets.back() + n);
    labels.push_back(classes[cls]);
  }
  set.labels = io::Labels::FromStrings(std::move(labels));
  return set;
}

}  // namespace wfm::client
