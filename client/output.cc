#include "client/output.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/progress.h"
#include "google/protobuf/descriptor.h"

namespace wfm::client {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

nlohmann::json Double(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

// One value of `field`: the singular value (index < 0) or element `index`.
nlohmann::json Value(const Message& m, const Reflection* r, const FieldDescriptor* f, int index) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Double(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Double(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value = rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
      return value->name();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return ProtoToJson(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
  }
  return nullptr;
}

std::string LabelsCell(v1::LabelType type, const google::protobuf::RepeatedPtrField<std::string>& names,
                       int64_t condition_dim,
                       const google::protobuf::RepeatedPtrField<v1::ConditionColumn>& columns) {
  if (type == v1::LABEL_TYPE_CONTINUOUS) {
    std::string text = absl::StrCat("condition[", condition_dim, "]");
    std::vector<std::string> keys;
    for (const v1::ConditionColumn& c : columns) {
      keys.push_back(c.kind() == v1::CONDITION_KIND_OBSM ? absl::StrCat("obsm:", c.name())
                                                         : c.name());
    }
    if (!keys.empty()) absl::StrAppend(&text, " ", absl::StrJoin(keys, ","));
    return text;
  }
  if (type != v1::LABEL_TYPE_DISCRETE || names.empty()) return "-";
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), 4));
  std::string text = absl::StrJoin(shown, ",");
  if (names.size() > 4) absl::StrAppend(&text, ",…");
  return absl::StrCat(names.size(), " (", text, ")");
}

}  // namespace

nlohmann::json ProtoToJson(const Message& message) {
  nlohmann::json out = nlohmann::json::object();
  const auto* descriptor = message.GetDescriptor();
  const Reflection* r = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* f = descriptor->field(i);
    if (f->is_repeated()) {
      nlohmann::json array = nlohmann::json::array();
      const int n = r->FieldSize(message, f);
      for (int j = 0; j < n; ++j) array.push_back(Value(message, r, f, j));
      out[f->name()] = std::move(array);
    } else if (f->has_presence() && !r->HasField(message, f)) {
      out[f->name()] = nullptr;
    } else {
      out[f->name()] = Value(message, r, f, -1);
    }
  }
  return out;
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_align) {
  const size_t n = header.size();
  // Display width: UTF-8 continuation bytes take no column.
  auto width = [](const std::string& s) {
    size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<size_t> widths(n, 0);
  for (size_t i = 0; i < n; ++i) widths[i] = width(header[i]);
  for (const auto& row : rows) {
    for (size_t i = 0; i < n && i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < n; ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      const std::string pad(widths[i] - width(cell), ' ');
      const bool right = i < right_align.size() && right_align[i];
      if (i > 0) text += "  ";
      text += right ? pad + cell : (i + 1 < n ? cell + pad : cell);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    absl::StrAppend(&out, text, "\n");
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

std::string FormatUnixMs(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

std::string FamilyName(v1::Family family) {
  switch (family) {
    case v1::FAMILY_POINTCLOUD:
      return "pointcloud";
    case v1::FAMILY_GAUSSIAN:
      return "gaussian";
    default:
      return "?";
  }
}

std::string DatasetKindName(v1::DatasetKind kind) {
  return v1::DatasetKind_Name(kind);
}

std::string LabelTypeName(v1::LabelType type) { return v1::LabelType_Name(type); }

std::string DatasetsTable(const std::vector<v1::Dataset>& datasets) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Dataset& d : datasets) {
    std::string size = "-";
    if (d.kind() == v1::POINT_CLOUDS && d.items() > 0) {
      size = d.min_size() == d.max_size() ? absl::StrCat(d.min_size())
                                          : absl::StrCat(d.min_size(), "-", d.max_size());
    } else if (d.kind() == v1::SPATIAL_CELLS) {
      size = absl::StrCat(d.samples(), d.samples() == 1 ? " sample" : " samples");
    }
    rows.push_back({d.name(), DatasetKindName(d.kind()), absl::StrCat(d.dim()),
                    absl::StrCat(d.items()), size,
                    LabelsCell(d.label_type(), d.label_names(), d.condition_dim(),
                               d.condition_columns()),
                    FormatBytes(d.size_bytes()), FormatUnixMs(d.created_unix_ms())});
  }
  return RenderTable({"NAME", "KIND", "DIM", "ITEMS", "POINTS/ITEM", "LABELS", "SIZE", "CREATED"},
                     rows, {false, false, true, true, false, false, true, false});
}

std::string ModelsTable(const std::vector<v1::ModelInfo>& models) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ModelInfo& m : models) {
    rows.push_back({m.name(),
                    absl::StrCat(m.version(), m.pinned_version() > 0 ? " (pinned)" : "", " of ",
                                 m.versions_size()),
                    FamilyName(m.family()), absl::StrCat(m.dim()),
                    LabelsCell(m.label_type(), m.labels(), m.condition_dim(),
                               m.condition_columns()),
                    absl::StrCat(m.parameters()), m.summary().dataset(),
                    absl::StrCat(m.summary().steps()),
                    m.summary().steps() > 0 ? absl::StrFormat("%.4g", m.summary().recent_loss())
                                            : "-",
                    FormatUnixMs(m.created_unix_ms())});
  }
  return RenderTable(
      {"NAME", "VERSION", "FAMILY", "DIM", "LABELS", "PARAMS", "DATASET", "STEPS", "LOSS",
       "CREATED"},
      rows, {false, false, false, true, false, true, false, true, true, false});
}

std::string VersionsTable(const v1::ModelInfo& model) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ModelVersion& v : model.versions()) {
    std::string serving = v.version() == model.serving_version() ? "serving" : "";
    if (v.version() == model.pinned_version()) absl::StrAppend(&serving, " (pinned)");
    rows.push_back({absl::StrCat(v.version()), serving, v.dataset(),
                    absl::StrCat(v.summary().steps()),
                    v.summary().steps() > 0 ? absl::StrFormat("%.4g", v.summary().recent_loss())
                                            : "-",
                    FormatBytes(v.size_bytes()),
                    v.loaded() ? FormatBytes(v.memory_bytes()) : std::string("-"),
                    FormatUnixMs(v.created_unix_ms()),
                    v.init_from_model().empty()
                        ? std::string()
                        : absl::StrCat(v.init_from_model(), ":", v.init_from_version())});
  }
  return RenderTable(
      {"VERSION", "SERVING", "DATASET", "STEPS", "LOSS", "SIZE", "LOADED", "CREATED", "FROM"},
      rows, {true, false, false, true, true, true, true, false, false});
}

std::string JobsTable(const std::vector<v1::TrainingJob>& jobs) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::TrainingJob& j : jobs) {
    rows.push_back({j.id(), j.model(), j.dataset(), FamilyName(j.family()), JobStateName(j.state()),
                    absl::StrCat(j.step(), "/", j.total_steps()),
                    j.step() > 0 ? absl::StrFormat("%.4g", j.loss()) : "-",
                    j.steps_per_second() > 0 ? absl::StrFormat("%.1f", j.steps_per_second()) : "-",
                    FormatUnixMs(j.created_unix_ms()), j.error()});
  }
  return RenderTable({"ID", "MODEL", "DATASET", "FAMILY", "STATE", "STEP", "LOSS", "STEPS/S",
                      "CREATED", "ERROR"},
                     rows, {false, false, false, false, false, true, true, true, false, false});
}

std::string EvaluationText(const v1::EvaluateResponse& r) {
  std::string out = absl::StrCat(FamilyName(r.family()), " model: ", r.generated(),
                                 " generated vs ", r.reference(), " reference items (",
                                 absl::StrFormat("%.1f", r.seconds()), " s)\n");
  std::vector<std::vector<std::string>> rows;
  auto add = [&](const char* name, const v1::DistributionMetrics& m) {
    rows.push_back({name, absl::StrFormat("%.4f", m.one_nna()), absl::StrFormat("%.4g", m.mmd()),
                    absl::StrFormat("%.4f", m.cov())});
  };
  if (r.has_chamfer()) add("chamfer", r.chamfer());
  if (r.has_emd()) add("emd", r.emd());
  if (r.has_bures()) add("bures", r.bures());
  if (!rows.empty()) {
    absl::StrAppend(&out, RenderTable({"DISTANCE", "1-NNA", "MMD", "COV"}, rows,
                                      {false, true, true, true}));
    absl::StrAppend(&out, "(1-NNA: 0.5 is ideal, 1.0 means fully separable; COV: higher is better)\n");
  }
  if (r.family() == v1::FAMILY_GAUSSIAN) {
    absl::StrAppend(&out, absl::StrFormat("mean error %.4g, covariance error %.4g\n",
                                          r.mean_error(), r.covariance_error()));
  }
  return out;
}

}  // namespace wfm::client
