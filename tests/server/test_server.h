// An in-process wfm-server on 127.0.0.1:0 with a temporary data folder.
#ifndef WFM_TESTS_SERVER_TEST_SERVER_H_
#define WFM_TESTS_SERVER_TEST_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "server/server_app.h"
#include "tests/server/client_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/connected.h"

namespace wfm::testing {

// Request limits that tests reach with small messages (a TestServer
// configuration).
inline void SmallRequestLimits(server::ServerOptions& o) {
  o.max_samples_per_request = 16;
  o.max_points_per_sample = 64;
  o.max_upload_bytes = 64 << 10;
}

class TestServer {
 public:
  // `configure` may change the options (the data folder is preset).
  explicit TestServer(std::function<void(server::ServerOptions&)> configure = nullptr) {
    options_.listen = "127.0.0.1:0";
    options_.metrics_listen = "127.0.0.1:0";
    options_.data_dir = dir_.path() + "/data";
    options_.threads = 1;
    options_.checkpoint_every = 0;
    options_.grace_period_seconds = 10;
    options_.log_level = "warning";
    if (configure) configure(options_);
  }
  ~TestServer() { Stop(); }

  absl::Status Start() {
    absl::StatusOr<std::unique_ptr<server::ServerApp>> app = server::ServerApp::Start(options_);
    if (!app.ok()) return app.status();
    app_ = std::move(app).value();
    return absl::OkStatus();
  }
  void Stop() {
    if (app_ != nullptr) app_->Shutdown();
    app_.reset();
  }

  server::ServerApp& app() { return *app_; }
  server::ServerOptions& options() { return options_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(app_->grpc_port()); }

  std::shared_ptr<grpc::Channel> Channel(
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials(),
      const grpc::ChannelArguments& args = {}) const {
    return grpc::CreateCustomChannel(address(), credentials, args);
  }
  // Over a connected channel (tests/testing/connected.h).
  std::unique_ptr<pb::WfmService::Stub> Stub() const {
    return pb::WfmService::NewStub(Connected(Channel()));
  }

  // The /metrics page.
  std::string Metrics() const { return HttpGet(app_->metrics_port(), "/metrics").second; }

 private:
  TempDir dir_;
  server::ServerOptions options_;
  std::unique_ptr<server::ServerApp> app_;
};

}  // namespace wfm::testing

#endif  // WFM_TESTS_SERVER_TEST_SERVER_H_
