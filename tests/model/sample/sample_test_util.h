// Shared by the sampler tests of both families (pointcloud_model_test,
// gaussian_model_test): the ODE solvers, and the check that a request's reply
// depends only on the request, not on the requests it is batched with.
#ifndef WFM_TESTS_MODEL_SAMPLE_SAMPLE_TEST_UTIL_H_
#define WFM_TESTS_MODEL_SAMPLE_SAMPLE_TEST_UTIL_H_

#include <cstddef>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "model/sample/gaussian_model.h"
#include "model/sample/ode_solver.h"
#include "model/sample/pointcloud_model.h"
#include "tests/testing/status.h"

namespace wfm::testing {

inline constexpr model::OdeSolver kSolvers[] = {
    model::OdeSolver::kEuler, model::OdeSolver::kMidpoint, model::OdeSolver::kHeun,
    model::OdeSolver::kRk4, model::OdeSolver::kAdaptive};

// Everything a reply holds, to compare replies as a whole.
inline auto Fields(const model::GeneratedClouds& g) {
  return std::tie(g.dim, g.offsets, g.points, g.labels, g.conditions, g.trajectory,
                  g.trajectory_times, g.evaluations);
}
inline auto Fields(const model::GeneratedGaussians& g) {
  return std::tie(g.dim, g.means, g.covs, g.labels, g.conditions, g.trajectory_means,
                  g.trajectory_covs, g.trajectory_times, g.evaluations);
}

// Samples `requests` in one call (`*merged`: integrated in shared batches)
// and each request alone: every request's reply is the same either way, and
// counts its network evaluations (steps · stages for the fixed-step solvers,
// at most the cap for the adaptive one).
template <typename Model, typename Request, typename Generated>
void SampleMergedAndAlone(const Model& model, const std::vector<Request>& requests,
                          std::vector<Generated>* merged) {
  WFM_ASSERT_OK_AND_ASSIGN(*merged, model.Sample(requests));
  ASSERT_EQ(merged->size(), requests.size());
  for (size_t k = 0; k < requests.size(); ++k) {
    const Request& r = requests[k];
    SCOPED_TRACE(::testing::Message() << "request " << k << " (" << model::OdeSolverName(r.solver)
                                      << ")");
    WFM_ASSERT_OK_AND_ASSIGN(const std::vector<Generated> alone, model.Sample({r}));
    EXPECT_EQ(Fields((*merged)[k]), Fields(alone[0]));
    if (r.solver != model::OdeSolver::kAdaptive) {
      EXPECT_EQ((*merged)[k].evaluations, r.steps * model::TableauOf(r.solver).stages);
    } else {
      EXPECT_LE((*merged)[k].evaluations, model::MaxEvaluations(r.ode()));
    }
  }
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_MODEL_SAMPLE_SAMPLE_TEST_UTIL_H_
