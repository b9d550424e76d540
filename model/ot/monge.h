// Monge maps read from entropic transport between a source cloud x and a
// target cloud y: each source point x_i is sent to a target position T(x_i).
#ifndef WFM_MODEL_OT_MONGE_H_
#define WFM_MODEL_OT_MONGE_H_

#include <optional>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/ot/sinkhorn.h"

namespace wfm::model::ot {

enum class MongeMapKind {
  kEntropic,         // barycentric projection: T(x_i) = sum_j P_ij y_j / sum_j P_ij
  kArgmax,           // y at the row argmax of the plan
  kRoundedMatching,  // y at the greedy one-to-one matching (RoundedMatching)
  kSample,           // y at a column drawn from the plan row (seeded)
  kEuclidean,        // no OT: T(x_i) = y_i (index pairing; see MongeTargets)
};

// "entropic", "argmax", "rounded_matching", "sample", "euclidean".
absl::StatusOr<MongeMapKind> ParseMongeMapKind(absl::string_view name);
std::string MongeMapKindName(MongeMapKind kind);

// Target positions T(x) [B,N,d] for source clouds x [B,N,d] (weights a
// [B,N]) and target clouds y [B,M,d] (weights b [B,M]). Every kind but
// kEuclidean solves entropic OT with `options` first; kSample draws from
// `generator` (required for it). Source padding (a_i = 0) maps to itself, so
// its displacement T(x_i) - x_i is 0, and target padding (b_j = 0) is never a
// target: `rounded_matching` and `argmax` choose among y's real points only,
// and `euclidean` pairs the k-th real point of x with the (k mod n)-th of the
// n real points of y (y_k when the clouds are equally large; the reference
// pairs by raw index and sends the surplus source points of a larger source
// cloud to y's padding at the origin). When `solution` is not null it receives
// the Sinkhorn solution (left untouched for kEuclidean).
absl::StatusOr<at::Tensor> MongeTargets(MongeMapKind kind, const at::Tensor& x,
                                        const at::Tensor& a, const at::Tensor& y,
                                        const at::Tensor& b, const SinkhornOptions& options,
                                        std::optional<at::Generator> generator = std::nullopt,
                                        std::optional<SinkhornSolution>* solution = nullptr);

}  // namespace wfm::model::ot

#endif  // WFM_MODEL_OT_MONGE_H_
