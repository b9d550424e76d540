#include "model/config/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"

namespace wfm::model {
namespace {

absl::Status Invalid(absl::string_view field, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::Status CheckRange(absl::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
}

absl::Status CheckFinitePositive(absl::string_view field, double v) {
  if (std::isfinite(v) && v > 0) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be a finite number > 0, got ", v));
}

absl::Status CheckOneOf(absl::string_view field, const std::string& v,
                        std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return absl::OkStatus();
    absl::StrAppend(&list, list.empty() ? "" : ", ", a);
  }
  return Invalid(field, absl::StrCat("unknown '", v, "' (expected one of ", list, ")"));
}

// Upper bounds that keep one training job within a machine's reach; requests
// beyond them are refused with the limit named.
constexpr int64_t kMaxWidth = 4096;
constexpr int64_t kMaxLayers = 64;
constexpr int64_t kMaxSteps = 100'000'000;
constexpr int64_t kMaxBatch = 65536;

template <typename T>
void Get(const nlohmann::json& j, const char* key, T* out) {
  if (j.contains(key)) *out = j.at(key).get<T>();
}

nlohmann::json NetworkJson(const NetworkConfig& c) {
  return {{"width", c.width},       {"heads", c.heads},     {"layers", c.layers},
          {"mlp_hidden", c.mlp_hidden}, {"dropout", c.dropout}, {"architecture", c.architecture}};
}
void ReadNetwork(const nlohmann::json& j, NetworkConfig* c) {
  Get(j, "width", &c->width);
  Get(j, "heads", &c->heads);
  Get(j, "layers", &c->layers);
  Get(j, "mlp_hidden", &c->mlp_hidden);
  Get(j, "dropout", &c->dropout);
  Get(j, "architecture", &c->architecture);
}
nlohmann::json OptimizerJson(const OptimizerConfig& c) {
  return {{"steps", c.steps},
          {"batch_size", c.batch_size},
          {"learning_rate", c.learning_rate},
          {"decay_steps", c.decay_steps},
          {"decay_rate", c.decay_rate},
          {"grad_clip_norm", c.grad_clip_norm},
          {"seed", c.seed}};
}
void ReadOptimizer(const nlohmann::json& j, OptimizerConfig* c) {
  Get(j, "steps", &c->steps);
  Get(j, "batch_size", &c->batch_size);
  Get(j, "learning_rate", &c->learning_rate);
  Get(j, "decay_steps", &c->decay_steps);
  Get(j, "decay_rate", &c->decay_rate);
  Get(j, "grad_clip_norm", &c->grad_clip_norm);
  Get(j, "seed", &c->seed);
}

}  // namespace

std::string FamilyName(Family family) {
  return family == Family::kPointCloud ? "pointcloud" : "gaussian";
}

absl::StatusOr<Family> ParseFamily(absl::string_view name) {
  if (name == "pointcloud") return Family::kPointCloud;
  if (name == "gaussian") return Family::kGaussian;
  return Invalid("family", absl::StrCat("unknown '", name, "' (expected pointcloud or gaussian)"));
}

std::string PointCloudSourceName(PointCloudSource source) {
  switch (source) {
    case PointCloudSource::kUniform: return "uniform";
    case PointCloudSource::kNormal: return "normal";
    case PointCloudSource::kCholNormal: return "chol_normal";
    case PointCloudSource::kMetaNormal: return "meta_normal";
    case PointCloudSource::kGivenRandom: return "given_random";
    case PointCloudSource::kGivenMatched: return "given_matched";
  }
  return "unknown";
}

absl::StatusOr<PointCloudSource> ParsePointCloudSource(absl::string_view name) {
  for (PointCloudSource s : {PointCloudSource::kUniform, PointCloudSource::kNormal,
                             PointCloudSource::kCholNormal, PointCloudSource::kMetaNormal,
                             PointCloudSource::kGivenRandom, PointCloudSource::kGivenMatched}) {
    if (name == PointCloudSourceName(s)) return s;
  }
  return Invalid("noise", absl::StrCat("unknown '", name,
                                       "' (expected uniform, normal, chol_normal, meta_normal, "
                                       "given_random or given_matched)"));
}

std::string GaussianSourceName(GaussianSource source) {
  switch (source) {
    case GaussianSource::kWishart: return "wishart";
    case GaussianSource::kGivenRandom: return "given_random";
    case GaussianSource::kGivenMatched: return "given_matched";
  }
  return "unknown";
}

absl::StatusOr<GaussianSource> ParseGaussianSource(absl::string_view name) {
  for (GaussianSource s :
       {GaussianSource::kWishart, GaussianSource::kGivenRandom, GaussianSource::kGivenMatched}) {
    if (name == GaussianSourceName(s)) return s;
  }
  return Invalid("noise", absl::StrCat("unknown '", name,
                                       "' (expected wishart, given_random or given_matched)"));
}

const NetworkConfig& TrainingConfig::network() const {
  return family == Family::kPointCloud ? pointcloud.network : gaussian.network;
}

const OptimizerConfig& TrainingConfig::optimizer() const {
  return family == Family::kPointCloud ? pointcloud.optimizer : gaussian.optimizer;
}

int64_t TrainingConfig::checkpoint_every() const {
  return family == Family::kPointCloud ? pointcloud.checkpoint_every : gaussian.checkpoint_every;
}

absl::Status ValidateNetworkConfig(const NetworkConfig& c, Family family) {
  WFM_RETURN_IF_ERROR(CheckRange("network.width", c.width, 2, kMaxWidth));
  WFM_RETURN_IF_ERROR(CheckRange("network.layers", c.layers, 1, kMaxLayers));
  WFM_RETURN_IF_ERROR(CheckRange("network.mlp_hidden", c.mlp_hidden, 1, 4 * kMaxWidth));
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    return Invalid("network.dropout", absl::StrCat("must be in [0, 1), got ", c.dropout));
  }
  if (family == Family::kPointCloud) {
    WFM_RETURN_IF_ERROR(CheckRange("network.heads", c.heads, 1, c.width));
    if (c.width % c.heads != 0) {
      return Invalid("network.width", absl::StrCat("(", c.width, ") must be divisible by heads (",
                                                    c.heads, ")"));
    }
    if (c.width % 2 != 0) {
      return Invalid("network.width", absl::StrCat("must be even (Fourier time features), got ",
                                                   c.width));
    }
  } else {
    WFM_RETURN_IF_ERROR(CheckOneOf("network.architecture", c.architecture, {"separate", "joint"}));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizerConfig(const OptimizerConfig& c) {
  WFM_RETURN_IF_ERROR(CheckRange("steps", c.steps, 1, kMaxSteps));
  WFM_RETURN_IF_ERROR(CheckRange("batch_size", c.batch_size, 1, kMaxBatch));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("learning_rate", c.learning_rate));
  if (c.decay_steps < 0) return Invalid("decay_steps", absl::StrCat("must be >= 0, got ", c.decay_steps));
  if (!(c.decay_rate > 0 && c.decay_rate <= 1)) {
    return Invalid("decay_rate", absl::StrCat("must be in (0, 1], got ", c.decay_rate));
  }
  if (!(std::isfinite(c.grad_clip_norm) && c.grad_clip_norm >= 0)) {
    return Invalid("grad_clip_norm", absl::StrCat("must be >= 0 (0 = off), got ", c.grad_clip_norm));
  }
  return absl::OkStatus();
}

absl::Status ValidatePointCloudTrainConfig(const PointCloudTrainConfig& c) {
  WFM_RETURN_IF_ERROR(ValidateNetworkConfig(c.network, Family::kPointCloud));
  WFM_RETURN_IF_ERROR(ValidateOptimizerConfig(c.optimizer));
  WFM_RETURN_IF_ERROR(CheckOneOf("monge_map", c.monge_map,
                                 {"entropic", "argmax", "rounded_matching", "sample", "euclidean"}));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("epsilon", c.epsilon));
  WFM_RETURN_IF_ERROR(CheckRange("sinkhorn_iterations", c.sinkhorn_iterations, 0, 100000));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("sinkhorn_tolerance", c.sinkhorn_tolerance));
  WFM_RETURN_IF_ERROR(CheckOneOf("minibatch_cost", c.minibatch_cost,
                                 {"chamfer", "entropic", "euclidean", "frechet"}));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("minibatch_cost_epsilon", c.minibatch_cost_epsilon));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("minibatch_epsilon", c.minibatch_epsilon));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("noise_df_scale", c.noise_df_scale));
  if (!(std::isfinite(c.guidance) && c.guidance >= 0)) {
    return Invalid("guidance", absl::StrCat("must be a finite number >= 0, got ", c.guidance));
  }
  if (!(c.p_uncond >= 0 && c.p_uncond < 1)) {
    return Invalid("p_uncond", absl::StrCat("must be in [0, 1), got ", c.p_uncond));
  }
  if (c.subsample_points < 0 || c.source_subsample_points < 0) {
    return Invalid("subsample_points", "must be >= 0 (0 = whole clouds)");
  }
  if (c.checkpoint_every < 0) return Invalid("checkpoint_every", "must be >= 0 (0 = at the end only)");
  return absl::OkStatus();
}

absl::Status ValidateGaussianTrainConfig(const GaussianTrainConfig& c) {
  WFM_RETURN_IF_ERROR(ValidateNetworkConfig(c.network, Family::kGaussian));
  WFM_RETURN_IF_ERROR(ValidateOptimizerConfig(c.optimizer));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("minibatch_epsilon", c.minibatch_epsilon));
  WFM_RETURN_IF_ERROR(CheckOneOf("velocity", c.velocity, {"riemannian", "euclidean"}));
  WFM_RETURN_IF_ERROR(CheckOneOf("loss", c.loss, {"tangent", "euclidean"}));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("degrees_of_freedom_scale", c.degrees_of_freedom_scale));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("mean_scale_factor", c.mean_scale_factor));
  WFM_RETURN_IF_ERROR(CheckFinitePositive("cov_scale_factor", c.cov_scale_factor));
  if (c.checkpoint_every < 0) return Invalid("checkpoint_every", "must be >= 0 (0 = at the end only)");
  return absl::OkStatus();
}

nlohmann::json ToJson(const PointCloudTrainConfig& c) {
  return {{"family", "pointcloud"},
          {"network", NetworkJson(c.network)},
          {"optimizer", OptimizerJson(c.optimizer)},
          {"monge_map", c.monge_map},
          {"epsilon", c.epsilon},
          {"sinkhorn_iterations", c.sinkhorn_iterations},
          {"sinkhorn_tolerance", c.sinkhorn_tolerance},
          {"minibatch_ot", c.minibatch_ot},
          {"minibatch_cost", c.minibatch_cost},
          {"minibatch_cost_epsilon", c.minibatch_cost_epsilon},
          {"minibatch_epsilon", c.minibatch_epsilon},
          {"noise", PointCloudSourceName(c.source)},
          {"noise_df_scale", c.noise_df_scale},
          {"guidance", c.guidance},
          {"p_uncond", c.p_uncond},
          {"subsample_points", c.subsample_points},
          {"source_subsample_points", c.source_subsample_points},
          {"checkpoint_every", c.checkpoint_every}};
}

nlohmann::json ToJson(const GaussianTrainConfig& c) {
  return {{"family", "gaussian"},
          {"network", NetworkJson(c.network)},
          {"optimizer", OptimizerJson(c.optimizer)},
          {"minibatch_ot", c.minibatch_ot},
          {"minibatch_epsilon", c.minibatch_epsilon},
          {"velocity", c.velocity},
          {"loss", c.loss},
          {"noise", GaussianSourceName(c.source)},
          {"degrees_of_freedom_scale", c.degrees_of_freedom_scale},
          {"mean_scale_factor", c.mean_scale_factor},
          {"cov_scale_factor", c.cov_scale_factor},
          {"checkpoint_every", c.checkpoint_every}};
}

absl::StatusOr<PointCloudTrainConfig> PointCloudTrainConfigFromJson(const nlohmann::json& j) {
  PointCloudTrainConfig c;
  try {
    if (j.contains("network")) ReadNetwork(j.at("network"), &c.network);
    if (j.contains("optimizer")) ReadOptimizer(j.at("optimizer"), &c.optimizer);
    Get(j, "monge_map", &c.monge_map);
    Get(j, "epsilon", &c.epsilon);
    Get(j, "sinkhorn_iterations", &c.sinkhorn_iterations);
    Get(j, "sinkhorn_tolerance", &c.sinkhorn_tolerance);
    Get(j, "minibatch_ot", &c.minibatch_ot);
    Get(j, "minibatch_cost", &c.minibatch_cost);
    Get(j, "minibatch_cost_epsilon", &c.minibatch_cost_epsilon);
    Get(j, "minibatch_epsilon", &c.minibatch_epsilon);
    if (j.contains("noise")) {
      WFM_ASSIGN_OR_RETURN(c.source, ParsePointCloudSource(j.at("noise").get<std::string>()));
    }
    Get(j, "noise_df_scale", &c.noise_df_scale);
    Get(j, "guidance", &c.guidance);
    Get(j, "p_uncond", &c.p_uncond);
    Get(j, "subsample_points", &c.subsample_points);
    Get(j, "source_subsample_points", &c.source_subsample_points);
    Get(j, "checkpoint_every", &c.checkpoint_every);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  WFM_RETURN_IF_ERROR(ValidatePointCloudTrainConfig(c));
  return c;
}

absl::StatusOr<GaussianTrainConfig> GaussianTrainConfigFromJson(const nlohmann::json& j) {
  GaussianTrainConfig c;
  try {
    if (j.contains("network")) ReadNetwork(j.at("network"), &c.network);
    if (j.contains("optimizer")) ReadOptimizer(j.at("optimizer"), &c.optimizer);
    Get(j, "minibatch_ot", &c.minibatch_ot);
    Get(j, "minibatch_epsilon", &c.minibatch_epsilon);
    Get(j, "velocity", &c.velocity);
    Get(j, "loss", &c.loss);
    if (j.contains("noise")) {
      WFM_ASSIGN_OR_RETURN(c.source, ParseGaussianSource(j.at("noise").get<std::string>()));
    }
    Get(j, "degrees_of_freedom_scale", &c.degrees_of_freedom_scale);
    Get(j, "mean_scale_factor", &c.mean_scale_factor);
    Get(j, "cov_scale_factor", &c.cov_scale_factor);
    Get(j, "checkpoint_every", &c.checkpoint_every);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  WFM_RETURN_IF_ERROR(ValidateGaussianTrainConfig(c));
  return c;
}

}  // namespace wfm::model
