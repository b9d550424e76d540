// Where the server writes and listens: nothing is ever written outside
// --data-dir, whatever names clients send; the metrics listener is a separate
// socket that speaks only HTTP while the gRPC port serves only gRPC.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Every path below `root` (relative; folders end in '/').
std::set<std::string> Tree(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    if (e.is_directory()) rel += "/";
    out.insert(rel);
  }
  return out;
}

grpc::Status StartTraining(pb::WfmService::Stub& stub, const std::string& dataset,
                           const std::string& model) {
  pb::TrainingJob job;
  return ::wfm::testing::StartTraining(stub, dataset, model, TinyConfig(pb::FAMILY_POINTCLOUD, 3),
                                       &job);
}

TEST(ConfinementTest, NothingIsWrittenOutsideTheDataDir) {
  TempDir outside;  // a folder that hostile names could point at
  const std::string victim = outside.path() + "/victim";
  std::ofstream(victim) << "keep me\n";
  TestServer server([](server::ServerOptions& o) { o.max_upload_bytes = 64 << 10; });
  const fs::path data_dir = server.options().data_dir;
  const fs::path parent = data_dir.parent_path();
  fs::create_directories(parent / "sibling");
  std::ofstream((parent / "sibling" / "file").string()) << "keep me too\n";
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();

  const std::string up = "../", abs = outside.path() + "/escape";
  const std::vector<std::string> hostile = {
      "../escape",   "../../escape", "..",          ".",           "/escape",
      abs,           "a/b",          "sibling/../x", "../sibling",  std::string("x\0y", 3),
      "x\ny",        ".~staging-x",  "datasets/..", "a\\b",        std::string(65, 'n'),
      "",            "~",            "%2e%2e",      "x y",         up + up + "victim",
      outside.path() + "/victim"};
  const auto chunks = CloudChunks(Ellipses(6, 1), 3);
  ASSERT_TRUE(Upload(*stub, Header("ok", pb::POINT_CLOUDS, 2), chunks).ok());
  ASSERT_EQ(Train(*stub, "ok", "okm", TinyConfig(pb::FAMILY_POINTCLOUD, 3)).state(), pb::SUCCEEDED);
  for (const std::string& name : hostile) {
    SCOPED_TRACE("name '" + name + "'");
    EXPECT_EQ(Upload(*stub, Header(name, pb::POINT_CLOUDS, 2), chunks).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    pb::DatasetHeader overwrite = Header(name, pb::POINT_CLOUDS, 2);
    overwrite.set_overwrite(true);
    EXPECT_EQ(Upload(*stub, overwrite, chunks).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(StartTraining(*stub, "ok", name).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(StartTraining(*stub, name, "fresh").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DeleteDataset(*stub, name).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DeleteModel(*stub, name).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Valid deletes remove only what they name.
  EXPECT_TRUE(DeleteModel(*stub, "okm").ok());
  EXPECT_TRUE(DeleteDataset(*stub, "ok").ok());
  server.Stop();

  // Every path below the data folder's parent is the data folder itself,
  // something inside it, or the sibling this test made.
  for (const std::string& path : Tree(parent.string())) {
    EXPECT_TRUE(path.rfind("data/", 0) == 0 || path == "sibling/" || path == "sibling/file")
        << "written outside --data-dir: " << path;
  }
  // Inside, only the stores' folders and job records and claims.
  for (const std::string& path : Tree(data_dir.string())) {
    EXPECT_TRUE(path == "datasets/" || path == "models/" || path == "jobs/" ||
                (path.rfind("jobs/", 0) == 0 && path.size() > 10 &&
                 (absl::EndsWith(path, ".json") || absl::EndsWith(path, ".lock"))))
        << "unexpected path in --data-dir: " << path;
  }
  EXPECT_EQ(Tree(outside.path()), (std::set<std::string>{"victim"}));
  std::ifstream in(victim);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "keep me");
  EXPECT_FALSE(fs::exists(abs));
  EXPECT_FALSE(fs::exists(parent / "escape"));
  EXPECT_FALSE(fs::exists(parent.parent_path() / "escape"));
}

// Names may start with '.' ([A-Za-z0-9._-]{1,64}): such a data set is kept
// like any other, and is still there after a restart.
TEST(ConfinementTest, DotNamedDatasetSurvivesARestart) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  {
    auto stub = server.Stub();
    ASSERT_TRUE(Upload(*stub, Header(".hidden", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(3, 1), 3)).ok());
    ASSERT_TRUE(Upload(*stub, Header("...", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(3, 2), 3)).ok());
  }
  server.Stop();
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();
  grpc::ClientContext context;
  pb::ListDatasetsResponse reply;
  ASSERT_TRUE(stub->ListDatasets(&context, {}, &reply).ok());
  std::set<std::string> names;
  for (const auto& d : reply.datasets()) names.insert(d.name());
  EXPECT_EQ(names, (std::set<std::string>{"...", ".hidden"}));
}

TEST(MetricsListenerTest, BoundSeparatelyFromGrpcAndSpeaksOnlyHttp) {
  TestServer server([](server::ServerOptions& o) {
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
  });
  ASSERT_TRUE(server.Start().ok());
  const int grpc_port = server.app().grpc_port();
  const int metrics_port = server.app().metrics_port();
  ASSERT_GT(grpc_port, 0);
  ASSERT_GT(metrics_port, 0);
  EXPECT_NE(grpc_port, metrics_port);
  EXPECT_EQ(server.app().metrics_address(), "127.0.0.1:" + std::to_string(metrics_port));

  // The metrics port serves /metrics over HTTP...
  const auto [code, body] = HttpGet(metrics_port, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_THAT(body, HasSubstr("wfm_build_info"));
  // ... and no gRPC.
  auto metrics_stub = pb::WfmService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(metrics_port),
                          grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  pb::ListDatasetsResponse reply;
  EXPECT_FALSE(metrics_stub->ListDatasets(&context, {}, &reply).ok());
  EXPECT_EQ(HealthStatus(grpc::CreateChannel("127.0.0.1:" + std::to_string(metrics_port),
                                             grpc::InsecureChannelCredentials()),
                         "wfm.v1.WfmService"),
            -1);

  // The gRPC port serves gRPC, and an HTTP/1.1 GET for /metrics gets no
  // metrics page from it.
  grpc::ClientContext context2;
  EXPECT_TRUE(server.Stub()->ListDatasets(&context2, {}, &reply).ok());
  const auto [grpc_code, grpc_body] = HttpGet(grpc_port, "/metrics");
  EXPECT_NE(grpc_code, 200);
  EXPECT_THAT(grpc_body, ::testing::Not(HasSubstr("wfm_build_info")));
}

TEST(MetricsListenerTest, CanBeTurnedOff) {
  TestServer server([](server::ServerOptions& o) { o.metrics_listen = ""; });
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.app().metrics_port(), 0);
  EXPECT_EQ(HealthStatus(Connected(server.Channel()), "wfm.v1.WfmService"), 1);
}

}  // namespace
}  // namespace wfm::testing
