// The ODE solvers of both families' samplers: explicit Runge–Kutta schemes
// (Butcher tableaux defined once, in ode_solver.cc) and an adaptive embedded
// pair, integrating a learned velocity from t = 1 (source) to t = 0 (data).
//
// A step of size h goes from t to t − h. A family describes its flow by a
// System type (the integrator is a template on it):
//   using State = ...;    // what is integrated
//   using Tangent = ...;  // what the network predicts at a state
//   absl::StatusOr<Tangent> Velocity(const State& x, double t);
//   // x moved by h along the combination Σ w·K of stage velocities; for a
//   // vector space x − h·Σ w·K. Families on a manifold apply their own update
//   // with the combined tangent (Gaussians: S ← U S Uᵀ, U = I − h·W), so every
//   // stage state and every accepted state stays on the manifold.
//   absl::StatusOr<State> Advance(const State& x, const Terms<Tangent>& terms, double h);
//   // Adaptive only: the RMS over the state's values of
//   // (high − low) / (atol + rtol·max(|x|, |high|)).
//   double ErrorNorm(const State& x, const State& high, const State& low, double rtol,
//                    double atol) const;
//   // Frame `frame` of the trajectory (0 = the start) at time t.
//   void Record(const State& x, int64_t frame, double t);
//
// Network evaluations (NFE) count calls of Velocity: steps · stages for the
// fixed-step solvers; for `adaptive` (Bogacki–Shampine 3(2), first same as
// last) 1 + 3 · attempted steps. The adaptive step size comes from the error
// norm of the integrated state alone, so a caller that integrates each
// request on its own gets a result that no other request can change.
#ifndef WFM_MODEL_SAMPLE_ODE_SOLVER_H_
#define WFM_MODEL_SAMPLE_ODE_SOLVER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "model/common/status.h"

namespace wfm::model {

enum class OdeSolver { kEuler, kMidpoint, kHeun, kRk4, kAdaptive };

// "euler", "midpoint", "heun", "rk4", "adaptive".
const char* OdeSolverName(OdeSolver solver);
// INVALID_ARGUMENT naming `field` and the known names for anything else.
absl::StatusOr<OdeSolver> ParseOdeSolver(absl::string_view name,
                                         absl::string_view field = "solver");
// The known names, comma-separated.
std::string OdeSolverNames();

// An explicit Runge–Kutta scheme: stage i is evaluated at time t − c[i]·h at
// the state advanced along Σ_j a[i][j]·K_j; the step advances along Σ b·K.
// `b_low` (embedded pairs only) is the lower-order solution's weights.
struct ButcherTableau {
  int stages = 1;
  int order = 1;
  std::vector<std::vector<double>> a;  // a[i] has i entries
  std::vector<double> b;
  std::vector<double> c;
  std::vector<double> b_low;
};
const ButcherTableau& TableauOf(OdeSolver solver);

// Adaptive step control (defaults of the API).
inline constexpr double kDefaultRtol = 1e-3;
inline constexpr double kDefaultAtol = 1e-4;
// The adaptive solver's first step.
inline constexpr double kAdaptiveFirstStep = 0.1;

struct OdeSettings {
  OdeSolver solver = OdeSolver::kMidpoint;
  // Fixed-step solvers: the number of steps of size 1/steps. Adaptive: the
  // cap on attempted steps; the last allowed attempt goes to t = 0 whatever
  // its error estimate, so a request never spends more than 1 + 3 · steps
  // evaluations.
  int64_t steps = 100;
  double rtol = kDefaultRtol;  // adaptive only
  double atol = kDefaultAtol;  // adaptive only
};

// Field-named INVALID_ARGUMENT: steps >= 1; adaptive: rtol in [1e-8, 1],
// atol in [0, 1e3] (finite). `max_steps` (RESOURCE_EXHAUSTED beyond it) is
// the step limit of the caller.
absl::Status ValidateOdeSettings(const OdeSettings& settings, int64_t max_steps);

// A caller's solver choice onto a sampling request of either family (fields
// solver, steps, rtol, atol, ode()): an empty name keeps the request's
// solver; tolerances are taken by the adaptive solver only. Field-named
// INVALID_ARGUMENT (unknown solver, a tolerance for another solver, values
// out of range); the step limit is the model's to check.
template <typename Request>
absl::Status ApplyOdeChoice(absl::string_view solver, std::optional<double> rtol,
                            std::optional<double> atol, Request* r) {
  if (!solver.empty()) {
    absl::StatusOr<OdeSolver> parsed = ParseOdeSolver(solver);
    if (!parsed.ok()) return parsed.status();
    r->solver = *parsed;
  }
  if (r->solver != OdeSolver::kAdaptive && (rtol.has_value() || atol.has_value())) {
    return absl::InvalidArgumentError(absl::StrCat(
        rtol.has_value() ? "rtol" : "atol", ": only the adaptive solver takes a tolerance (solver is ",
        OdeSolverName(r->solver), ")"));
  }
  if (rtol.has_value()) r->rtol = *rtol;
  if (atol.has_value()) r->atol = *atol;
  return ValidateOdeSettings(r->ode(), std::numeric_limits<int64_t>::max());
}

// The most trajectory frames a request can have: steps + 1 (fixed-step:
// exactly; adaptive: accepted steps + 1 <= steps + 1).
inline int64_t MaxFrames(const OdeSettings& settings) { return settings.steps + 1; }
// Network evaluations of a fixed-step solver (steps · stages); for adaptive
// the bound 1 + 3 · steps.
int64_t MaxEvaluations(const OdeSettings& settings);

struct OdeStats {
  int64_t evaluations = 0;  // calls of Velocity
  int64_t accepted = 0;     // steps taken (trajectory frames − 1)
  int64_t rejected = 0;     // adaptive: attempts whose error was too large
};

template <typename Tangent>
using Terms = std::vector<std::pair<double, const Tangent*>>;

namespace ode_internal {

// The nonzero terms of weights · k.
template <typename Tangent>
const Terms<Tangent>& Combine(const std::vector<double>& weights, const std::vector<Tangent>& k,
                              Terms<Tangent>* terms) {
  terms->clear();
  for (size_t j = 0; j < weights.size(); ++j) {
    if (weights[j] != 0.0) terms->emplace_back(weights[j], &k[j]);
  }
  return *terms;
}

absl::Status Cancelled();

}  // namespace ode_internal

// Integrates *x from t = 1 to t = 0 with `settings` (validated). `cancelled`,
// when set, is polled before every step (CANCELLED once it returns true).
template <typename System>
absl::StatusOr<OdeStats> Integrate(System& system, typename System::State* x,
                                   const OdeSettings& settings,
                                   const std::function<bool()>& cancelled = nullptr) {
  using State = typename System::State;
  using Tangent = typename System::Tangent;
  const ButcherTableau& tab = TableauOf(settings.solver);
  OdeStats stats;
  std::vector<Tangent> k(tab.stages);
  Terms<Tangent> terms;
  system.Record(*x, 0, 1.0);
  if (settings.solver != OdeSolver::kAdaptive) {
    const double h = 1.0 / static_cast<double>(settings.steps);
    for (int64_t step = 0; step < settings.steps; ++step) {
      if (cancelled && cancelled()) return ode_internal::Cancelled();
      const double t = 1.0 - static_cast<double>(step) * h;
      for (int i = 0; i < tab.stages; ++i) {
        if (i == 0) {
          WFM_ASSIGN_OR_RETURN(k[0], system.Velocity(*x, t));
        } else {
          WFM_ASSIGN_OR_RETURN(const State xi,
                               system.Advance(*x, ode_internal::Combine(tab.a[i], k, &terms), h));
          WFM_ASSIGN_OR_RETURN(k[i], system.Velocity(xi, t - tab.c[i] * h));
        }
        ++stats.evaluations;
      }
      WFM_ASSIGN_OR_RETURN(*x, system.Advance(*x, ode_internal::Combine(tab.b, k, &terms), h));
      ++stats.accepted;
      system.Record(*x, stats.accepted, 1.0 - static_cast<double>(step + 1) * h);
    }
    return stats;
  }
  // Bogacki–Shampine 3(2): the last stage is the velocity at the accepted
  // state, the next step's first.
  const int last = tab.stages - 1;
  double t = 1.0;
  double h = kAdaptiveFirstStep;
  WFM_ASSIGN_OR_RETURN(k[0], system.Velocity(*x, t));
  ++stats.evaluations;
  for (int64_t attempt = 0; t > 0.0; ++attempt) {
    if (cancelled && cancelled()) return ode_internal::Cancelled();
    const bool forced = attempt + 1 >= settings.steps;
    if (forced || h >= t) h = t;
    for (int i = 1; i < last; ++i) {
      WFM_ASSIGN_OR_RETURN(const State xi,
                           system.Advance(*x, ode_internal::Combine(tab.a[i], k, &terms), h));
      WFM_ASSIGN_OR_RETURN(k[i], system.Velocity(xi, t - tab.c[i] * h));
      ++stats.evaluations;
    }
    WFM_ASSIGN_OR_RETURN(State high, system.Advance(*x, ode_internal::Combine(tab.b, k, &terms), h));
    const double t_next = h == t ? 0.0 : t - h;
    WFM_ASSIGN_OR_RETURN(k[last], system.Velocity(high, t_next));
    ++stats.evaluations;
    WFM_ASSIGN_OR_RETURN(const State low,
                         system.Advance(*x, ode_internal::Combine(tab.b_low, k, &terms), h));
    const double err = system.ErrorNorm(*x, high, low, settings.rtol, settings.atol);
    // Step factor from the error of the order-2 solution: (1/err)^(1/3).
    const double factor =
        std::isfinite(err) ? std::clamp(0.9 * std::pow(std::max(err, 1e-10), -1.0 / 3.0), 0.2, 5.0)
                           : 0.2;
    if (err <= 1.0 || forced) {
      *x = std::move(high);
      t = t_next;
      std::swap(k[0], k[last]);
      ++stats.accepted;
      system.Record(*x, stats.accepted, t);
      h *= factor;
    } else {
      ++stats.rejected;
      h *= std::min(factor, 1.0);
    }
  }
  return stats;
}

}  // namespace wfm::model

#endif  // WFM_MODEL_SAMPLE_ODE_SOLVER_H_
