// The synthetic data of ../shared/anchors/bench_anchor.py, as the wfm_bench
// subcommands generate it: C random anisotropic Gaussians in R^D, mean ~
// U(-1,1)^D, covariance R diag(s²) Rᵀ with s ~ U(0.2, 1) and R a random
// rotation (the anchor's distributions, another random stream).
#ifndef WFM_BENCH_SYNTHETIC_DATA_H_
#define WFM_BENCH_SYNTHETIC_DATA_H_

#include <cstdint>

#include "model/io/point_sets.h"

namespace wfm::bench {

// Point clouds: `count` clouds of n points, each drawn from one such Gaussian
// (bench_anchor.py synthetic_clouds; train_bench.cc). No labels.
model::io::PointCloudSet SyntheticClouds(int64_t count, int64_t n, int64_t d, uint64_t seed);

// The Gaussians themselves (bench_anchor.py synthetic_gaussians;
// gaussian_bench.cc). No labels.
model::io::GaussianSet SyntheticGaussians(int64_t count, int64_t d, uint64_t seed);

}  // namespace wfm::bench

#endif  // WFM_BENCH_SYNTHETIC_DATA_H_
