#include "model/eval/metrics.h"

#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/gaussian/bures.h"
#include "model/ot/cloud_costs.h"
#include "model/ot/emd.h"

namespace wfm::model::eval {
namespace {

// Clouds of a set padded to its largest cloud: x [C,N,d], w [C,N] float64.
std::pair<at::Tensor, at::Tensor> Padded(const io::PointCloudSet& set) {
  const int64_t c = set.num_clouds();
  int64_t longest = 0;
  for (int64_t k = 0; k < c; ++k) longest = std::max(longest, set.cloud_size(k));
  at::Tensor x = at::zeros({c, longest, set.dim}, at::kDouble);
  at::Tensor w = at::zeros({c, longest}, at::kDouble);
  const at::Tensor pts =
      at::tensor(set.points, at::kFloat).view({set.num_points(), set.dim}).to(at::kDouble);
  for (int64_t k = 0; k < c; ++k) {
    const int64_t n = set.cloud_size(k);
    x[k].narrow(0, 0, n).copy_(pts.narrow(0, set.offsets[k], n));
    w[k].narrow(0, 0, n).fill_(1.0 / static_cast<double>(n));
  }
  return {x, w};
}

absl::Status CheckSets(const io::PointCloudSet& a, const io::PointCloudSet& b) {
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(a, "generated"));
  WFM_RETURN_IF_ERROR(io::ValidatePointCloudSet(b, "reference"));
  if (a.dim != b.dim) {
    return absl::InvalidArgumentError(absl::StrCat("reference: clouds have dimension ", b.dim,
                                                   ", the generated ones ", a.dim));
  }
  return absl::OkStatus();
}

std::pair<at::Tensor, at::Tensor> GaussianTensors(const io::GaussianSet& set) {
  const int64_t c = set.num_gaussians(), d = set.dim;
  return {at::tensor(set.means, at::kDouble).view({c, d}),
          at::tensor(set.covs, at::kDouble).view({c, d, d})};
}

}  // namespace

absl::StatusOr<DistributionMetrics> MetricsFromDistances(const at::Tensor& d_gg,
                                                         const at::Tensor& d_rr,
                                                         const at::Tensor& d_gr) {
  const int64_t g = d_gr.dim() == 2 ? d_gr.size(0) : 0, r = d_gr.dim() == 2 ? d_gr.size(1) : 0;
  if (g < 1 || r < 1 || g + r < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation: needs at least one generated and one reference item and three in all, got ",
        g, " and ", r));
  }
  if (d_gg.sizes() != at::IntArrayRef{g, g} || d_rr.sizes() != at::IntArrayRef{r, r}) {
    return absl::InvalidArgumentError("evaluation: distance matrices of inconsistent shapes");
  }
  return GuardTorch("MetricsFromDistances", [&] {
    const double inf = std::numeric_limits<double>::infinity();
    const at::Tensor gg = d_gg.to(at::kDouble).clone().fill_diagonal_(inf);
    const at::Tensor rr = d_rr.to(at::kDouble).clone().fill_diagonal_(inf);
    const at::Tensor gr = d_gr.to(at::kDouble);
    // An item is classified correctly when its nearest neighbour (other than
    // itself) is from its own set; ties count as wrong.
    const int64_t right_g = (std::get<0>(gg.min(1)) < std::get<0>(gr.min(1))).sum().item<int64_t>();
    const int64_t right_r = (std::get<0>(rr.min(1)) < std::get<0>(gr.min(0))).sum().item<int64_t>();
    DistributionMetrics m;
    m.one_nna = static_cast<double>(right_g + right_r) / static_cast<double>(g + r);
    m.mmd = std::get<0>(gr.min(0)).mean().item<double>();
    const at::Tensor matched = std::get<1>(gr.min(1));  // nearest reference of each generated item
    m.cov = static_cast<double>(std::get<0>(at::_unique(matched)).numel()) / static_cast<double>(r);
    return m;
  });
}

absl::StatusOr<at::Tensor> PairwiseChamfer(const io::PointCloudSet& a, const io::PointCloudSet& b) {
  WFM_RETURN_IF_ERROR(CheckSets(a, b));
  std::pair<at::Tensor, at::Tensor> pa, pb;
  WFM_RETURN_IF_ERROR(GuardTorch("PairwiseChamfer", [&] { pa = Padded(a); pb = Padded(b); }));
  return ot::PairwiseCloudCost(ot::CloudCostKind::kChamfer, pa.first, pa.second, pb.first, pb.second);
}

absl::StatusOr<at::Tensor> PairwiseEmd(const io::PointCloudSet& a, const io::PointCloudSet& b) {
  WFM_RETURN_IF_ERROR(CheckSets(a, b));
  return GuardTorch("PairwiseEmd", [&]() -> absl::StatusOr<at::Tensor> {
    const int64_t na = a.num_clouds(), nb = b.num_clouds();
    at::Tensor out = at::zeros({na, nb}, at::kDouble);
    auto cloud = [](const io::PointCloudSet& s, int64_t k) {
      const int64_t n = s.cloud_size(k);
      return at::from_blob(const_cast<float*>(s.points.data()) + s.offsets[k] * s.dim, {n, s.dim},
                           at::kFloat);
    };
    std::vector<absl::Status> failures(na * nb);
    at::parallel_for(0, na * nb, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t i = k / nb, j = k % nb;
        const at::Tensor x = cloud(a, i), y = cloud(b, j);
        auto r = ot::ExactEmd(x, at::ones({x.size(0)}, at::kFloat), y, at::ones({y.size(0)}, at::kFloat));
        if (r.ok()) {
          out.data_ptr<double>()[k] = r->cost;
        } else {
          failures[k] = r.status();
        }
      }
    });
    for (const absl::Status& s : failures) WFM_RETURN_IF_ERROR(s);
    return out;
  });
}

absl::StatusOr<PointCloudEvaluation> EvaluatePointClouds(const io::PointCloudSet& generated,
                                                         const io::PointCloudSet& reference,
                                                         bool with_emd) {
  PointCloudEvaluation e;
  e.generated = generated.num_clouds();
  e.reference = reference.num_clouds();
  WFM_ASSIGN_OR_RETURN(const at::Tensor cd_gg, PairwiseChamfer(generated, generated));
  WFM_ASSIGN_OR_RETURN(const at::Tensor cd_rr, PairwiseChamfer(reference, reference));
  WFM_ASSIGN_OR_RETURN(const at::Tensor cd_gr, PairwiseChamfer(generated, reference));
  WFM_ASSIGN_OR_RETURN(e.chamfer, MetricsFromDistances(cd_gg, cd_rr, cd_gr));
  if (with_emd) {
    WFM_ASSIGN_OR_RETURN(const at::Tensor emd_gg, PairwiseEmd(generated, generated));
    WFM_ASSIGN_OR_RETURN(const at::Tensor emd_rr, PairwiseEmd(reference, reference));
    WFM_ASSIGN_OR_RETURN(const at::Tensor emd_gr, PairwiseEmd(generated, reference));
    WFM_ASSIGN_OR_RETURN(e.emd, MetricsFromDistances(emd_gg, emd_rr, emd_gr));
    e.has_emd = true;
  }
  return e;
}

absl::StatusOr<GaussianEvaluation> EvaluateGaussians(const io::GaussianSet& generated,
                                                     const io::GaussianSet& reference) {
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(generated, "generated"));
  WFM_RETURN_IF_ERROR(io::ValidateGaussianSet(reference, "reference"));
  if (generated.dim != reference.dim) {
    return absl::InvalidArgumentError(absl::StrCat("reference: Gaussians have dimension ", reference.dim,
                                                   ", the generated ones ", generated.dim));
  }
  std::pair<at::Tensor, at::Tensor> g, r;
  WFM_RETURN_IF_ERROR(GuardTorch("EvaluateGaussians", [&] {
    g = GaussianTensors(generated);
    r = GaussianTensors(reference);
  }));
  WFM_ASSIGN_OR_RETURN(const at::Tensor d_gg, gaussian::PairwiseBuresWasserstein(g.first, g.second, g.first, g.second));
  WFM_ASSIGN_OR_RETURN(const at::Tensor d_rr, gaussian::PairwiseBuresWasserstein(r.first, r.second, r.first, r.second));
  WFM_ASSIGN_OR_RETURN(const at::Tensor d_gr, gaussian::PairwiseBuresWasserstein(g.first, g.second, r.first, r.second));
  GaussianEvaluation e;
  e.generated = generated.num_gaussians();
  e.reference = reference.num_gaussians();
  WFM_ASSIGN_OR_RETURN(e.bures, MetricsFromDistances(d_gg, d_rr, d_gr));
  WFM_RETURN_IF_ERROR(GuardTorch("EvaluateGaussians", [&] {
    e.mean_error = (g.first.mean(0) - r.first.mean(0)).norm().item<double>();
    const at::Tensor ref_cov = r.second.mean(0);
    e.covariance_error = ((g.second.mean(0) - ref_cov).norm() / ref_cov.norm()).item<double>();
  }));
  return e;
}

}  // namespace wfm::model::eval
