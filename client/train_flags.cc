#include "client/train_flags.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "proto/training_options.h"

namespace wfm::client {

absl::StatusOr<bool> ParseOnOff(const std::string& value, const std::string& flag) {
  absl::StatusOr<model::OptionValue> v = model::ParseOptionValue(model::OptionType::kBool, value);
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", v.status().message()));
  return std::get<bool>(*v);
}

absl::Status SetInitFrom(const std::string& value, v1::StartTrainingRequest* request) {
  const size_t colon = value.rfind(':');
  const std::string name = value.substr(0, colon);
  int64_t version = 0;
  if (colon != std::string::npos &&
      (!absl::SimpleAtoi(value.substr(colon + 1), &version) || version < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--init-from ", value, ": the version after ':' must be an integer >= 1 (NAME[:V])"));
  }
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--init-from ", value, ": a model name is required (NAME[:V])"));
  }
  request->set_init_from_model(name);
  request->set_init_from_version(version);
  return absl::OkStatus();
}

void AddTrainFlags(CLI::App* c, TrainFlags* f) {
  c->add_option("--dataset", f->dataset, "data set to train on")->required();
  c->add_option("--model", f->model, "name of the model to create")->required();
  c->add_option("--family", f->family,
                "pointcloud | gaussian (default: gaussian for GAUSSIANS data sets, "
                "pointcloud otherwise)")
      ->check(CLI::IsMember({"pointcloud", "gaussian"}));
  c->add_flag("--overwrite", f->overwrite, "replace a model of the same name when done");
  c->add_option("--init-from", f->init_from,
                "fine-tune: start from the weights of model NAME (version V; default the "
                "current one) instead of a fresh network; same family, network shape, data "
                "dimension and labels");
  c->add_flag("--watch", f->watch,
              "follow the job with a progress bar; exit non-zero unless it succeeds");
  c->add_flag("--json", f->json, "print the job as one JSON document");
  model::AddTrainingOptionFlags(c, &f->options);
}

absl::StatusOr<v1::StartTrainingRequest> BuildTrainingRequest(const TrainFlags& f,
                                                              const std::string& family_name) {
  absl::StatusOr<model::Family> family = model::ParseFamily(family_name);
  if (!family.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--family ", family_name, ": choose pointcloud or gaussian"));
  }
  WFM_ASSIGN_OR_RETURN(const std::vector<model::GivenValue> values,
                       model::ResolveGivenOptions(f.options, *family));
  v1::StartTrainingRequest request;
  request.set_dataset(f.dataset);
  request.set_model(f.model);
  request.set_overwrite(f.overwrite);
  if (!f.init_from.empty()) WFM_RETURN_IF_ERROR(SetInitFrom(f.init_from, &request));
  v1::TrainingConfig& config = *request.mutable_config();
  config.set_family(api::FamilyToProto(*family));
  for (const model::GivenValue& v : values) {
    WFM_RETURN_IF_ERROR(api::SetConfigField(v.field->path, v.value, &config));
  }
  const auto noise = f.options.find("noise");
  if (f.options.count("source-dataset") > 0 &&
      (noise == f.options.end() || noise->second.rfind("given_", 0) != 0)) {
    return absl::InvalidArgumentError(
        "--source-dataset needs --noise given_random or --noise given_matched");
  }
  return request;
}

}  // namespace wfm::client
