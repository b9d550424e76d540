#include "model/gaussian/bures.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/gaussian/batched.h"
#include "model/gaussian/small_matrix.h"

namespace wfm::model::gaussian {
namespace {

using internal::CubicCost;
using internal::ForEachItem;
using internal::LapackMatrixFunction;
using internal::SymmetricDouble;

// |μ| <= kPinvRelativeTolerance · max|μ| counts as a zero eigenvalue of M in
// RiemannianVelocity.
constexpr double kPinvRelativeTolerance = 1e-12;

// Rows of the pairwise LAPACK path are processed in chunks of at most this
// many float64 matrix entries ([k,Q,d,d]).
constexpr int64_t kPairwiseChunkEntries = int64_t{1} << 22;

at::Tensor Eye(int64_t d) { return at::eye(d, at::TensorOptions().dtype(at::kDouble)); }

at::Tensor Sym(const at::Tensor& x) { return 0.5 * (x + x.transpose(-1, -2)); }

at::Tensor MatVecT(const at::Tensor& a, const at::Tensor& x) {
  return at::matmul(a, x.unsqueeze(-1)).squeeze(-1);
}

at::Tensor PathParameter(const at::Tensor& s) { return s.to(at::kDouble).contiguous(); }

// ------------------------------------------------------------ per-item kernels

// Monge map of one pair; work holds 8d² + 8d doubles.
void MongeItem(const double* s0, const double* s1, const double* m0, const double* m1, int d,
               double* a, double* b, double* work) {
  const int dd = d * d;
  double* s1h = work;
  double* inner = s1h + dd;
  double* tmp = inner + dd;
  double* v = tmp + dd;
  double* w = v + dd;
  double* f = w + d;
  double* mf_work = f + d;  // 2d² + 4d
  internal::MatrixFunction(s1, d, internal::SqrtEigenvalues, s1h, mf_work);
  internal::Sandwich(s1h, s0, d, tmp, inner);
  internal::SmallEigen(inner, d, w, v, mf_work);
  internal::InvSqrtEigenvalues(w, d, f);
  // A = S1h V diag(f) Vᵀ S1h = W diag(f) Wᵀ with W = S1h V.
  internal::MatMul(s1h, v, d, tmp);
  internal::SpectralCompose(tmp, f, d, a);
  internal::MatVec(a, m0, d, b);
  for (int k = 0; k < d; ++k) b[k] = m1[k] - b[k];
}

// tr (S0^{1/2} S1 S0^{1/2})^{1/2} from s0h = S0^{1/2} and S1; work holds
// 2d² + 3d doubles.
double TraceSqrtTerm(const double* s0h, const double* s1, int d, double* work) {
  const int dd = d * d;
  double* x = work;
  double* tmp = x + dd;
  double* w = tmp + dd;
  internal::Sandwich(s0h, s1, d, tmp, x);
  internal::SmallEigen(x, d, w, nullptr, w + d);
  double sum = 0.0;
  for (int k = 0; k < d; ++k) sum += w[k] > 0.0 ? std::sqrt(w[k]) : 0.0;
  return sum;
}

double Trace(const double* s, int d) {
  double t = 0.0;
  for (int k = 0; k < d; ++k) t += s[k * d + k];
  return t;
}

double SquaredDistance(const double* x, const double* y, int d) {
  double t = 0.0;
  for (int k = 0; k < d; ++k) {
    const double diff = x[k] - y[k];
    t += diff * diff;
  }
  return t;
}

// ----------------------------------------------------------------- LAPACK path

std::pair<at::Tensor, at::Tensor> MongeLapack(const at::Tensor& m0, const at::Tensor& s0,
                                              const at::Tensor& m1, const at::Tensor& s1) {
  const at::Tensor s1h = LapackMatrixFunction(SymmetricDouble(s1), internal::SqrtEigenvaluesTensor);
  const at::Tensor inner = Sym(at::matmul(at::matmul(s1h, SymmetricDouble(s0)), s1h));
  const at::Tensor q = LapackMatrixFunction(inner, internal::InvSqrtEigenvaluesTensor);
  const at::Tensor a = Sym(at::matmul(at::matmul(s1h, q), s1h));
  const at::Tensor b = m1.to(at::kDouble) - MatVecT(a, m0.to(at::kDouble));
  return {a.to(m0.scalar_type()), b.to(m0.scalar_type())};
}

at::Tensor BuresLapack(const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& m1,
                       const at::Tensor& s1) {
  const at::Tensor s0d = SymmetricDouble(s0);
  const at::Tensor s1d = SymmetricDouble(s1);
  const at::Tensor s0h = LapackMatrixFunction(s0d, internal::SqrtEigenvaluesTensor);
  const at::Tensor x = Sym(at::matmul(at::matmul(s0h, s1d), s0h));
  const at::Tensor root = at::linalg_eigvalsh(x).clamp_min(0.0).sqrt().sum(-1);
  const at::Tensor mean = (m0.to(at::kDouble) - m1.to(at::kDouble)).square().sum(-1);
  const at::Tensor tr = s0d.diagonal(0, -2, -1).sum(-1) + s1d.diagonal(0, -2, -1).sum(-1);
  return (mean + tr - 2.0 * root).clamp_min(0.0).to(m0.scalar_type());
}

at::Tensor PairwiseLapack(const at::Tensor& m_a, const at::Tensor& s_a, const at::Tensor& m_b,
                          const at::Tensor& s_b) {
  const int64_t p = s_a.size(0);
  const int64_t q = s_b.size(0);
  const int64_t d = s_a.size(1);
  if (p == 0 || q == 0) return at::zeros({p, q}, m_a.options());
  const at::Tensor sad = SymmetricDouble(s_a);
  const at::Tensor sbd = SymmetricDouble(s_b);
  const at::Tensor ra = LapackMatrixFunction(sad, internal::SqrtEigenvaluesTensor);
  const at::Tensor tra = sad.diagonal(0, -2, -1).sum(-1);
  const at::Tensor trb = sbd.diagonal(0, -2, -1).sum(-1);
  const at::Tensor mean =
      (m_a.to(at::kDouble).unsqueeze(1) - m_b.to(at::kDouble).unsqueeze(0)).square().sum(-1);
  const int64_t rows = std::max<int64_t>(1, kPairwiseChunkEntries / std::max<int64_t>(1, q * d * d));
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < p; start += rows) {
    const int64_t k = std::min(rows, p - start);
    const at::Tensor r = ra.narrow(0, start, k).unsqueeze(1);  // [k,1,d,d]
    const at::Tensor x = Sym(at::matmul(at::matmul(r, sbd.unsqueeze(0)), r));
    parts.push_back(at::linalg_eigvalsh(x).clamp_min(0.0).sqrt().sum(-1));  // [k,Q]
  }
  const at::Tensor root = at::cat(parts, 0);
  const at::Tensor dist = mean + tra.unsqueeze(1) + trb.unsqueeze(0) - 2.0 * root;
  return dist.clamp_min(0.0).to(m_a.scalar_type());
}

// -------------------------------------------------------------- checks

absl::Status CheckGaussians(const at::Tensor& m, absl::string_view m_name, const at::Tensor& s,
                            absl::string_view s_name) {
  WFM_RETURN_IF_ERROR(internal::CheckMatrices(s, s_name));
  WFM_RETURN_IF_ERROR(internal::CheckVectors(m, m_name, s.size(0), s.size(1), s, s_name));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(m, m_name));
  return internal::CheckFiniteItems(s, s_name);
}

// Pair of Gaussian batches of the same size, dimension and dtype.
absl::Status CheckGaussianPairs(const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& m1,
                                const at::Tensor& s1) {
  WFM_RETURN_IF_ERROR(CheckGaussians(m0, "m0", s0, "S0"));
  WFM_RETURN_IF_ERROR(internal::CheckMatricesLike(s1, "S1", s0.size(0), s0.size(1), s0, "S0"));
  WFM_RETURN_IF_ERROR(CheckGaussians(m1, "m1", s1, "S1"));
  return absl::OkStatus();
}

absl::Status CheckPathArguments(const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a,
                                const at::Tensor& b, const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(CheckGaussians(m0, "m0", s0, "S0"));
  const int64_t batch = s0.size(0);
  const int64_t d = s0.size(1);
  WFM_RETURN_IF_ERROR(internal::CheckMatricesLike(a, "A", batch, d, s0, "S0"));
  WFM_RETURN_IF_ERROR(internal::CheckVectors(b, "b", batch, d, s0, "S0"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(a, "A"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(b, "b"));
  return internal::CheckPathParameter(s, "s", batch);
}

enum class PathOutput { kInterpolate, kEuclidean, kRiemannian };

std::pair<at::Tensor, at::Tensor> PathImpl(PathOutput what, const at::Tensor& m0,
                                           const at::Tensor& s0, const at::Tensor& a,
                                           const at::Tensor& b, const at::Tensor& s) {
  const at::NoGradGuard no_grad;  // see bures.h: no autograd history
  const int64_t batch = s0.size(0);
  const int64_t d = s0.size(1);
  const at::Tensor sd = PathParameter(s);
  if (!internal::UsePerMatrix(d)) {
    const at::Tensor m0d = m0.to(at::kDouble);
    const at::Tensor s0d = SymmetricDouble(s0);
    const at::Tensor ad = SymmetricDouble(a);
    const at::Tensor bd = b.to(at::kDouble);
    const at::Tensor eye = Eye(d);
    const at::Tensor s1 = sd.view({batch, 1});
    const at::Tensor s2 = sd.view({batch, 1, 1});
    const at::Tensor am0 = MatVecT(ad, m0d) + bd;
    at::Tensor first;
    at::Tensor second;
    if (what == PathOutput::kInterpolate) {
      const at::Tensor m = (1.0 - s2) * eye + s2 * ad;
      first = (1.0 - s1) * m0d + s1 * am0;
      second = Sym(at::matmul(at::matmul(m, s0d), m));
    } else if (what == PathOutput::kEuclidean) {
      const at::Tensor m = (1.0 - s2) * eye + s2 * ad;
      first = am0 - m0d;
      const at::Tensor x = at::matmul(at::matmul(ad - eye, s0d), m);
      second = x + x.transpose(-1, -2);
    } else {
      first = am0 - m0d;
      auto [ev, u] = at::linalg_eigh(ad);
      const at::Tensor mu = (1.0 - s1) + s1 * ev;
      const at::Tensor top = std::get<0>(mu.abs().max(-1, /*keepdim=*/true));
      const at::Tensor coef = at::where(mu.abs() > kPinvRelativeTolerance * top, (ev - 1.0) / mu,
                                        at::zeros_like(mu));
      second = Sym(at::matmul(u * coef.unsqueeze(-2), u.transpose(-1, -2)));
    }
    return {first.to(m0.scalar_type()), second.to(m0.scalar_type())};
  }
  const at::Tensor m0c = m0.contiguous();
  const at::Tensor s0c = s0.contiguous();
  const at::Tensor ac = a.contiguous();
  const at::Tensor bc = b.contiguous();
  at::Tensor first = at::empty({batch, d}, m0.options());
  at::Tensor second = at::empty({batch, d, d}, m0.options());
  AT_DISPATCH_FLOATING_TYPES(m0.scalar_type(), "McCannPath", [&] {
    const scalar_t* pm0 = m0c.data_ptr<scalar_t>();
    const scalar_t* ps0 = s0c.data_ptr<scalar_t>();
    const scalar_t* pa = ac.data_ptr<scalar_t>();
    const scalar_t* pb = bc.data_ptr<scalar_t>();
    const double* ps = sd.data_ptr<double>();
    scalar_t* o1 = first.data_ptr<scalar_t>();
    scalar_t* o2 = second.data_ptr<scalar_t>();
    const int di = static_cast<int>(d);
    const int64_t dd = d * d;
    ForEachItem(batch, CubicCost(d), 6 * dd + 6 * d, [&](int64_t i, double* work) {
      double* am = work;          // A (symmetric part)
      double* sm = am + dd;       // S0, or U of A's eigensystem
      double* mm = sm + dd;       // M
      double* tmp = mm + dd;
      double* out = tmp + dd;
      double* vec = out + dd;     // m0, then A m0 + b, then the output vector
      double* w = vec + 2 * d;
      double* f = w + d;
      const double t = ps[i];
      internal::LoadSymmetric(pa + i * dd, di, am);
      internal::Load(pm0 + i * d, d, vec);
      internal::MatVec(am, vec, di, vec + d);
      for (int k = 0; k < di; ++k) vec[d + k] += static_cast<double>(pb[i * d + k]);
      // vec = m0, vec + d = A m0 + b.
      if (what == PathOutput::kInterpolate) {
        for (int k = 0; k < di; ++k) vec[k] = (1.0 - t) * vec[k] + t * vec[d + k];
      } else {
        for (int k = 0; k < di; ++k) vec[k] = vec[d + k] - vec[k];
      }
      internal::Store(vec, d, o1 + i * d);
      if (what == PathOutput::kRiemannian) {
        internal::SmallEigen(am, di, w, sm, f + d);
        double top = 0.0;
        for (int k = 0; k < di; ++k) top = std::max(top, std::abs((1.0 - t) + t * w[k]));
        for (int k = 0; k < di; ++k) {
          const double mu = (1.0 - t) + t * w[k];
          f[k] = std::abs(mu) > kPinvRelativeTolerance * top ? (w[k] - 1.0) / mu : 0.0;
        }
        internal::SpectralCompose(sm, f, di, out);
        internal::Store(out, dd, o2 + i * dd);
        return;
      }
      internal::LoadSymmetric(ps0 + i * dd, di, sm);
      for (int64_t k = 0; k < dd; ++k) mm[k] = t * am[k];
      for (int k = 0; k < di; ++k) mm[k * d + k] += 1.0 - t;
      if (what == PathOutput::kInterpolate) {
        internal::Sandwich(mm, sm, di, tmp, out);
      } else {
        // X = (A - I) S0 M; dS/ds = X + Xᵀ (A, S0, M symmetric).
        for (int k = 0; k < di; ++k) am[k * d + k] -= 1.0;
        internal::MatMul(am, sm, di, tmp);
        internal::MatMul(tmp, mm, di, out);
        for (int r = 0; r < di; ++r) {
          for (int c = 0; c <= r; ++c) {
            const double x = out[r * d + c] + out[c * d + r];
            out[r * d + c] = x;
            out[c * d + r] = x;
          }
        }
      }
      internal::Store(out, dd, o2 + i * dd);
    });
  });
  return {first, second};
}

}  // namespace

namespace unchecked {

std::pair<at::Tensor, at::Tensor> GaussianMongeMap(const at::Tensor& m0, const at::Tensor& s0,
                                                   const at::Tensor& m1, const at::Tensor& s1) {
  const at::NoGradGuard no_grad;  // see bures.h: no autograd history
  const int64_t batch = s0.size(0);
  const int64_t d = s0.size(1);
  if (!internal::UsePerMatrix(d)) return MongeLapack(m0, s0, m1, s1);
  const at::Tensor m0c = m0.contiguous();
  const at::Tensor s0c = s0.contiguous();
  const at::Tensor m1c = m1.contiguous();
  const at::Tensor s1c = s1.contiguous();
  at::Tensor a = at::empty({batch, d, d}, s0.options());
  at::Tensor b = at::empty({batch, d}, s0.options());
  AT_DISPATCH_FLOATING_TYPES(s0.scalar_type(), "GaussianMongeMap", [&] {
    const scalar_t* pm0 = m0c.data_ptr<scalar_t>();
    const scalar_t* ps0 = s0c.data_ptr<scalar_t>();
    const scalar_t* pm1 = m1c.data_ptr<scalar_t>();
    const scalar_t* ps1 = s1c.data_ptr<scalar_t>();
    scalar_t* pa = a.data_ptr<scalar_t>();
    scalar_t* pb = b.data_ptr<scalar_t>();
    const int di = static_cast<int>(d);
    const int64_t dd = d * d;
    ForEachItem(batch, 2 * CubicCost(d), 11 * dd + 11 * d, [&](int64_t i, double* work) {
      double* ls0 = work;
      double* ls1 = ls0 + dd;
      double* la = ls1 + dd;
      double* lm0 = la + dd;
      double* lm1 = lm0 + d;
      double* lb = lm1 + d;
      double* rest = lb + d;  // 8d² + 8d
      internal::LoadSymmetric(ps0 + i * dd, di, ls0);
      internal::LoadSymmetric(ps1 + i * dd, di, ls1);
      internal::Load(pm0 + i * d, d, lm0);
      internal::Load(pm1 + i * d, d, lm1);
      MongeItem(ls0, ls1, lm0, lm1, di, la, lb, rest);
      internal::Store(la, dd, pa + i * dd);
      internal::Store(lb, d, pb + i * d);
    });
  });
  return {a, b};
}

std::pair<at::Tensor, at::Tensor> McCannInterpolate(const at::Tensor& m0, const at::Tensor& s0,
                                                    const at::Tensor& a, const at::Tensor& b,
                                                    const at::Tensor& s) {
  return PathImpl(PathOutput::kInterpolate, m0, s0, a, b, s);
}

std::pair<at::Tensor, at::Tensor> EuclideanVelocity(const at::Tensor& m0, const at::Tensor& s0,
                                                    const at::Tensor& a, const at::Tensor& b,
                                                    const at::Tensor& s) {
  return PathImpl(PathOutput::kEuclidean, m0, s0, a, b, s);
}

std::pair<at::Tensor, at::Tensor> RiemannianVelocity(const at::Tensor& m0, const at::Tensor& s0,
                                                     const at::Tensor& a, const at::Tensor& b,
                                                     const at::Tensor& s) {
  return PathImpl(PathOutput::kRiemannian, m0, s0, a, b, s);
}

at::Tensor BuresWassersteinDistanceSquared(const at::Tensor& m0, const at::Tensor& s0,
                                           const at::Tensor& m1, const at::Tensor& s1) {
  const at::NoGradGuard no_grad;  // see bures.h: no autograd history
  const int64_t batch = s0.size(0);
  const int64_t d = s0.size(1);
  if (!internal::UsePerMatrix(d)) return BuresLapack(m0, s0, m1, s1);
  const at::Tensor m0c = m0.contiguous();
  const at::Tensor s0c = s0.contiguous();
  const at::Tensor m1c = m1.contiguous();
  const at::Tensor s1c = s1.contiguous();
  at::Tensor out = at::empty({batch}, s0.options());
  AT_DISPATCH_FLOATING_TYPES(s0.scalar_type(), "BuresWassersteinDistanceSquared", [&] {
    const scalar_t* pm0 = m0c.data_ptr<scalar_t>();
    const scalar_t* ps0 = s0c.data_ptr<scalar_t>();
    const scalar_t* pm1 = m1c.data_ptr<scalar_t>();
    const scalar_t* ps1 = s1c.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    const int di = static_cast<int>(d);
    const int64_t dd = d * d;
    ForEachItem(batch, 2 * CubicCost(d), 8 * dd + 6 * d, [&](int64_t i, double* work) {
      double* ls0 = work;
      double* ls1 = ls0 + dd;
      double* s0h = ls1 + dd;
      double* lm0 = s0h + dd;
      double* lm1 = lm0 + d;
      double* rest = lm1 + d;  // max(2d² + 4d, 2d² + 3d)
      internal::LoadSymmetric(ps0 + i * dd, di, ls0);
      internal::LoadSymmetric(ps1 + i * dd, di, ls1);
      internal::Load(pm0 + i * d, d, lm0);
      internal::Load(pm1 + i * d, d, lm1);
      internal::MatrixFunction(ls0, di, internal::SqrtEigenvalues, s0h, rest);
      const double root = TraceSqrtTerm(s0h, ls1, di, rest);
      const double dist =
          SquaredDistance(lm0, lm1, di) + Trace(ls0, di) + Trace(ls1, di) - 2.0 * root;
      po[i] = static_cast<scalar_t>(std::max(dist, 0.0));
    });
  });
  return out;
}

at::Tensor PairwiseBuresWasserstein(const at::Tensor& m_a, const at::Tensor& s_a,
                                    const at::Tensor& m_b, const at::Tensor& s_b) {
  const at::NoGradGuard no_grad;  // see bures.h: no autograd history
  const int64_t p = s_a.size(0);
  const int64_t q = s_b.size(0);
  const int64_t d = s_a.size(1);
  if (!internal::UsePerMatrix(d)) return PairwiseLapack(m_a, s_a, m_b, s_b);
  const int64_t dd = d * d;
  const int di = static_cast<int>(d);
  at::Tensor out = at::empty({p, q}, m_a.options());
  // Both sets in float64: the square roots of A, B symmetrised, the traces.
  std::vector<double> ra(p * dd), tra(p), ma(p * d), sb(q * dd), trb(q), mb(q * d);
  AT_DISPATCH_FLOATING_TYPES(s_a.scalar_type(), "PairwiseBuresWasserstein", [&] {
    const at::Tensor mac = m_a.contiguous();
    const at::Tensor sac = s_a.contiguous();
    const at::Tensor mbc = m_b.contiguous();
    const at::Tensor sbc = s_b.contiguous();
    const scalar_t* pma = mac.data_ptr<scalar_t>();
    const scalar_t* psa = sac.data_ptr<scalar_t>();
    const scalar_t* pmb = mbc.data_ptr<scalar_t>();
    const scalar_t* psb = sbc.data_ptr<scalar_t>();
    ForEachItem(p, CubicCost(d), 3 * dd + 4 * d, [&](int64_t i, double* work) {
      double* sym = work;
      internal::LoadSymmetric(psa + i * dd, di, sym);
      tra[i] = Trace(sym, di);
      internal::MatrixFunction(sym, di, internal::SqrtEigenvalues, ra.data() + i * dd,
                               sym + dd);
      internal::Load(pma + i * d, d, ma.data() + i * d);
    });
    for (int64_t j = 0; j < q; ++j) {
      internal::LoadSymmetric(psb + j * dd, di, sb.data() + j * dd);
      trb[j] = Trace(sb.data() + j * dd, di);
      internal::Load(pmb + j * d, d, mb.data() + j * d);
    }
    scalar_t* po = out.data_ptr<scalar_t>();
    ForEachItem(p * q, CubicCost(d), 2 * dd + 3 * d, [&](int64_t k, double* work) {
      const int64_t i = k / q;
      const int64_t j = k % q;
      const double root = TraceSqrtTerm(ra.data() + i * dd, sb.data() + j * dd, di, work);
      const double dist = SquaredDistance(ma.data() + i * d, mb.data() + j * d, di) + tra[i] +
                          trb[j] - 2.0 * root;
      po[k] = static_cast<scalar_t>(std::max(dist, 0.0));
    });
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> WeightedMeanCovariance(const at::Tensor& x, const at::Tensor& w,
                                                         double ridge) {
  const at::NoGradGuard no_grad;  // see bures.h: no autograd history
  const int64_t batch = x.size(0);
  const int64_t n = x.size(1);
  const int64_t d = x.size(2);
  const int64_t dd = d * d;
  const at::Tensor xc = x.contiguous();
  const at::Tensor wc = w.to(at::kDouble).contiguous();
  at::Tensor mean = at::empty({batch, d}, x.options());
  at::Tensor cov = at::empty({batch, d, d}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "WeightedMeanCovariance", [&] {
    const scalar_t* px = xc.data_ptr<scalar_t>();
    const double* pw = wc.data_ptr<double>();
    scalar_t* pm = mean.data_ptr<scalar_t>();
    scalar_t* pc = cov.data_ptr<scalar_t>();
    ForEachItem(batch, n * (dd + d) + 1, dd + 2 * d, [&](int64_t b, double* work) {
      double* c = work;
      double* mu = c + dd;
      double* diff = mu + d;
      const scalar_t* xb = px + b * n * d;
      const double* wb = pw + b * n;
      double total = 0.0;
      std::fill(mu, mu + d, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        if (!(wb[i] > 0)) continue;
        const double wi = wb[i];
        total += wi;
        for (int64_t k = 0; k < d; ++k) mu[k] += wi * static_cast<double>(xb[i * d + k]);
      }
      for (int64_t k = 0; k < d; ++k) mu[k] /= total;
      std::fill(c, c + dd, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        if (!(wb[i] > 0)) continue;
        const double wi = wb[i];
        for (int64_t k = 0; k < d; ++k) diff[k] = static_cast<double>(xb[i * d + k]) - mu[k];
        for (int64_t r = 0; r < d; ++r) {
          const double wr = wi * diff[r];
          double* row = c + r * d;
          for (int64_t k = 0; k <= r; ++k) row[k] += wr * diff[k];
        }
      }
      for (int64_t r = 0; r < d; ++r) {
        for (int64_t k = 0; k <= r; ++k) {
          double v = c[r * d + k] / total;
          if (k == r) v += ridge;
          pc[b * dd + r * d + k] = static_cast<scalar_t>(v);
          pc[b * dd + k * d + r] = static_cast<scalar_t>(v);
        }
      }
      internal::Store(mu, d, pm + b * d);
    });
  });
  return {mean, cov};
}

}  // namespace unchecked

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> GaussianMongeMap(const at::Tensor& m0,
                                                                   const at::Tensor& s0,
                                                                   const at::Tensor& m1,
                                                                   const at::Tensor& s1) {
  WFM_RETURN_IF_ERROR(CheckGaussianPairs(m0, s0, m1, s1));
  return GuardTorch("GaussianMongeMap", [&] { return unchecked::GaussianMongeMap(m0, s0, m1, s1); });
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> McCannInterpolate(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(CheckPathArguments(m0, s0, a, b, s));
  return GuardTorch("McCannInterpolate",
                    [&] { return unchecked::McCannInterpolate(m0, s0, a, b, s); });
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> EuclideanVelocity(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(CheckPathArguments(m0, s0, a, b, s));
  return GuardTorch("EuclideanVelocity",
                    [&] { return unchecked::EuclideanVelocity(m0, s0, a, b, s); });
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> RiemannianVelocity(
    const at::Tensor& m0, const at::Tensor& s0, const at::Tensor& a, const at::Tensor& b,
    const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(CheckPathArguments(m0, s0, a, b, s));
  return GuardTorch("RiemannianVelocity",
                    [&] { return unchecked::RiemannianVelocity(m0, s0, a, b, s); });
}

absl::StatusOr<at::Tensor> BuresWassersteinDistanceSquared(const at::Tensor& m0,
                                                           const at::Tensor& s0,
                                                           const at::Tensor& m1,
                                                           const at::Tensor& s1) {
  WFM_RETURN_IF_ERROR(CheckGaussianPairs(m0, s0, m1, s1));
  return GuardTorch("BuresWassersteinDistanceSquared",
                    [&] { return unchecked::BuresWassersteinDistanceSquared(m0, s0, m1, s1); });
}

absl::StatusOr<at::Tensor> PairwiseBuresWasserstein(const at::Tensor& m_a, const at::Tensor& s_a,
                                                    const at::Tensor& m_b,
                                                    const at::Tensor& s_b) {
  WFM_RETURN_IF_ERROR(CheckGaussians(m_a, "m_a", s_a, "S_a"));
  WFM_RETURN_IF_ERROR(internal::CheckMatricesLike(s_b, "S_b", -1, s_a.size(1), s_a, "S_a"));
  WFM_RETURN_IF_ERROR(CheckGaussians(m_b, "m_b", s_b, "S_b"));
  return GuardTorch("PairwiseBuresWasserstein",
                    [&] { return unchecked::PairwiseBuresWasserstein(m_a, s_a, m_b, s_b); });
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> WeightedMeanCovariance(const at::Tensor& x,
                                                                         const at::Tensor& w,
                                                                         double ridge) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "x", 3));
  if (x.size(2) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("x: shape must be [B, N, d] with d >= 1, got ", ShapeString(x.sizes())));
  }
  WFM_RETURN_IF_ERROR(CheckFloatTensor(w, "w", 2));
  WFM_RETURN_IF_ERROR(CheckShape(w, "w", {x.size(0), x.size(1)}));
  WFM_RETURN_IF_ERROR(CheckWeights(w, "w"));
  WFM_RETURN_IF_ERROR(internal::CheckFiniteItems(x, "x"));
  if (!(ridge >= 0.0) || !std::isfinite(ridge)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ridge: must be finite and >= 0, got ", ridge));
  }
  return GuardTorch("WeightedMeanCovariance",
                    [&] { return unchecked::WeightedMeanCovariance(x, w, ridge); });
}

}  // namespace wfm::model::gaussian
