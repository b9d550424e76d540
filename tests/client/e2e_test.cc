// End to end: the `wfm` binary and the Python client against a real
// wfm-server started by each test on 127.0.0.1:0 with a temporary data
// folder. Models are tiny (width 16, 1 layer, a few dozen steps) so each
// test takes seconds on two cores.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/local_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/h5ad.h"
#include "model/io/npz.h"
#include "model/io/point_sets.h"
#include "tests/testing/http.h"
#include "tests/testing/process.h"
#include "tests/testing/wait.h"
#include "tests/testing/temp_dir.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::ProcessResult;
using testing::RunProcess;

const std::string kWfm = WFM_CLI_PATH;
const std::string kServer = WFM_SERVER_PATH;
const std::string kCells = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/client/cells.h5ad";

class E2eTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_ != nullptr) {
      const absl::Status stopped = server_->Stop(60);
      EXPECT_TRUE(stopped.ok()) << stopped << "\n" << server_->RecentOutput();
    }
  }

  void StartServer(std::vector<std::string> extra = {}) {
    LocalServerOptions options;
    options.binary = kServer;
    options.data_dir = Path("data");
    options.extra_args = {"--threads", "1"};
    options.extra_args.insert(options.extra_args.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<LocalServer>> server = LocalServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // wfm --server <the test's server> ARGS...
  ProcessResult Wfm(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), {kWfm, "--server", server_->grpc_address()});
    return RunProcess(args, env, {"WFM_SERVER", "WFM_TOKEN"});
  }
  // Runs and expects success; returns stdout.
  std::string Ok(const std::vector<std::string>& args) {
    const ProcessResult r = Wfm(args);
    EXPECT_EQ(r.exit_code, 0) << "wfm " << ::testing::PrintToString(args) << "\nstdout: " << r.out
                              << "\nstderr: " << r.err;
    return r.out;
  }
  nlohmann::json Json(const std::vector<std::string>& args) {
    const std::string out = Ok(args);
    nlohmann::json json = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(json.is_discarded()) << out;
    return json;
  }
  // One "wfm: error:" line on stderr and the exit status.
  void ExpectError(const std::vector<std::string>& args, int exit_code,
                   const std::vector<std::string>& fragments) {
    const ProcessResult r = Wfm(args);
    EXPECT_EQ(r.exit_code, exit_code) << ::testing::PrintToString(args) << "\n" << r.err;
    const std::vector<std::string> lines = r.ErrLines();
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_THAT(lines[0], StartsWith("wfm: error: "));
    for (const std::string& f : fragments) EXPECT_THAT(lines[0], HasSubstr(f));
  }
  std::string Path(const std::string& name) const { return dir_.File(name); }

  wfm::testing::TempDir dir_{"wfm-e2e"};
  std::unique_ptr<LocalServer> server_;
};

// Python's XML parser: the number of <g class="sample"> groups.
std::string SvgSamples(const std::string& path) {
  const ProcessResult r = RunProcess(
      {"/usr/bin/python3", "-c",
       "import sys, xml.etree.ElementTree as E\n"
       "r = E.parse(sys.argv[1]).getroot()\n"
       "print(sum(1 for g in r.iter('{http://www.w3.org/2000/svg}g') "
       "if g.get('class') in ('sample', 'gaussian')))",
       path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

TEST_F(E2eTest, UploadH5adTrainSampleEvaluate) {
  StartServer();
  EXPECT_THAT(Ok({"health"}), HasSubstr("SERVING"));

  // upload (.h5ad written by anndata), then the listing as JSON.
  EXPECT_THAT(Ok({"upload", kCells, "--name", "cells", "--features", "X", "--spatial-key",
                  "spatial", "--label-key", "cell_type", "--sample-key", "sample"}),
              HasSubstr("uploaded 'cells': SPATIAL_CELLS, 120 cells with 6 features in 2 samples"));
  nlohmann::json datasets = Json({"datasets", "--json"});
  ASSERT_EQ(datasets["datasets"].size(), 1u);
  const nlohmann::json& d = datasets["datasets"][0];
  EXPECT_EQ(d["name"], "cells");
  EXPECT_EQ(d["kind"], "SPATIAL_CELLS");
  EXPECT_EQ(d["items"], 120);
  EXPECT_EQ(d["dim"], 6);
  EXPECT_EQ(d["samples"], 2);
  EXPECT_EQ(d["label_names"], nlohmann::json::array({"B cell", "T cell", "tumour"}));
  EXPECT_THAT(Ok({"datasets"}), HasSubstr("SPATIAL_CELLS"));
  // Features from obsm, without labels.
  EXPECT_EQ(Json({"upload", kCells, "--name", "cells-pca", "--features", "obsm:X_pca", "--json"})["dim"], 3);

  // train --watch: progress on stderr, the outcome on stdout.
  const ProcessResult train =
      Wfm({"train", "--dataset", "cells", "--model", "niche", "--family", "pointcloud", "--k", "6",
           "--emb", "16", "--layers", "1", "--heads", "2", "--mlp", "32", "--steps", "30",
           "--batch", "8", "--seed", "3", "--watch"});
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  EXPECT_THAT(train.out, HasSubstr("SUCCEEDED: 30/30 steps"));
  EXPECT_THAT(train.err, HasSubstr("30/30"));
  EXPECT_THAT(train.err, HasSubstr("loss"));

  nlohmann::json jobs = Json({"jobs", "--json"});
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_EQ(jobs["jobs"][0]["state"], "SUCCEEDED");
  EXPECT_EQ(jobs["jobs"][0]["step"], 30);
  nlohmann::json models = Json({"models", "--json"});
  ASSERT_EQ(models["models"].size(), 1u);
  const nlohmann::json& m = models["models"][0];
  EXPECT_EQ(m["name"], "niche");
  EXPECT_EQ(m["family"], "FAMILY_POINTCLOUD");
  EXPECT_EQ(m["dim"], 6);
  EXPECT_EQ(m["labels"].size(), 3u);
  EXPECT_THAT(Ok({"models"}), HasSubstr("niche"));

  // sample -> .npz
  EXPECT_THAT(Ok({"sample", "--model", "niche", "--num", "4", "--out", Path("s.npz"), "--steps",
                  "5", "--seed", "1", "--label", "T cell"}),
              HasSubstr("samples/s"));
  absl::StatusOr<io::PointCloudSet> clouds = io::ReadPointCloudsNpz(Path("s.npz"));
  ASSERT_TRUE(clouds.ok()) << clouds.status();
  EXPECT_EQ(clouds->num_clouds(), 4);
  EXPECT_EQ(clouds->dim, 6);
  ASSERT_EQ(clouds->labels.kind, io::Labels::Kind::kString);
  for (const std::string& l : clouds->labels.strings) EXPECT_EQ(l, "T cell");
  // Same seed, same samples.
  Ok({"sample", "--model", "niche", "--num", "4", "--out", Path("again.npz"), "--steps", "5",
      "--seed", "1", "--label", "T cell"});
  EXPECT_EQ(io::ReadPointCloudsNpz(Path("again.npz"))->points, clouds->points);

  // .npz with the trajectory: [steps + 1, P, d].
  Ok({"sample", "--model", "niche", "--num", "2", "--points", "5", "--out", Path("t.npz"),
      "--steps", "3", "--trajectory"});
  absl::StatusOr<io::NpzArrays> arrays = io::ReadNpz(Path("t.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  EXPECT_EQ(arrays->at("trajectory").shape(), (std::vector<int64_t>{4, 10, 6}));

  // .h5ad, opened by anndata.
  Ok({"sample", "--model", "niche", "--num", "3", "--points", "6", "--out", Path("s.h5ad"),
      "--steps", "5"});
  const ProcessResult anndata = RunProcess(
      {"/usr/bin/python3", "-c",
       "import sys, anndata\na = anndata.read_h5ad(sys.argv[1])\n"
       "print(a.shape, sorted(set(a.obs['sample'])), sorted(a.obs['condition'].cat.categories))",
       Path("s.h5ad")});
  ASSERT_EQ(anndata.exit_code, 0) << anndata.err;
  EXPECT_THAT(anndata.out, HasSubstr("(18, 6) [0, 1, 2]"));

  // .svg: 6-D niches through principal components, own or of the data set.
  Ok({"sample", "--model", "niche", "--num", "5", "--out", Path("s.svg"), "--steps", "5"});
  EXPECT_EQ(SvgSamples(Path("s.svg")), "5\n");
  EXPECT_THAT(testing::ReadFile(Path("s.svg")), HasSubstr("principal components"));
  Ok({"sample", "--model", "niche", "--num", "2", "--out", Path("p.svg"), "--steps", "5",
      "--pca-from", kCells});
  EXPECT_EQ(SvgSamples(Path("p.svg")), "2\n");

  // evaluate, as JSON and as text.
  nlohmann::json eval = Json({"evaluate", "--model", "niche", "--dataset", "cells", "--num", "8",
                              "--steps", "5", "--no-emd", "--json"});
  EXPECT_EQ(eval["family"], "FAMILY_POINTCLOUD");
  EXPECT_EQ(eval["generated"], 8);
  const double nna = eval["chamfer"]["one_nna"].get<double>();
  EXPECT_GE(nna, 0.0);
  EXPECT_LE(nna, 1.0);
  EXPECT_THAT(Ok({"evaluate", "--model", "niche", "--dataset", "cells", "--num", "8", "--steps",
                  "5", "--no-emd"}),
              HasSubstr("1-NNA"));

  // Gaussian cell states from the same cells.
  const ProcessResult gtrain =
      Wfm({"train", "--dataset", "cells", "--model", "states", "--family", "gaussian", "--k", "10",
           "--emb", "16", "--layers", "1", "--steps", "20", "--batch", "8", "--watch"});
  ASSERT_EQ(gtrain.exit_code, 0) << gtrain.out << gtrain.err;
  Ok({"sample", "--model", "states", "--num", "5", "--out", Path("g.npz"), "--steps", "5",
      "--label", "tumour"});
  absl::StatusOr<io::GaussianSet> g = io::ReadGaussiansNpz(Path("g.npz"));  // validates SPD
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->num_gaussians(), 5);
  EXPECT_EQ(g->dim, 6);
  Ok({"sample", "--model", "states", "--num", "5", "--out", Path("g.svg"), "--steps", "5"});
  EXPECT_EQ(SvgSamples(Path("g.svg")), "5\n");

  // Fine-tuning the cell states: --init-from NAME[:V] (the network options
  // must match the base model's).
  const std::vector<std::string> tune = {"train", "--dataset", "cells", "--model", "tuned",
                                         "--family", "gaussian", "--k", "10", "--emb", "16",
                                         "--steps", "3", "--batch", "8"};
  std::vector<std::string> tuned_args = tune;
  for (const char* a : {"--layers", "1", "--init-from", "states:1", "--watch", "--json"}) {
    tuned_args.push_back(a);
  }
  const nlohmann::json tuned = Json(tuned_args);
  EXPECT_EQ(tuned["state"], "SUCCEEDED");
  EXPECT_EQ(tuned["init_from_model"], "states");
  EXPECT_EQ(Json({"models", "tuned", "--json"})["init_from_model"], "states");
  std::vector<std::string> deeper = tune;
  for (const char* a : {"--layers", "2", "--init-from", "states"}) deeper.push_back(a);
  ExpectError(deeper, 13, {"config.network.layers: 2 differs from the base model 'states' (1)"});
  std::vector<std::string> bad_version = tune;
  for (const char* a : {"--init-from", "states:x"}) bad_version.push_back(a);
  ExpectError(bad_version, 1, {"--init-from states:x"});

  // Versions: training into "tuned" again adds version 2; --version picks
  // one; --serve-version pins; --delete-version deletes one.
  EXPECT_EQ(Json(tuned_args)["state"], "SUCCEEDED");
  nlohmann::json versions = Json({"models", "tuned", "--json"});
  ASSERT_EQ(versions["versions"].size(), 2u);
  EXPECT_EQ(versions["versions"][1]["version"], 2);
  EXPECT_EQ(versions["serving_version"], 2);
  EXPECT_EQ(Json({"models", "tuned", "--version", "1", "--json"})["version"], 1);
  Ok({"sample", "--model", "tuned", "--version", "1", "--num", "2", "--steps", "2", "--out",
      Path("v1.npz")});
  EXPECT_EQ(Json({"models", "tuned", "--serve-version", "1", "--json"})["pinned_version"], 1);
  EXPECT_THAT(Ok({"models", "tuned"}), HasSubstr("serving (pinned)"));
  ExpectError({"models", "tuned", "--delete-version", "1"}, 19,
              {"pinned", "FAILED_PRECONDITION"});
  ExpectError({"evaluate", "--model", "tuned", "--version", "5", "--dataset", "cells"}, 15,
              {"has no version 5"});
  ExpectError({"models", "--serve-version", "1"}, 1, {"need a model NAME"});
  EXPECT_THAT(Ok({"models", "tuned", "--delete-version", "2"}),
              HasSubstr("deleted version 2 of model 'tuned'"));
  EXPECT_EQ(Json({"models", "tuned", "--json"})["versions"].size(), 1u);
  // Residency: --unload frees the weights, --load brings them back.
  nlohmann::json unloaded = Json({"models", "tuned", "--unload", "--json"});
  EXPECT_EQ(unloaded["loaded"], false);
  EXPECT_EQ(unloaded["versions"][0]["loaded"], false);
  EXPECT_GT(unloaded["memory_bytes"].get<int64_t>(), 0);
  nlohmann::json loaded = Json({"models", "tuned", "--load", "--version", "1", "--json"});
  EXPECT_EQ(loaded["loaded"], true);
  EXPECT_EQ(loaded["versions"][0]["loaded"], true);
  EXPECT_THAT(Ok({"models", "tuned"}), HasSubstr("LOADED"));
  ExpectError({"models", "tuned", "--load", "--unload"}, 2, {"excludes"});
  ExpectError({"models", "--unload"}, 1, {"need a model NAME"});
  ExpectError({"models", "tuned", "--load", "--version", "7"}, 15, {"has no version 7"});
  Ok({"delete-model", "tuned"});

  // Bad input: one error line, a distinct status, and the server keeps serving.
  ExpectError({"sample", "--model", "ghost", "--num", "1", "--out", Path("x.npz")}, 15,
              {"ghost", "NOT_FOUND"});
  ExpectError({"sample", "--model", "niche", "--out", Path("x.npz"), "--label", "neuron"}, 1,
              {"neuron", "B cell, T cell, tumour"});
  ExpectError({"sample", "--model", "states", "--out", Path("x.h5ad")}, 1, {".h5ad"});
  ExpectError({"train", "--dataset", "ghost", "--model", "m", "--family", "pointcloud"}, 15,
              {"ghost"});
  ExpectError({"train", "--dataset", "cells", "--model", "bad", "--family", "pointcloud",
               "--emb", "10", "--heads", "3"},
              13, {"INVALID_ARGUMENT"});
  ExpectError({"upload", kCells, "--name", "bad name!"}, 13, {"name", "INVALID_ARGUMENT"});
  ExpectError({"upload", kCells, "--name", "cells"}, 16, {"already exists", "ALREADY_EXISTS"});
  ExpectError({"upload", std::string(WFM_SOURCE_DIR) + "/tests/fixtures/io/bad_covs_not_spd.npz",
               "--name", "spd"},
              1, {"not positive definite"});
  ExpectError({"evaluate", "--model", "niche", "--dataset", "ghost"}, 15, {"ghost"});
  ExpectError({"watch", "no-such-job"}, 15, {"no-such-job"});
  EXPECT_THAT(Ok({"health"}), HasSubstr("SERVING"));
  EXPECT_EQ(Json({"datasets", "--json"})["datasets"].size(), 2u);  // nothing half-stored

  // delete
  Ok({"delete-model", "states"});
  Ok({"delete-dataset", "cells-pca"});
  EXPECT_EQ(Json({"models", "--json"})["models"].size(), 1u);
}

// 3-D tissue from an .h5ad written by the anndata library, and given
// sources: `wfm sample --init` feeds a `wfm sample --out` file back.
TEST_F(E2eTest, ThreeDimensionalTissueAndGivenSources) {
  const std::string h5ad = Path("tissue3d.h5ad");
  const ProcessResult written = RunProcess(
      {"/usr/bin/python3", "-c",
       "import sys, anndata, numpy as np\n"
       "rng = np.random.default_rng(4)\n"
       "a = anndata.AnnData(X=rng.normal(size=(60, 3)).astype(np.float32))\n"
       "a.obsm['spatial'] = rng.uniform(0, 10, (60, 3)).astype(np.float32)\n"
       "a.write_h5ad(sys.argv[1])\n",
       h5ad});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  StartServer();
  EXPECT_THAT(Ok({"upload", h5ad, "--name", "t3"}),
              HasSubstr("60 cells with 3 features in 1 sample, 3-D coordinates"));
  EXPECT_EQ(Json({"datasets", "--json"})["datasets"][0]["spatial_dim"], 3);
  absl::StatusOr<io::NpzArrays> stored = io::ReadNpz(Path("data/datasets/t3/data.npz"));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->at("coords").shape(), (std::vector<int64_t>{60, 3}));
  for (const std::string family : {"pointcloud", "gaussian"}) {
    std::vector<std::string> args = {"train", "--dataset", "t3", "--model", "m-" + family,
                                     "--family", family, "--k", "5", "--emb", "16", "--layers", "1",
                                     "--mlp", "16", "--steps", "10", "--batch", "8", "--watch"};
    if (family == "pointcloud") args.insert(args.end(), {"--heads", "2"});
    const ProcessResult train = Wfm(args);
    ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  }

  // Point clouds: the output of one call is the source of the next. The
  // model is unconditional, so with given sources nothing is drawn and the
  // seed does not matter.
  Ok({"sample", "--model", "m-pointcloud", "--num", "3", "--points", "4", "--out",
      Path("a.npz"), "--steps", "3", "--seed", "1"});
  Ok({"sample", "--model", "m-pointcloud", "--init", Path("a.npz"), "--out", Path("b.npz"),
      "--steps", "3", "--seed", "1"});
  Ok({"sample", "--model", "m-pointcloud", "--init", Path("a.npz"), "--out", Path("c.npz"),
      "--steps", "3", "--seed", "2"});
  absl::StatusOr<io::PointCloudSet> a = io::ReadPointCloudsNpz(Path("a.npz"));
  absl::StatusOr<io::PointCloudSet> b = io::ReadPointCloudsNpz(Path("b.npz"));
  absl::StatusOr<io::PointCloudSet> c = io::ReadPointCloudsNpz(Path("c.npz"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(b->offsets, a->offsets);
  EXPECT_EQ(b->points, c->points);
  EXPECT_NE(b->points, a->points);
  // Without --init the seed does matter.
  Ok({"sample", "--model", "m-pointcloud", "--num", "3", "--points", "4", "--out",
      Path("d.npz"), "--steps", "3", "--seed", "2"});
  EXPECT_NE(io::ReadPointCloudsNpz(Path("d.npz"))->points, a->points);

  // Gaussians the same way.
  Ok({"sample", "--model", "m-gaussian", "--num", "2", "--out", Path("g.npz"), "--steps", "3"});
  Ok({"sample", "--model", "m-gaussian", "--init", Path("g.npz"), "--out", Path("h.npz"),
      "--steps", "3", "--seed", "5"});
  Ok({"sample", "--model", "m-gaussian", "--init", Path("g.npz"), "--out", Path("i.npz"),
      "--steps", "3", "--seed", "6"});
  absl::StatusOr<io::GaussianSet> g = io::ReadGaussiansNpz(Path("g.npz"));
  absl::StatusOr<io::GaussianSet> h = io::ReadGaussiansNpz(Path("h.npz"));
  absl::StatusOr<io::GaussianSet> i = io::ReadGaussiansNpz(Path("i.npz"));
  ASSERT_TRUE(g.ok() && h.ok() && i.ok());
  EXPECT_EQ(h->num_gaussians(), 2);
  EXPECT_EQ(h->means, i->means);
  EXPECT_EQ(h->covs, i->covs);
  EXPECT_NE(h->means, g->means);

  // Bad --init: a count other than --num, another dimension, another file type.
  ExpectError({"sample", "--model", "m-pointcloud", "--num", "2", "--init", Path("a.npz"),
               "--out", Path("x.npz")},
              1, {"--num 2", "holds 3 clouds"});
  ExpectError({"sample", "--model", "m-gaussian", "--init", Path("a.npz"), "--out", Path("x.npz")},
              1, {"--init"});
  ExpectError({"sample", "--model", "m-pointcloud", "--init", h5ad, "--out", Path("x.npz")}, 1,
              {"--init", ".npz"});
  ExpectError({"sample", "--model", "m-pointcloud", "--init", Path("a.npz"), "--points", "5",
               "--out", Path("x.npz")},
              13, {"points: 5 per sample", "INVALID_ARGUMENT"});
}

TEST_F(E2eTest, NpzCloudsCancelAndWatch) {
  StartServer();
  // A labelled .npz written by numpy (model/io fixtures).
  const std::string npz = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/io/clouds_str_labels.npz";
  const nlohmann::json stored = Json({"upload", npz, "--name", "clouds", "--json"});
  EXPECT_EQ(stored["kind"], "POINT_CLOUDS");
  EXPECT_EQ(stored["label_type"], "LABEL_TYPE_DISCRETE");
  // Started without --watch: the job id comes back at once.
  const nlohmann::json job = Json({"train", "--dataset", "clouds", "--model", "long", "--emb",
                                   "16", "--layers", "1", "--heads", "2", "--steps", "1000000",
                                   "--batch", "2", "--json"});
  const std::string id = job["id"];
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(job["config"]["family"], "FAMILY_POINTCLOUD");  // inferred from the data set
  EXPECT_THAT(Ok({"cancel", id}), HasSubstr(id));
  // Watching a cancelled job ends with status 3 and one error line.
  const ProcessResult watched = Wfm({"watch", id});
  EXPECT_EQ(watched.exit_code, 3) << watched.err;
  std::vector<std::string> errors;
  for (const std::string& line : watched.ErrLines()) {
    if (line.rfind("wfm: error: ", 0) == 0) errors.push_back(line);
  }
  ASSERT_EQ(errors.size(), 1u) << watched.err;
  EXPECT_THAT(errors[0], HasSubstr("CANCELLED"));
  EXPECT_EQ(Json({"jobs", id, "--json"})["state"], "CANCELLED");
  EXPECT_THAT(Ok({"health"}), HasSubstr("SERVING"));
}

// wfm sample --priority / --queue-timeout: with the model's batcher held by
// a long request, a request with a short queue timeout ends
// DEADLINE_EXCEEDED uncomputed; the priority reaches the server (the queue
// wait histogram counts each request under its priority).
TEST_F(E2eTest, SampleQueuePriorityAndTimeout) {
  StartServer();
  const std::string npz = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/io/clouds_str_labels.npz";
  Ok({"upload", npz, "--name", "clouds"});
  Ok({"train", "--dataset", "clouds", "--model", "m", "--emb", "16", "--layers", "1", "--heads",
      "2", "--steps", "3", "--batch", "2", "--watch"});
  const int metrics_port = std::stoi(server_->metrics_address().substr(
      server_->metrics_address().rfind(':') + 1));
  const auto waited = [&](const std::string& priority) {
    return testing::MetricValue(testing::HttpGet(metrics_port, "/metrics").second,
                                "wfm_sampling_queue_wait_seconds_count",
                                {{"model", "m"}, {"priority", priority}})
        .value_or(-1);
  };
  // Local checks of the flags (usage errors).
  EXPECT_EQ(Wfm({"sample", "--model", "m", "--out", Path("x.npz"), "--priority", "urgent"}).exit_code, 2);
  EXPECT_EQ(Wfm({"sample", "--model", "m", "--out", Path("x.npz"), "--queue-timeout", "0"}).exit_code, 2);
  EXPECT_EQ(Wfm({"sample", "--model", "m", "--out", Path("x.npz"), "--queue-timeout", "1e6"}).exit_code, 2);
  EXPECT_EQ(waited("normal"), 0);

  // Minutes of work: it holds the model's batcher until it is killed.
  testing::ProcessOptions busy_options;
  busy_options.args = {kWfm, "--server", server_->grpc_address(), "sample", "--model", "m",
                       "--num", "64", "--points", "64", "--steps", "10000", "--out",
                       Path("busy.npz")};
  testing::ChildProcess busy(busy_options);
  ASSERT_TRUE(busy.started()) << busy.error();
  // It left the queue: a call runs it.
  ASSERT_TRUE(testing::WaitUntil([&] { return waited("normal") == 1; }, absl::Seconds(60)))
      << busy.Output();
  ExpectError({"sample", "--model", "m", "--num", "1", "--points", "5", "--out", Path("t.npz"),
               "--priority", "high", "--queue-timeout", "0.05"},
              /*exit_code=*/10 + 4,  // kExitRpcBase + DEADLINE_EXCEEDED
              {"queue_timeout_seconds: waited ", "model 'm'", "nothing was computed",
               "see --queue-timeout"});
  EXPECT_FALSE(std::filesystem::exists(Path("t.npz")));
  EXPECT_EQ(waited("high"), 1);
  EXPECT_TRUE(busy.Kill());
  // Once the killed call has stopped, a low-priority request runs (its
  // timeout is far away).
  EXPECT_THAT(Ok({"sample", "--model", "m", "--num", "2", "--points", "5", "--steps", "2",
                  "--out", Path("low.npz"), "--priority", "low", "--queue-timeout", "600"}),
              HasSubstr("wrote 2 samples"));
  EXPECT_EQ(waited("low"), 1);
  EXPECT_EQ(testing::MetricValue(testing::HttpGet(metrics_port, "/metrics").second,
                                 "wfm_sampling_queue_timeouts_total", {{"model", "m"}}),
            1);
}

TEST_F(E2eTest, BearerToken) {
  std::ofstream(Path("token")) << "open-sesame\n";
  StartServer({"--auth-token-file", Path("token")});
  ExpectError({"datasets"}, 26, {"UNAUTHENTICATED", "--token"});
  ExpectError({"--token", "wrong", "datasets"}, 26, {"UNAUTHENTICATED"});
  EXPECT_THAT(Ok({"--token", "open-sesame", "datasets"}), HasSubstr("no data sets"));
  EXPECT_THAT(Ok({"--token-file", Path("token"), "datasets"}), HasSubstr("no data sets"));
  const ProcessResult env = Wfm({"datasets"}, {{"WFM_TOKEN", "open-sesame"}});
  EXPECT_EQ(env.exit_code, 0) << env.err;
}

TEST_F(E2eTest, Tls) {
  const ProcessResult cert = RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
       Path("key.pem"), "-out", Path("cert.pem")});
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  StartServer({"--tls-cert", Path("cert.pem"), "--tls-key", Path("key.pem")});
  EXPECT_THAT(Ok({"--tls-ca", Path("cert.pem"), "health"}), HasSubstr("SERVING"));
  EXPECT_THAT(Ok({"--tls-ca", Path("cert.pem"), "datasets", "--json"}), HasSubstr("datasets"));
  // Plaintext to a TLS server does not connect; neither does TLS with a CA
  // that did not sign the server's certificate (and gRPC's own log line about
  // the handshake stays out of stderr).
  ExpectError({"datasets"}, 24, {"UNAVAILABLE"});
  const ProcessResult other = RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       "/CN=other", "-keyout", Path("other-key.pem"), "-out", Path("other.pem")});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  ExpectError({"--tls-ca", Path("other.pem"), "datasets"}, 24, {"UNAVAILABLE", "handshake"});
}

TEST_F(E2eTest, MutualTls) {
  // A self-signed certificate serves as the server's, the client's, and the
  // CA that signed both.
  const ProcessResult cert = RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
       Path("key.pem"), "-out", Path("cert.pem")});
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  StartServer({"--tls-cert", Path("cert.pem"), "--tls-key", Path("key.pem"), "--tls-client-ca",
               Path("cert.pem")});
  EXPECT_THAT(Ok({"--tls-ca", Path("cert.pem"), "--tls-cert", Path("cert.pem"), "--tls-key",
                  Path("key.pem"), "datasets", "--json"}),
              HasSubstr("datasets"));
  // Without a client certificate the handshake fails.
  ExpectError({"--tls-ca", Path("cert.pem"), "datasets"}, 24, {"UNAVAILABLE"});
}

TEST_F(E2eTest, PythonClientExample) {
  StartServer();
  const ProcessResult r = RunProcess(
      {"/usr/bin/python3", std::string(WFM_SOURCE_DIR) + "/python/examples/example.py",
       "--server", server_->grpc_address(), "--steps", "20", "--gaussian-steps", "20"},
      {{"PYTHONPATH",
        std::string(WFM_SOURCE_DIR) + "/python:" + std::string(WFM_BINARY_DIR) + "/python"},
       {"PYTHONDONTWRITEBYTECODE", "1"}});
  EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
  EXPECT_THAT(r.out, HasSubstr("example: OK"));
  EXPECT_THAT(r.out, HasSubstr("health: SERVING"));
  // What the example stored is visible to the command-line tool.
  EXPECT_THAT(Ok({"models"}), HasSubstr("py-ellipses-wfm"));
}

// The Python client's first call waits for the connection, as the tool's
// does: a server that starts listening only after the call's first
// connection attempt failed (it is taken and reset) is reached.
TEST(PythonClientTest, TheFirstCallOutlivesAFailedFirstConnectionAttempt) {
  const ProcessResult r = RunProcess(
      {"/usr/bin/python3", "-c",
       "import socket, struct, threading\n"
       "from concurrent import futures\n"
       "import grpc\n"
       "from wfm_client import Client\n"
       "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
       "s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.listen(1); s.settimeout(30)\n"
       "address = f'127.0.0.1:{port}'\n"
       "servers = []\n"
       "def serve_later():\n"
       "    attempt, _ = s.accept()\n"
       "    attempt.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
       "    attempt.close()\n"
       "    s.close()\n"
       "    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))\n"
       "    serving = grpc.unary_unary_rpc_method_handler(lambda request, context: b'\\x08\\x01')\n"
       "    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(\n"
       "        'grpc.health.v1.Health', {'Check': serving}),))\n"
       "    server.add_insecure_port(address)\n"
       "    server.start()\n"
       "    servers.append(server)\n"
       "later = threading.Thread(target=serve_later)\n"
       "later.start()\n"
       "print('health:', Client(address).health())\n"
       "later.join()\n"
       "servers[0].stop(None)\n"},
      {{"PYTHONPATH",
        std::string(WFM_SOURCE_DIR) + "/python:" + std::string(WFM_BINARY_DIR) + "/python"},
       {"PYTHONDONTWRITEBYTECODE", "1"}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("health: SERVING"));
}

// `wfm demo` with a short schedule: starts and stops its own server.
TEST(DemoTest, RunsEndToEnd) {
  const wfm::testing::TempDir dir("wfm-demo-test");
  const std::string svg = dir.File("demo.svg");
  const ProcessResult r =
      RunProcess({kWfm, "demo", "--server-bin", kServer, "--out", svg, "--clouds", "60",
                  "--steps", "20", "--emb", "16", "--layers", "1", "--num", "9", "--sample-steps",
                  "5"},
                 {{"TMPDIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
  EXPECT_THAT(r.out, HasSubstr("server ready"));
  EXPECT_THAT(r.out, HasSubstr("samples/s"));
  EXPECT_THAT(r.out, HasSubstr("points/s"));
  // 12 of the 60 clouds were held out and compared with as many samples.
  const size_t nna = r.out.find("held-out quality: 1-NNA ");
  ASSERT_NE(nna, std::string::npos) << r.out;
  const double one_nna = std::stod(r.out.substr(nna + 24));
  EXPECT_GE(one_nna, 0.0);
  EXPECT_LE(one_nna, 1.0);
  EXPECT_THAT(r.out, HasSubstr("over 12 generated and 12 held-out clouds"));
  EXPECT_THAT(r.out, HasSubstr("wrote " + svg));
  EXPECT_THAT(r.out, HasSubstr("stopping the server"));
  EXPECT_EQ(SvgSamples(svg), "9\n");
  // The temporary data folder is gone; only the picture remains.
  EXPECT_EQ(dir.List(), std::vector<std::string>{"demo.svg"});
}

}  // namespace
}  // namespace wfm::client
