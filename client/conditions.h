// Condition vectors from named columns (the API's ConditionColumn; the
// reference's conditioning_obs / conditioning_obsm), on the client side:
// encoding an .h5ad file's obs columns and obsm matrices at upload
// (`wfm upload --condition-key KEY ...`), and turning `wfm sample
// --condition key=value,...` into a model's vector.
//
// Encoding, column by column in the order given, concatenated:
//   categorical / string obs column  one-hot over its categories (a
//                                    categorical column's stored order; the
//                                    sorted distinct texts of a string one)
//   integer / float / bool obs column its value as is (width 1; bools 0/1;
//                                    not standardised)
//   obsm:KEY                         the row of obsm[KEY] as is (its columns)
// Missing values (a missing category, NaN) are errors.
//
// Sampling syntax: KEY=VALUE pairs separated by ',': a category's text, a
// number, or for obsm:KEY the row's values separated by ';'
// ("cell_type=T cell,age=40,obsm:pca=0.1;-2;3"). Every column of the model
// is needed once.
#ifndef WFM_CLIENT_CONDITIONS_H_
#define WFM_CLIENT_CONDITIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/h5ad.h"
#include "wfm/v1/types.pb.h"

namespace wfm::client {

// Condition vectors of n items and their encoding.
struct ConditionTable {
  std::vector<v1::ConditionColumn> columns;  // in vector order, offsets set
  std::vector<float> values;                 // [n, width] row-major
  int64_t width = 0;                         // the sum of the columns' widths
};

// One column's encoding (offset 0) and its [n, width] values. `key` names
// the column in messages (e.g. "--condition-key cell_type").
absl::StatusOr<ConditionTable> EncodeObsColumn(const model::io::ObsColumn& column,
                                               const std::string& name, absl::string_view key);
absl::StatusOr<ConditionTable> EncodeObsm(const model::io::DenseMatrix& matrix,
                                          const std::string& name, absl::string_view key);
// The columns side by side (offsets shifted); every part has the same rows.
ConditionTable ConcatenateConditions(const std::vector<ConditionTable>& parts);

// Reads and encodes `keys` (each an obs column or obsm:KEY) of `file`.
// InvalidArgument naming --condition-key, the key and the rule (a repeated
// key, an unknown one lists the available ones).
absl::StatusOr<ConditionTable> ReadConditions(const model::io::H5adFile& file,
                                              const std::vector<std::string>& keys);

// Whether `text` is in the KEY=VALUE form (holds '=') rather than a plain
// vector "0.5,1".
bool IsNamedCondition(absl::string_view text);

// The vector of `text` (KEY=VALUE,...) under `columns` (a model's
// ModelInfo.condition_columns). InvalidArgument naming `flag` and the rule:
// an unknown key (the known ones listed), a missing or repeated key, an
// unknown category (the categories listed), a non-numeric value, an obsm
// row of the wrong length.
absl::StatusOr<std::vector<float>> EncodeNamedCondition(
    absl::string_view text, const google::protobuf::RepeatedPtrField<v1::ConditionColumn>& columns,
    absl::string_view flag);

// What a named --condition asks of `model`: a continuous model's vector
// (EncodeNamedCondition over its condition_columns), or, for a model with
// discrete labels, one KEY=VALUE pair whose VALUE is the label (the model
// does not record the key). InvalidArgument naming `flag` otherwise.
struct NamedCondition {
  std::vector<float> vector;
  std::string label;
};
absl::StatusOr<NamedCondition> ResolveNamedCondition(absl::string_view text,
                                                     const v1::ModelInfo& model,
                                                     absl::string_view flag);

// "cell_type (categorical: B, T), age (numeric), obsm:pca (3 values)".
std::string DescribeConditionColumns(
    const google::protobuf::RepeatedPtrField<v1::ConditionColumn>& columns);

}  // namespace wfm::client

#endif  // WFM_CLIENT_CONDITIONS_H_
