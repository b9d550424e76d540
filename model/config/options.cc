#include "model/config/options.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/common/status.h"

namespace wfm::model {
namespace {

// Upper bounds that keep one training job within a machine's reach; requests
// beyond them are refused with the limit named.
constexpr double kMaxWidth = 4096;
constexpr double kMaxLayers = 64;
constexpr double kMaxSteps = 100'000'000;
constexpr double kMaxBatch = 65536;
constexpr double kMaxSinkhornIterations = 100'000;
constexpr double kMaxNicheSize = 1024;

// ------------------------------------------------------------------ rules

OptionRule Between(double lo, double hi) { return {lo, hi, false, false, {}}; }
OptionRule AtLeast(double lo) { return {lo, std::nullopt, false, false, {}}; }
OptionRule Above(double lo) { return {lo, std::nullopt, true, false, {}}; }
OptionRule FromUpTo(double lo, double hi) { return {lo, hi, false, true, {}}; }   // [lo, hi)
OptionRule AboveUpTo(double lo, double hi) { return {lo, hi, true, false, {}}; }  // (lo, hi]
OptionRule OneOf(std::vector<std::string> choices) {
  OptionRule r;
  r.choices = std::move(choices);
  return r;
}
OptionRule Any() { return {}; }

// Bounds as they are written in messages: integers without a fraction.
std::string Number(double v) {
  if (std::abs(v) < 1e15 && v == std::floor(v)) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

// The numeric value of an int / uint / double option (NaN for the others).
double AsDouble(const OptionValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::numeric_limits<double>::quiet_NaN();
}

// ------------------------------------------------------------- accessors

template <typename T>
constexpr OptionType TypeOf() {
  if constexpr (std::is_same_v<T, int64_t>) return OptionType::kInt;
  if constexpr (std::is_same_v<T, uint64_t>) return OptionType::kUint;
  if constexpr (std::is_same_v<T, double>) return OptionType::kDouble;
  if constexpr (std::is_same_v<T, bool>) return OptionType::kBool;
  return OptionType::kString;
}

// A field stored in the member that `ref` selects. `ref` only selects a
// member (it never modifies the config), so reading through a const_cast is
// safe; one selector serves both get and set.
template <typename Ref>
OptionField Field(Family family, std::string path, OptionRule rule, Ref ref) {
  using T = std::remove_reference_t<std::invoke_result_t<Ref, TrainingConfig&>>;
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t> ||
                std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                std::is_same_v<T, std::string>);
  OptionField f;
  f.family = family;
  f.path = std::move(path);
  f.rule = std::move(rule);
  f.get = [ref](const TrainingConfig& c) -> OptionValue {
    return ref(const_cast<TrainingConfig&>(c));
  };
  f.set = [ref](TrainingConfig* c, const OptionValue& v) { ref(*c) = std::get<T>(v); };
  return f;
}

// A field of a run setting (TrainingConfig's own members).
template <typename Ref>
OptionField RunField(Family family, std::string path, OptionRule rule, Ref ref) {
  OptionField f = Field(family, std::move(path), std::move(rule), ref);
  f.model_config = false;
  return f;
}

// An enum member written by name; its choices are every name.
template <typename E, typename Ref>
OptionField EnumField(Family family, std::string path, Ref ref, std::vector<E> values,
                      std::string (*name)(E)) {
  std::vector<std::string> names;
  for (E e : values) names.push_back(name(e));
  OptionField f;
  f.family = family;
  f.path = std::move(path);
  f.rule = OneOf(names);
  f.get = [ref, name](const TrainingConfig& c) -> OptionValue {
    return name(ref(const_cast<TrainingConfig&>(c)));
  };
  f.set = [ref, values, name](TrainingConfig* c, const OptionValue& v) {
    for (E e : values) {
      if (name(e) == std::get<std::string>(v)) ref(*c) = e;
    }
  };
  return f;
}

// The same member of both family configurations (`member` takes either).
template <typename Member>
std::vector<OptionField> BothFamilies(const std::string& path, const OptionRule& rule,
                                      Member member) {
  return {Field(
              Family::kPointCloud, path,
              rule, [member](TrainingConfig & c) -> auto& { return member(c.pointcloud); }),
          Field(
              Family::kGaussian, path,
              rule, [member](TrainingConfig & c) -> auto& { return member(c.gaussian); })};
}

template <typename Ref>
std::vector<OptionField> PointCloudOnly(const std::string& path, const OptionRule& rule, Ref ref) {
  return {Field(Family::kPointCloud, path, rule, ref)};
}

template <typename Ref>
std::vector<OptionField> GaussianOnly(const std::string& path, const OptionRule& rule, Ref ref) {
  return {Field(Family::kGaussian, path, rule, ref)};
}

TrainingOption Option(std::string name, std::string group, std::string help,
                      std::vector<OptionField> fields) {
  TrainingOption o;
  o.name = std::move(name);
  o.group = std::move(group);
  o.help = std::move(help);
  o.fields = std::move(fields);
  // Every field of an option has one type: the type of its value.
  o.type = static_cast<OptionType>(o.fields.front().get(TrainingConfig{}).index());
  return o;
}

// ------------------------------------------------------------------ table

// Selectors of a member of a TrainingConfig / of either family's
// configuration, for the table below.
// clang-format off
#define WFM_MEMBER(member) [](TrainingConfig& c) -> auto& { return c.member; }
#define WFM_FAMILY_MEMBER(member) [](auto& c) -> auto& { return c.member; }
// clang-format on

std::vector<TrainingOption> MakeTable() {
  using F = Family;
  const std::string kOpt = "Optimisation";
  const std::string kNet = "Network";
  const std::string kData = "Data";
  const std::string kFlow = "Flow matching";
  std::vector<TrainingOption> t;

  // Optimisation (both families).
  t.push_back(Option(
      "steps", kOpt, "training steps",
      BothFamilies("optimizer.steps", Between(1, kMaxSteps), WFM_FAMILY_MEMBER(optimizer.steps))));
  t.push_back(Option("batch", kOpt, "samples per step",
                     BothFamilies("optimizer.batch_size", Between(1, kMaxBatch),
                                  WFM_FAMILY_MEMBER(optimizer.batch_size))));
  t.push_back(Option("lr", kOpt, "learning rate",
                     BothFamilies("optimizer.learning_rate", Above(0),
                                  WFM_FAMILY_MEMBER(optimizer.learning_rate))));
  t.push_back(Option("lr-schedule", kOpt,
                     "learning-rate schedule: exponential (--decay-steps, --decay-rate) or cosine "
                     "(to 0 at the end of the run)",
                     BothFamilies("optimizer.lr_schedule", OneOf({"exponential", "cosine"}),
                                  WFM_FAMILY_MEMBER(optimizer.lr_schedule))));
  t.push_back(Option(
      "decay-steps", kOpt,
      "the learning rate is multiplied by --decay-rate every this many steps (0 = constant)",
      BothFamilies("optimizer.decay_steps", AtLeast(0), WFM_FAMILY_MEMBER(optimizer.decay_steps))));
  t.push_back(Option("decay-rate", kOpt, "learning-rate decay factor",
                     BothFamilies("optimizer.decay_rate", AboveUpTo(0, 1),
                                  WFM_FAMILY_MEMBER(optimizer.decay_rate))));
  t.push_back(Option("warmup-steps", kOpt,
                     "linear learning-rate warm-up over the first steps (0 = none)",
                     BothFamilies("optimizer.warmup_steps", Between(0, kMaxSteps),
                                  WFM_FAMILY_MEMBER(optimizer.warmup_steps))));
  t.push_back(Option("weight-decay", kOpt, "decoupled weight decay (AdamW; 0 = Adam)",
                     BothFamilies("optimizer.weight_decay", FromUpTo(0, 1),
                                  WFM_FAMILY_MEMBER(optimizer.weight_decay))));
  t.push_back(Option("grad-clip", kOpt, "gradient norm clip (0 = none)",
                     BothFamilies("optimizer.grad_clip_norm", AtLeast(0),
                                  WFM_FAMILY_MEMBER(optimizer.grad_clip_norm))));
  t.push_back(Option("ema", kOpt,
                     "decay of the moving average of the weights that sampling uses (0 = none)",
                     BothFamilies("optimizer.ema_decay", FromUpTo(0, 1),
                                  WFM_FAMILY_MEMBER(optimizer.ema_decay))));
  t.push_back(Option("time-budget", kOpt,
                     "seconds of training after which the run ends with its model, before "
                     "--steps if sooner (0 = no budget)",
                     BothFamilies("optimizer.time_budget_seconds", AtLeast(0),
                                  WFM_FAMILY_MEMBER(optimizer.time_budget_seconds))));
  t.push_back(Option("seed", kOpt, "random seed of the run",
                     BothFamilies("optimizer.seed", Any(), WFM_FAMILY_MEMBER(optimizer.seed))));

  // Network.
  t.push_back(Option(
      "emb", kNet, "embedding width (pointcloud: even, divisible by --heads)",
      BothFamilies("network.width", Between(2, kMaxWidth), WFM_FAMILY_MEMBER(network.width))));
  t.push_back(Option(
      "layers", kNet, "blocks / layers",
      BothFamilies("network.layers", Between(1, kMaxLayers), WFM_FAMILY_MEMBER(network.layers))));
  {
    TrainingOption heads =
        Option("heads", kNet, "attention heads (divides --emb)",
               PointCloudOnly("network.heads", AtLeast(1), WFM_MEMBER(pointcloud.network.heads)));
    heads.fields[0].context_rule = [](const TrainingConfig& c) {
      return Between(1, static_cast<double>(c.pointcloud.network.width));
    };
    t.push_back(std::move(heads));
  }
  t.push_back(Option("mlp", kNet, "hidden width of the MLPs",
                     BothFamilies("network.mlp_hidden", Between(1, 4 * kMaxWidth),
                                  WFM_FAMILY_MEMBER(network.mlp_hidden))));
  t.push_back(Option(
      "dropout", kNet, "dropout rate",
      PointCloudOnly("network.dropout", FromUpTo(0, 1), WFM_MEMBER(pointcloud.network.dropout))));
  t.push_back(Option("architecture", kNet,
                     "separate towers for mean and covariance, or one joint MLP",
                     GaussianOnly("network.architecture", OneOf({"separate", "joint"}),
                                  WFM_MEMBER(gaussian.network.architecture))));

  // Data: what the run takes from its data set.
  {
    std::vector<OptionField> k;
    std::vector<OptionField> holdout;
    std::vector<OptionField> source;
    for (F f : {F::kPointCloud, F::kGaussian}) {
      k.push_back(RunField(f, "niche_size", Between(1, kMaxNicheSize), WFM_MEMBER(niche_size)));
      holdout.push_back(
          RunField(f, "holdout_fraction", FromUpTo(0, 1), WFM_MEMBER(holdout_fraction)));
      source.push_back(
          RunField(f, f == F::kPointCloud ? "pointcloud.source_dataset" : "gaussian.source_dataset",
                   Any(), WFM_MEMBER(source_dataset)));
    }
    t.push_back(Option("k", kData,
                       "niche size: nearest spatial neighbours (SPATIAL_CELLS data sets)",
                       std::move(k)));
    t.push_back(Option("holdout", kData,
                       "fraction of the items held out of training (evaluate --split heldout)",
                       std::move(holdout)));
    t.push_back(
        Option("checkpoint-every", kData,
               "steps between checkpoints (0 = at the end only; wfm-server fills an unset "
               "value from its --checkpoint-every)",
               BothFamilies("checkpoint_every", AtLeast(0), WFM_FAMILY_MEMBER(checkpoint_every))));
    t.push_back(
        Option("source-dataset", kData,
               "data set of source clouds / Gaussians (--noise given_random | given_matched)",
               std::move(source)));
  }

  // Flow matching.
  {
    const std::vector<PointCloudSource> pc_sources = {
        PointCloudSource::kUniform,     PointCloudSource::kNormal,
        PointCloudSource::kCholNormal,  PointCloudSource::kMetaNormal,
        PointCloudSource::kGivenRandom, PointCloudSource::kGivenMatched};
    const std::vector<GaussianSource> g_sources = {
        GaussianSource::kWishart, GaussianSource::kGivenRandom, GaussianSource::kGivenMatched};
    t.push_back(Option("noise", kFlow, "source distribution of the flow (t = 1)",
                       {EnumField(F::kPointCloud, "pointcloud.noise", WFM_MEMBER(pointcloud.source),
                                  pc_sources, &PointCloudSourceName),
                        EnumField(F::kGaussian, "gaussian.noise", WFM_MEMBER(gaussian.source),
                                  g_sources, &GaussianSourceName)}));
  }
  t.push_back(Option(
      "minibatch-ot", kFlow,
      "re-pair noise and data by OT over each batch (pointcloud: unconditional models only)",
      {Field(F::kPointCloud, "pointcloud.minibatch_ot", Any(), WFM_MEMBER(pointcloud.minibatch_ot)),
       Field(F::kGaussian, "gaussian.minibatch_ot", Any(), WFM_MEMBER(gaussian.minibatch_ot))}));
  t.push_back(Option("minibatch-eps", kFlow, "ε of the minibatch OT, relative to its largest cost",
                     {Field(F::kPointCloud, "pointcloud.minibatch_epsilon", Above(0),
                            WFM_MEMBER(pointcloud.minibatch_epsilon)),
                      Field(F::kGaussian, "gaussian.minibatch_epsilon", Above(0),
                            WFM_MEMBER(gaussian.minibatch_epsilon))}));
  t.push_back(Option("minibatch-cost", kFlow, "cost between clouds of the minibatch OT",
                     PointCloudOnly("pointcloud.minibatch_cost",
                                    OneOf({"chamfer", "entropic", "euclidean", "frechet"}),
                                    WFM_MEMBER(pointcloud.minibatch_cost))));
  t.push_back(Option("minibatch-cost-eps", kFlow,
                     "absolute ε of the 'entropic' cost between clouds (--minibatch-cost entropic)",
                     PointCloudOnly("pointcloud.minibatch_cost_epsilon", Above(0),
                                    WFM_MEMBER(pointcloud.minibatch_cost_epsilon))));
  t.push_back(Option(
      "monge-map", kFlow, "map from the per-pair OT plan",
      PointCloudOnly("pointcloud.monge_map",
                     OneOf({"entropic", "argmax", "rounded_matching", "sample", "euclidean"}),
                     WFM_MEMBER(pointcloud.monge_map))));
  t.push_back(
      Option("eps", kFlow, "Sinkhorn ε, relative to each pair's largest cost",
             PointCloudOnly("pointcloud.epsilon", Above(0), WFM_MEMBER(pointcloud.epsilon))));
  t.push_back(
      Option("sinkhorn-iters", kFlow, "Sinkhorn iterations (0 = until --sinkhorn-tol)",
             PointCloudOnly("pointcloud.sinkhorn_iterations", Between(0, kMaxSinkhornIterations),
                            WFM_MEMBER(pointcloud.sinkhorn_iterations))));
  t.push_back(Option("sinkhorn-tol", kFlow, "Sinkhorn marginal tolerance (with --sinkhorn-iters 0)",
                     PointCloudOnly("pointcloud.sinkhorn_tolerance", Above(0),
                                    WFM_MEMBER(pointcloud.sinkhorn_tolerance))));
  t.push_back(Option(
      "guidance", kFlow,
      "default guidance γ of conditional models for sampling (> 1 turns on --p-uncond)",
      {Field(F::kPointCloud, "pointcloud.guidance", AtLeast(0), WFM_MEMBER(pointcloud.guidance)),
       Field(F::kGaussian, "gaussian.guidance", AtLeast(0), WFM_MEMBER(gaussian.guidance))}));
  t.push_back(Option(
      "p-uncond", kFlow,
      "probability of replacing the label or condition by the null one in training",
      {Field(F::kPointCloud, "pointcloud.p_uncond", FromUpTo(0, 1),
             WFM_MEMBER(pointcloud.p_uncond)),
       Field(F::kGaussian, "gaussian.p_uncond", FromUpTo(0, 1), WFM_MEMBER(gaussian.p_uncond))}));
  t.push_back(Option("subsample-points", kFlow, "points drawn per data cloud and step (0 = all)",
                     PointCloudOnly("pointcloud.subsample_points", AtLeast(0),
                                    WFM_MEMBER(pointcloud.subsample_points))));
  t.push_back(Option("source-subsample-points", kFlow,
                     "points drawn per source cloud and step (0 = all)",
                     PointCloudOnly("pointcloud.source_subsample_points", AtLeast(0),
                                    WFM_MEMBER(pointcloud.source_subsample_points))));
  t.push_back(Option("df-scale", kFlow,
                     "Wishart degrees-of-freedom scale (pointcloud meta_normal, gaussian wishart)",
                     {Field(F::kPointCloud, "pointcloud.noise_df_scale", Above(0),
                            WFM_MEMBER(pointcloud.noise_df_scale)),
                      Field(F::kGaussian, "gaussian.degrees_of_freedom_scale", Above(0),
                            WFM_MEMBER(gaussian.degrees_of_freedom_scale))}));
  t.push_back(Option("t-dist", kFlow,
                     "distribution of the flow time t in training: uniform, or logit_normal "
                     "(sigmoid of a standard normal: more weight mid-way)",
                     {Field(F::kPointCloud, "pointcloud.time_distribution",
                            OneOf({"uniform", "logit_normal"}),
                            WFM_MEMBER(pointcloud.time_distribution)),
                      Field(F::kGaussian, "gaussian.time_distribution",
                            OneOf({"uniform", "logit_normal"}),
                            WFM_MEMBER(gaussian.time_distribution))}));
  t.push_back(Option("feature-transform", kData,
                     "transform of the point features the flow is trained in (samples are mapped "
                     "back); auto: log1p_standardize for the niches of SPATIAL_CELLS data sets "
                     "whose expression values are counts (non-negative integers), none otherwise",
                     PointCloudOnly("pointcloud.feature_transform",
                                    OneOf({"none", "log1p", "standardize", "log1p_standardize",
                                           "auto"}),
                                    WFM_MEMBER(pointcloud.feature_transform))));
  t.push_back(Option("velocity", kFlow, "velocity field of the covariance path",
                     GaussianOnly("gaussian.velocity", OneOf({"riemannian", "euclidean"}),
                                  WFM_MEMBER(gaussian.velocity))));
  t.push_back(Option(
      "loss", kFlow, "norm of the velocity error",
      GaussianOnly("gaussian.loss", OneOf({"tangent", "euclidean"}), WFM_MEMBER(gaussian.loss))));
  t.push_back(Option("mean-scale", kFlow, "scale of the source means",
                     GaussianOnly("gaussian.mean_scale_factor", Above(0),
                                  WFM_MEMBER(gaussian.mean_scale_factor))));
  t.push_back(Option(
      "cov-scale", kFlow, "scale of the source covariances",
      GaussianOnly("gaussian.cov_scale_factor", Above(0), WFM_MEMBER(gaussian.cov_scale_factor))));
  return t;
}

#undef WFM_MEMBER
#undef WFM_FAMILY_MEMBER

// The rules that relate options; run after every option passed its own rule.
absl::Status CheckRelations(const TrainingConfig& c) {
  if (c.family != Family::kPointCloud) return absl::OkStatus();
  const NetworkConfig& n = c.pointcloud.network;
  if (n.width % n.heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("network.width: (", n.width, ") must be divisible by heads (", n.heads, ")"));
  }
  if (n.width % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("network.width: must be even (Fourier time features), got ", n.width));
  }
  return absl::OkStatus();
}

// JSON <-> option values.
nlohmann::json ToJsonValue(const OptionValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

OptionValue FromJsonValue(OptionType type, const nlohmann::json& j) {  // throws json::exception
  switch (type) {
    case OptionType::kInt:
      return j.get<int64_t>();
    case OptionType::kUint:
      return j.get<uint64_t>();
    case OptionType::kDouble:
      return j.get<double>();
    case OptionType::kBool:
      return j.get<bool>();
    case OptionType::kString:
      return j.get<std::string>();
  }
  return j.get<std::string>();
}

std::vector<std::string> SplitPath(const std::string& key) { return absl::StrSplit(key, '.'); }

}  // namespace

// ------------------------------------------------------------------ rules

absl::Status OptionRule::Check(const OptionValue& value) const {
  if (const auto* s = std::get_if<std::string>(&value)) {
    if (choices.empty()) return absl::OkStatus();
    for (const std::string& c : choices) {
      if (c == *s) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown '", *s, "' (expected one of ", absl::StrJoin(choices, ", "), ")"));
  }
  if (std::holds_alternative<bool>(value)) return absl::OkStatus();
  const double v = AsDouble(value);
  const bool is_double = std::holds_alternative<double>(value);
  const bool ok = std::isfinite(v) && (!min || (min_open ? v > *min : v >= *min)) &&
                  (!max || (max_open ? v < *max : v <= *max));
  if (ok) return absl::OkStatus();
  const std::string got = absl::StrCat(", got ", OptionValueText(value));
  if (min && max) {
    return absl::InvalidArgumentError(absl::StrCat("must be in ", min_open ? "(" : "[",
                                                   Number(*min), ", ", Number(*max),
                                                   max_open ? ")" : "]", got));
  }
  const std::string finite = is_double ? "a finite number " : "";
  if (min) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be ", finite, min_open ? "> " : ">= ", Number(*min), got));
  }
  if (max) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be ", finite, max_open ? "< " : "<= ", Number(*max), got));
  }
  return absl::InvalidArgumentError(absl::StrCat("must be a finite number", got));
}

std::string OptionRule::Describe(OptionType type) const {
  if (!choices.empty()) return absl::StrCat("one of ", absl::StrJoin(choices, " | "));
  if (type == OptionType::kString || type == OptionType::kBool) return "";
  if (min && max) {
    return absl::StrCat("in ", min_open ? "(" : "[", Number(*min), ", ", Number(*max),
                        max_open ? ")" : "]");
  }
  if (min) return absl::StrCat(min_open ? "> " : ">= ", Number(*min));
  if (max) return absl::StrCat(max_open ? "< " : "<= ", Number(*max));
  return "";
}

// ----------------------------------------------------------------- fields

std::string OptionTypeName(OptionType type) {
  switch (type) {
    case OptionType::kInt:
      return "int";
    case OptionType::kUint:
      return "uint";
    case OptionType::kDouble:
      return "double";
    case OptionType::kBool:
      return "bool";
    case OptionType::kString:
      return "string";
  }
  return "unknown";
}

std::string OptionField::JsonKey() const {
  for (const char* prefix : {"pointcloud.", "gaussian."}) {
    if (absl::StartsWith(path, prefix)) return path.substr(std::string(prefix).size());
  }
  return path;
}

const OptionField* TrainingOption::For(Family family) const {
  for (const OptionField& f : fields) {
    if (f.family == family) return &f;
  }
  return nullptr;
}

std::string TrainingOption::Keyword() const {
  std::string k = name;
  for (char& ch : k) {
    if (ch == '-') ch = '_';
  }
  return k;
}

std::string TrainingOption::Families() const {
  std::vector<std::string> names;
  for (const OptionField& f : fields) names.push_back(FamilyName(f.family));
  return absl::StrJoin(names, ", ");
}

std::string TrainingOption::DefaultText() const {
  std::vector<std::string> texts;
  for (const OptionField& f : fields) texts.push_back(OptionValueText(f.get(TrainingConfig{})));
  bool same = true;
  for (const std::string& t : texts) same = same && t == texts.front();
  if (same) return texts.front();
  std::vector<std::string> parts;
  for (size_t i = 0; i < fields.size(); ++i) {
    parts.push_back(absl::StrCat(texts[i], " (", FamilyName(fields[i].family), ")"));
  }
  return absl::StrJoin(parts, ", ");
}

const std::vector<TrainingOption>& TrainingOptions() {
  static const std::vector<TrainingOption>* const table =
      new std::vector<TrainingOption>(MakeTable());
  return *table;
}

const TrainingOption* FindTrainingOption(absl::string_view name) {
  for (const TrainingOption& o : TrainingOptions()) {
    if (o.name == name || o.Keyword() == name) return &o;
  }
  return nullptr;
}

// ----------------------------------------------------------------- values

absl::StatusOr<OptionValue> ParseOptionValue(OptionType type, absl::string_view text) {
  switch (type) {
    case OptionType::kInt: {
      int64_t v = 0;
      if (absl::SimpleAtoi(text, &v)) return v;
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': expected an integer"));
    }
    case OptionType::kUint: {
      uint64_t v = 0;
      if (!text.empty() && text[0] != '-' && absl::SimpleAtoi(text, &v)) return v;
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': expected a non-negative integer"));
    }
    case OptionType::kDouble: {
      double v = 0;
      if (absl::SimpleAtod(text, &v)) return v;
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': expected a number"));
    }
    case OptionType::kBool: {
      const std::string v = absl::AsciiStrToLower(text);
      if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
      if (v == "off" || v == "false" || v == "no" || v == "0") return false;
      return absl::InvalidArgumentError(absl::StrCat(text, ": expected on or off"));
    }
    case OptionType::kString:
      return std::string(text);
  }
  return absl::InternalError("unknown option type");
}

std::string OptionValueText(const OptionValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "on" : "off";
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* i = std::get_if<int64_t>(&value)) return absl::StrCat(*i);
  if (const auto* u = std::get_if<uint64_t>(&value)) return absl::StrCat(*u);
  return absl::StrCat(std::get<double>(value));
}

// ------------------------------------------------------------- validation

absl::Status ValidateTrainingConfig(const TrainingConfig& config) {
  for (const TrainingOption& o : TrainingOptions()) {
    const OptionField* f = o.For(config.family);
    if (f == nullptr) continue;
    const OptionRule rule = f->context_rule ? f->context_rule(config) : f->rule;
    const absl::Status s = rule.Check(f->get(config));
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(f->path, ": ", s.message()));
  }
  return CheckRelations(config);
}

// ------------------------------------------------------------------- JSON

nlohmann::json ModelConfigJson(const TrainingConfig& config) {
  nlohmann::json j = {{"family", FamilyName(config.family)}};
  for (const TrainingOption& o : TrainingOptions()) {
    const OptionField* f = o.For(config.family);
    if (f == nullptr || !f->model_config) continue;
    nlohmann::json* node = &j;
    const std::vector<std::string> keys = SplitPath(f->JsonKey());
    for (size_t i = 0; i + 1 < keys.size(); ++i) node = &(*node)[keys[i]];
    (*node)[keys.back()] = ToJsonValue(f->get(config));
  }
  return j;
}

absl::Status ReadModelConfigJson(const nlohmann::json& json, TrainingConfig* config) {
  if (!json.is_object()) return absl::InvalidArgumentError("config: must be a JSON object");
  for (const TrainingOption& o : TrainingOptions()) {
    const OptionField* f = o.For(config->family);
    if (f == nullptr || !f->model_config) continue;
    const std::string key = f->JsonKey();
    const nlohmann::json* node = &json;
    for (const std::string& k : SplitPath(key)) {
      if (node == nullptr || !node->is_object() || !node->contains(k)) {
        node = nullptr;
        break;
      }
      node = &node->at(k);
    }
    if (node == nullptr) continue;
    OptionValue value;
    try {
      value = FromJsonValue(o.type, *node);
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", key, ": ", e.what()));
    }
    const absl::Status s = f->rule.Check(value);
    if (!s.ok())
      return absl::InvalidArgumentError(absl::StrCat("config: ", key, ": ", s.message()));
    f->set(config, value);
  }
  return ValidateTrainingConfig(*config);
}

// ------------------------------------------ the family configs' wrappers

namespace {

TrainingConfig Of(const PointCloudTrainConfig& c) {
  TrainingConfig config;
  config.family = Family::kPointCloud;
  config.pointcloud = c;
  return config;
}

TrainingConfig Of(const GaussianTrainConfig& c) {
  TrainingConfig config;
  config.family = Family::kGaussian;
  config.gaussian = c;
  return config;
}

// The family configuration `member` of `family` read from `j`.
template <typename C>
absl::StatusOr<C> FromJson(const nlohmann::json& j, Family family, C TrainingConfig::*member) {
  TrainingConfig config;
  config.family = family;
  WFM_RETURN_IF_ERROR(ReadModelConfigJson(j, &config));
  return config.*member;
}

}  // namespace

absl::Status ValidatePointCloudTrainConfig(const PointCloudTrainConfig& c) {
  return ValidateTrainingConfig(Of(c));
}

absl::Status ValidateGaussianTrainConfig(const GaussianTrainConfig& c) {
  return ValidateTrainingConfig(Of(c));
}

nlohmann::json ToJson(const PointCloudTrainConfig& c) { return ModelConfigJson(Of(c)); }

nlohmann::json ToJson(const GaussianTrainConfig& c) { return ModelConfigJson(Of(c)); }

absl::StatusOr<PointCloudTrainConfig> PointCloudTrainConfigFromJson(const nlohmann::json& j) {
  return FromJson(j, Family::kPointCloud, &TrainingConfig::pointcloud);
}

absl::StatusOr<GaussianTrainConfig> GaussianTrainConfigFromJson(const nlohmann::json& j) {
  return FromJson(j, Family::kGaussian, &TrainingConfig::gaussian);
}

}  // namespace wfm::model
