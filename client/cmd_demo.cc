// wfm demo: the main job (DESIGN.md, "Set-up and the two commands"). Starts
// wfm-server on its embedded defaults with a temporary data folder and free
// ports, uploads the built-in shapes data set (client/demo_data.h), trains a
// small conditional point-cloud model with a live progress bar, samples it,
// writes an .svg, prints the generation throughput measured here in the
// client, and stops the server (SIGTERM, wait).
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/demo_data.h"
#include "client/local_server.h"
#include "client/output.h"
#include "client/progress.h"
#include "client/sample_files.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

struct DemoFlags {
  std::string server_bin;
  std::string out = "wfm-demo.svg";
  std::string data_dir;  // empty: a temporary folder, removed at the end
  bool keep_data = false;
  bool verbose = false;
  int64_t dim = 2;
  int64_t clouds = 600;
  // Measured (`wfm demo`'s own held-out 1-NNA, two seeds): 300 steps of 16
  // clouds 0.92; 2000 of 16 0.79, with the moving average 0.73; 2000 of 32
  // with it 0.68, in about 45 s of training on 2 cores.
  int64_t steps = 2000;
  int64_t batch = 32;
  double lr = 1e-3;
  double ema = 0.999;
  double holdout = 0.2;
  int64_t emb = 64;
  int64_t layers = 2;
  int64_t num = 36;
  int64_t sample_steps = 50;
  uint64_t seed = 1;
};

// The server to stop when the demo is interrupted (Ctrl-C, SIGTERM).
std::atomic<pid_t> g_server_pid{-1};
std::atomic<bool> g_interrupted{false};

void OnSignal(int) {
  g_interrupted = true;
  const pid_t pid = g_server_pid.load();
  if (pid > 0) kill(pid, SIGTERM);
}

// Installs OnSignal for SIGINT and SIGTERM while alive.
class SignalGuard {
 public:
  SignalGuard() {
    struct sigaction action {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~SignalGuard() {
    g_server_pid = -1;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// A temporary folder removed on destruction unless kept.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> Create() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = absl::StrCat(base != nullptr && *base ? base : "/tmp", "/wfm-demo-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a temporary folder ", pattern, ": ",
                                              std::strerror(errno)));
    }
    return std::unique_ptr<TempDir>(new TempDir(pattern));
  }
  ~TempDir() {
    if (!keep_) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

absl::Status Interrupted(const absl::Status& status) {
  if (!g_interrupted) return status;
  return absl::CancelledError("interrupted; the demo server was stopped");
}

absl::Status RunDemo(CliContext& context, const DemoFlags& f) {
  // Built-in data first: a bad option fails before anything starts.
  ShapeOptions shapes;
  shapes.dim = f.dim;
  shapes.clouds = f.clouds;
  shapes.seed = f.seed;
  shapes.min_points = 32;
  shapes.max_points = 48;
  WFM_ASSIGN_OR_RETURN(const model::io::PointCloudSet data, MakeShapes(shapes));
  WFM_RETURN_IF_ERROR(CheckSampleOutput(f.out, false, false));
  WFM_ASSIGN_OR_RETURN(const std::string binary, FindServerBinary(f.server_bin));

  std::unique_ptr<TempDir> temp;
  std::string data_dir = f.data_dir;
  if (data_dir.empty()) {
    WFM_ASSIGN_OR_RETURN(temp, TempDir::Create());
    data_dir = temp->path() + "/data";
    if (f.keep_data) temp->Keep();
  }
  const auto demo_start = std::chrono::steady_clock::now();
  std::printf("wfm demo: starting %s (data in %s)\n", binary.c_str(), data_dir.c_str());
  std::fflush(stdout);

  SignalGuard signals;
  LocalServerOptions server_options;
  server_options.binary = binary;
  server_options.data_dir = data_dir;
  server_options.echo_output = f.verbose;
  WFM_ASSIGN_OR_RETURN(std::unique_ptr<LocalServer> server, LocalServer::Start(server_options));
  g_server_pid = server->pid();
  std::printf("  server ready: grpc %s, metrics http://%s/metrics\n",
              server->grpc_address().c_str(), server->metrics_address().c_str());

  // Everything after this point stops the server on the way out.
  absl::Status status = [&]() -> absl::Status {
    ClientOptions options;
    options.server = server->grpc_address();
    WFM_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(options));
    WFM_ASSIGN_OR_RETURN(const HealthStatus health, client->CheckHealth());
    if (health != HealthStatus::kServing) {
      return absl::UnavailableError(absl::StrCat("the demo server reports ", HealthStatusName(health)));
    }

    const std::string dataset = f.dim == 3 ? "shapes-3d" : "shapes";
    std::printf("uploading the built-in data set '%s': %lld %lldD point clouds (%s), %lld-%lld points each\n",
                dataset.c_str(), static_cast<long long>(data.num_clouds()),
                static_cast<long long>(f.dim), absl::StrJoin(ShapeClasses(f.dim), ", ").c_str(),
                static_cast<long long>(shapes.min_points), static_cast<long long>(shapes.max_points));
    std::fflush(stdout);
    WFM_ASSIGN_OR_RETURN(const v1::Dataset stored,
                         client->UploadPointClouds({dataset, "wfm demo: built-in shapes", true}, data));

    v1::StartTrainingRequest request;
    request.set_dataset(stored.name());
    request.set_model(dataset + "-wfm");
    request.set_overwrite(true);
    v1::TrainingConfig& config = *request.mutable_config();
    config.set_family(v1::FAMILY_POINTCLOUD);
    config.mutable_optimizer()->set_steps(f.steps);
    config.mutable_optimizer()->set_batch_size(f.batch);
    config.mutable_optimizer()->set_learning_rate(f.lr);
    config.mutable_optimizer()->set_seed(f.seed);
    config.mutable_optimizer()->set_ema_decay(f.ema);
    config.set_holdout_fraction(f.holdout);
    config.mutable_network()->set_width(f.emb);
    config.mutable_network()->set_layers(f.layers);
    config.mutable_network()->set_heads(4);
    config.mutable_network()->set_mlp_hidden(2 * f.emb);
    WFM_ASSIGN_OR_RETURN(const v1::TrainingJob job, client->StartTraining(request));
    std::printf("training model '%s' (pointcloud, width %lld, %lld layers, %lld steps of %lld clouds, "
                "weight average %g), job %s\n",
                job.model().c_str(), static_cast<long long>(f.emb), static_cast<long long>(f.layers),
                static_cast<long long>(f.steps), static_cast<long long>(f.batch), f.ema,
                job.id().c_str());
    std::fflush(stdout);
    WFM_ASSIGN_OR_RETURN(const v1::TrainingJob done,
                         FollowJob(*client, job.id(), context.interactive(), context.global.quiet));
    WFM_RETURN_IF_ERROR(JobOutcome(done));
    const double train_seconds =
        done.finished_unix_ms() > done.started_unix_ms()
            ? (done.finished_unix_ms() - done.started_unix_ms()) / 1000.0
            : 0.0;
    std::printf("  trained: %lld steps in %s (%.1f steps/s), loss %.4g\n",
                static_cast<long long>(done.step()), FormatDuration(train_seconds).c_str(),
                done.steps_per_second(), done.loss());

    // One small warm-up call loads the model, so the timed call measures
    // generation only.
    v1::SampleNichesRequest warmup;
    warmup.set_model(job.model());
    warmup.set_num_samples(1);
    warmup.set_steps(2);
    warmup.set_seed(f.seed);
    WFM_RETURN_IF_ERROR(client->SampleNiches(warmup).status());

    v1::SampleNichesRequest sample;
    sample.set_model(job.model());
    sample.set_num_samples(f.num);
    sample.set_steps(f.sample_steps);
    sample.set_seed(f.seed);
    std::printf("sampling %lld clouds (%lld integration steps)\n", static_cast<long long>(f.num),
                static_cast<long long>(f.sample_steps));
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    WFM_ASSIGN_OR_RETURN(const SampledClouds samples, client->SampleNiches(sample));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t points = samples.clouds.num_points();
    std::printf("  generation throughput: %lld samples (%lld points) in %.2f s = %.1f samples/s, %.0f points/s\n",
                static_cast<long long>(samples.clouds.num_clouds()), static_cast<long long>(points),
                seconds, samples.clouds.num_clouds() / std::max(seconds, 1e-9),
                points / std::max(seconds, 1e-9));

    if (f.holdout > 0) {
      // The held-out clouds against as many generated ones: 1-NNA 0.5 means
      // a nearest-neighbour test cannot tell them apart.
      v1::EvaluateRequest evaluate;
      evaluate.set_model(job.model());
      evaluate.set_dataset(stored.name());
      evaluate.set_split("heldout");
      evaluate.set_steps(f.sample_steps);
      evaluate.set_seed(f.seed);
      evaluate.set_emd(false);  // exact EMDs of every pair would take longer than training
      WFM_ASSIGN_OR_RETURN(const v1::EvaluateResponse e, client->Evaluate(evaluate));
      std::printf("  held-out quality: 1-NNA %.3f (Chamfer) over %lld generated and %lld held-out "
                  "clouds, %.1f s (0.5 = indistinguishable, 1 = always told apart)\n",
                  e.chamfer().one_nna(), static_cast<long long>(e.generated()),
                  static_cast<long long>(e.reference()), e.seconds());
    }

    SvgOptions svg;
    svg.title = absl::StrCat("wfm demo: ", samples.clouds.num_clouds(), " generated ", f.dim,
                             "D shapes, coloured by label");
    WFM_RETURN_IF_ERROR(WriteSampledClouds(f.out, samples, svg));
    std::printf("wrote %s\n", f.out.c_str());
    return absl::OkStatus();
  }();

  std::printf("stopping the server\n");
  std::fflush(stdout);
  const absl::Status stopped = server->Stop(30);
  g_server_pid = -1;
  if (!status.ok()) {
    if (!stopped.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat(status.message(), " (and ", stopped.message(), ")"));
    }
    return Interrupted(status);
  }
  WFM_RETURN_IF_ERROR(stopped);
  if (temp != nullptr && f.keep_data) std::printf("kept the data folder %s\n", temp->path().c_str());
  std::printf("done in %s\n",
              FormatDuration(std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                           demo_start)
                                 .count())
                  .c_str());
  return absl::OkStatus();
}

}  // namespace

void AddDemoCommand(CLI::App& app, CliContext& context) {
  auto f = std::make_shared<DemoFlags>();
  CLI::App* demo = app.add_subcommand(
      "demo",
      "start a local wfm-server, train a small model on built-in shapes, sample it, write an "
      ".svg and print the throughput (ignores --server)");
  demo->add_option("--server-bin", f->server_bin,
                   "wfm-server to run (default: next to wfm, the build tree, or PATH)");
  demo->add_option("--out", f->out, "picture of the samples (.svg; .npz and .h5ad work too)")
      ->capture_default_str();
  demo->add_option("--data-dir", f->data_dir, "server data folder (default: a temporary one, removed)");
  demo->add_flag("--keep-data", f->keep_data, "keep the temporary data folder");
  demo->add_flag("--verbose", f->verbose, "show the server's log");
  demo->add_option("--dim", f->dim, "2: rings, squares, crosses; 3: spheres, tori, cubes")
      ->check(CLI::IsMember({2, 3}))
      ->capture_default_str();
  demo->add_option("--clouds", f->clouds, "clouds in the built-in data set")
      ->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--steps", f->steps, "training steps")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--batch", f->batch, "clouds per training step")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--lr", f->lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--ema", f->ema, "decay of the moving average of the weights (0 = none)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  demo->add_option("--holdout", f->holdout,
                   "fraction of the clouds held out of training and compared with samples (0 = none)")
      ->check(CLI::Range(0.0, 0.5))->capture_default_str();
  demo->add_option("--emb", f->emb, "network width (a multiple of 4)")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--layers", f->layers, "network blocks")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--num", f->num, "samples to generate")->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--sample-steps", f->sample_steps, "integration steps per sample")
      ->check(CLI::PositiveNumber)->capture_default_str();
  demo->add_option("--seed", f->seed, "seed of the data, training and sampling")->capture_default_str();
  demo->callback([&context, f] { context.action = [&context, f] { return RunDemo(context, *f); }; });
}

}  // namespace wfm::client
