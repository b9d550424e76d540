#include "model/ot/monge.h"

#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/ot/matching.h"

namespace wfm::model::ot {
namespace {

// y gathered at one column per source row: idx int64 [B,N] -> [B,N,d].
at::Tensor GatherRows(const at::Tensor& y, const at::Tensor& idx) {
  return at::gather(y, 1, idx.unsqueeze(2).expand({idx.size(0), idx.size(1), y.size(2)}));
}

// The index pairing of the `euclidean` map: the k-th real point of source
// cloud x (a > 0) is paired with the (k mod n)-th real point of target cloud y
// (b > 0), n being y's real points: y_k when the clouds are equally large,
// and never a padding point of y when x is the larger. int64 [B,N]; padding
// rows of x get 0.
at::Tensor IndexPairing(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor real_x = (a > 0).to(at::kCPU).contiguous();
  const at::Tensor real_y = (b > 0).to(at::kCPU).contiguous();
  const int64_t batch = a.size(0), n = a.size(1), m = b.size(1);
  at::Tensor out = at::zeros({batch, n}, at::TensorOptions().dtype(at::kLong));
  const bool* rx = real_x.data_ptr<bool>();
  const bool* ry = real_y.data_ptr<bool>();
  int64_t* o = out.data_ptr<int64_t>();
  std::vector<int64_t> targets;
  for (int64_t c = 0; c < batch; ++c) {
    targets.clear();
    for (int64_t j = 0; j < m; ++j) {
      if (ry[c * m + j]) targets.push_back(j);
    }
    if (targets.empty()) continue;
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (rx[c * n + i]) o[c * n + i] = targets[k++ % targets.size()];
    }
  }
  return out.to(a.device());
}

}  // namespace

absl::StatusOr<MongeMapKind> ParseMongeMapKind(absl::string_view name) {
  if (name == "entropic") return MongeMapKind::kEntropic;
  if (name == "argmax") return MongeMapKind::kArgmax;
  if (name == "rounded_matching") return MongeMapKind::kRoundedMatching;
  if (name == "sample") return MongeMapKind::kSample;
  if (name == "euclidean") return MongeMapKind::kEuclidean;
  return absl::InvalidArgumentError(absl::StrCat(
      "monge_map: unknown '", name,
      "' (expected entropic, argmax, rounded_matching, sample or euclidean)"));
}

std::string MongeMapKindName(MongeMapKind kind) {
  switch (kind) {
    case MongeMapKind::kEntropic: return "entropic";
    case MongeMapKind::kArgmax: return "argmax";
    case MongeMapKind::kRoundedMatching: return "rounded_matching";
    case MongeMapKind::kSample: return "sample";
    case MongeMapKind::kEuclidean: return "euclidean";
  }
  return "unknown";
}

absl::StatusOr<at::Tensor> MongeTargets(MongeMapKind kind, const at::Tensor& x,
                                        const at::Tensor& a, const at::Tensor& y,
                                        const at::Tensor& b, const SinkhornOptions& options,
                                        std::optional<at::Generator> generator,
                                        std::optional<SinkhornSolution>* solution) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "x", 3));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(y, "y", 3));
  WFM_RETURN_IF_ERROR(CheckShape(a, "a", {x.size(0), x.size(1)}));
  WFM_RETURN_IF_ERROR(CheckShape(y, "y", {x.size(0), -1, x.size(2)}));
  WFM_RETURN_IF_ERROR(CheckShape(b, "b", {x.size(0), y.size(1)}));
  const at::Tensor keep_source = (a > 0).unsqueeze(2);
  if (kind == MongeMapKind::kEuclidean) {
    return GuardTorch("MongeTargets", [&] {
      return at::where(keep_source, GatherRows(y, IndexPairing(a, b)).to(x.scalar_type()), x);
    });
  }
  if (kind == MongeMapKind::kSample && !generator.has_value()) {
    return absl::InvalidArgumentError("monge_map: 'sample' needs a generator");
  }
  WFM_ASSIGN_OR_RETURN(SinkhornSolution sol, SolveSinkhorn(x, a, y, b, options));
  at::Tensor targets;
  if (kind == MongeMapKind::kEntropic) {
    WFM_RETURN_IF_ERROR(GuardTorch("MongeTargets", [&] { targets = sol.BarycentricMap(y); }));
  } else {
    WFM_ASSIGN_OR_RETURN(const at::Tensor plan, GuardTorch("MongeTargets", [&] { return sol.Plan(); }));
    // Target padding (b_j = 0) is never a target: its plan column is 0, but
    // a row whose entries all underflowed would otherwise pick it on a tie.
    const at::Tensor real_targets = b > 0;
    absl::StatusOr<at::Tensor> idx =
        kind == MongeMapKind::kArgmax
            ? GuardTorch("MongeTargets",
                         [&] { return plan.masked_fill(~real_targets.unsqueeze(1), -1).argmax(2); })
        : kind == MongeMapKind::kRoundedMatching ? RoundedMatching(plan, a > 0, real_targets)
                                                 : SampleFromPlan(plan, *generator);
    if (!idx.ok()) return idx.status();
    WFM_RETURN_IF_ERROR(GuardTorch("MongeTargets", [&] { targets = GatherRows(y, *idx); }));
  }
  WFM_RETURN_IF_ERROR(GuardTorch("MongeTargets", [&] { targets = at::where(keep_source, targets, x); }));
  if (solution != nullptr) *solution = std::move(sol);
  return targets;
}

}  // namespace wfm::model::ot
