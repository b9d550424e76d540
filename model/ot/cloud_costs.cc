#include "model/ot/cloud_costs.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/gaussian/bures.h"
#include "model/ot/matching.h"

namespace wfm::model::ot {
namespace {

// Chamfer distance between cloud x (n points) and cloud y (m points), using
// only real points; weights normalised.
template <typename T>
T ChamferPair(const T* x, const T* a, int n, const T* y, const T* b, int m, int d,
              std::vector<T>& min_y) {
  constexpr T kInf = std::numeric_limits<T>::infinity();
  min_y.assign(m, kInf);
  T sum_a = 0, sum_b = 0, term_x = 0;
  for (int j = 0; j < m; ++j) sum_b += b[j];
  for (int i = 0; i < n; ++i) {
    if (!(a[i] > 0)) continue;
    sum_a += a[i];
    const T* xi = x + static_cast<int64_t>(i) * d;
    T best = kInf;
    for (int j = 0; j < m; ++j) {
      if (!(b[j] > 0)) continue;
      const T* yj = y + static_cast<int64_t>(j) * d;
      T s = 0;
      for (int k = 0; k < d; ++k) {
        const T diff = xi[k] - yj[k];
        s += diff * diff;
      }
      best = std::min(best, s);
      min_y[j] = std::min(min_y[j], s);
    }
    term_x += a[i] * best;
  }
  T term_y = 0;
  for (int j = 0; j < m; ++j) {
    if (b[j] > 0) term_y += b[j] * min_y[j];
  }
  return term_x / sum_a + term_y / sum_b;
}

// out[p*Q + q] = chamfer(x[p], y[pair_y(p, q)]) for the index maps given.
template <typename T>
at::Tensor Chamfer(const at::Tensor& x_in, const at::Tensor& a_in, const at::Tensor& y_in,
                   const at::Tensor& b_in, bool all_pairs) {
  const at::Tensor x = x_in.contiguous(), a = a_in.contiguous();
  const at::Tensor y = y_in.contiguous().to(x.scalar_type()), b = b_in.contiguous().to(x.scalar_type());
  const int64_t P = x.size(0), Q = y.size(0);
  const int n = static_cast<int>(x.size(1)), m = static_cast<int>(y.size(1));
  const int d = static_cast<int>(x.size(2));
  const int64_t pairs = all_pairs ? P * Q : P;
  at::Tensor out = all_pairs ? at::empty({P, Q}, x.options()) : at::empty({P}, x.options());
  const T* xp = x.data_ptr<T>();
  const T* ap = a.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, pairs, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t p = all_pairs ? k / Q : k, q = all_pairs ? k % Q : k;
      op[k] = ChamferPair<T>(xp + p * n * d, ap + p * n, n, yp + q * m * d, bp + q * m, m, d,
                             scratch);
    }
  });
  return out;
}

at::Tensor ChamferDispatch(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                           const at::Tensor& b, bool all_pairs) {
  return x.scalar_type() == at::kFloat ? Chamfer<float>(x, a, y, b, all_pairs)
                                       : Chamfer<double>(x, a, y, b, all_pairs);
}

absl::Status CheckClouds(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                         const at::Tensor& b) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "x", 3));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(y, "y", 3));
  WFM_RETURN_IF_ERROR(CheckShape(a, "a", {x.size(0), x.size(1)}));
  WFM_RETURN_IF_ERROR(CheckShape(y, "y", {-1, -1, x.size(2)}));
  WFM_RETURN_IF_ERROR(CheckShape(b, "b", {y.size(0), y.size(1)}));
  WFM_RETURN_IF_ERROR(CheckSameDtype(y, "y", x, "x"));
  WFM_RETURN_IF_ERROR(CheckFinite(x, "x"));
  WFM_RETURN_IF_ERROR(CheckFinite(y, "y"));
  WFM_RETURN_IF_ERROR(CheckWeights(a, "a"));
  WFM_RETURN_IF_ERROR(CheckWeights(b, "b"));
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> EntropicPairwise(const at::Tensor& x, const at::Tensor& a,
                                            const at::Tensor& y, const at::Tensor& b,
                                            const CloudCostOptions& options) {
  SinkhornOptions sinkhorn;
  sinkhorn.epsilon = options.entropic_epsilon;
  sinkhorn.epsilon_scale = EpsilonScale::kAbsolute;
  sinkhorn.iterations = options.entropic_iterations;
  const int64_t P = x.size(0), Q = y.size(0);
  // Rows of x per chunk so that one chunk's cost tensor stays below ~64 MiB.
  const int64_t per_row = std::max<int64_t>(1, Q * x.size(1) * y.size(1));
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 24) / per_row, 1, std::max<int64_t>(P, 1));
  std::vector<at::Tensor> rows;
  for (int64_t s = 0; s < P; s += chunk) {
    const int64_t k = std::min(chunk, P - s);
    at::Tensor xs, as, ys, bs;
    WFM_RETURN_IF_ERROR(GuardTorch("PairwiseCloudCost", [&] {
      xs = x.narrow(0, s, k).repeat_interleave(Q, 0);
      as = a.narrow(0, s, k).repeat_interleave(Q, 0);
      ys = y.repeat({k, 1, 1});
      bs = b.repeat({k, 1});
      // Balanced OT needs equal totals: both sides normalised.
      as = as / as.sum(1, true);
      bs = bs / bs.sum(1, true);
    }));
    WFM_ASSIGN_OR_RETURN(SinkhornSolution sol, SolveSinkhorn(xs, as, ys, bs, sinkhorn));
    WFM_ASSIGN_OR_RETURN(at::Tensor reg, GuardTorch("PairwiseCloudCost", [&] {
                           return sol.RegularizedCost(as, bs).view({k, Q});
                         }));
    rows.push_back(reg);
  }
  return GuardTorch("PairwiseCloudCost", [&] {
    return rows.empty() ? at::empty({0, Q}, x.options()) : at::cat(rows, 0);
  });
}

absl::StatusOr<at::Tensor> FrechetPairwise(const at::Tensor& x, const at::Tensor& a,
                                           const at::Tensor& y, const at::Tensor& b,
                                           const CloudCostOptions& options) {
  WFM_ASSIGN_OR_RETURN(auto stats_x, gaussian::WeightedMeanCovariance(x, a, options.covariance_ridge));
  WFM_ASSIGN_OR_RETURN(auto stats_y, gaussian::WeightedMeanCovariance(y, b, options.covariance_ridge));
  return gaussian::PairwiseBuresWasserstein(stats_x.first, stats_x.second, stats_y.first,
                                            stats_y.second);
}

}  // namespace

absl::StatusOr<CloudCostKind> ParseCloudCostKind(absl::string_view name) {
  if (name == "chamfer") return CloudCostKind::kChamfer;
  if (name == "entropic") return CloudCostKind::kEntropic;
  if (name == "euclidean") return CloudCostKind::kEuclidean;
  if (name == "frechet") return CloudCostKind::kFrechet;
  return absl::InvalidArgumentError(absl::StrCat(
      "minibatch_ot_cost: unknown '", name, "' (expected chamfer, entropic, euclidean or frechet)"));
}

std::string CloudCostKindName(CloudCostKind kind) {
  switch (kind) {
    case CloudCostKind::kChamfer: return "chamfer";
    case CloudCostKind::kEntropic: return "entropic";
    case CloudCostKind::kEuclidean: return "euclidean";
    case CloudCostKind::kFrechet: return "frechet";
  }
  return "unknown";
}

absl::StatusOr<at::Tensor> PairwiseCloudCost(CloudCostKind kind, const at::Tensor& x,
                                             const at::Tensor& a, const at::Tensor& y,
                                             const at::Tensor& b,
                                             const CloudCostOptions& options) {
  WFM_RETURN_IF_ERROR(CheckClouds(x, a, y, b));
  switch (kind) {
    case CloudCostKind::kChamfer:
      return GuardTorch("PairwiseCloudCost", [&] { return ChamferDispatch(x, a, y, b, true); });
    case CloudCostKind::kEntropic:
      return EntropicPairwise(x, a, y, b, options);
    case CloudCostKind::kEuclidean:
      if (x.size(1) != y.size(1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "minibatch_ot_cost: euclidean compares points by index and needs clouds of equal "
            "size, got ", x.size(1), " and ", y.size(1)));
      }
      return GuardTorch("PairwiseCloudCost", [&] {
        const at::Tensor w = a / a.sum(1, true);
        const at::Tensor sq = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(3);  // [P,Q,N]
        return (sq * w.unsqueeze(1)).sum(2);
      });
    case CloudCostKind::kFrechet:
      return FrechetPairwise(x, a, y, b, options);
  }
  return absl::InvalidArgumentError("minibatch_ot_cost: unknown kind");
}

absl::StatusOr<at::Tensor> ChamferDistance(const at::Tensor& x, const at::Tensor& a,
                                           const at::Tensor& y, const at::Tensor& b) {
  WFM_RETURN_IF_ERROR(CheckClouds(x, a, y, b));
  if (y.size(0) != x.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("y: needs as many clouds as x (", x.size(0),
                                                   "), got ", y.size(0)));
  }
  return GuardTorch("ChamferDistance", [&] { return ChamferDispatch(x, a, y, b, false); });
}

absl::StatusOr<at::Tensor> MinibatchPairing(const at::Tensor& cost, const SinkhornOptions& options) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(cost, "cost", 2));
  if (cost.size(0) != cost.size(1) || cost.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cost: minibatch pairing needs a non-empty square matrix, got ", ShapeString(cost.sizes())));
  }
  const int64_t B = cost.size(0);
  at::Tensor weights;
  WFM_RETURN_IF_ERROR(GuardTorch("MinibatchPairing", [&] {
    weights = at::full({1, B}, 1.0 / static_cast<double>(B), cost.options());
  }));
  WFM_ASSIGN_OR_RETURN(SinkhornSolution sol,
                       SolveSinkhornCost(cost.unsqueeze(0), weights, weights, options));
  WFM_ASSIGN_OR_RETURN(at::Tensor plan, GuardTorch("MinibatchPairing", [&] { return sol.Plan(); }));
  WFM_ASSIGN_OR_RETURN(at::Tensor match, RoundedMatching(plan));
  return match.squeeze(0);
}

}  // namespace wfm::model::ot
