// Hard assignments read off transport plans.
#ifndef WFM_MODEL_OT_MATCHING_H_
#define WFM_MODEL_OT_MATCHING_H_

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace wfm::model::ot {

// Greedy rounded matching of the reference: repeatedly take the largest
// remaining plan entry (the first in row-major order on ties), assign its row
// to its column, and remove both. plan [B,N,M] with entries >= 0 (float32 or
// float64) -> int64 [B,N]: the column of each row. With N <= M the rows get
// distinct columns (a permutation when N == M). With N > M the reference's
// loop would reassign row 0; here the N - M rows left once every column is
// taken get their row argmax instead.
//
// Optional masks (bool or 0/1 [B,N] and [B,M]) leave rows and columns out:
// a column whose cols entry is false is never assigned (padding of a target
// cloud), a row whose rows entry is false takes no column from the others
// (padding of a source cloud; it gets column 0). The rules above then hold
// for the real rows and columns.
absl::StatusOr<at::Tensor> RoundedMatching(const at::Tensor& plan, const at::Tensor& rows = {},
                                           const at::Tensor& cols = {});

// Column of each row's largest entry (the first on ties): int64 [B,N].
absl::StatusOr<at::Tensor> RowArgmax(const at::Tensor& plan);

// One column per row drawn with probability P_ij / sum_j P_ij (Gumbel-max on
// log P with uniforms from `generator`): int64 [B,N]. Rows without mass get
// column 0.
absl::StatusOr<at::Tensor> SampleFromPlan(const at::Tensor& plan, at::Generator generator);

}  // namespace wfm::model::ot

#endif  // WFM_MODEL_OT_MATCHING_H_
