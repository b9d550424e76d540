#include "model/ot/monge.h"

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
    if (x.size(1) != y.size(1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "monge_map: euclidean pairs points by index and needs clouds of equal size, got ",
          x.size(1), " and ", y.size(1)));
    }
    return GuardTorch("MongeTargets", [&] { return at::where(keep_source, y.to(x.scalar_type()), x); });
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
    absl::StatusOr<at::Tensor> idx =
        kind == MongeMapKind::kArgmax ? RowArgmax(plan)
        : kind == MongeMapKind::kRoundedMatching ? RoundedMatching(plan)
                                                 : SampleFromPlan(plan, *generator);
    if (!idx.ok()) return idx.status();
    WFM_RETURN_IF_ERROR(GuardTorch("MongeTargets", [&] { targets = GatherRows(y, *idx); }));
  }
  WFM_RETURN_IF_ERROR(GuardTorch("MongeTargets", [&] { targets = at::where(keep_source, targets, x); }));
  if (solution != nullptr) *solution = std::move(sol);
  return targets;
}

}  // namespace wfm::model::ot
