#include "model/gaussian/spd.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"
#include "model/gaussian/batched.h"
#include "model/gaussian/small_matrix.h"

namespace wfm::model::gaussian {
namespace {

using internal::ForEachItem;

bool PerMatrix(EigenSolver solver, int64_t d) {
  switch (solver) {
    case EigenSolver::kJacobi:
    case EigenSolver::kTridiagonalQl:
      return true;
    case EigenSolver::kLapack:
      return false;
    case EigenSolver::kAuto:
      break;
  }
  return internal::UsePerMatrix(d);
}

// Eigenvalues ascending (and eigenvectors as columns when `vectors`).
std::pair<at::Tensor, at::Tensor> EigImpl(const at::Tensor& s, EigenSolver solver, bool vectors) {
  const at::NoGradGuard no_grad;  // see spd.h: no autograd history
  const int64_t batch = s.size(0);
  const int64_t d = s.size(1);
  if (!PerMatrix(solver, d)) {
    const at::Tensor sd = internal::SymmetricDouble(s);
    if (!vectors) return {at::linalg_eigvalsh(sd).to(s.scalar_type()), at::Tensor()};
    auto [w, v] = at::linalg_eigh(sd);
    return {w.to(s.scalar_type()), v.to(s.scalar_type())};
  }
  const at::Tensor sc = s.contiguous();
  at::Tensor values = at::empty({batch, d}, s.options());
  at::Tensor vecs = vectors ? at::empty({batch, d, d}, s.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "SymmetricEig", [&] {
    const scalar_t* in = sc.data_ptr<scalar_t>();
    scalar_t* out_w = values.data_ptr<scalar_t>();
    scalar_t* out_v = vectors ? vecs.data_ptr<scalar_t>() : nullptr;
    const int di = static_cast<int>(d);
    const int64_t dd = d * d;
    ForEachItem(batch, internal::CubicCost(d), 2 * dd + 3 * d, [&](int64_t i, double* work) {
      double* a = work;
      double* v = a + dd;
      double* w = v + dd;
      internal::LoadSymmetric(in + i * dd, di, a);
      double* vv = vectors ? v : nullptr;
      if (solver == EigenSolver::kJacobi) {
        internal::JacobiEigen(a, di, w, vv);
      } else if (solver == EigenSolver::kTridiagonalQl) {
        internal::TridiagonalEigen(a, di, w, vv, w + d);
      } else {
        internal::SmallEigen(a, di, w, vv, w + d);
      }
      int order[64];
      std::vector<int> big_order;
      int* idx = order;
      if (d > 64) {
        big_order.resize(d);
        idx = big_order.data();
      }
      std::iota(idx, idx + d, 0);
      std::sort(idx, idx + d, [w](int x, int y) { return w[x] < w[y]; });
      for (int k = 0; k < di; ++k) out_w[i * d + k] = static_cast<scalar_t>(w[idx[k]]);
      if (vectors) {
        scalar_t* ov = out_v + i * dd;
        for (int r = 0; r < di; ++r) {
          for (int k = 0; k < di; ++k) ov[r * d + k] = static_cast<scalar_t>(v[r * d + idx[k]]);
        }
      }
    });
  });
  return {values, vecs};
}

// V diag(map(λ)) Vᵀ per matrix; item_map works on one item's eigenvalues
// (double*), lapack_map on the eigenvalue tensor [B,d].
template <typename ItemMap, typename LapackMap>
at::Tensor MatrixFunctionImpl(const at::Tensor& s, const ItemMap& item_map,
                              const LapackMap& lapack_map) {
  const at::NoGradGuard no_grad;  // see spd.h: no autograd history
  const int64_t batch = s.size(0);
  const int64_t d = s.size(1);
  if (!internal::UsePerMatrix(d)) {
    return internal::LapackMatrixFunction(internal::SymmetricDouble(s), lapack_map)
        .to(s.scalar_type());
  }
  const at::Tensor sc = s.contiguous();
  at::Tensor out = at::empty_like(sc);
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "MatrixFunction", [&] {
    const scalar_t* in = sc.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int di = static_cast<int>(d);
    const int64_t dd = d * d;
    ForEachItem(batch, internal::CubicCost(d), dd + internal::MatrixFunctionWork(d),
                [&](int64_t i, double* work) {
      double* m = work;
      internal::LoadSymmetric(in + i * dd, di, m);
      internal::MatrixFunction(m, di, item_map, m, m + dd);
      internal::Store(m, dd, o + i * dd);
    });
  });
  return out;
}

// Per-item verdict of the covariance rule.
struct Verdict {
  enum Kind { kOk, kNonFinite, kAsymmetric, kNotPositiveDefinite } kind = kOk;
  double asymmetry = 0.0;
  double scale = 0.0;
  double smallest = 0.0;
  double largest = 0.0;
};

template <typename T>
void CheckEntries(const T* p, int64_t d, double symmetry_tol, Verdict& verdict) {
  double scale = 0.0;
  double asym = 0.0;
  for (int64_t j = 0; j < d * d; ++j) {
    if (!std::isfinite(p[j])) {
      verdict.kind = Verdict::kNonFinite;
      return;
    }
    scale = std::max(scale, std::abs(static_cast<double>(p[j])));
  }
  for (int64_t j = 0; j < d; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      asym = std::max(asym, std::abs(static_cast<double>(p[j * d + k]) -
                                     static_cast<double>(p[k * d + j])));
    }
  }
  verdict.asymmetry = asym;
  verdict.scale = scale;
  if (asym > symmetry_tol * scale) verdict.kind = Verdict::kAsymmetric;
}

void JudgeEigenvalues(double smallest, double largest, double ratio, Verdict& verdict) {
  verdict.smallest = smallest;
  verdict.largest = largest;
  if (!(largest > 0.0) || !(smallest > ratio * largest)) {
    verdict.kind = Verdict::kNotPositiveDefinite;
  }
}

std::vector<Verdict> JudgeCovariances(const at::Tensor& s, const CovarianceTolerance& tol) {
  const at::NoGradGuard no_grad;  // see spd.h: no autograd history
  const int64_t batch = s.size(0);
  const int64_t d = s.size(1);
  const int64_t dd = d * d;
  const at::Tensor sc = s.contiguous();
  std::vector<Verdict> verdicts(batch);
  const bool per_matrix = internal::UsePerMatrix(d);
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "ValidateCovariances", [&] {
    const scalar_t* in = sc.data_ptr<scalar_t>();
    const int di = static_cast<int>(d);
    ForEachItem(batch, per_matrix ? internal::CubicCost(d) : dd, dd + 3 * d,
                [&](int64_t i, double* work) {
                  Verdict& v = verdicts[i];
                  CheckEntries(in + i * dd, d, tol.symmetry, v);
                  if (v.kind != Verdict::kOk || !per_matrix) return;
                  double* a = work;
                  double* w = a + dd;
                  internal::LoadSymmetric(in + i * dd, di, a);
                  internal::SmallEigen(a, di, w, nullptr, w + d);
                  JudgeEigenvalues(*std::min_element(w, w + d), *std::max_element(w, w + d),
                                   tol.min_eigenvalue_ratio, v);
                });
  });
  if (!per_matrix) {
    std::vector<int64_t> candidates;
    for (int64_t i = 0; i < batch; ++i) {
      if (verdicts[i].kind == Verdict::kOk) candidates.push_back(i);
    }
    if (!candidates.empty()) {
      const at::Tensor index = at::tensor(candidates, at::kLong);
      const at::Tensor w =
          at::linalg_eigvalsh(internal::SymmetricDouble(sc.index_select(0, index))).contiguous();
      const double* pw = w.data_ptr<double>();
      for (size_t c = 0; c < candidates.size(); ++c) {
        JudgeEigenvalues(pw[c * d], pw[c * d + d - 1], tol.min_eigenvalue_ratio,
                         verdicts[candidates[c]]);
      }
    }
  }
  return verdicts;
}

absl::Status CheckTolerance(const CovarianceTolerance& tol) {
  if (!(tol.symmetry >= 0.0) || !std::isfinite(tol.symmetry)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tolerance.symmetry: must be finite and >= 0, got ", tol.symmetry));
  }
  if (!(tol.min_eigenvalue_ratio >= 0.0 && tol.min_eigenvalue_ratio < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tolerance.min_eigenvalue_ratio: must be within [0, 1), got ", tol.min_eigenvalue_ratio));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> SymmetricEig(const at::Tensor& s,
                                                               EigenSolver solver) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(s, "S"));
  return GuardTorch("SymmetricEig", [&] { return EigImpl(s, solver, true); });
}

absl::StatusOr<at::Tensor> SymmetricEigenvalues(const at::Tensor& s, EigenSolver solver) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(s, "S"));
  return GuardTorch("SymmetricEigenvalues", [&] { return EigImpl(s, solver, false).first; });
}

absl::StatusOr<at::Tensor> SqrtSpd(const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(s, "S"));
  return GuardTorch("SqrtSpd", [&] {
    return MatrixFunctionImpl(s, internal::SqrtEigenvalues, internal::SqrtEigenvaluesTensor);
  });
}

absl::StatusOr<at::Tensor> InvSqrtSpd(const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(s, "S"));
  return GuardTorch("InvSqrtSpd", [&] {
    return MatrixFunctionImpl(s, internal::InvSqrtEigenvalues,
                              internal::InvSqrtEigenvaluesTensor);
  });
}

absl::StatusOr<at::Tensor> ProjectSpd(const at::Tensor& s, const EigenvalueFloor& floor) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(s, "S"));
  if (!(floor.relative >= 0.0) || !std::isfinite(floor.relative)) {
    return absl::InvalidArgumentError(
        absl::StrCat("floor.relative: must be finite and >= 0, got ", floor.relative));
  }
  if (!(floor.absolute >= 0.0) || !std::isfinite(floor.absolute)) {
    return absl::InvalidArgumentError(
        absl::StrCat("floor.absolute: must be finite and >= 0, got ", floor.absolute));
  }
  const double rel = floor.relative;
  const double abs_floor = floor.absolute;
  auto item_map = [rel, abs_floor](const double* w, int d, double* f) {
    double mean_abs = 0.0;
    for (int k = 0; k < d; ++k) mean_abs += std::abs(w[k]);
    mean_abs /= d;
    const double lo = std::max(rel * mean_abs, abs_floor);
    for (int k = 0; k < d; ++k) f[k] = std::max(w[k], lo);
  };
  auto lapack_map = [rel, abs_floor](const at::Tensor& w) {
    const at::Tensor lo = (rel * w.abs().mean(-1, /*keepdim=*/true)).clamp_min(abs_floor);
    return w.maximum(lo);
  };
  return GuardTorch("ProjectSpd", [&] { return MatrixFunctionImpl(s, item_map, lapack_map); });
}

absl::Status ValidateCovariances(const at::Tensor& s, absl::string_view name,
                                 const CovarianceTolerance& tolerance) {
  WFM_RETURN_IF_ERROR(CheckTolerance(tolerance));
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, name));
  WFM_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts,
                       GuardTorch("ValidateCovariances",
                                  [&] { return JudgeCovariances(s, tolerance); }));
  for (size_t i = 0; i < verdicts.size(); ++i) {
    const Verdict& v = verdicts[i];
    switch (v.kind) {
      case Verdict::kOk:
        continue;
      case Verdict::kNonFinite:
        return absl::InvalidArgumentError(
            absl::StrCat(name, "[", i, "]: values must be finite (found NaN or inf)"));
      case Verdict::kAsymmetric:
        return absl::InvalidArgumentError(absl::StrCat(
            name, "[", i, "]: not symmetric (max |S - S^T| ", v.asymmetry, " > ",
            tolerance.symmetry, " x max |S| ", v.scale, ")"));
      case Verdict::kNotPositiveDefinite:
        return absl::InvalidArgumentError(absl::StrCat(
            name, "[", i, "]: not positive definite (smallest eigenvalue ", v.smallest,
            ", largest ", v.largest, "; the smallest must exceed ",
            tolerance.min_eigenvalue_ratio, " x the largest)"));
    }
  }
  return absl::OkStatus();
}

void SymmetrizeInPlace(double* s, int64_t d) { internal::Symmetrize(s, static_cast<int>(d)); }

absl::StatusOr<at::Tensor> IsSpd(const at::Tensor& s, const CovarianceTolerance& tolerance) {
  WFM_RETURN_IF_ERROR(CheckTolerance(tolerance));
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, "S"));
  return GuardTorch("IsSpd", [&] {
    const std::vector<Verdict> verdicts = JudgeCovariances(s, tolerance);
    at::Tensor ok = at::empty({static_cast<int64_t>(verdicts.size())}, at::kBool);
    bool* p = ok.data_ptr<bool>();
    for (size_t i = 0; i < verdicts.size(); ++i) p[i] = verdicts[i].kind == Verdict::kOk;
    return ok;
  });
}

}  // namespace wfm::model::gaussian
