#include "model/sample/ode_solver.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace wfm::model {
namespace {

constexpr OdeSolver kAllSolvers[] = {OdeSolver::kEuler, OdeSolver::kMidpoint, OdeSolver::kHeun,
                                     OdeSolver::kRk4, OdeSolver::kAdaptive};

ButcherTableau Euler() {
  ButcherTableau t;
  t.stages = 1;
  t.order = 1;
  t.a = {{}};
  t.b = {1.0};
  t.c = {0.0};
  return t;
}

ButcherTableau Midpoint() {
  ButcherTableau t;
  t.stages = 2;
  t.order = 2;
  t.a = {{}, {0.5}};
  t.b = {0.0, 1.0};
  t.c = {0.0, 0.5};
  return t;
}

ButcherTableau Heun() {
  ButcherTableau t;
  t.stages = 2;
  t.order = 2;
  t.a = {{}, {1.0}};
  t.b = {0.5, 0.5};
  t.c = {0.0, 1.0};
  return t;
}

ButcherTableau Rk4() {
  ButcherTableau t;
  t.stages = 4;
  t.order = 4;
  t.a = {{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}};
  t.b = {1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0};
  t.c = {0.0, 0.5, 0.5, 1.0};
  return t;
}

// Bogacki & Shampine (1989): order 3 with an embedded order-2 solution; the
// fourth stage is the velocity at the order-3 solution (first same as last).
ButcherTableau BogackiShampine() {
  ButcherTableau t;
  t.stages = 4;
  t.order = 3;
  t.a = {{}, {0.5}, {0.0, 0.75}, {2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0}};
  t.b = {2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0};
  t.c = {0.0, 0.5, 0.75, 1.0};
  t.b_low = {7.0 / 24.0, 0.25, 1.0 / 3.0, 0.125};
  return t;
}

}  // namespace

const char* OdeSolverName(OdeSolver solver) {
  switch (solver) {
    case OdeSolver::kEuler: return "euler";
    case OdeSolver::kMidpoint: return "midpoint";
    case OdeSolver::kHeun: return "heun";
    case OdeSolver::kRk4: return "rk4";
    case OdeSolver::kAdaptive: return "adaptive";
  }
  return "?";
}

std::string OdeSolverNames() {
  std::string names;
  for (OdeSolver s : kAllSolvers) absl::StrAppend(&names, names.empty() ? "" : ", ", OdeSolverName(s));
  return names;
}

absl::StatusOr<OdeSolver> ParseOdeSolver(absl::string_view name, absl::string_view field) {
  for (OdeSolver s : kAllSolvers) {
    if (name == OdeSolverName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown solver '", name, "' (expected one of ", OdeSolverNames(), ")"));
}

const ButcherTableau& TableauOf(OdeSolver solver) {
  static const ButcherTableau* const kTableaux[] = {
      new ButcherTableau(Euler()), new ButcherTableau(Midpoint()), new ButcherTableau(Heun()),
      new ButcherTableau(Rk4()), new ButcherTableau(BogackiShampine())};
  return *kTableaux[static_cast<int>(solver)];
}

absl::Status ValidateOdeSettings(const OdeSettings& s, int64_t max_steps) {
  if (s.steps < 1) return absl::InvalidArgumentError(absl::StrCat("steps: must be >= 1, got ", s.steps));
  if (s.steps > max_steps) {
    return absl::ResourceExhaustedError(
        absl::StrCat("steps: ", s.steps, " exceeds the limit of ", max_steps));
  }
  if (s.solver == OdeSolver::kAdaptive) {
    if (!(std::isfinite(s.rtol) && s.rtol >= 1e-8 && s.rtol <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rtol: must be in [1e-8, 1], got ", s.rtol));
    }
    if (!(std::isfinite(s.atol) && s.atol >= 0.0 && s.atol <= 1e3)) {
      return absl::InvalidArgumentError(absl::StrCat("atol: must be in [0, 1000], got ", s.atol));
    }
  }
  return absl::OkStatus();
}

int64_t MaxEvaluations(const OdeSettings& s) {
  if (s.solver == OdeSolver::kAdaptive) return 1 + 3 * s.steps;
  return s.steps * TableauOf(s.solver).stages;
}

namespace ode_internal {

absl::Status Cancelled() { return absl::CancelledError("sampling cancelled"); }

}  // namespace ode_internal

}  // namespace wfm::model
