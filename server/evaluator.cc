#include "server/evaluator.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/sample/gaussian_model.h"
#include "repository/training_data.h"

namespace wfm::server {

using repository::DrawSubset;
using repository::KindFits;
using repository::NicheClouds;
using repository::TakeClouds;

namespace {

// The reference items: all of the data set's items or the held-out ones,
// at most max_reference of them drawn with the seed.
absl::StatusOr<std::vector<int64_t>> ReferenceItems(const Servable& servable,
                                                    const DatasetInfo& info,
                                                    const EvaluateOptions& options) {
  std::vector<int64_t> items;
  if (options.split == "all" || options.split.empty()) {
    items.resize(info.items);
    std::iota(items.begin(), items.end(), 0);
  } else if (options.split == "heldout") {
    const TrainingOrigin& origin = servable.info.origin;
    if (origin.dataset != info.name) {
      return absl::FailedPreconditionError(absl::StrCat(
          "split: 'heldout' needs the data set the model was trained on ('",
          origin.dataset.empty() ? "unknown" : origin.dataset, "'), not '", info.name, "'"));
    }
    if (origin.heldout.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "split: model '", servable.info.name,
          "' held nothing out (train with holdout_fraction > 0)"));
    }
    if (origin.dataset_created_unix_ms != info.created_unix_ms ||
        origin.dataset_items != info.items) {
      return absl::FailedPreconditionError(absl::StrCat(
          "split: data set '", info.name,
          "' was replaced after the model was trained; its held-out items are gone"));
    }
    items = origin.heldout;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("split: must be 'all' or 'heldout', got '", options.split, "'"));
  }
  const int64_t max_reference =
      options.max_reference > 0 ? options.max_reference : kDefaultEvaluateItems;
  return DrawSubset(items, max_reference, options.seed ^ 0xE7A1ULL);
}

// The samples of either family's model to compare with `reference_items`
// items: one request of num_samples (default: as many as the reference, at
// most kDefaultEvaluateItems), steps, ODE solver and seed, with enough items
// in all for 1-NNA, checked against the model's limits.
template <typename Request, typename Generated, typename Model>
absl::StatusOr<Generated> DrawSamples(const Model& model, const EvaluateOptions& options,
                                      int64_t reference_items, const model::SampleLimits& limits,
                                      const std::function<bool()>& cancelled) {
  Request request;
  request.num_samples = options.num_samples > 0
                            ? options.num_samples
                            : std::min<int64_t>(reference_items, kDefaultEvaluateItems);
  request.steps = options.steps;
  WFM_RETURN_IF_ERROR(model::ApplyOdeChoice(options.solver, options.rtol, options.atol, &request));
  request.seed = options.seed;
  if (reference_items + request.num_samples < 3) {
    return absl::InvalidArgumentError(
        "num_samples: 1-NNA needs at least 3 items in all (generated + reference)");
  }
  WFM_RETURN_IF_ERROR(model.ValidateRequest(request, limits));
  WFM_ASSIGN_OR_RETURN(std::vector<Generated> generated, model.Sample({request}, cancelled));
  return std::move(generated[0]);
}

int64_t NicheSize(const Servable& servable) {
  return servable.info.origin.niche_size > 0 ? servable.info.origin.niche_size
                                             : repository::kDefaultNicheSize;
}

}  // namespace

absl::StatusOr<EvaluationResult> EvaluateModel(const Servable& servable, const DatasetData& data,
                                               const EvaluateOptions& options,
                                               const model::SampleLimits& limits,
                                               const std::function<bool()>& cancelled) {
  const auto start = std::chrono::steady_clock::now();
  const ModelInfo& mi = servable.info;
  const DatasetInfo& info = data.info;
  if (!KindFits(mi.family, info.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset: '", info.name, "' holds ", DatasetKindName(info.kind), ", which a ",
        model::FamilyName(mi.family), " model cannot be compared with"));
  }
  if (info.dim != mi.dim) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: '", info.name, "' has dim ",
                                                   info.dim, ", model '", mi.name, "' has dim ",
                                                   mi.dim));
  }
  if (options.num_samples < 0 || options.max_reference < 0) {
    return absl::InvalidArgumentError("num_samples and max_reference: must be >= 0");
  }
  if (options.num_samples > kMaxEvaluateItems || options.max_reference > kMaxEvaluateItems) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "num_samples / max_reference: at most ", kMaxEvaluateItems, " items per evaluation"));
  }
  WFM_ASSIGN_OR_RETURN(const std::vector<int64_t> items, ReferenceItems(servable, info, options));

  EvaluationResult result;
  result.family = mi.family;
  if (mi.family == model::Family::kPointCloud) {
    model::io::PointCloudSet reference;
    if (info.kind == DatasetKind::kPointClouds) {
      reference = TakeClouds(data.clouds(), items);
    } else {
      WFM_ASSIGN_OR_RETURN(reference, NicheClouds(data.cells(), NicheSize(servable), items));
    }
    WFM_ASSIGN_OR_RETURN(model::GeneratedClouds generated,
                         (DrawSamples<model::CloudSampleRequest, model::GeneratedClouds>(
                             *servable.pointcloud, options, reference.num_clouds(), limits,
                             cancelled)));
    WFM_ASSIGN_OR_RETURN(const model::eval::PointCloudEvaluation e,
                         model::eval::EvaluatePointClouds(
                             model::ToPointCloudSet(std::move(generated)), reference, options.emd));
    result.generated = e.generated;
    result.reference = e.reference;
    result.chamfer = e.chamfer;
    result.emd = e.emd;
    result.has_emd = e.has_emd;
  } else {
    WFM_ASSIGN_OR_RETURN(const model::io::GaussianSet reference,
                         repository::GaussianItems(data, NicheSize(servable), items));
    WFM_ASSIGN_OR_RETURN(model::GeneratedGaussians generated,
                         (DrawSamples<model::GaussianSampleRequest, model::GeneratedGaussians>(
                             *servable.gaussian, options, reference.num_gaussians(), limits,
                             cancelled)));
    WFM_ASSIGN_OR_RETURN(const model::eval::GaussianEvaluation e,
                         model::eval::EvaluateGaussians(model::ToGaussianSet(std::move(generated)),
                                                        reference));
    result.generated = e.generated;
    result.reference = e.reference;
    result.bures = e.bures;
    result.mean_error = e.mean_error;
    result.covariance_error = e.covariance_error;
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace wfm::server
