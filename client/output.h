// What the command-line tool prints: protobuf messages as JSON documents
// (--json) and aligned text tables for people.
#ifndef WFM_CLIENT_OUTPUT_H_
#define WFM_CLIENT_OUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "google/protobuf/message.h"
#include "wfm/v1/types.pb.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::client {

// A message as JSON for scripts: field names as in the .proto (snake_case),
// every field present (unset optional scalars as null), 64-bit integers as
// JSON numbers, enums by name, repeated fields as arrays, nested messages as
// objects. Non-finite doubles become null (JSON has no NaN).
nlohmann::json ProtoToJson(const google::protobuf::Message& message);

// Columns padded to their widest cell, separated by two spaces; the header
// row first. Numbers are right-aligned when `right_align[i]` is set.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_align = {});

// "1.2 KB", "3.4 MB" (powers of 1024).
std::string FormatBytes(int64_t bytes);
// Local time "2024-06-11 14:03:27" of a Unix time in ms; "-" for 0.
std::string FormatUnixMs(int64_t unix_ms);
// "pointcloud" / "gaussian" / "?".
std::string FamilyName(v1::Family family);
// "POINT_CLOUDS", "GAUSSIANS", "SPATIAL_CELLS".
std::string DatasetKindName(v1::DatasetKind kind);
std::string LabelTypeName(v1::LabelType type);

// Tables of the list commands.
std::string DatasetsTable(const std::vector<v1::Dataset>& datasets);
std::string ModelsTable(const std::vector<v1::ModelInfo>& models);
// One row per stored version of `model`.
std::string VersionsTable(const v1::ModelInfo& model);
std::string JobsTable(const std::vector<v1::TrainingJob>& jobs);
// A few lines describing an Evaluate result.
std::string EvaluationText(const v1::EvaluateResponse& response);

}  // namespace wfm::client

#endif  // WFM_CLIENT_OUTPUT_H_
