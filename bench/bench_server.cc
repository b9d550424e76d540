#include "bench/bench_server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <system_error>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace wfm::bench {

absl::StatusOr<std::unique_ptr<BenchServer>> BenchServer::Start(absl::string_view name,
                                                                server::ServerOptions options) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     absl::StrCat("wfm-", name, "-bench-", ::getpid()))
                        .string();
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = dir;
  options.log_level = "warning";
  absl::StatusOr<std::unique_ptr<server::ServerApp>> app = server::ServerApp::Start(options);
  if (!app.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return app.status();
  }
  return std::unique_ptr<BenchServer>(new BenchServer(*std::move(app), std::move(dir)));
}

BenchServer::~BenchServer() {
  app_->Shutdown(absl::Seconds(10));
  app_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<v1::WfmService::Stub> NewBenchStub(const std::string& address, int id) {
  grpc::ChannelArguments args;
  args.SetInt("wfm.bench.client", id);  // a separate connection per client
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return v1::WfmService::NewStub(channel);
}

bool UploadAndTrainBenchModel(v1::WfmService::Stub& stub, const BenchModelSpec& spec,
                              absl::string_view what) {
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  {
    grpc::ClientContext context;
    v1::Dataset reply;
    auto writer = stub.UploadDataset(&context, &reply);
    v1::UploadDatasetRequest header;
    header.mutable_header()->set_name(spec.name);
    header.mutable_header()->set_kind(v1::POINT_CLOUDS);
    header.mutable_header()->set_dim(spec.dim);
    writer->Write(header);
    v1::UploadDatasetRequest chunk;
    for (int c = 0; c < 32; ++c) {
      chunk.mutable_clouds()->add_sizes(spec.points);
      const float scale = 0.5f + 0.05f * static_cast<float>(c);
      for (int64_t i = 0; i < spec.points * spec.dim; ++i) {
        chunk.mutable_clouds()->add_points(scale * n01(rng));
      }
    }
    writer->Write(chunk);
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    if (!s.ok()) {
      std::cerr << what << ": upload: " << s.error_message() << "\n";
      return false;
    }
  }
  v1::StartTrainingRequest start;
  start.set_dataset(spec.name);
  start.set_model(spec.name);
  v1::TrainingConfig* c = start.mutable_config();
  c->set_family(v1::FAMILY_POINTCLOUD);
  c->mutable_network()->set_width(spec.net.emb);
  c->mutable_network()->set_heads(spec.net.heads);
  c->mutable_network()->set_layers(spec.net.layers);
  c->mutable_network()->set_mlp_hidden(spec.net.mlp);
  c->mutable_optimizer()->set_steps(3);
  c->mutable_optimizer()->set_batch_size(4);
  c->mutable_pointcloud()->set_sinkhorn_iterations(20);
  v1::TrainingJob job;
  {
    grpc::ClientContext context;
    const grpc::Status s = stub.StartTraining(&context, start, &job);
    if (!s.ok()) {
      std::cerr << what << ": train: " << s.error_message() << "\n";
      return false;
    }
  }
  grpc::ClientContext context;
  v1::WatchTrainingJobRequest watch;
  watch.set_id(job.id());
  auto reader = stub.WatchTrainingJob(&context, watch);
  while (reader->Read(&job)) {
  }
  (void)reader->Finish();
  if (job.state() != v1::SUCCEEDED) std::cerr << what << ": train: " << job.error() << "\n";
  return job.state() == v1::SUCCEEDED;
}

std::unique_ptr<BenchServer> StartWithBenchModel(absl::string_view command,
                                                 const server::ServerOptions& options,
                                                 const BenchModelSpec& spec) {
  const std::string what = absl::StrCat("wfm_bench ", command);
  absl::StatusOr<std::unique_ptr<BenchServer>> server = BenchServer::Start(command, options);
  if (!server.ok()) {
    std::cerr << what << ": " << server.status() << "\n";
    return nullptr;
  }
  if (!UploadAndTrainBenchModel(*NewBenchStub((*server)->address(), 0), spec, what)) return nullptr;
  return *std::move(server);
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank > 0 ? rank - 1 : 0)];
}

}  // namespace wfm::bench
