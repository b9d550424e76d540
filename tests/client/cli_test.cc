// The `wfm` binary without a server: argument errors, file errors and an
// unreachable server each give exactly one "wfm: error: " line on stderr and
// the documented exit status. Local checks run before any connection: the
// tests point --server at a closed port, so reaching the network would show
// up as exit status 24 (UNAVAILABLE) instead of 1.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/npz.h"
#include "tests/testing/free_port.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::ProcessResult;
using testing::RunProcess;

const std::string kWfm = WFM_CLI_PATH;
const std::string kIo = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/io/";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = "127.0.0.1:" + std::to_string(wfm::testing::FreePort());
  }

  // wfm --server <closed port> ARGS..., without WFM_* variables.
  ProcessResult Wfm(std::vector<std::string> args) {
    args.insert(args.begin(), {kWfm, "--server", server_});
    return RunProcess(args, {}, {"WFM_SERVER", "WFM_TOKEN"});
  }

  std::string Path(const std::string& name) const { return dir_.File(name); }

  wfm::testing::TempDir dir_{"wfm-cli-test"};
  std::string server_;
};

// Exactly one stderr line, the error line, containing every fragment.
void ExpectOneErrorLine(const ProcessResult& r, int exit_code,
                        const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.exit_code, exit_code) << "stderr: " << r.err;
  const std::vector<std::string> lines = r.ErrLines();
  ASSERT_EQ(lines.size(), 1u) << "stderr: " << r.err;
  EXPECT_THAT(lines[0], StartsWith("wfm: error: "));
  for (const std::string& f : fragments) EXPECT_THAT(lines[0], HasSubstr(f));
}

TEST_F(CliTest, HelpListsEveryCommandAndExitsZero) {
  const ProcessResult r = Wfm({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* command : {"health", "upload", "datasets", "models", "jobs", "train", "watch",
                              "cancel", "sample", "evaluate", "demo", "--server", "--token",
                              "--tls-ca"}) {
    EXPECT_THAT(r.out, HasSubstr(command));
  }
}

TEST_F(CliTest, CommandsHaveTheContractFlags) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"upload", {"--name", "--features", "--spatial-key", "--label-key", "--sample-key"}},
      {"datasets", {"--json"}},
      {"models", {"--json"}},
      {"jobs", {"--json"}},
      {"train",
       {"--dataset", "--model", "--family", "--steps", "--batch", "--lr", "--seed", "--k", "--emb",
        "--layers", "--heads", "--mlp", "--monge-map", "--eps", "--sinkhorn-iters", "--noise",
        "--minibatch-ot", "--guidance", "--p-uncond", "--watch"}},
      {"sample", {"--model", "--num", "--out", "--points", "--label", "--steps", "--seed",
                  "--guidance", "--trajectory"}},
      {"evaluate", {"--model", "--dataset", "--num", "--json"}},
  };
  for (const auto& [command, flags] : expected) {
    const ProcessResult r = Wfm({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    for (const std::string& flag : flags) {
      EXPECT_THAT(r.out, HasSubstr(flag + " ")) << command << " lacks " << flag;
    }
  }
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  ExpectOneErrorLine(Wfm({}), 2, {"subcommand is required"});
  ExpectOneErrorLine(Wfm({"frobnicate"}), 2, {"frobnicate"});
  ExpectOneErrorLine(Wfm({"health", "--bogus"}), 2, {"--bogus"});
  ExpectOneErrorLine(Wfm({"sample", "--model", "m"}), 2, {"--out"});
  ExpectOneErrorLine(Wfm({"train", "--dataset", "d", "--model", "m", "--steps", "-5"}), 2,
                     {"--steps"});
  ExpectOneErrorLine(Wfm({"train", "--dataset", "d", "--model", "m", "--family", "blob"}), 2,
                     {"--family"});
  ExpectOneErrorLine(
      Wfm({"train", "--dataset", "d", "--model", "m", "--monge-map", "telepathy"}), 2,
      {"--monge-map"});
  ExpectOneErrorLine(Wfm({"--token", "a", "--token-file", "f", "health"}), 2, {"--token"});
}

TEST_F(CliTest, MissingFile) {
  ExpectOneErrorLine(Wfm({"upload", Path("nope.npz"), "--name", "x"}), 1, {"nope.npz"});
}

TEST_F(CliTest, TruncatedNpz) {
  const std::string good = testing::ReadFile(kIo + "clouds_int_labels.npz");
  ASSERT_GT(good.size(), 100u);
  std::ofstream(Path("cut.npz"), std::ios::binary) << good.substr(0, good.size() / 2);
  ExpectOneErrorLine(Wfm({"upload", Path("cut.npz"), "--name", "x"}), 1, {"cut.npz"});
}

TEST_F(CliTest, NotAZipFile) {
  std::ofstream(Path("text.npz")) << "this is not a zip archive\n";
  ExpectOneErrorLine(Wfm({"upload", Path("text.npz"), "--name", "x"}), 1, {"text.npz"});
}

TEST_F(CliTest, MissingKeys) {
  ExpectOneErrorLine(Wfm({"upload", kIo + "bad_missing_offsets.npz", "--name", "x"}), 1,
                     {"bad_missing_offsets.npz", "offsets"});
  ASSERT_TRUE(io::WriteNpz(Path("other.npz"),
                           {{"weights", io::ArrayView::Of({3}, std::vector<float>{1, 2, 3})}})
                  .ok());
  ExpectOneErrorLine(Wfm({"upload", Path("other.npz"), "--name", "x"}), 1,
                     {"other.npz", "points", "means", "weights"});
}

TEST_F(CliTest, NanValues) {
  ExpectOneErrorLine(Wfm({"upload", kIo + "bad_nan_points.npz", "--name", "x"}), 1,
                     {"bad_nan_points.npz", "nan", "finite"});
  ExpectOneErrorLine(Wfm({"upload", kIo + "bad_nan_spatial.h5ad", "--name", "x", "--features",
                          "X"}),
                     1, {"bad_nan_spatial.h5ad", "nan"});
}

TEST_F(CliTest, WrongDimensions) {
  ASSERT_TRUE(io::WriteNpz(Path("flat.npz"),
                           {{"points", io::ArrayView::Of({6}, std::vector<float>(6, 1.0f))},
                            {"offsets", io::ArrayView::Of({2}, std::vector<int64_t>{0, 6})}})
                  .ok());
  ExpectOneErrorLine(Wfm({"upload", Path("flat.npz"), "--name", "x"}), 1,
                     {"flat.npz", "points", "[P, d]"});
  std::vector<double> covs(2 * 3 * 3, 0.0);
  ASSERT_TRUE(io::WriteNpz(Path("g.npz"),
                           {{"means", io::ArrayView::Of({2, 2}, std::vector<double>(4, 0.0))},
                            {"covs", io::ArrayView::Of({2, 3, 3}, covs)}})
                  .ok());
  ExpectOneErrorLine(Wfm({"upload", Path("g.npz"), "--name", "x"}), 1, {"g.npz", "covs"});
  ASSERT_TRUE(io::WriteNpz(Path("short.npz"),
                           {{"points", io::ArrayView::Of({4, 2}, std::vector<float>(8, 1.0f))},
                            {"offsets", io::ArrayView::Of({3}, std::vector<int64_t>{0, 2, 9})}})
                  .ok());
  ExpectOneErrorLine(Wfm({"upload", Path("short.npz"), "--name", "x"}), 1,
                     {"short.npz", "offsets"});
}

TEST_F(CliTest, NonSpdCovariances) {
  ExpectOneErrorLine(Wfm({"upload", kIo + "bad_covs_not_spd.npz", "--name", "x"}), 1,
                     {"bad_covs_not_spd.npz", "not positive definite"});
  ExpectOneErrorLine(Wfm({"upload", kIo + "bad_covs_not_symmetric.npz", "--name", "x"}), 1,
                     {"bad_covs_not_symmetric.npz", "not symmetric"});
}

// Float labels on Gaussians are their condition vectors, checked locally
// (one per Gaussian, finite) before the server is contacted.
TEST_F(CliTest, FloatLabelsOnGaussians) {
  std::vector<double> covs = {1, 0, 0, 1, 2, 0, 0, 2};
  const auto write = [&](const std::string& name, const std::vector<float>& labels) {
    return io::WriteNpz(Path(name),
                        {{"means", io::ArrayView::Of({2, 2}, std::vector<double>(4, 0.0))},
                         {"covs", io::ArrayView::Of({2, 2, 2}, covs)},
                         {"labels", io::ArrayView::Of({static_cast<int64_t>(labels.size())},
                                                      labels)}});
  };
  ASSERT_TRUE(write("gl.npz", {0.5f, 1.5f, 2.5f}).ok());
  ExpectOneErrorLine(Wfm({"upload", Path("gl.npz"), "--name", "x"}), 1,
                     {"gl.npz", "labels: 3 labels for 2 Gaussians"});
  ASSERT_TRUE(write("gn.npz", {0.5f, NAN}).ok());
  ExpectOneErrorLine(Wfm({"upload", Path("gn.npz"), "--name", "x"}), 1,
                     {"gn.npz", "labels[1, 0] = nan: labels must be finite"});
}

TEST_F(CliTest, H5adKeys) {
  const std::string cells = kIo + "cells_csr.h5ad";
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--features", "obsm:nope"}), 1,
                     {"cells_csr.h5ad", "obsm/nope", "X_pca", "spatial"});
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--features", "Y"}), 1,
                     {"cells_csr.h5ad", "X or obsm:KEY"});
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--spatial-key", "coords"}), 1,
                     {"obsm/coords", "not found"});
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--label-key", "celltype"}), 1,
                     {"obs/celltype", "cell_type"});
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--label-key", "score"}), 1,
                     {"obs/score", "float"});
  ExpectOneErrorLine(Wfm({"upload", cells, "--name", "x", "--sample-key", "nope"}), 1,
                     {"obs/nope", "not found"});
}

TEST_F(CliTest, FileTypeAndFlagMismatches) {
  std::ofstream(Path("cells.csv")) << "a,b\n1,2\n";
  ExpectOneErrorLine(Wfm({"upload", Path("cells.csv"), "--name", "x"}), 1,
                     {"cells.csv", "'.csv'", ".npz", ".h5ad"});
  ExpectOneErrorLine(Wfm({"upload", kIo + "clouds_int_labels.npz", "--name", "x", "--label-key",
                          "cell_type"}),
                     1, {"--label-key", ".h5ad"});
  ExpectOneErrorLine(Wfm({"sample", "--model", "m", "--out", Path("x.csv")}), 1,
                     {"x.csv", ".npz", ".svg"});
  ExpectOneErrorLine(Wfm({"sample", "--model", "m", "--out", Path("x.svg"), "--trajectory"}), 1,
                     {"--trajectory", ".npz"});
  ExpectOneErrorLine(Wfm({"sample", "--model", "m", "--out", Path("x.npz"), "--label", "a",
                          "--condition", "1"}),
                     1, {"--label", "--condition"});
  ExpectOneErrorLine(Wfm({"sample", "--model", "m", "--out", Path("x.npz"), "--condition",
                          "1,zebra"}),
                     1, {"zebra"});
}

TEST_F(CliTest, TrainFlagsOfTheOtherFamily) {
  ExpectOneErrorLine(Wfm({"train", "--dataset", "d", "--model", "m", "--family", "gaussian",
                          "--monge-map", "argmax"}),
                     1, {"--monge-map", "gaussian"});
  ExpectOneErrorLine(Wfm({"train", "--dataset", "d", "--model", "m", "--family", "pointcloud",
                          "--noise", "wishart"}),
                     1, {"--noise", "wishart", "uniform"});
  ExpectOneErrorLine(Wfm({"train", "--dataset", "d", "--model", "m", "--family", "pointcloud",
                          "--minibatch-ot", "sometimes"}),
                     1, {"--minibatch-ot", "on or off"});
}

TEST_F(CliTest, UnreachableServerIsUnavailable) {
  const ProcessResult r = Wfm({"datasets"});
  ExpectOneErrorLine(r, 10 + 14, {"cannot reach", server_, "UNAVAILABLE"});
  // The same request through WFM_SERVER.
  const ProcessResult env = RunProcess({kWfm, "health"}, {{"WFM_SERVER", server_}}, {"WFM_TOKEN"});
  ExpectOneErrorLine(env, 24, {server_});
}

TEST_F(CliTest, TokenFileMustExist) {
  ExpectOneErrorLine(Wfm({"--token-file", Path("missing-token"), "health"}), 1,
                     {"missing-token"});
}

TEST_F(CliTest, TlsCaFileMustExist) {
  ExpectOneErrorLine(Wfm({"--tls-ca", Path("missing-ca.pem"), "health"}), 1, {"missing-ca.pem"});
}

TEST_F(CliTest, DemoNeedsAServerBinary) {
  ExpectOneErrorLine(Wfm({"demo", "--server-bin", Path("no-such-server")}), 1,
                     {"no-such-server", "not an executable"});
  ExpectOneErrorLine(Wfm({"demo", "--out", Path("demo.txt")}), 1, {"demo.txt"});
}

}  // namespace
}  // namespace wfm::client
