// Sample-quality metrics between a generated set and a reference set of
// distributions (point clouds or Gaussians), over a distance D between two
// distributions (Yang et al., PointFlow, 2019):
//
//   1-NNA  leave-one-out 1-nearest-neighbour accuracy of telling generated
//          from reference items in the union of both sets; 0.5 is ideal (the
//          sets are indistinguishable), 1.0 means every item's nearest
//          neighbour is from its own set.
//   MMD    minimum matching distance: mean over reference items of the
//          distance to the nearest generated item (lower is better).
//   COV    coverage: the fraction of reference items that are the nearest
//          reference item of at least one generated item (higher is better).
//
// Point clouds use D = Chamfer distance (CD) and D = exact EMD (squared
// 2-Wasserstein, ot::ExactEmd); Gaussians the squared Bures–Wasserstein
// distance.
#ifndef WFM_MODEL_EVAL_METRICS_H_
#define WFM_MODEL_EVAL_METRICS_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "model/io/point_sets.h"

namespace wfm::model::eval {

struct DistributionMetrics {
  double one_nna = 0.0;
  double mmd = 0.0;
  double cov = 0.0;
};

// The three metrics from the distance matrices within the generated set
// d_gg [G,G], within the reference set d_rr [R,R] and across d_gr [G,R]
// (diagonals of d_gg and d_rr are ignored). Ties in 1-NNA go to the other
// set's item. G, R >= 1 (1-NNA needs G + R >= 3).
absl::StatusOr<DistributionMetrics> MetricsFromDistances(const at::Tensor& d_gg,
                                                         const at::Tensor& d_rr,
                                                         const at::Tensor& d_gr);

// All-pairs distances between the clouds of `a` and of `b`: [A,B] float64.
absl::StatusOr<at::Tensor> PairwiseChamfer(const io::PointCloudSet& a, const io::PointCloudSet& b);
absl::StatusOr<at::Tensor> PairwiseEmd(const io::PointCloudSet& a, const io::PointCloudSet& b);

struct PointCloudEvaluation {
  int64_t generated = 0;
  int64_t reference = 0;
  DistributionMetrics chamfer;
  DistributionMetrics emd;  // zero when not computed
  bool has_emd = false;
};

// CD metrics, and EMD metrics when `with_emd` (the costlier part: one exact
// transport problem per pair). Both sets must share the dimension.
absl::StatusOr<PointCloudEvaluation> EvaluatePointClouds(const io::PointCloudSet& generated,
                                                         const io::PointCloudSet& reference,
                                                         bool with_emd = true);

struct GaussianEvaluation {
  int64_t generated = 0;
  int64_t reference = 0;
  DistributionMetrics bures;       // squared Bures–Wasserstein distance
  double mean_error = 0.0;         // |mean of generated means - mean of reference means|
  double covariance_error = 0.0;   // |mean generated cov - mean reference cov|_F / |mean reference cov|_F
};

absl::StatusOr<GaussianEvaluation> EvaluateGaussians(const io::GaussianSet& generated,
                                                     const io::GaussianSet& reference);

}  // namespace wfm::model::eval

#endif  // WFM_MODEL_EVAL_METRICS_H_
