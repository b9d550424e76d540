#include "model/ot/matching.h"

#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"

namespace wfm::model::ot {
namespace {

// First index of the largest entry among the columns still free.
template <typename T>
int FirstArgmax(const T* row, int m, const std::vector<char>& taken, T* best) {
  int arg = -1;
  T mx = -std::numeric_limits<T>::infinity();
  for (int j = 0; j < m; ++j) {
    if (!taken[j] && row[j] > mx) {
      mx = row[j];
      arg = j;
    }
  }
  *best = mx;
  return arg;
}

// The global row-major argmax of the remaining matrix is the first row holding
// the largest row maximum, at that row's first argmax; each row's maximum is
// cached and recomputed only when its argmax column is taken. Rows with
// row_ok[i] == 0 take no part (they get column 0); columns with
// col_ok[j] == 0 are never assigned (null masks: every row / column takes
// part).
template <typename T>
void GreedyOne(const T* plan, int n, int m, const bool* row_ok, const bool* col_ok,
               int64_t* out) {
  std::vector<char> excluded(m, 0), done(n, 0);
  int real_rows = n, real_cols = m;
  for (int j = 0; j < m; ++j) {
    if (col_ok != nullptr && !col_ok[j]) {
      excluded[j] = 1;
      --real_cols;
    }
  }
  for (int i = 0; i < n; ++i) {
    out[i] = 0;
    if (row_ok != nullptr && !row_ok[i]) {
      done[i] = 1;
      --real_rows;
    }
  }
  if (real_cols == 0) return;
  std::vector<char> taken = excluded;
  std::vector<int> row_arg(n);
  std::vector<T> row_max(n);
  for (int i = 0; i < n; ++i) {
    if (!done[i]) row_arg[i] = FirstArgmax(plan + int64_t{i} * m, m, taken, &row_max[i]);
  }
  const int rounds = std::min(real_rows, real_cols);
  for (int k = 0; k < rounds; ++k) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
      if (!done[i] && (best < 0 || row_max[i] > row_max[best])) best = i;
    }
    const int col = row_arg[best];
    out[best] = col;
    done[best] = 1;
    taken[col] = 1;
    for (int i = 0; i < n; ++i) {
      if (!done[i] && row_arg[i] == col) {
        row_arg[i] = FirstArgmax(plan + int64_t{i} * m, m, taken, &row_max[i]);
      }
    }
  }
  // More rows than columns: the rest take their argmax among the columns.
  T unused;
  for (int i = 0; i < n; ++i) {
    if (!done[i]) out[i] = FirstArgmax(plan + int64_t{i} * m, m, excluded, &unused);
  }
}

template <typename T>
at::Tensor Greedy(const at::Tensor& plan_in, const at::Tensor& rows_in, const at::Tensor& cols_in) {
  const at::Tensor plan = plan_in.contiguous();
  const at::Tensor rows = rows_in.defined() ? rows_in.to(at::kBool).contiguous() : rows_in;
  const at::Tensor cols = cols_in.defined() ? cols_in.to(at::kBool).contiguous() : cols_in;
  const int64_t B = plan.size(0);
  const int n = static_cast<int>(plan.size(1)), m = static_cast<int>(plan.size(2));
  at::Tensor out = at::zeros({B, n}, plan.options().dtype(at::kLong));
  const T* p = plan.data_ptr<T>();
  const bool* r = rows.defined() ? rows.data_ptr<bool>() : nullptr;
  const bool* c = cols.defined() ? cols.data_ptr<bool>() : nullptr;
  int64_t* o = out.data_ptr<int64_t>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      GreedyOne<T>(p + b * n * m, n, m, r == nullptr ? nullptr : r + b * n,
                   c == nullptr ? nullptr : c + b * m, o + b * n);
    }
  });
  return out;
}

absl::Status CheckPlan(const at::Tensor& plan) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(plan, "plan", 3));
  if (plan.size(2) == 0 && plan.size(1) > 0) {
    return absl::InvalidArgumentError("plan: needs at least one column");
  }
  WFM_RETURN_IF_ERROR(CheckFinite(plan, "plan"));
  if (plan.numel() > 0 && (plan < 0).any().item<bool>()) {
    return absl::InvalidArgumentError("plan: entries must be >= 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<at::Tensor> RoundedMatching(const at::Tensor& plan, const at::Tensor& rows,
                                           const at::Tensor& cols) {
  WFM_RETURN_IF_ERROR(CheckPlan(plan));
  if (rows.defined()) WFM_RETURN_IF_ERROR(CheckShape(rows, "rows", {plan.size(0), plan.size(1)}));
  if (cols.defined()) WFM_RETURN_IF_ERROR(CheckShape(cols, "cols", {plan.size(0), plan.size(2)}));
  return GuardTorch("RoundedMatching", [&] {
    return plan.scalar_type() == at::kFloat ? Greedy<float>(plan, rows, cols)
                                            : Greedy<double>(plan, rows, cols);
  });
}

absl::StatusOr<at::Tensor> RowArgmax(const at::Tensor& plan) {
  WFM_RETURN_IF_ERROR(CheckPlan(plan));
  // at::argmax returns the first maximal index.
  return GuardTorch("RowArgmax", [&] { return plan.argmax(2); });
}

absl::StatusOr<at::Tensor> SampleFromPlan(const at::Tensor& plan, at::Generator generator) {
  WFM_RETURN_IF_ERROR(CheckPlan(plan));
  return GuardTorch("SampleFromPlan", [&] {
    const double tiny = std::numeric_limits<float>::min();
    const at::Tensor u = at::rand(plan.sizes(), generator, plan.options()).clamp_min(tiny);
    const at::Tensor gumbel = -at::log(-at::log(u));
    return (at::log(plan) + gumbel).argmax(2);
  });
}

}  // namespace wfm::model::ot
