// wfm sample, evaluate.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/conditions.h"
#include "client/output.h"
#include "client/progress.h"
#include "client/sample_files.h"
#include "model/io/point_sets.h"
#include "model/common/status.h"

namespace wfm::client {
namespace io = ::wfm::model::io;
namespace {

// --steps --solver --rtol --atol of `wfm sample` and `wfm evaluate`.
struct SolverFlags {
  int64_t steps = 0;
  std::string solver;  // empty = the family's default
  std::optional<double> rtol, atol;
};

void AddSolverFlags(CLI::App* app, SolverFlags* f) {
  app->add_option("--steps", f->steps,
                  "integration steps (default: sample 1 for point clouds, 16 for Gaussians; "
                  "evaluate 100; adaptive: the step cap)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--solver", f->solver,
                  "ODE solver (default: midpoint for point clouds, euler for Gaussians)")
      ->check(CLI::IsMember({"euler", "midpoint", "heun", "rk4", "adaptive"}));
  AddOptional(app, "--rtol", &f->rtol, "adaptive solver: relative tolerance (default 1e-3)");
  AddOptional(app, "--atol", &f->atol, "adaptive solver: absolute tolerance (default 1e-4)");
}

// The flags onto a SampleNiches, SampleGaussians or Evaluate request.
template <typename Request>
void SetSolver(const SolverFlags& f, Request* request) {
  request->set_steps(f.steps);
  request->set_solver(f.solver);
  if (f.rtol) request->set_rtol(*f.rtol);
  if (f.atol) request->set_atol(*f.atol);
}

// --priority and --queue-timeout of `wfm sample`: the request's place in
// the model's sampling queue.
struct QueueFlags {
  std::string priority = "normal";
  std::optional<double> timeout;  // seconds; unset = no queue timeout
};

void AddQueueFlags(CLI::App* app, QueueFlags* f) {
  app->add_option("--priority", f->priority,
                  "place in the model's sampling queue: high requests are batched before "
                  "normal ones, normal before low (a waiting request gains a level per "
                  "--priority-aging-seconds of the server)")
      ->check(CLI::IsMember({"low", "normal", "high"}))
      ->capture_default_str();
  AddOptional(app, "--queue-timeout", &f->timeout,
              "give up (DEADLINE_EXCEEDED, nothing computed) when the request waited this many "
              "seconds in the model's queue (at most 86400; default: no limit)")
      ->check(CLI::PositiveNumber)
      ->check(CLI::Range(0.0, 86400.0));
}

// The flags onto a SampleNiches or SampleGaussians request.
template <typename Request>
void SetQueuePolicy(const QueueFlags& f, Request* request) {
  request->set_priority(f.priority == "high"  ? v1::SAMPLING_PRIORITY_HIGH
                        : f.priority == "low" ? v1::SAMPLING_PRIORITY_LOW
                                              : v1::SAMPLING_PRIORITY_NORMAL);
  if (f.timeout) request->set_queue_timeout_seconds(*f.timeout);
}

// --version V: a model version (default: the serving one).
void AddVersionFlag(CLI::App* app, int64_t* version) {
  app->add_option("--version", *version, "model version (default: the serving version)")
      ->check(CLI::PositiveNumber);
}

struct SampleFlags {
  std::string model;
  int64_t version = 0;  // 0 = the serving version
  int64_t num = 16;
  std::string out;
  int64_t points = 0;
  std::string label;
  std::string condition;  // "0.5,1"
  SolverFlags ode;
  QueueFlags queue;
  uint64_t seed = 0;
  std::optional<double> guidance;
  bool trajectory = false;
  std::string pca_from;
  std::string features = "X";
  int64_t columns = 0;
  std::string title;
  bool json = false;
  std::string init;       // --init FILE.npz: given source clouds / Gaussians
  bool num_given = false;  // --num was on the command line
};

// What both sample requests take from the flags: model, count, label or
// condition, guidance, solver, queue policy, seed and trajectory.
template <typename Request>
void SetCommon(const SampleFlags& f, int64_t num, const std::vector<float>& condition,
               Request* request) {
  request->set_model(f.model);
  request->set_version(f.version);
  request->set_num_samples(num);
  request->set_label(f.label);
  request->mutable_condition()->Add(condition.begin(), condition.end());
  if (f.guidance) request->set_guidance(*f.guidance);
  SetSolver(f.ode, request);
  SetQueuePolicy(f.queue, request);
  request->set_seed(f.seed);
  request->set_trajectory(f.trajectory);
}

absl::StatusOr<std::vector<float>> ParseCondition(const std::string& text) {
  std::vector<float> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    float v;
    if (!absl::SimpleAtof(absl::StripAsciiWhitespace(part), &v) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--condition ", text, ": '", part, "' is not a finite number; expected e.g. 0.5,1.25"));
    }
    values.push_back(v);
  }
  return values;
}

absl::Status Sample(CliContext& context, const SampleFlags& flags) {
  SampleFlags f = flags;  // a named --condition may set the label
  // Local checks first: the output type, flag combinations, --pca-from.
  WFM_RETURN_IF_ERROR(CheckSampleOutput(f.out, false, f.trajectory));
  if (!f.label.empty() && !f.condition.empty()) {
    return absl::InvalidArgumentError("--label and --condition exclude each other");
  }
  std::vector<float> condition;
  if (!f.condition.empty() && !IsNamedCondition(f.condition)) {
    WFM_ASSIGN_OR_RETURN(condition, ParseCondition(f.condition));
  }
  SvgOptions svg;
  svg.columns = f.columns;
  if (!f.pca_from.empty()) {
    WFM_ASSIGN_OR_RETURN(svg.projection, ProjectionFromFile(f.pca_from, f.features));
  }

  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  WFM_ASSIGN_OR_RETURN(const v1::ModelInfo model, client->GetModel(f.model, f.version));
  const bool gaussian = model.family() == v1::FAMILY_GAUSSIAN;
  WFM_RETURN_IF_ERROR(CheckSampleOutput(f.out, gaussian, f.trajectory));
  if (svg.projection.has_value() && svg.projection->dim != model.dim()) {
    return absl::InvalidArgumentError(absl::StrCat("--pca-from ", f.pca_from, ": dimension ",
                                                   svg.projection->dim, "; model '", f.model,
                                                   "' generates dimension ", model.dim()));
  }
  if (IsNamedCondition(f.condition)) {  // KEY=VALUE,...: the model's encoding
    WFM_ASSIGN_OR_RETURN(NamedCondition named,
                         ResolveNamedCondition(f.condition, model, "--condition"));
    condition = std::move(named.vector);
    f.label = std::move(named.label);
  }
  if (!f.label.empty()) {
    if (model.label_type() != v1::LABEL_TYPE_DISCRETE) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label ", f.label, ": model '", f.model, "' has no discrete labels"));
    }
    bool known = model.labels().empty();
    for (const std::string& l : model.labels()) known = known || l == f.label;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("--label ", f.label,
                                                     ": unknown label of model '", f.model,
                                                     "'; its labels: ",
                                                     absl::StrJoin(model.labels(), ", ")));
    }
  }
  if (!condition.empty()) {
    if (model.label_type() != v1::LABEL_TYPE_CONTINUOUS) {
      return absl::InvalidArgumentError(absl::StrCat("--condition: model '", f.model,
                                                     "' takes no condition vectors"));
    }
    if (static_cast<int64_t>(condition.size()) != model.condition_dim()) {
      return absl::InvalidArgumentError(absl::StrCat("--condition: ", condition.size(),
                                                     " values; model '", f.model, "' takes ",
                                                     model.condition_dim()));
    }
  }
  if (gaussian && f.points > 0) {
    return absl::InvalidArgumentError("--points applies to pointcloud models only");
  }
  // --init: the given sources, one per sample; --num defaults to their count.
  io::PointCloudSet init_clouds;
  io::GaussianSet init_gaussians;
  int64_t num = f.num;
  if (!f.init.empty()) {
    if (Extension(f.init) != ".npz") {
      return absl::InvalidArgumentError(
          absl::StrCat("--init ", f.init, ": needs an .npz file (as wfm sample --out writes)"));
    }
    // The readers' errors name the file; say which flag it came from.
    const auto flagged = [](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("--init ", s.message()));
    };
    int64_t given = 0;
    if (gaussian) {
      absl::StatusOr<io::GaussianSet> read = io::ReadGaussiansNpz(f.init);
      if (!read.ok()) return flagged(read.status());
      init_gaussians = *std::move(read);
      given = init_gaussians.num_gaussians();
    } else {
      absl::StatusOr<io::PointCloudSet> read = io::ReadPointCloudsNpz(f.init);
      if (!read.ok()) return flagged(read.status());
      init_clouds = *std::move(read);
      given = init_clouds.num_clouds();
    }
    const int64_t init_dim = gaussian ? init_gaussians.dim : init_clouds.dim;
    if (init_dim != model.dim()) {
      return absl::InvalidArgumentError(absl::StrCat("--init ", f.init, ": dimension ", init_dim,
                                                     "; model '", f.model, "' has dimension ",
                                                     model.dim()));
    }
    if (f.num_given && f.num != given) {
      return absl::InvalidArgumentError(absl::StrCat("--num ", f.num, ": --init ", f.init, " holds ",
                                                     given, gaussian ? " Gaussians" : " clouds",
                                                     ", one per sample; leave --num out"));
    }
    num = given;
  }
  svg.title = f.title.empty() ? absl::StrCat("wfm model ", f.model, ": ", num, " samples")
                              : f.title;

  ProgressLine line(stderr, context.interactive(), context.global.quiet || !context.interactive());
  const auto start = std::chrono::steady_clock::now();
  int64_t samples = 0, points = 0, dim = 0, evaluations = 0;
  if (gaussian) {
    v1::SampleGaussiansRequest request;
    SetCommon(f, num, condition, &request);
    request.mutable_init_means()->Add(init_gaussians.means.begin(), init_gaussians.means.end());
    request.mutable_init_covs()->Add(init_gaussians.covs.begin(), init_gaussians.covs.end());
    WFM_ASSIGN_OR_RETURN(const SampledGaussians result, client->SampleGaussians(request));
    evaluations = result.network_evaluations;
    samples = result.gaussians.num_gaussians();
    dim = result.gaussians.dim;
    WFM_RETURN_IF_ERROR(WriteSampledGaussians(f.out, result, svg));
  } else {
    v1::SampleNichesRequest request;
    SetCommon(f, num, condition, &request);
    request.set_points_per_sample(f.points);
    request.mutable_init_points()->Add(init_clouds.points.begin(), init_clouds.points.end());
    for (int64_t c = 0; c < init_clouds.num_clouds(); ++c) {
      request.add_init_sizes(init_clouds.cloud_size(c));
    }
    WFM_ASSIGN_OR_RETURN(const SampledClouds result,
                         client->SampleNiches(request, [&](int64_t done, int64_t total) {
                           line.Update(absl::StrCat("sampling ", Bar(done, total, 24), " ", done,
                                                    "/", total, " samples"),
                                       done == total);
                         }));
    line.Finish();
    evaluations = result.network_evaluations;
    samples = result.clouds.num_clouds();
    points = result.clouds.num_points();
    dim = result.clouds.dim;
    WFM_RETURN_IF_ERROR(WriteSampledClouds(
        f.out, result, svg, {model.feature_names().begin(), model.feature_names().end()}));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (f.json) {
    PrintJson({{"model", f.model},
               {"family", FamilyName(model.family())},
               {"out", f.out},
               {"samples", samples},
               {"points", points},
               {"dim", dim},
               {"network_evaluations", evaluations},
               {"seconds", seconds},
               {"samples_per_second", samples / std::max(seconds, 1e-9)},
               {"points_per_second", points / std::max(seconds, 1e-9)}});
  } else {
    std::string what = absl::StrCat(samples, gaussian ? " Gaussians" : " samples");
    if (!gaussian) absl::StrAppend(&what, " (", points, " points)");
    std::printf("wrote %s of dimension %lld to %s in %.2f s: %.1f samples/s%s, %lld network evaluations\n",
                what.c_str(), static_cast<long long>(dim), f.out.c_str(), seconds,
                samples / std::max(seconds, 1e-9),
                gaussian ? ""
                         : absl::StrFormat(", %.0f points/s", points / std::max(seconds, 1e-9)).c_str(),
                static_cast<long long>(evaluations));
  }
  return absl::OkStatus();
}

struct EvaluateFlags {
  std::string model;
  int64_t version = 0;  // 0 = the serving version
  std::string dataset;
  int64_t num = 0;
  std::string split = "all";
  bool no_emd = false;
  SolverFlags ode;
  uint64_t seed = 0;
  int64_t max_reference = 0;
  bool json = false;
};

absl::Status Evaluate(CliContext& context, const EvaluateFlags& f) {
  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  v1::EvaluateRequest request;
  request.set_model(f.model);
  request.set_version(f.version);
  request.set_dataset(f.dataset);
  request.set_split(f.split);
  request.set_num_samples(f.num);
  request.set_max_reference(f.max_reference);
  SetSolver(f.ode, &request);
  request.set_seed(f.seed);
  if (f.no_emd) request.set_emd(false);
  if (!f.json && context.interactive() && !context.global.quiet) {
    std::fprintf(stderr, "evaluating model '%s' against '%s'...\n", f.model.c_str(),
                 f.dataset.c_str());
  }
  WFM_ASSIGN_OR_RETURN(const v1::EvaluateResponse response, client->Evaluate(request));
  if (f.json) {
    nlohmann::json json = ProtoToJson(response);
    json["model"] = f.model;
    json["dataset"] = f.dataset;
    json["split"] = f.split;
    PrintJson(json);
  } else {
    std::printf("model '%s' vs data set '%s' (%s)\n%s", f.model.c_str(), f.dataset.c_str(),
                f.split.c_str(), EvaluationText(response).c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void AddSampleCommands(CLI::App& app, CliContext& context) {
  auto s = std::make_shared<SampleFlags>();
  CLI::App* sample = app.add_subcommand("sample", "generate samples into .npz, .h5ad or .svg");
  sample->add_option("--model", s->model, "model to sample")->required();
  AddVersionFlag(sample, &s->version);
  CLI::Option* num = sample->add_option("--num", s->num, "number of samples (with --init: the number given)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sample->add_option("--out", s->out, "output file: .npz, .h5ad (point clouds) or .svg")->required();
  sample->add_option("--points", s->points, "points per sample (default: sizes drawn from the training clouds)")
      ->check(CLI::NonNegativeNumber);
  sample->add_option("--label", s->label, "generate this label (default: drawn per sample)");
  sample->add_option("--condition", s->condition,
                     "condition: KEY=VALUE,... by the model's condition columns (categories, "
                     "numbers, obsm:KEY=v1;v2;...) or a plain vector, e.g. 0.5,1");
  AddSolverFlags(sample, &s->ode);
  AddQueueFlags(sample, &s->queue);
  sample->add_option("--seed", s->seed, "random seed")->capture_default_str();
  AddOptional(sample, "--guidance", &s->guidance, "classifier-free guidance γ (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  sample->add_flag("--trajectory", s->trajectory, ".npz: also store every integration step");
  sample->add_option("--pca-from", s->pca_from,
                     ".svg of dimension > 3: project on the principal axes of this data set file "
                     "(.npz or .h5ad) instead of the samples' own");
  sample->add_option("--features", s->features, "--pca-from .h5ad: X or obsm:KEY")->capture_default_str();
  sample->add_option("--columns", s->columns, ".svg: panels per row (default: square grid)")
      ->check(CLI::NonNegativeNumber);
  sample->add_option("--title", s->title, ".svg: title");
  sample->add_flag("--json", s->json, "print a JSON summary (counts, seconds, throughput)");
  sample->add_option("--init", s->init,
                     "start from these clouds / Gaussians instead of noise (.npz: points + offsets, "
                     "or means + covs, as --out writes them; one per sample)");
  sample->callback([&context, s, num] {
    s->num_given = num->count() > 0;
    context.action = [&context, s] { return Sample(context, *s); };
  });

  auto e = std::make_shared<EvaluateFlags>();
  CLI::App* evaluate = app.add_subcommand(
      "evaluate", "sample a model and compare with a data set (1-NNA, MMD, COV)");
  evaluate->add_option("--model", e->model, "model")->required();
  AddVersionFlag(evaluate, &e->version);
  evaluate->add_option("--dataset", e->dataset, "reference data set")->required();
  evaluate->add_option("--num", e->num, "generated samples (default: as many as the reference, at most 256)")
      ->check(CLI::NonNegativeNumber);
  evaluate->add_option("--split", e->split, "all | heldout (the items training held out)")
      ->check(CLI::IsMember({"all", "heldout"}))
      ->capture_default_str();
  evaluate->add_flag("--no-emd", e->no_emd, "point clouds: skip the (slower) EMD metrics");
  evaluate->add_option("--max-reference", e->max_reference, "reference items used (default at most 256)")
      ->check(CLI::NonNegativeNumber);
  AddSolverFlags(evaluate, &e->ode);
  evaluate->add_option("--seed", e->seed, "random seed")->capture_default_str();
  evaluate->add_flag("--json", e->json, "print one JSON document");
  evaluate->callback([&context, e] { context.action = [&context, e] { return Evaluate(context, *e); }; });
}

}  // namespace wfm::client
