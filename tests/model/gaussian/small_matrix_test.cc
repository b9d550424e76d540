// The per-matrix kernels of model/gaussian (small_matrix.h) against LAPACK
// (at::linalg_eigh / matmul) and closed forms.
#include "model/gaussian/small_matrix.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/model/gaussian/gaussian_test_util.h"

namespace wfm::model::gaussian::internal {
namespace {

using namespace test_util;  // NOLINT(build/namespaces): the Gaussian test helpers

using Solver = std::function<void(double* a, int d, double* w, double* v)>;

struct NamedSolver {
  std::string name;
  Solver solve;
};

std::vector<NamedSolver> Solvers() {
  return {
      {"jacobi", [](double* a, int d, double* w, double* v) { JacobiEigen(a, d, w, v); }},
      {"tridiagonal_ql",
       [](double* a, int d, double* w, double* v) {
         std::vector<double> work(2 * d);
         TridiagonalEigen(a, d, w, v, work.data());
       }},
      {"small_eigen",
       [](double* a, int d, double* w, double* v) {
         std::vector<double> work(2 * d);
         SmallEigen(a, d, w, v, work.data());
       }},
  };
}

std::vector<double> ToVector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Runs `solver` on the symmetric matrix s [d,d] and checks, against LAPACK's
// eigenvalues of s: sorted eigenvalues within tol · max|λ|, residual
// |S v - λ v| <= tol · max|λ| per vector, VᵀV = I within tol.
void CheckEigensystem(const NamedSolver& solver, const at::Tensor& s, double tol,
                      const std::string& what) {
  const int d = static_cast<int>(s.size(0));
  std::vector<double> a = ToVector(s);
  std::vector<double> w(d), v(d * d);
  solver.solve(a.data(), d, w.data(), v.data());
  const at::Tensor ref = at::linalg_eigvalsh(s);
  const double scale = std::max(test_util::MaxAbs(ref), 1e-300);
  std::vector<double> sorted = w;
  std::sort(sorted.begin(), sorted.end());
  const at::Tensor got = at::tensor(sorted, F64());
  EXPECT_LE(test_util::MaxAbs(got - ref), tol * scale) << solver.name << " " << what;
  const at::Tensor vt = at::tensor(v, F64()).view({d, d});
  const at::Tensor wt = at::tensor(w, F64());
  const at::Tensor residual = at::matmul(s, vt) - vt * wt.unsqueeze(0);
  EXPECT_LE(test_util::MaxAbs(residual), tol * scale) << solver.name << " " << what;
  const at::Tensor gram = at::matmul(vt.t(), vt) - at::eye(d, F64());
  EXPECT_LE(test_util::MaxAbs(gram), tol) << solver.name << " " << what;

  // Eigenvalues-only mode gives the same eigenvalues.
  std::vector<double> a2 = ToVector(s);
  std::vector<double> w2(d);
  solver.solve(a2.data(), d, w2.data(), nullptr);
  std::sort(w2.begin(), w2.end());
  EXPECT_LE(test_util::MaxAbs(at::tensor(w2, F64()) - ref), tol * scale)
      << solver.name << " values only, " << what;
}

TEST(SmallEigenTest, RandomSymmetricMatricesMatchLapack) {
  for (const NamedSolver& solver : Solvers()) {
    for (int d = 1; d <= 40; d += (d < 10 ? 1 : 7)) {
      for (uint64_t seed = 0; seed < 12; ++seed) {
        at::Generator gen = MakeGenerator(1000 * d + seed);
        const at::Tensor g = at::randn({d, d}, gen, F64());
        const at::Tensor s = 0.5 * (g + g.t());  // indefinite
        CheckEigensystem(solver, s, 1e-12 * d,
                         "d=" + std::to_string(d) + " seed=" + std::to_string(seed));
      }
    }
  }
}

TEST(SmallEigenTest, IllConditionedSpdMatricesMatchLapack) {
  for (const NamedSolver& solver : Solvers()) {
    for (int d : {2, 3, 6, 16, 33}) {
      for (uint64_t seed = 0; seed < 8; ++seed) {
        at::Generator gen = MakeGenerator(77 + seed);
        const at::Tensor s = test_util::RandomSpd(1, d, gen, /*cond=*/1e10)[0];
        CheckEigensystem(solver, s, 1e-12 * d, "cond 1e10 d=" + std::to_string(d));
      }
    }
  }
}

TEST(SmallEigenTest, StructuredMatrices) {
  for (const NamedSolver& solver : Solvers()) {
    for (int d : {1, 2, 3, 5, 9}) {
      at::Generator gen = MakeGenerator(d);
      const at::Tensor q = test_util::RandomRotation(1, d, gen)[0];
      // Diagonal (no rotation needed), the zero matrix, a multiple of I.
      CheckEigensystem(solver, at::diag(at::arange(1, d + 1, F64())), 1e-14, "diagonal");
      CheckEigensystem(solver, at::zeros({d, d}, F64()), 1e-14, "zero");
      CheckEigensystem(solver, 3.0 * at::eye(d, F64()), 1e-14, "3 I");
      // Repeated eigenvalues in a rotated basis; rank one.
      at::Tensor lam = at::ones({d}, F64());
      lam[0] = 2.0;
      CheckEigensystem(solver, test_util::Compose(q, lam), 1e-13, "repeated");
      const at::Tensor u = at::randn({d, 1}, gen, F64());
      CheckEigensystem(solver, at::matmul(u, u.t()), 1e-13, "rank one");
      // Already tridiagonal (Householder steps are identities).
      at::Tensor t = at::diag(at::arange(1, d + 1, F64()));
      for (int i = 0; i + 1 < d; ++i) {
        t[i][i + 1] = 0.5;
        t[i + 1][i] = 0.5;
      }
      CheckEigensystem(solver, t, 1e-13, "tridiagonal");
      // Extreme scales: no overflow or underflow in the rotations.
      const at::Tensor s = test_util::RandomSpd(1, d, gen, 100.0)[0];
      CheckEigensystem(solver, 1e150 * s, 1e-12 * d, "scale 1e150");
      CheckEigensystem(solver, 1e-150 * s, 1e-12 * d, "scale 1e-150");
    }
  }
}

TEST(SmallEigenTest, JacobiKeepsRelativeAccuracyOfTinyEigenvalues) {
  // A = D H D, D = diag(1, 1e-10), H = [[1, .5], [.5, 1]]: the eigenvalues are
  // ~1 and det/1 = 0.75e-20. Jacobi resolves the tiny one to full relative
  // accuracy (an absolute-accuracy solver only to ~1e-16).
  std::vector<double> a = {1.0, 0.5e-10, 0.5e-10, 1e-20};
  std::vector<double> w(2);
  JacobiEigen(a.data(), 2, w.data(), nullptr);
  std::sort(w.begin(), w.end());
  EXPECT_NEAR(w[0] / 0.75e-20, 1.0, 1e-14);
  EXPECT_NEAR(w[1], 1.0, 1e-15);
  // The same graded structure in 3×3, against the determinant.
  std::vector<double> b = {1.0, 0.3e-8, 0.1e-12, 0.3e-8, 1e-16, 0.2e-20,
                           0.1e-12, 0.2e-20, 1e-24};
  const double det = 1.0 * (1e-16 * 1e-24 - 0.2e-20 * 0.2e-20) -
                     0.3e-8 * (0.3e-8 * 1e-24 - 0.2e-20 * 0.1e-12) +
                     0.1e-12 * (0.3e-8 * 0.2e-20 - 1e-16 * 0.1e-12);
  std::vector<double> w3(3);
  JacobiEigen(b.data(), 3, w3.data(), nullptr);
  EXPECT_NEAR(w3[0] * w3[1] * w3[2] / det, 1.0, 1e-12);
  EXPECT_GT(*std::min_element(w3.begin(), w3.end()), 0.0);
}

TEST(SmallMatrixTest, ProductsMatchLibTorch) {
  for (int d : {1, 2, 3, 7, 16}) {
    at::Generator gen = MakeGenerator(5 + d);
    const at::Tensor a = at::randn({d, d}, gen, F64());
    const at::Tensor b = at::randn({d, d}, gen, F64());
    const at::Tensor x = at::randn({d}, gen, F64());
    const std::vector<double> av = ToVector(a), bv = ToVector(b), xv = ToVector(x);
    std::vector<double> c(d * d), tmp(d * d), y(d);
    MatMul(av.data(), bv.data(), d, c.data());
    EXPECT_LE(test_util::RelError(at::tensor(c, F64()).view({d, d}), at::matmul(a, b)), 1e-14);
    MatVec(av.data(), xv.data(), d, y.data());
    EXPECT_LE(test_util::RelError(at::tensor(y, F64()), at::mv(a, x)), 1e-14);
    const at::Tensor sa = a + a.t();
    const at::Tensor sb = b + b.t();
    const std::vector<double> sav = ToVector(sa), sbv = ToVector(sb);
    Sandwich(sav.data(), sbv.data(), d, tmp.data(), c.data());
    const at::Tensor got = at::tensor(c, F64()).view({d, d});
    EXPECT_LE(test_util::RelError(got, at::matmul(at::matmul(sa, sb), sa)), 1e-13);
    EXPECT_TRUE(at::equal(got, got.t()));
    const at::Tensor f = at::randn({d}, gen, F64());
    const std::vector<double> fv = ToVector(f);
    SpectralCompose(av.data(), fv.data(), d, c.data());
    EXPECT_LE(test_util::RelError(at::tensor(c, F64()).view({d, d}),
                                at::matmul(a * f.unsqueeze(0), a.t())),
              1e-13);
  }
}

TEST(SmallMatrixTest, ScopedPerMatrixMaxDimRestores) {
  const int before = PerMatrixMaxDim();
  EXPECT_EQ(before, kDefaultPerMatrixMaxDim);
  {
    ScopedPerMatrixMaxDim force(0);
    EXPECT_EQ(PerMatrixMaxDim(), 0);
  }
  EXPECT_EQ(PerMatrixMaxDim(), before);
}

}  // namespace
}  // namespace wfm::model::gaussian::internal
