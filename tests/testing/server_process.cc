#include "tests/testing/server_process.h"

#include <regex>
#include <utility>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "tests/testing/connected.h"

namespace wfm::testing {
namespace {

ProcessOptions ServerArgs(ServerProcessOptions options) {
  ProcessOptions p;
  p.args = {WFM_SERVER_BINARY, "--listen",   options.listen,    "--metrics-listen",
            "127.0.0.1:0",     "--data-dir", options.data_dir, "--threads",
            "1"};
  p.args.insert(p.args.end(), options.extra_flags.begin(), options.extra_flags.end());
  p.log = std::move(options.log);
  p.file_size_limit = options.file_size_limit;
  p.env = std::move(options.env);
  return p;
}

}  // namespace

ChildServer::ChildServer(ServerProcessOptions options)
    : process_(ServerArgs(std::move(options))) {}

std::string ChildServer::WaitReady(absl::Duration timeout) {
  const std::optional<std::string> ready = process_.WaitForOutput("wfm-server ready: ", timeout);
  if (!ready.has_value()) return "";
  std::smatch m;
  if (std::regex_search(*ready, m, std::regex("grpc ([0-9.]+:[0-9]+)"))) address_ = m[1];
  if (std::regex_search(*ready, m, std::regex("metrics ([0-9.]+:[0-9]+)"))) {
    metrics_address_ = m[1];
  }
  return *ready;
}

std::shared_ptr<grpc::Channel> ChildServer::Channel(int id) const {
  grpc::ChannelArguments args;
  args.SetInt("wfm.test.connection", id);
  return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<::wfm::v1::WfmService::Stub> ChildServer::Stub(int id) const {
  return ::wfm::v1::WfmService::NewStub(Connected(Channel(id)));
}

int ChildServer::Wait(int seconds) {
  return process_.Wait(absl::Seconds(seconds)).value_or(-1);
}

}  // namespace wfm::testing
