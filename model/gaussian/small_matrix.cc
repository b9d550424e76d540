#include "model/gaussian/small_matrix.h"

#include <atomic>
#include <algorithm>
#include <cmath>

namespace wfm::model::gaussian::internal {
namespace {

std::atomic<int> per_matrix_max_dim{kDefaultPerMatrixMaxDim};

// Unit roundoff of float64.
constexpr double kEps = 1.1102230246251565e-16;
constexpr int kMaxSweeps = 64;

}  // namespace

int PerMatrixMaxDim() { return per_matrix_max_dim.load(std::memory_order_relaxed); }

ScopedPerMatrixMaxDim::ScopedPerMatrixMaxDim(int max_dim)
    : previous_(per_matrix_max_dim.exchange(max_dim)) {}

ScopedPerMatrixMaxDim::~ScopedPerMatrixMaxDim() { per_matrix_max_dim.store(previous_); }

void JacobiEigen(double* a, int d, double* w, double* v) {
  if (v != nullptr) {
    for (int i = 0; i < d * d; ++i) v[i] = 0.0;
    for (int i = 0; i < d; ++i) v[i * d + i] = 1.0;
  }
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    bool rotated = false;
    for (int p = 0; p + 1 < d; ++p) {
      for (int q = p + 1; q < d; ++q) {
        const double apq = a[p * d + q];
        if (apq == 0.0) continue;
        const double app = a[p * d + p];
        const double aqq = a[q * d + q];
        // Negligible against the geometric mean of the two diagonal entries:
        // dropping it changes no eigenvalue by more than its relative
        // accuracy, so it is set to zero instead of rotated.
        if (std::abs(apq) <= kEps * std::sqrt(std::abs(app)) * std::sqrt(std::abs(aqq))) {
          a[p * d + q] = 0.0;
          a[q * d + p] = 0.0;
          continue;
        }
        rotated = true;
        // The rotation (c, s) zeroes a_pq; t = s / c is the smaller root of
        // t^2 + 2 t θ - 1 = 0, so the rotation angle is at most π/4.
        const double theta = (aqq - app) / (2.0 * apq);
        double t;
        if (std::abs(theta) > 1e150) {
          t = 0.5 / theta;
        } else {
          t = std::copysign(1.0, theta) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        }
        const double c = 1.0 / std::sqrt(t * t + 1.0);
        const double s = t * c;
        a[p * d + p] = app - t * apq;
        a[q * d + q] = aqq + t * apq;
        a[p * d + q] = 0.0;
        a[q * d + p] = 0.0;
        for (int r = 0; r < d; ++r) {
          if (r == p || r == q) continue;
          const double arp = a[r * d + p];
          const double arq = a[r * d + q];
          const double nrp = c * arp - s * arq;
          const double nrq = s * arp + c * arq;
          a[r * d + p] = nrp;
          a[p * d + r] = nrp;
          a[r * d + q] = nrq;
          a[q * d + r] = nrq;
        }
        if (v != nullptr) {
          for (int r = 0; r < d; ++r) {
            const double vrp = v[r * d + p];
            const double vrq = v[r * d + q];
            v[r * d + p] = c * vrp - s * vrq;
            v[r * d + q] = s * vrp + c * vrq;
          }
        }
      }
    }
    if (!rotated) break;
  }
  for (int k = 0; k < d; ++k) w[k] = a[k * d + k];
}

namespace {

// sqrt(x² + y²): the plain formula unless it could have overflowed or lost
// everything to underflow, then std::hypot (which is ~10x slower).
inline double Hypot(double x, double y) {
  const double r = std::sqrt(x * x + y * y);
  if (r > 1e-150 && r < 1e150) return r;
  return std::hypot(x, y);
}

// Householder tridiagonalisation of the symmetric n×n matrix a: T = Qᵀ a Q
// with diagonal diag[n] and off-diagonal off[n] (off[i] couples i and i+1;
// off[n-1] = 0). Step k reflects rows/columns k+1..n-1 with
// H_k = I - β_k u uᵀ, u stored in column k of a below the subdiagonal and β_k
// in a[k][k+1] (both entries are dead once step k is done). tmp holds n
// doubles.
void Tridiagonalize(double* a, int n, double* diag, double* off, double* tmp) {
  for (int k = 0; k + 2 < n; ++k) {
    const int m = n - k - 1;  // length of the reflected part
    double* const b = a + (k + 1) * n + (k + 1);  // trailing block, row stride n
    auto x = [&](int i) -> double& { return a[(k + 1 + i) * n + k]; };
    double scale = 0.0;
    for (int i = 0; i < m; ++i) scale = std::max(scale, std::abs(x(i)));
    double tail = 0.0;
    if (scale > 0.0) {
      for (int i = 1; i < m; ++i) {
        const double y = x(i) / scale;
        tail += y * y;
      }
    }
    if (tail == 0.0) {  // already tridiagonal in this column: H_k = I
      off[k] = x(0);
      a[k * n + k + 1] = 0.0;
      continue;
    }
    // u = x/scale - α e1 with α = -sign(x0)·|x/scale| (no cancellation);
    // H_k x = α·scale e1 and β = 2 / uᵀu.
    for (int i = 0; i < m; ++i) x(i) /= scale;
    const double x0 = x(0);
    const double norm = std::sqrt(x0 * x0 + tail);
    const double alpha = x0 > 0.0 ? -norm : norm;
    x(0) = x0 - alpha;
    const double beta = 2.0 / (x(0) * x(0) + tail);
    off[k] = alpha * scale;
    a[k * n + k + 1] = beta;
    // B ← H B H = B - u wᵀ - w uᵀ with p = β B u, w = p - (β/2)(pᵀu) u.
    double pu = 0.0;
    for (int i = 0; i < m; ++i) {
      const double* bi = b + i * n;
      double s = 0.0;
      for (int j = 0; j < m; ++j) s += bi[j] * x(j);
      tmp[i] = beta * s;
      pu += tmp[i] * x(i);
    }
    const double half = 0.5 * beta * pu;
    for (int i = 0; i < m; ++i) tmp[i] -= half * x(i);
    for (int i = 0; i < m; ++i) {
      double* bi = b + i * n;
      const double ui = x(i);
      const double wi = tmp[i];
      for (int j = 0; j < m; ++j) bi[j] -= ui * tmp[j] + wi * x(j);
    }
  }
  for (int i = 0; i < n; ++i) diag[i] = a[i * n + i];
  if (n >= 2) off[n - 2] = a[(n - 1) * n + (n - 2)];
  off[n - 1] = 0.0;
}

// q = H_0 H_1 ⋯ H_{n-3} from the reflectors Tridiagonalize left in a, so that
// a = q T qᵀ. tmp holds n doubles.
void AccumulateReflectors(const double* a, int n, double* q, double* tmp) {
  for (int i = 0; i < n * n; ++i) q[i] = 0.0;
  for (int i = 0; i < n; ++i) q[i * n + i] = 1.0;
  for (int k = n - 3; k >= 0; --k) {
    const double beta = a[k * n + k + 1];
    if (beta == 0.0) continue;
    const int lo = k + 1;  // H_k and the product so far live on rows/cols lo..n-1
    for (int j = lo; j < n; ++j) tmp[j] = 0.0;
    for (int i = lo; i < n; ++i) {
      const double ui = a[i * n + k];
      const double* qi = q + i * n;
      for (int j = lo; j < n; ++j) tmp[j] += ui * qi[j];
    }
    for (int i = lo; i < n; ++i) {
      const double bu = beta * a[i * n + k];
      double* qi = q + i * n;
      for (int j = lo; j < n; ++j) qi[j] -= bu * tmp[j];
    }
  }
}

// Implicit QL iterations with Wilkinson shifts on the symmetric tridiagonal
// (diag, off) until every off-diagonal entry is negligible against its two
// diagonal neighbours; diag then holds the eigenvalues. Each Givens rotation
// is also applied to the columns of z (n×n) when z is not null, so z's
// columns become the eigenvectors of (q T qᵀ) when z starts as q.
void TridiagonalQl(double* diag, double* off, int n, double* z) {
  constexpr int kMaxIterations = 64;
  for (int l = 0; l < n; ++l) {
    for (int iter = 0; iter < kMaxIterations; ++iter) {
      // The block l..m is unreduced; off[m] is negligible.
      int m = l;
      while (m + 1 < n &&
             std::abs(off[m]) > kEps * (std::abs(diag[m]) + std::abs(diag[m + 1]))) {
        ++m;
      }
      if (m == l) break;  // diag[l] has converged
      // Shift: the eigenvalue of the leading 2×2 block nearer diag[l].
      double g = (diag[l + 1] - diag[l]) / (2.0 * off[l]);
      double r = Hypot(g, 1.0);
      g = diag[m] - diag[l] + off[l] / (g + std::copysign(r, g));
      double s = 1.0;
      double c = 1.0;
      double p = 0.0;
      bool deflated = false;
      for (int i = m - 1; i >= l; --i) {
        const double f = s * off[i];
        const double h = c * off[i];
        r = Hypot(f, g);
        off[i + 1] = r;
        if (r == 0.0) {  // underflow: the block splits at i+1
          diag[i + 1] -= p;
          off[m] = 0.0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = diag[i + 1] - p;
        r = (diag[i] - g) * s + 2.0 * c * h;
        p = s * r;
        diag[i + 1] = g + p;
        g = c * r - h;
        if (z != nullptr) {
          for (int k = 0; k < n; ++k) {
            double* zk = z + k * n;
            const double zi1 = zk[i + 1];
            zk[i + 1] = s * zk[i] + c * zi1;
            zk[i] = c * zk[i] - s * zi1;
          }
        }
      }
      if (deflated) continue;
      diag[l] -= p;
      off[l] = g;
      off[m] = 0.0;
    }
  }
}

}  // namespace

void TridiagonalEigen(double* a, int d, double* w, double* v, double* work) {
  double* off = work;
  double* tmp = work + d;
  Tridiagonalize(a, d, w, off, tmp);
  if (v != nullptr) AccumulateReflectors(a, d, v, tmp);
  TridiagonalQl(w, off, d, v);
}

void SmallEigen(double* a, int d, double* w, double* v, double* work) {
  if (d <= kJacobiBelowDim) {
    JacobiEigen(a, d, w, v);
  } else {
    TridiagonalEigen(a, d, w, v, work);
  }
}

void SpectralCompose(const double* v, const double* f, int d, double* out) {
  for (int i = 0; i < d; ++i) {
    const double* vi = v + i * d;
    for (int j = 0; j <= i; ++j) {
      const double* vj = v + j * d;
      double s = 0.0;
      for (int k = 0; k < d; ++k) s += vi[k] * f[k] * vj[k];
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
}

void MatMul(const double* a, const double* b, int d, double* c) {
  for (int i = 0; i < d; ++i) {
    double* ci = c + i * d;
    for (int j = 0; j < d; ++j) ci[j] = 0.0;
    for (int k = 0; k < d; ++k) {
      const double aik = a[i * d + k];
      const double* bk = b + k * d;
      for (int j = 0; j < d; ++j) ci[j] += aik * bk[j];
    }
  }
}

void Sandwich(const double* a, const double* b, int d, double* tmp, double* c) {
  MatMul(a, b, d, tmp);
  MatMul(tmp, a, d, c);
  Symmetrize(c, d);
}

void Symmetrize(double* a, int d) {
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < i; ++j) {
      const double s = 0.5 * (a[i * d + j] + a[j * d + i]);
      a[i * d + j] = s;
      a[j * d + i] = s;
    }
  }
}

void MatVec(const double* a, const double* x, int d, double* y) {
  for (int i = 0; i < d; ++i) {
    double s = 0.0;
    for (int k = 0; k < d; ++k) s += a[i * d + k] * x[k];
    y[i] = s;
  }
}

}  // namespace wfm::model::gaussian::internal
