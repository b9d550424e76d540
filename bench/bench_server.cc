#include "bench/bench_server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
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

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank > 0 ? rank - 1 : 0)];
}

}  // namespace wfm::bench
