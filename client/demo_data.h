// The built-in data set of `wfm demo`: labelled families of shapes as point
// clouds, generated deterministically from a seed.
//
// 2D (dim 2), one class per label:
//   ring     points on a circle of radius r (± 2% radial jitter)
//   square   points on the outline of a square of half-side r, rotated by θ
//   cross    points on two perpendicular bars of half-length r, rotated by θ
// 3D (dim 3):
//   sphere   points on a sphere of radius r
//   torus    points on a torus (major radius r, minor radius r/3), axis z,
//            tilted by θ about x
//   cube     points on the surface of a cube of half-side r, rotated by θ
//            about z
// Per cloud: r ~ U(0.5, 1), θ ~ U(0, 2π), a centre offset ~ U(-0.25, 0.25)^d,
// and a number of points ~ U{min_points .. max_points}. Classes take turns
// (cloud i has class i mod 3), so every prefix of the set is balanced.
#ifndef WFM_CLIENT_DEMO_DATA_H_
#define WFM_CLIENT_DEMO_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/io/point_sets.h"

namespace wfm::client {

struct ShapeOptions {
  int64_t dim = 2;          // 2 or 3
  int64_t clouds = 600;     // >= 1
  int64_t min_points = 48;  // >= 1
  int64_t max_points = 64;  // >= min_points
  uint64_t seed = 1;
};

// The class names of `dim` in label order.
std::vector<std::string> ShapeClasses(int64_t dim);

// Clouds with string labels (the class names). InvalidArgument for options
// outside the ranges above.
absl::StatusOr<model::io::PointCloudSet> MakeShapes(const ShapeOptions& options);

}  // namespace wfm::client

#endif  // WFM_CLIENT_DEMO_DATA_H_
