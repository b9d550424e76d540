// The C++ client library against an in-process fake WfmService (streams,
// metadata, status conversion, malformed responses), plus the pieces of the
// tool that need no server: exit codes and error lines, train flags, the
// demo data, sample files and the local server process.
#include "client/client.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/cli.h"
#include "client/demo_data.h"
#include "client/local_server.h"
#include "client/sample_files.h"
#include "client/train_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/h5ad.h"
#include "model/io/npz.h"
#include "tests/testing/free_port.h"
#include "tests/testing/status.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ------------------------------------------------------------ fake service

class FakeService final : public v1::WfmService::Service {
 public:
  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                             v1::Dataset* response) override {
    RecordAuth(context);
    v1::UploadDatasetRequest request;
    std::lock_guard<std::mutex> lock(mu_);
    header_.Clear();
    clouds_ = 0;
    points_.clear();
    messages_ = 0;
    while (reader->Read(&request)) {
      ++messages_;
      if (request.has_header()) header_ = request.header();
      if (request.has_clouds()) {
        clouds_ += request.clouds().sizes_size();
        points_.insert(points_.end(), request.clouds().points().begin(),
                       request.clouds().points().end());
      }
    }
    if (header_.name() == "reject") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "header.name 'reject': refused");
    }
    response->set_name(header_.name());
    response->set_kind(header_.kind());
    response->set_items(clouds_);
    return grpc::Status::OK;
  }

  grpc::Status GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                        v1::ModelInfo* response) override {
    RecordAuth(context);
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "model '" + request->name() + "' not found");
  }

  grpc::Status WatchTrainingJob(grpc::ServerContext* context,
                                const v1::WatchTrainingJobRequest* request,
                                grpc::ServerWriter<v1::TrainingJob>* writer) override {
    for (int step : {0, 5, 10}) {
      v1::TrainingJob job;
      job.set_id(request->id());
      job.set_step(step);
      job.set_total_steps(10);
      job.set_state(step == 10 ? v1::SUCCEEDED : v1::RUNNING);
      writer->Write(job);
    }
    return grpc::Status::OK;
  }

  grpc::Status SampleNiches(grpc::ServerContext* context, const v1::SampleNichesRequest* request,
                            grpc::ServerWriter<v1::SampleNichesResponse>* writer) override {
    std::vector<v1::SampleNichesResponse> chunks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      chunks = sample_chunks_;
    }
    for (const auto& chunk : chunks) writer->Write(chunk);
    return grpc::Status::OK;
  }

  grpc::Status ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest*,
                            v1::ListDatasetsResponse*) override {
    // Answers only once the call is cancelled: the client's short deadline
    // has expired by then.
    wfm::testing::WaitUntil([context] { return context->IsCancelled(); }, absl::Seconds(30),
                            absl::Milliseconds(1));
    return grpc::Status::OK;
  }

  void SetSampleChunks(std::vector<v1::SampleNichesResponse> chunks) {
    std::lock_guard<std::mutex> lock(mu_);
    sample_chunks_ = std::move(chunks);
  }
  std::string last_auth() {
    std::lock_guard<std::mutex> lock(mu_);
    return auth_;
  }

  std::mutex mu_;
  v1::DatasetHeader header_;
  int64_t clouds_ = 0;
  int64_t messages_ = 0;
  std::vector<float> points_;

 private:
  void RecordAuth(grpc::ServerContext* context) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& md = context->client_metadata();
    const auto it = md.find("authorization");
    auth_ = it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  std::string auth_;
  std::vector<v1::SampleNichesResponse> sample_chunks_;
};

class FakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    server_->GetHealthCheckService()->SetServingStatus(kServiceName, true);
    options_.server = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override { server_->Shutdown(); }

  absl::StatusOr<std::unique_ptr<Client>> Connect() { return Client::Connect(options_); }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  ClientOptions options_;
};

TEST_F(FakeServerTest, HealthCheck) {
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  EXPECT_EQ(*client->CheckHealth(), HealthStatus::kServing);
  server_->GetHealthCheckService()->SetServingStatus(kServiceName, false);
  EXPECT_EQ(*client->CheckHealth(), HealthStatus::kNotServing);
  EXPECT_EQ(*client->CheckHealth("no.such.Service"), HealthStatus::kServiceUnknown);
}

TEST_F(FakeServerTest, UploadStreamsHeaderAndChunksWithTheToken) {
  options_.token = "s3cret";
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  absl::StatusOr<io::PointCloudSet> shapes = MakeShapes({2, 300, 40, 60, 7});
  ASSERT_TRUE(shapes.ok());
  std::vector<int64_t> progress;
  absl::StatusOr<v1::Dataset> stored = client->UploadPointClouds(
      {"shapes", "d", false}, *shapes, [&](int64_t done, int64_t) { progress.push_back(done); });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->items(), 300);
  EXPECT_EQ(service_.last_auth(), "Bearer s3cret");
  std::lock_guard<std::mutex> lock(service_.mu_);
  EXPECT_EQ(service_.header_.kind(), v1::POINT_CLOUDS);
  EXPECT_EQ(service_.header_.dim(), 2);
  EXPECT_EQ(service_.header_.label_type(), v1::LABEL_TYPE_DISCRETE);
  EXPECT_EQ(service_.points_, shapes->points);
  EXPECT_EQ(progress.front(), 0);
  EXPECT_EQ(progress.back(), 300);
  EXPECT_EQ(static_cast<int64_t>(progress.size()), service_.messages_);  // header + chunks
}

TEST_F(FakeServerTest, ServerErrorsKeepTheirCodeAndMethod) {
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  absl::StatusOr<io::PointCloudSet> shapes = MakeShapes({2, 3, 4, 4, 1});
  absl::StatusOr<v1::Dataset> rejected = client->UploadPointClouds(UploadInfo{"reject", "", false}, *shapes);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rejected.status().message(), "header.name 'reject': refused");
  EXPECT_TRUE(IsRpcError(rejected.status()));
  EXPECT_EQ(RpcMethod(rejected.status()), "UploadDataset");
  EXPECT_EQ(ExitCodeFor(rejected.status()), 13);

  const absl::Status missing = client->GetModel("ghost").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ExitCodeFor(missing), 15);
  EXPECT_EQ(ErrorLine(missing, "h:1"), "model 'ghost' not found (NOT_FOUND from GetModel)");
  // ListModels is left to the generated base class, which answers with gRPC code 12.
  EXPECT_EQ(ExitCodeFor(client->ListModels().status()), 22);
}

TEST_F(FakeServerTest, DeadlineExceeded) {
  options_.deadlines.unary = 0.1;
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  const absl::Status status = client->ListDatasets().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(ErrorLine(status, "h:1"), HasSubstr("--timeout"));
}

TEST_F(FakeServerTest, WatchCallsBackForEveryUpdate) {
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  std::vector<int64_t> steps;
  absl::StatusOr<v1::TrainingJob> last =
      client->WatchTrainingJob("job-1", [&](const v1::TrainingJob& j) { steps.push_back(j.step()); });
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_THAT(steps, ElementsAre(0, 5, 10));
  EXPECT_EQ(last->state(), v1::SUCCEEDED);
  EXPECT_EQ(last->id(), "job-1");
}

v1::SampleNichesResponse Chunk(int64_t first, std::vector<int64_t> sizes, int64_t dim,
                               float base, int64_t frames = 0) {
  v1::SampleNichesResponse r;
  r.set_first_sample(first);
  r.set_dim(dim);
  int64_t p = 0;
  for (int64_t s : sizes) {
    r.add_sizes(s);
    p += s;
    r.add_labels("L" + std::to_string(first + r.sizes_size() - 1));
  }
  for (int64_t i = 0; i < p * dim; ++i) r.add_points(base + i);
  r.set_frames(frames);
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t i = 0; i < p * dim; ++i) r.add_trajectory(1000 * f + base + i);
  }
  return r;
}

TEST_F(FakeServerTest, SampleNichesAssemblesChunksAndTrajectories) {
  service_.SetSampleChunks({Chunk(0, {2, 3}, 2, 0, 2), Chunk(2, {1}, 2, 100, 2)});
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  v1::SampleNichesRequest request;
  request.set_num_samples(3);
  std::vector<int64_t> progress;
  absl::StatusOr<SampledClouds> s =
      client->SampleNiches(request, [&](int64_t done, int64_t) { progress.push_back(done); });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(progress, ElementsAre(0, 2, 3));
  EXPECT_EQ(s->clouds.dim, 2);
  EXPECT_THAT(s->clouds.offsets, ElementsAre(0, 2, 5, 6));
  EXPECT_THAT(s->clouds.labels.strings, ElementsAre("L0", "L1", "L2"));
  EXPECT_EQ(s->clouds.points[10], 100);
  // Trajectory [frames, P, dim]: frame 1 holds chunk 1's frame 1 then chunk 2's.
  ASSERT_EQ(s->frames, 2);
  ASSERT_EQ(s->trajectory.size(), 2u * 6 * 2);
  EXPECT_EQ(s->trajectory[0], 0);
  EXPECT_EQ(s->trajectory[10], 100);
  EXPECT_EQ(s->trajectory[12], 1000);
  EXPECT_EQ(s->trajectory[22], 1100);
}

TEST_F(FakeServerTest, MalformedSampleStreamsAreInternalErrors) {
  WFM_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  v1::SampleNichesRequest request;
  request.set_num_samples(2);
  v1::SampleNichesResponse gap = Chunk(1, {2}, 2, 0);  // first_sample should be 0
  service_.SetSampleChunks({gap});
  EXPECT_THAT(client->SampleNiches(request).status().message(), HasSubstr("first_sample"));
  v1::SampleNichesResponse short_points = Chunk(0, {2}, 2, 0);
  short_points.mutable_points()->RemoveLast();
  service_.SetSampleChunks({short_points});
  EXPECT_EQ(client->SampleNiches(request).status().code(), absl::StatusCode::kInternal);
  service_.SetSampleChunks({Chunk(0, {2}, 2, 0), Chunk(1, {2}, 3, 0)});
  EXPECT_THAT(client->SampleNiches(request).status().message(), HasSubstr("dim"));
  service_.SetSampleChunks({Chunk(0, {2}, 2, 0)});  // 1 of 2 samples
  EXPECT_THAT(client->SampleNiches(request).status().message(), HasSubstr("1 of 2"));
}

// The first call waits for a connection (Client::kFirstConnectionWait): a
// first attempt that fails, as gRPC 1.51's spurious connect failures do, is
// retried after the channel's backoff instead of failing the call.
TEST(ClientTest, TheFirstCallOutlivesAFailedFirstConnectionAttempt) {
  // The port: bound but not listening (connections are refused) until the
  // test listens on it to take the client's first attempt.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  ClientOptions options;
  options.server = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  {
    // Nothing listens yet: a channel's attempt is refused.
    grpc::ChannelArguments args;
    args.SetInt("wfm.test.probe", 1);  // a connection of its own
    std::shared_ptr<grpc::Channel> probe =
        grpc::CreateCustomChannel(options.server, grpc::InsecureChannelCredentials(), args);
    EXPECT_FALSE(probe->WaitForConnected(std::chrono::system_clock::now() +
                                         std::chrono::milliseconds(200)));
  }
  ASSERT_EQ(::listen(listener, 1), 0);
  FakeService service;
  std::unique_ptr<grpc::Server> server;
  bool attempt_seen = false;
  std::thread later([&] {
    // The client's first attempt arrives and is reset (SO_LINGER 0): it
    // fails as gRPC 1.51's spurious connect failures do. Only then does the
    // server start on the port.
    pollfd incoming{listener, POLLIN, 0};
    if (::poll(&incoming, 1, 30000) == 1) {
      const int attempt = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (attempt >= 0) {
        attempt_seen = true;
        const linger reset{1, 0};
        ::setsockopt(attempt, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        ::close(attempt);
      }
    }
    ::close(listener);
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options.server, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  });
  // Starts connecting at once, fails, and connects on the retry.
  const absl::StatusOr<HealthStatus> health = (*client)->CheckHealth("");
  later.join();
  EXPECT_TRUE(attempt_seen);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthStatus::kServing);
  server->Shutdown();
}

// A server that is down is still reported, as UNAVAILABLE, once the wait
// for the first connection is over.
TEST(ClientTest, ADownServerIsUnavailable) {
  ClientOptions options;
  options.server = "127.0.0.1:" + std::to_string(wfm::testing::FreePort());
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  const absl::StatusOr<std::vector<v1::ModelInfo>> models = (*client)->ListModels();
  EXPECT_EQ(models.status().code(), absl::StatusCode::kUnavailable) << models.status();
  EXPECT_THAT(std::string(models.status().message()), HasSubstr(options.server));
}

TEST(ClientTest, ConnectChecksTlsFiles) {
  ClientOptions options;
  options.server = "127.0.0.1:1";
  options.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(Client::Connect(options).status().code(), absl::StatusCode::kNotFound);
  options.tls_ca_file.clear();
  options.tls_cert_file = "/etc/hostname";
  EXPECT_EQ(Client::Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.server = "";
  EXPECT_EQ(Client::Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------ exit codes, errors

TEST(CliErrorsTest, ExitCodesAndLines) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("local file")), 1);
  EXPECT_EQ(ExitCodeFor(WithExitCode(absl::AbortedError("job failed"), kExitJobFailed)), 3);
  const absl::Status unavailable =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connect failed"), "ListModels");
  EXPECT_EQ(ExitCodeFor(unavailable), 24);
  EXPECT_EQ(ErrorLine(unavailable, "db:7"),
            "cannot reach the wfm server at db:7: connect failed (UNAVAILABLE from ListModels)");
  const absl::Status unauth =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing token"), "GetModel");
  EXPECT_THAT(ErrorLine(unauth, "h"), HasSubstr("WFM_TOKEN"));
  EXPECT_EQ(ExitCodeFor(unauth), 26);
  EXPECT_EQ(ErrorLine(absl::InternalError("two\nlines"), "h"), "two | lines");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK, "X").ok());
  EXPECT_FALSE(IsRpcError(absl::NotFoundError("x")));
}

// --------------------------------------------------------------- train flags

TEST(TrainFlagsTest, OnlyGivenFlagsAreSet) {
  TrainFlags f;
  f.dataset = "d";
  f.model = "m";
  f.options = {{"steps", "30"}, {"emb", "16"},          {"layers", "1"},
               {"monge-map", "argmax"}, {"minibatch-ot", "off"}, {"p-uncond", "0.2"}};
  absl::StatusOr<v1::StartTrainingRequest> r = BuildTrainingRequest(f, "pointcloud");
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::TrainingConfig& c = r->config();
  EXPECT_EQ(c.family(), v1::FAMILY_POINTCLOUD);
  EXPECT_EQ(c.optimizer().steps(), 30);
  EXPECT_FALSE(c.optimizer().has_batch_size());
  EXPECT_FALSE(c.optimizer().has_learning_rate());
  EXPECT_EQ(c.network().width(), 16);
  EXPECT_EQ(c.network().layers(), 1);
  EXPECT_FALSE(c.network().has_heads());
  EXPECT_EQ(c.pointcloud().monge_map(), "argmax");
  ASSERT_TRUE(c.pointcloud().has_minibatch_ot());
  EXPECT_FALSE(c.pointcloud().minibatch_ot());
  EXPECT_DOUBLE_EQ(c.pointcloud().p_uncond(), 0.2);
  EXPECT_FALSE(c.has_niche_size());
  EXPECT_FALSE(c.has_gaussian());
}

TEST(TrainFlagsTest, GaussianFamily) {
  TrainFlags f;
  f.options = {{"noise", "wishart"}, {"minibatch-ot", "on"}, {"k", "12"}, {"df-scale", "2"}};
  absl::StatusOr<v1::StartTrainingRequest> r = BuildTrainingRequest(f, "gaussian");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config().family(), v1::FAMILY_GAUSSIAN);
  EXPECT_EQ(r->config().gaussian().noise(), "wishart");
  EXPECT_TRUE(r->config().gaussian().minibatch_ot());
  EXPECT_EQ(r->config().niche_size(), 12);
  EXPECT_DOUBLE_EQ(r->config().gaussian().degrees_of_freedom_scale(), 2);
  EXPECT_FALSE(r->config().has_pointcloud());
  f.options["monge-map"] = "argmax";
  EXPECT_THAT(BuildTrainingRequest(f, "gaussian").status().message(), HasSubstr("--monge-map"));
  f.options.erase("monge-map");
  // Guidance and condition dropout apply to both families.
  f.options["guidance"] = "2";
  f.options["p-uncond"] = "0.25";
  r = BuildTrainingRequest(f, "gaussian");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->config().gaussian().guidance(), 2);
  EXPECT_DOUBLE_EQ(r->config().gaussian().p_uncond(), 0.25);
  f.options.erase("guidance");
  f.options.erase("p-uncond");
  f.options["noise"] = "uniform";
  EXPECT_THAT(BuildTrainingRequest(f, "gaussian").status().message(), HasSubstr("wishart"));
  f.options["noise"] = "given_random";
  f.options["source-dataset"] = "src";
  EXPECT_EQ(BuildTrainingRequest(f, "gaussian")->config().gaussian().source_dataset(), "src");
  f.options.erase("noise");
  EXPECT_THAT(BuildTrainingRequest(f, "gaussian").status().message(), HasSubstr("given_"));
}

TEST(TrainFlagsTest, OnOff) {
  EXPECT_TRUE(*ParseOnOff("ON", "--x"));
  EXPECT_FALSE(*ParseOnOff("false", "--x"));
  EXPECT_THAT(ParseOnOff("maybe", "--x").status().message(), HasSubstr("--x maybe"));
}

// ----------------------------------------------------------------- demo data

TEST(DemoDataTest, ShapesAreDeterministicBalancedAndOnTheirCurves) {
  absl::StatusOr<io::PointCloudSet> a = MakeShapes({2, 30, 10, 20, 5});
  absl::StatusOr<io::PointCloudSet> b = MakeShapes({2, 30, 10, 20, 5});
  absl::StatusOr<io::PointCloudSet> c = MakeShapes({2, 30, 10, 20, 6});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->points, b->points);
  EXPECT_NE(a->points, c->points);
  EXPECT_TRUE(io::ValidatePointCloudSet(*a, "shapes").ok());
  EXPECT_EQ(a->num_clouds(), 30);
  std::map<std::string, int> counts;
  for (const std::string& l : a->labels.strings) ++counts[l];
  EXPECT_EQ(counts["ring"], 10);
  EXPECT_EQ(counts["square"], 10);
  EXPECT_EQ(counts["cross"], 10);
  for (int64_t i = 0; i < 30; ++i) {
    EXPECT_GE(a->cloud_size(i), 10);
    EXPECT_LE(a->cloud_size(i), 20);
  }
  // A ring: a least-squares circle (Kasa fit: x² + y² = 2ax + 2by + c) fits
  // every point to within the 2% radial jitter.
  const float* p = a->points.data();
  const int64_t n = a->cloud_size(0);
  double m[3][4] = {};  // normal equations [A^T A | A^T z]
  for (int64_t i = 0; i < n; ++i) {
    const double x = p[2 * i], y = p[2 * i + 1];
    const double row[3] = {2 * x, 2 * y, 1}, z = x * x + y * y;
    for (int r = 0; r < 3; ++r) {
      for (int q = 0; q < 3; ++q) m[r][q] += row[r] * row[q];
      m[r][3] += row[r] * z;
    }
  }
  for (int col = 0; col < 3; ++col) {  // Gauss-Jordan elimination
    for (int r = 0; r < 3; ++r) {
      if (r == col) continue;
      const double f = m[r][col] / m[col][col];
      for (int q = 0; q < 4; ++q) m[r][q] -= f * m[col][q];
    }
  }
  const double cx = m[0][3] / m[0][0], cy = m[1][3] / m[1][1];
  const double radius = std::sqrt(m[2][3] / m[2][2] + cx * cx + cy * cy);
  EXPECT_GE(radius, 0.45);
  EXPECT_LE(radius, 1.05);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(std::hypot(p[2 * i] - cx, p[2 * i + 1] - cy) / radius, 1.0, 0.1);
  }

  absl::StatusOr<io::PointCloudSet> three = MakeShapes({3, 9, 30, 30, 1});
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->dim, 3);
  EXPECT_THAT(ShapeClasses(3), ElementsAre("sphere", "torus", "cube"));
  EXPECT_FALSE(MakeShapes({4, 9, 30, 30, 1}).ok());
  EXPECT_FALSE(MakeShapes({2, 9, 30, 20, 1}).ok());
}

// -------------------------------------------------------------- sample files

class SampleFilesTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return dir_.File(name); }
  wfm::testing::TempDir dir_{"wfm-sample-files"};
};

SampledClouds TwoClouds(int64_t frames) {
  SampledClouds s;
  s.clouds.dim = 2;
  s.clouds.points = {0, 1, 2, 3, 4, 5};
  s.clouds.offsets = {0, 1, 3};
  s.clouds.labels = io::Labels::FromStrings({"a", "b"});
  s.frames = frames;
  for (int64_t f = 0; f < frames; ++f) {
    for (int i = 0; i < 6; ++i) s.trajectory.push_back(static_cast<float>(10 * f + i));
  }
  return s;
}

TEST_F(SampleFilesTest, NpzWithTrajectory) {
  ASSERT_TRUE(WriteSampledClouds(Path("s.npz"), TwoClouds(3)).ok());
  absl::StatusOr<io::NpzArrays> arrays = io::ReadNpz(Path("s.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  EXPECT_THAT(arrays->at("points").shape(), ElementsAre(3, 2));
  EXPECT_THAT(arrays->at("offsets").values<int64_t>(), ElementsAre(0, 1, 3));
  EXPECT_THAT(arrays->at("labels").values<std::string>(), ElementsAre("a", "b"));
  EXPECT_THAT(arrays->at("trajectory").shape(), ElementsAre(3, 3, 2));
  EXPECT_EQ(arrays->at("trajectory").values<float>()[12], 20);
  // The file reads back as a point-cloud data set (re-uploadable).
  EXPECT_TRUE(io::ReadPointCloudsNpz(Path("s.npz")).ok());
}

TEST_F(SampleFilesTest, H5adAndSvg) {
  ASSERT_TRUE(WriteSampledClouds(Path("s.h5ad"), TwoClouds(0)).ok());
  absl::StatusOr<io::H5adFile> file = io::H5adFile::Open(Path("s.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->n_obs(), 3);
  EXPECT_EQ(file->n_vars(), 2);
  absl::StatusOr<io::ObsColumn> sample = file->ReadObsColumn("sample");
  ASSERT_TRUE(sample.ok());
  EXPECT_THAT(sample->integers, ElementsAre(0, 1, 1));
  ASSERT_TRUE(WriteSampledClouds(Path("s.svg"), TwoClouds(0)).ok());
  std::ifstream in(Path("s.svg"));
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(svg, HasSubstr("id=\"sample-1\""));
}

TEST_F(SampleFilesTest, GaussiansNpz) {
  SampledGaussians g;
  g.gaussians.dim = 2;
  g.gaussians.means = {0, 0, 1, 1};
  g.gaussians.covs = {1, 0, 0, 1, 2, 0, 0, 2};
  ASSERT_TRUE(WriteSampledGaussians(Path("g.npz"), g).ok());
  EXPECT_TRUE(io::ReadGaussiansNpz(Path("g.npz")).ok());
  EXPECT_FALSE(WriteSampledGaussians(Path("g.h5ad"), g).ok());
  ASSERT_TRUE(WriteSampledGaussians(Path("g.svg"), g).ok());
}

TEST_F(SampleFilesTest, OutputChecks) {
  EXPECT_TRUE(CheckSampleOutput("a.NPZ", false, true).ok());
  EXPECT_FALSE(CheckSampleOutput("a.svg", false, true).ok());
  EXPECT_FALSE(CheckSampleOutput("a.h5ad", true, false).ok());
  EXPECT_FALSE(CheckSampleOutput("dir.npz/a", false, false).ok());
  EXPECT_THAT(CheckSampleOutput("a.png", false, false).message(), HasSubstr("'.png'"));
}

TEST_F(SampleFilesTest, ProjectionFromFile) {
  const std::string cells = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/client/cells.h5ad";
  absl::StatusOr<Projection> p = ProjectionFromFile(cells, "X");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->dim, 6);
  WFM_ASSERT_OK_AND_ASSIGN(const auto pca, ProjectionFromFile(cells, "obsm:X_pca"));
  EXPECT_EQ(pca.dim, 3);
  EXPECT_FALSE(ProjectionFromFile(cells, "obsm:nope").ok());
  ASSERT_TRUE(WriteSampledClouds(Path("s.npz"), TwoClouds(0)).ok());
  WFM_ASSERT_OK_AND_ASSIGN(const auto projection, ProjectionFromFile(Path("s.npz"), "X"));
  EXPECT_EQ(projection.dim, 2);
}

// -------------------------------------------------------------- local server

class LocalServerTest : public SampleFilesTest {
 protected:
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = Path(name);
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    return path;
  }
};

TEST(ReadyLineTest, Parses) {
  absl::StatusOr<ReadyLine> r = ParseReadyLine(
      "wfm-server ready: grpc 127.0.0.1:43121, metrics 0.0.0.0:40111, data /tmp/x, 0 models");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->grpc, "127.0.0.1:43121");
  EXPECT_EQ(r->metrics, "127.0.0.1:40111");
  EXPECT_EQ(ParseReadyLine("ready: grpc [::]:5")->grpc, "127.0.0.1:5");
  EXPECT_FALSE(ParseReadyLine("loading models").ok());
  EXPECT_FALSE(ParseReadyLine("wfm-server ready: metrics 1.2.3.4:5").ok());
}

TEST_F(LocalServerTest, StartsWaitsForTheReadyLineAndStops) {
  const std::string bin = Script(
      "fake-server",
      "trap 'echo stopping; exit 0' TERM\n"
      "echo \"args: $*\"\n"
      "echo 'loading...' >&2\n"
      "echo 'wfm-server ready: grpc 0.0.0.0:43999, metrics 127.0.0.1:9999, data x'\n"
      "while true; do sleep 0.05; done\n");
  LocalServerOptions options;
  options.binary = bin;
  options.data_dir = Path("data");
  absl::StatusOr<std::unique_ptr<LocalServer>> server = LocalServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->grpc_address(), "127.0.0.1:43999");
  EXPECT_EQ((*server)->metrics_address(), "127.0.0.1:9999");
  EXPECT_TRUE((*server)->Running());
  EXPECT_TRUE((*server)->Stop(10).ok());
  EXPECT_FALSE((*server)->Running());
  const std::string output = (*server)->RecentOutput();
  EXPECT_THAT(output, HasSubstr("--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir"));
  EXPECT_THAT(output, HasSubstr("loading..."));  // stderr is read too
  EXPECT_THAT(output, HasSubstr("stopping"));
}

TEST_F(LocalServerTest, ExitBeforeReadyReportsTheOutput) {
  const std::string bin = Script("broken", "echo 'cannot bind port' >&2\nexit 3\n");
  LocalServerOptions options;
  options.binary = bin;
  options.data_dir = Path("d");
  absl::StatusOr<std::unique_ptr<LocalServer>> server = LocalServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("exited with status 3"));
  EXPECT_THAT(server.status().message(), HasSubstr("cannot bind port"));
}

TEST_F(LocalServerTest, NoReadyLineTimesOutAndKills) {
  const std::string bin = Script("silent", "trap '' TERM\nwhile true; do sleep 0.05; done\n");
  LocalServerOptions options;
  options.binary = bin;
  options.ready_timeout_seconds = 0.5;
  absl::StatusOr<std::unique_ptr<LocalServer>> server = LocalServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("no ready line"));
}

TEST_F(LocalServerTest, FindServerBinary) {
  EXPECT_EQ(FindServerBinary(Path("none")).status().code(), absl::StatusCode::kNotFound);
  const std::string bin = Script("wfm-server", "exit 0\n");
  EXPECT_EQ(*FindServerBinary(bin), bin);
}

}  // namespace
}  // namespace wfm::client
