#include "model/ot/emd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <ATen/ATen.h>
// LEMON's graph containers trip GCC 12's -Wmaybe-uninitialized when inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"

namespace wfm::model::ot {
namespace {

constexpr double kQuantum = 1099511627776.0;  // 2^40

// Integer masses proportional to w (positive entries only) that sum exactly to
// 2^40: floors plus one unit for the largest remainders.
std::vector<int64_t> QuantiseMasses(const std::vector<double>& w) {
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<int64_t> q(w.size());
  std::vector<std::pair<double, size_t>> remainder(w.size());
  int64_t assigned = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double exact = w[i] / total * kQuantum;
    q[i] = static_cast<int64_t>(std::floor(exact));
    remainder[i] = {exact - static_cast<double>(q[i]), i};
    assigned += q[i];
  }
  std::sort(remainder.begin(), remainder.end(),
            [](const auto& l, const auto& r) { return l.first > r.first; });
  for (int64_t k = 0; assigned < static_cast<int64_t>(kQuantum); ++k, ++assigned) {
    ++q[remainder[static_cast<size_t>(k) % remainder.size()].second];
  }
  return q;
}

}  // namespace

absl::StatusOr<EmdResult> ExactEmd(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                                   const at::Tensor& b, bool with_plan) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "x", 2));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(y, "y", 2));
  WFM_RETURN_IF_ERROR(CheckShape(a, "a", {x.size(0)}));
  WFM_RETURN_IF_ERROR(CheckShape(b, "b", {y.size(0)}));
  WFM_RETURN_IF_ERROR(CheckShape(y, "y", {-1, x.size(1)}));
  WFM_RETURN_IF_ERROR(CheckFinite(x, "x"));
  WFM_RETURN_IF_ERROR(CheckFinite(y, "y"));
  WFM_RETURN_IF_ERROR(CheckWeights(a.unsqueeze(0), "a"));
  WFM_RETURN_IF_ERROR(CheckWeights(b.unsqueeze(0), "b"));
  return GuardTorch("ExactEmd", [&]() -> absl::StatusOr<EmdResult> {
    const at::Tensor xd = x.to(at::kDouble).contiguous(), yd = y.to(at::kDouble).contiguous();
    const at::Tensor ad = a.to(at::kDouble).contiguous(), bd = b.to(at::kDouble).contiguous();
    const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
    std::vector<int64_t> rows, cols;
    std::vector<double> wa, wb;
    for (int64_t i = 0; i < n; ++i) {
      if (ad.data_ptr<double>()[i] > 0) rows.push_back(i), wa.push_back(ad.data_ptr<double>()[i]);
    }
    for (int64_t j = 0; j < m; ++j) {
      if (bd.data_ptr<double>()[j] > 0) cols.push_back(j), wb.push_back(bd.data_ptr<double>()[j]);
    }
    const size_t ns = rows.size(), ms = cols.size();
    std::vector<double> cost(ns * ms);
    const double* xp = xd.data_ptr<double>();
    const double* yp = yd.data_ptr<double>();
    double max_cost = 0.0;
    for (size_t r = 0; r < ns; ++r) {
      for (size_t c = 0; c < ms; ++c) {
        double s = 0.0;
        for (int64_t k = 0; k < d; ++k) {
          const double diff = xp[rows[r] * d + k] - yp[cols[c] * d + k];
          s += diff * diff;
        }
        cost[r * ms + c] = s;
        max_cost = std::max(max_cost, s);
      }
    }
    const double cost_unit = max_cost > 0 ? max_cost / kQuantum : 1.0;

    lemon::SmartDigraph graph;
    graph.reserveNode(static_cast<int>(ns + ms));
    graph.reserveArc(static_cast<int>(ns * ms));
    std::vector<lemon::SmartDigraph::Node> nodes(ns + ms);
    for (auto& node : nodes) node = graph.addNode();
    lemon::SmartDigraph::ArcMap<int64_t> arc_cost(graph);
    lemon::SmartDigraph::NodeMap<int64_t> supply(graph);
    const std::vector<int64_t> qa = QuantiseMasses(wa), qb = QuantiseMasses(wb);
    for (size_t r = 0; r < ns; ++r) supply[nodes[r]] = qa[r];
    for (size_t c = 0; c < ms; ++c) supply[nodes[ns + c]] = -qb[c];
    for (size_t r = 0; r < ns; ++r) {
      for (size_t c = 0; c < ms; ++c) {
        const auto arc = graph.addArc(nodes[r], nodes[ns + c]);
        arc_cost[arc] = std::llround(cost[r * ms + c] / cost_unit);
      }
    }
    lemon::NetworkSimplex<lemon::SmartDigraph, int64_t, int64_t> simplex(graph);
    simplex.costMap(arc_cost).supplyMap(supply);
    if (simplex.run() != lemon::NetworkSimplex<lemon::SmartDigraph, int64_t, int64_t>::OPTIMAL) {
      return absl::InternalError("ExactEmd: the network simplex found no optimal flow");
    }
    EmdResult result;
    at::Tensor plan;
    if (with_plan) plan = at::zeros({n, m}, at::kDouble);
    double total = 0.0;
    int arc_index = 0;
    for (size_t r = 0; r < ns; ++r) {
      for (size_t c = 0; c < ms; ++c, ++arc_index) {
        const int64_t flow = simplex.flow(graph.arcFromId(arc_index));
        if (flow == 0) continue;
        const double mass = static_cast<double>(flow) / kQuantum;
        total += mass * cost[r * ms + c];
        if (with_plan) plan.data_ptr<double>()[rows[r] * m + cols[c]] = mass;
      }
    }
    result.cost = total;
    result.plan = plan;
    return result;
  });
}

}  // namespace wfm::model::ot

#pragma GCC diagnostic pop
