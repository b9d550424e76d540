#include "proto/training_options.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/common/status.h"

namespace wfm::api {
namespace {

namespace pb = google::protobuf;

// The field that `path` names and the message that holds it, walking (and,
// with `mutable_root`, making) the messages before it. The path is checked
// against the descriptors whether or not those messages are present; `holder`
// is null when one of them is absent (and not made).
struct FieldRef {
  const pb::Message* holder = nullptr;
  pb::Message* mutable_holder = nullptr;
  const pb::FieldDescriptor* field = nullptr;
};

absl::StatusOr<FieldRef> Resolve(const pb::Message& root, pb::Message* mutable_root,
                                 const std::string& path) {
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  std::vector<const pb::FieldDescriptor*> fields;
  const pb::Descriptor* d = root.GetDescriptor();
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = d == nullptr ? nullptr : d->FindFieldByName(parts[i]);
    if (f == nullptr || f->is_repeated()) {
      return absl::InternalError(absl::StrCat("training option path '", path, "': no field '",
                                              parts[i], "' in ",
                                              d == nullptr ? "a scalar" : d->full_name()));
    }
    fields.push_back(f);
    d = f->message_type();  // null for scalars
  }
  FieldRef ref{&root, mutable_root, fields.back()};
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    const pb::Reflection* r = ref.holder->GetReflection();
    if (ref.mutable_holder != nullptr) {
      ref.mutable_holder = r->MutableMessage(ref.mutable_holder, fields[i]);
      ref.holder = ref.mutable_holder;
    } else if (r->HasField(*ref.holder, fields[i])) {
      ref.holder = &r->GetMessage(*ref.holder, fields[i]);
    } else {
      ref.holder = nullptr;
      break;
    }
  }
  return ref;
}

pb::FieldDescriptor::CppType CppTypeOf(model::OptionType type) {
  switch (type) {
    case model::OptionType::kInt:
      return pb::FieldDescriptor::CPPTYPE_INT64;
    case model::OptionType::kUint:
      return pb::FieldDescriptor::CPPTYPE_UINT64;
    case model::OptionType::kDouble:
      return pb::FieldDescriptor::CPPTYPE_DOUBLE;
    case model::OptionType::kBool:
      return pb::FieldDescriptor::CPPTYPE_BOOL;
    case model::OptionType::kString:
      return pb::FieldDescriptor::CPPTYPE_STRING;
  }
  return pb::FieldDescriptor::CPPTYPE_STRING;
}

absl::Status CheckType(const FieldRef& ref, const std::string& path, model::OptionType type) {
  if (ref.field->cpp_type() == CppTypeOf(type)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("training option path '", path, "': the proto field is ",
                                          ref.field->cpp_type_name(), ", the option ",
                                          model::OptionTypeName(type)));
}

absl::Status Prefixed(absl::string_view prefix, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

}  // namespace

model::Family FamilyFromProto(v1::Family family) {
  return family == v1::FAMILY_GAUSSIAN ? model::Family::kGaussian : model::Family::kPointCloud;
}

v1::Family FamilyToProto(model::Family family) {
  return family == model::Family::kGaussian ? v1::FAMILY_GAUSSIAN : v1::FAMILY_POINTCLOUD;
}

absl::StatusOr<std::optional<model::OptionValue>> GetConfigField(const v1::TrainingConfig& config,
                                                                 const std::string& path,
                                                                 model::OptionType type) {
  WFM_ASSIGN_OR_RETURN(const FieldRef ref, Resolve(config, nullptr, path));
  WFM_RETURN_IF_ERROR(CheckType(ref, path, type));
  if (ref.holder == nullptr) return std::optional<model::OptionValue>();
  const pb::Reflection* r = ref.holder->GetReflection();
  const pb::Message& m = *ref.holder;
  const pb::FieldDescriptor* f = ref.field;
  if (f->has_presence() ? !r->HasField(m, f) : r->GetString(m, f).empty()) {
    return std::optional<model::OptionValue>();
  }
  switch (type) {
    case model::OptionType::kInt:
      return model::OptionValue(r->GetInt64(m, f));
    case model::OptionType::kUint:
      return model::OptionValue(r->GetUInt64(m, f));
    case model::OptionType::kDouble:
      return model::OptionValue(r->GetDouble(m, f));
    case model::OptionType::kBool:
      return model::OptionValue(r->GetBool(m, f));
    case model::OptionType::kString:
      return model::OptionValue(r->GetString(m, f));
  }
  return std::optional<model::OptionValue>();
}

absl::Status SetConfigField(const std::string& path, const model::OptionValue& value,
                            v1::TrainingConfig* config) {
  WFM_ASSIGN_OR_RETURN(const FieldRef ref, Resolve(*config, config, path));
  const auto type = static_cast<model::OptionType>(value.index());
  WFM_RETURN_IF_ERROR(CheckType(ref, path, type));
  const pb::Reflection* r = ref.mutable_holder->GetReflection();
  pb::Message* m = ref.mutable_holder;
  const pb::FieldDescriptor* f = ref.field;
  switch (type) {
    case model::OptionType::kInt:
      r->SetInt64(m, f, std::get<int64_t>(value));
      break;
    case model::OptionType::kUint:
      r->SetUInt64(m, f, std::get<uint64_t>(value));
      break;
    case model::OptionType::kDouble:
      r->SetDouble(m, f, std::get<double>(value));
      break;
    case model::OptionType::kBool:
      r->SetBool(m, f, std::get<bool>(value));
      break;
    case model::OptionType::kString:
      r->SetString(m, f, std::get<std::string>(value));
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<model::TrainingConfig> TrainingConfigFromProto(const v1::TrainingConfig& c,
                                                              int64_t default_checkpoint_every) {
  if (c.family() != v1::FAMILY_POINTCLOUD && c.family() != v1::FAMILY_GAUSSIAN) {
    return absl::InvalidArgumentError(
        "config.family: required (FAMILY_POINTCLOUD or FAMILY_GAUSSIAN)");
  }
  model::TrainingConfig config;
  config.family = FamilyFromProto(c.family());
  if (config.family == model::Family::kPointCloud && c.has_gaussian()) {
    return absl::InvalidArgumentError(
        "config.gaussian: options of the gaussian family given for a pointcloud model");
  }
  if (config.family == model::Family::kGaussian && c.has_pointcloud()) {
    return absl::InvalidArgumentError(
        "config.pointcloud: options of the pointcloud family given for a gaussian model");
  }
  config.pointcloud.checkpoint_every = default_checkpoint_every;
  config.gaussian.checkpoint_every = default_checkpoint_every;
  for (const model::TrainingOption& o : model::TrainingOptions()) {
    const model::OptionField* f = o.For(config.family);
    if (f == nullptr) continue;
    WFM_ASSIGN_OR_RETURN(const std::optional<model::OptionValue> value,
                         GetConfigField(c, f->path, o.type));
    if (!value.has_value()) continue;
    // Named choices are checked before they are stored; numbers with the
    // whole configuration below, whose rules may relate options.
    if (!f->rule.choices.empty()) {
      WFM_RETURN_IF_ERROR(Prefixed(absl::StrCat("config.", f->path, ": "), f->rule.Check(*value)));
    }
    f->set(&config, *value);
  }
  WFM_RETURN_IF_ERROR(Prefixed("config.", model::ValidateTrainingConfig(config)));
  return config;
}

void TrainingConfigToProto(const model::TrainingConfig& config, v1::TrainingConfig* out) {
  out->set_family(FamilyToProto(config.family));
  for (const model::TrainingOption& o : model::TrainingOptions()) {
    const model::OptionField* f = o.For(config.family);
    if (f == nullptr) continue;
    const model::OptionValue value = f->get(config);
    // An empty source_dataset stays unset (a plain string has no presence).
    if (const auto* s = std::get_if<std::string>(&value); s != nullptr && s->empty()) continue;
    // The table's paths and types are checked by the tests, so this cannot
    // fail for a table entry.
    SetConfigField(f->path, value, out).IgnoreError();
  }
}

void DescribeTrainingOptions(v1::DescribeTrainingOptionsResponse* out) {
  for (const model::TrainingOption& o : model::TrainingOptions()) {
    v1::TrainingOption* option = out->add_options();
    option->set_name(o.name);
    option->set_group(o.group);
    option->set_help(o.help);
    option->set_type(model::OptionTypeName(o.type));
    for (const model::OptionField& f : o.fields) {
      v1::TrainingOptionField* field = option->add_fields();
      field->set_family(FamilyToProto(f.family));
      field->set_path(f.path);
      field->set_default_value(model::OptionValueText(f.get(model::TrainingConfig{})));
      field->set_rule(f.rule.Describe(o.type));
      for (const std::string& choice : f.rule.choices) field->add_choices(choice);
    }
  }
}

}  // namespace wfm::api
