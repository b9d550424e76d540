#include "model/ot/sinkhorn.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/common/parallel.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"
#include "model/ot/lse_kernel.h"

namespace wfm::model::ot {
namespace {

// A 64-byte aligned scratch array, grown on demand and reused across the
// problems one thread solves.
template <typename T>
class AlignedArray {
 public:
  T* Reserve(size_t n) {
    if (n > capacity_) {
      const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      if (!data_) throw std::bad_alloc();
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;
};

// The kernels of the working precision: float runs the SIMD kernels.
template <typename T>
struct Ops;
template <>
struct Ops<float> {
  static constexpr float kTau = 20.0f;
  const kernel::FloatKernels& k = kernel::BestFloatKernels();
  void Lse(const float* mat, int rows, int stride, const float* w, const float* lm,
           float* out) const {
    k.lse_rows(mat, rows, stride, w, lm, out);
  }
  void Gibbs(const float* logk, int rows, int stride, const float* u, const float* v,
             float* out) const {
    k.gibbs_kernel(logk, rows, stride, u, v, out);
  }
  void ColumnSums(const float* mat, int rows, int stride, const float* s, float* out) const {
    k.column_sums(mat, rows, stride, s, out);
  }
  void RowDots(const float* mat, int rows, int stride, const float* t, float* out) const {
    k.row_dots(mat, rows, stride, t, out);
  }
};
template <>
struct Ops<double> {
  static constexpr double kTau = 100.0;
  void Lse(const double* mat, int rows, int stride, const double* w, const double* lm,
           double* out) const {
    kernel::LseRowsDouble(mat, rows, stride, w, lm, out);
  }
  void Gibbs(const double* logk, int rows, int stride, const double* u, const double* v,
             double* out) const {
    kernel::GibbsKernelDouble(logk, rows, stride, u, v, out);
  }
  void ColumnSums(const double* mat, int rows, int stride, const double* s, double* out) const {
    kernel::ColumnSumsDouble(mat, rows, stride, s, out);
  }
  void RowDots(const double* mat, int rows, int stride, const double* t, double* out) const {
    kernel::RowDotsDouble(mat, rows, stride, t, out);
  }
};

// Scratch space of one thread.
template <typename T>
struct Workspace {
  AlignedArray<T> logk, logkt, gibbs, u, v, s, t, col, row, log_a, log_b, zeros;
  std::vector<int> rows, cols;
};

// Per-problem results written straight into the output tensors.
template <typename T>
struct ProblemOut {
  T* f;
  T* g;
  T* scale;
  int64_t* iterations;
  T* error;
};

template <typename T>
void SolveOne(const T* cost, const T* a, const T* b, int n, int m,
              const SinkhornOptions& opt, Workspace<T>& ws, const Ops<T>& ops,
              ProblemOut<T> out) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  // Support of each side; padding is left out of the problem entirely.
  ws.rows.clear();
  ws.cols.clear();
  for (int i = 0; i < n; ++i) if (a[i] > 0) ws.rows.push_back(i);
  for (int j = 0; j < m; ++j) if (b[j] > 0) ws.cols.push_back(j);
  const int ns = static_cast<int>(ws.rows.size());
  const int ms = static_cast<int>(ws.cols.size());
  const int sn = kernel::PaddedStride(ns);
  const int sm = kernel::PaddedStride(ms);

  T scale = 1;
  if (opt.epsilon_scale == EpsilonScale::kRelativeToMaxCost) {
    T mx = 0;
    for (int r : ws.rows) {
      const T* row = cost + static_cast<int64_t>(r) * m;
      for (int c : ws.cols) mx = std::max(mx, row[c]);
    }
    if (mx > 0) scale = mx;
  }
  const T eps = static_cast<T>(opt.epsilon);
  const T inv = T(1) / (scale * eps);

  // -C/ε on the support, row-major (logk) and transposed (logkt), rows padded
  // with -inf to the kernels' stride.
  T* logk = ws.logk.Reserve(static_cast<size_t>(ns) * sm);
  T* logkt = ws.logkt.Reserve(static_cast<size_t>(ms) * sn);
  for (int r = 0; r < ns; ++r) {
    const T* row = cost + static_cast<int64_t>(ws.rows[r]) * m;
    T* dst = logk + static_cast<int64_t>(r) * sm;
    for (int c = 0; c < ms; ++c) {
      const T value = -row[ws.cols[c]] * inv;
      dst[c] = value;
      logkt[static_cast<int64_t>(c) * sn + r] = value;
    }
    for (int c = ms; c < sm; ++c) dst[c] = kNegInf;
  }
  for (int c = 0; c < ms; ++c) {
    T* dst = logkt + static_cast<int64_t>(c) * sn;
    for (int r = ns; r < sn; ++r) dst[r] = kNegInf;
  }
  T* u = ws.u.Reserve(sn);
  T* v = ws.v.Reserve(sm);
  T* s = ws.s.Reserve(sn);
  T* t = ws.t.Reserve(sm);
  T* col = ws.col.Reserve(sm);
  T* row = ws.row.Reserve(sn);
  T* log_a = ws.log_a.Reserve(sn);
  T* log_b = ws.log_b.Reserve(sm);
  T* zeros = ws.zeros.Reserve(std::max(sn, sm));
  T* gibbs = opt.stabilized_scaling ? ws.gibbs.Reserve(static_cast<size_t>(ns) * sm) : nullptr;
  std::fill(u, u + sn, T(0));
  std::fill(v, v + sm, T(0));
  std::fill(s, s + sn, T(1));
  std::fill(t, t + sm, T(0));
  std::fill(zeros, zeros + std::max(sn, sm), T(0));
  for (int r = 0; r < ns; ++r) log_a[r] = std::log(a[ws.rows[r]]);
  for (int c = 0; c < ms; ++c) log_b[c] = std::log(b[ws.cols[c]]);

  // Two modes compute the same iterates. Log mode: col_j = -LSE_i(u_i - C_ij/ε),
  // so the column marginal of the current (u, v) is exp(v_j - col_j) and the
  // next g update is v_j = log b_j + col_j. Scaling mode: the potentials are
  // u + log s and v + log t, col_j = (Kᵀs)_j, the marginal is t_j col_j and
  // the next update t_j = b_j / col_j.
  const T tau = Ops<T>::kTau;
  const T hard_lo = std::exp(-tau), hard_hi = std::exp(tau);
  const T soft_lo = std::exp(-tau / 2), soft_hi = std::exp(tau / 2);
  bool log_mode = true;
  auto column_pass = [&] {
    if (log_mode) {
      ops.Lse(logkt, ms, sn, u, zeros, col);
    } else {
      ops.ColumnSums(gibbs, ns, sm, s, col);
    }
  };
  auto column_error = [&] {
    T err = 0;
    for (int c = 0; c < ms; ++c) {
      const T mass = log_mode ? std::exp(v[c] - col[c]) : t[c] * col[c];
      err += std::abs(mass - b[ws.cols[c]]);
    }
    return err;
  };
  auto absorb = [&] {
    for (int r = 0; r < ns; ++r) u[r] += std::log(s[r]), s[r] = 1;
    for (int c = 0; c < ms; ++c) v[c] += std::log(t[c]), t[c] = 1;
  };
  auto enter_scaling_mode = [&] {
    std::fill(s, s + ns, T(1));
    std::fill(t, t + ms, T(1));
    ops.Gibbs(logk, ns, sm, u, v, gibbs);
    log_mode = false;
  };

  column_pass();
  int it = 0;
  while (it < opt.iterations) {
    if (opt.until_converged && it > 0 && it % opt.check_every == 0 &&
        column_error() < static_cast<T>(opt.tolerance)) {
      break;
    }
    if (log_mode) {
      T drift = 0;
      for (int c = 0; c < ms; ++c) {
        const T next = log_b[c] + col[c];
        drift = std::max(drift, std::abs(next - v[c]));
        v[c] = next;
      }
      ops.Lse(logk, ns, sm, v, log_a, row);
      for (int r = 0; r < ns; ++r) {
        drift = std::max(drift, std::abs(row[r] - u[r]));
        u[r] = row[r];
      }
      ++it;
      if (gibbs != nullptr && drift < tau / 2) enter_scaling_mode();
      column_pass();
      continue;
    }
    bool ok = true;
    for (int c = 0; c < ms; ++c) {
      col[c] = b[ws.cols[c]] / col[c];
      ok &= col[c] >= hard_lo && col[c] <= hard_hi;
    }
    if (!ok) {  // redo this iteration exactly
      absorb();
      log_mode = true;
      column_pass();
      continue;
    }
    std::copy(col, col + ms, t);
    ops.RowDots(gibbs, ns, sm, t, row);
    bool soft = true;
    for (int r = 0; r < ns; ++r) {
      row[r] = a[ws.rows[r]] / row[r];
      ok &= row[r] >= hard_lo && row[r] <= hard_hi;
      soft &= row[r] >= soft_lo && row[r] <= soft_hi;
    }
    ++it;
    if (!ok) {  // keep the exact g half, redo the f half in the log domain
      absorb();
      ops.Lse(logk, ns, sm, v, log_a, u);
      log_mode = true;
      column_pass();
      continue;
    }
    std::copy(row, row + ns, s);
    for (int c = 0; c < ms; ++c) soft &= t[c] >= soft_lo && t[c] <= soft_hi;
    if (!soft) {
      absorb();
      ops.Gibbs(logk, ns, sm, u, v, gibbs);
    }
    column_pass();
  }
  const T err = column_error();
  if (!log_mode) absorb();

  for (int i = 0; i < n; ++i) out.f[i] = kNegInf;
  for (int j = 0; j < m; ++j) out.g[j] = kNegInf;
  for (int r = 0; r < ns; ++r) out.f[ws.rows[r]] = eps * u[r];
  for (int c = 0; c < ms; ++c) out.g[ws.cols[c]] = eps * v[c];
  *out.scale = scale;
  *out.iterations = it;
  *out.error = err;
}

absl::Status ValidateProblem(const at::Tensor& cost, const at::Tensor& a, const at::Tensor& b) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(cost, "cost", 3));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(a, "a", 2));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(b, "b", 2));
  const int64_t B = cost.size(0), N = cost.size(1), M = cost.size(2);
  WFM_RETURN_IF_ERROR(CheckShape(a, "a", {B, N}));
  WFM_RETURN_IF_ERROR(CheckShape(b, "b", {B, M}));
  WFM_RETURN_IF_ERROR(CheckSameDtype(a, "a", cost, "cost"));
  WFM_RETURN_IF_ERROR(CheckSameDtype(b, "b", cost, "cost"));
  if (N > std::numeric_limits<int>::max() / 2 || M > std::numeric_limits<int>::max() / 2) {
    return absl::InvalidArgumentError("cost: too many points per cloud");
  }
  WFM_RETURN_IF_ERROR(CheckFinite(cost, "cost"));
  WFM_RETURN_IF_ERROR(CheckWeights(a, "a"));
  WFM_RETURN_IF_ERROR(CheckWeights(b, "b"));
  if (B > 0) {
    const at::Tensor sa = a.sum(1).to(at::kDouble), sb = b.sum(1).to(at::kDouble);
    const at::Tensor bad = (sa - sb).abs() > 1e-3 * at::maximum(sa, sb);
    if (bad.any().item<bool>()) {
      const int64_t k = bad.nonzero()[0][0].item<int64_t>();
      return absl::InvalidArgumentError(absl::StrCat(
          "a, b: problem ", k, " is unbalanced: total source weight ", sa[k].item<double>(),
          " != total target weight ", sb[k].item<double>()));
    }
  }
  return absl::OkStatus();
}

template <typename T>
SinkhornSolution SolveBatch(const at::Tensor& cost_in, const at::Tensor& a_in,
                            const at::Tensor& b_in, const SinkhornOptions& opt) {
  const at::Tensor cost = cost_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t B = cost.size(0);
  const int n = static_cast<int>(cost.size(1)), m = static_cast<int>(cost.size(2));
  const auto options = cost.options();
  at::Tensor f = at::empty({B, n}, options), g = at::empty({B, m}, options);
  at::Tensor scale = at::empty({B}, options), error = at::empty({B}, options);
  at::Tensor iterations = at::empty({B}, options.dtype(at::kLong));
  const T* cp = cost.data_ptr<T>();
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* fp = f.data_ptr<T>();
  T* gp = g.data_ptr<T>();
  T* sp = scale.data_ptr<T>();
  T* ep = error.data_ptr<T>();
  int64_t* ip = iterations.data_ptr<int64_t>();
  const Ops<T> ops;
  // One problem per item, taken by whichever thread is free (a static split
  // waits for a thread that another process slows down). The workspace is
  // the item's own: its arrays are small next to the problem's iterations.
  ParallelForEachItem(B, [&](int64_t k) {
    Workspace<T> ws;
    SolveOne<T>(cp + k * n * m, ap + k * n, bp + k * m, n, m, opt, ws, ops,
                {fp + k * n, gp + k * m, sp + k, ip + k, ep + k});
  });
  const double eps = opt.epsilon;
  at::Tensor scaled = cost / scale.view({B, 1, 1});
  at::Tensor converged = error < opt.tolerance;
  return SinkhornSolution(std::move(f), std::move(g), std::move(scaled), std::move(scale), eps,
                          std::move(iterations), std::move(error), std::move(converged));
}

template <typename T>
void SquaredEuclideanInto(const at::Tensor& x, const at::Tensor& y, at::Tensor& out) {
  const int64_t B = x.size(0), N = x.size(1), M = y.size(1), D = x.size(2);
  const T* xp = x.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, B * N, 64, [&](int64_t begin, int64_t end) {
    for (int64_t bi = begin; bi < end; ++bi) {
      const int64_t bb = bi / N;
      const T* xi = xp + bi * D;
      const T* yb = yp + bb * M * D;
      T* row = op + bi * M;
      for (int64_t j = 0; j < M; ++j) {
        const T* yj = yb + j * D;
        T s = 0;
        for (int64_t k = 0; k < D; ++k) {
          const T diff = xi[k] - yj[k];
          s += diff * diff;
        }
        row[j] = s;
      }
    }
  });
}

}  // namespace

absl::Status ValidateSinkhornOptions(const SinkhornOptions& options) {
  if (!(options.epsilon > 0) || !std::isfinite(options.epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon: must be a finite number > 0, got ", options.epsilon));
  }
  if (options.iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("iterations: must be >= 1, got ", options.iterations));
  }
  if (!(options.tolerance > 0) || !std::isfinite(options.tolerance)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tolerance: must be a finite number > 0, got ", options.tolerance));
  }
  if (options.check_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("check_every: must be >= 1, got ", options.check_every));
  }
  return absl::OkStatus();
}

SinkhornSolution::SinkhornSolution(at::Tensor f, at::Tensor g, at::Tensor scaled_cost,
                                   at::Tensor cost_scale, double epsilon, at::Tensor iterations,
                                   at::Tensor marginal_error, at::Tensor converged)
    : f_(std::move(f)),
      g_(std::move(g)),
      scaled_cost_(std::move(scaled_cost)),
      cost_scale_(std::move(cost_scale)),
      epsilon_(epsilon),
      iterations_(std::move(iterations)),
      marginal_error_(std::move(marginal_error)),
      converged_(std::move(converged)) {}

at::Tensor SinkhornSolution::Plan() const {
  return at::exp((f_.unsqueeze(2) + g_.unsqueeze(1) - scaled_cost_) / epsilon_);
}

at::Tensor SinkhornSolution::BarycentricMap(const at::Tensor& y) const {
  const at::Tensor plan = Plan();
  const at::Tensor mass = plan.sum(2, /*keepdim=*/true);
  const at::Tensor mapped = at::bmm(plan, y.to(plan.scalar_type()));
  return at::where(mass > 0, mapped / mass.clamp_min(std::numeric_limits<float>::min()),
                   at::zeros_like(mapped));
}

at::Tensor SinkhornSolution::TransportCost() const {
  return (Plan() * scaled_cost_).sum({1, 2}) * cost_scale_;
}

at::Tensor SinkhornSolution::RegularizedCost(const at::Tensor& a, const at::Tensor& b) const {
  const at::Tensor af = at::where(a > 0, a * (f_ - epsilon_ * at::log(a)), at::zeros_like(a));
  const at::Tensor bg = at::where(b > 0, b * (g_ - epsilon_ * at::log(b)), at::zeros_like(b));
  const at::Tensor mass = Plan().sum({1, 2});
  const at::Tensor reg = af.sum(1) + bg.sum(1) + epsilon_ * (a.sum(1) * b.sum(1) - mass);
  return reg * cost_scale_;
}

absl::StatusOr<at::Tensor> SquaredEuclideanCost(const at::Tensor& x, const at::Tensor& y) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(x, "x", 3));
  WFM_RETURN_IF_ERROR(CheckFloatTensor(y, "y", 3));
  WFM_RETURN_IF_ERROR(CheckSameDtype(y, "y", x, "x"));
  WFM_RETURN_IF_ERROR(CheckShape(y, "y", {x.size(0), -1, x.size(2)}));
  return GuardTorch("SquaredEuclideanCost", [&] {
    const at::Tensor xc = x.contiguous(), yc = y.contiguous();
    at::Tensor out = at::empty({x.size(0), x.size(1), y.size(1)}, x.options());
    if (x.scalar_type() == at::kFloat) {
      SquaredEuclideanInto<float>(xc, yc, out);
    } else {
      SquaredEuclideanInto<double>(xc, yc, out);
    }
    return out;
  });
}

absl::StatusOr<SinkhornSolution> SolveSinkhornCost(const at::Tensor& cost, const at::Tensor& a,
                                                   const at::Tensor& b,
                                                   const SinkhornOptions& options) {
  WFM_RETURN_IF_ERROR(ValidateSinkhornOptions(options));
  WFM_RETURN_IF_ERROR(ValidateProblem(cost, a, b));
  return GuardTorch("SolveSinkhorn", [&]() -> absl::StatusOr<SinkhornSolution> {
    if (cost.scalar_type() == at::kFloat) return SolveBatch<float>(cost, a, b, options);
    return SolveBatch<double>(cost, a, b, options);
  });
}

absl::StatusOr<SinkhornSolution> SolveSinkhorn(const at::Tensor& x, const at::Tensor& a,
                                               const at::Tensor& y, const at::Tensor& b,
                                               const SinkhornOptions& options) {
  WFM_ASSIGN_OR_RETURN(at::Tensor cost, SquaredEuclideanCost(x, y));
  return SolveSinkhornCost(cost, a, b, options);
}

}  // namespace wfm::model::ot
