#include "server/auth_credentials.h"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "repository/logging.h"

namespace wfm::server {
namespace {

absl::string_view View(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// What the processor needs; owned by the core credentials (Destroy).
struct ProcessorState {
  const TokenAuth* auth;
  RejectedCallFn on_rejected;
};

// grpc_auth_metadata_processor::process: runs on the gRPC thread that read
// the call's headers and answers at once (a constant-time comparison; gRPC
// allows the callback before returning). Consumes nothing: the service sees
// the metadata as sent.
void Process(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md, size_t num_md,
             grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto* s = static_cast<const ProcessorState*>(state);
  absl::string_view path;
  std::optional<absl::string_view> authorization;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = View(md[i].key);
    if (key == ":path") {
      path = View(md[i].value);
    } else if (key == "authorization" && !authorization.has_value()) {
      authorization = View(md[i].value);
    }
  }
  absl::Status status = absl::OkStatus();
  if (TokenAuth::RequiresToken(path)) status = s->auth->Check(authorization);
  if (status.ok()) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  if (s->on_rejected) s->on_rejected(path);
  const std::string message(status.message());  // never holds what was sent
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED, message.c_str());
}

void Destroy(void* state) { delete static_cast<ProcessorState*>(state); }

class TokenCheckingCredentials final : public grpc::ServerCredentials {
 public:
  TokenCheckingCredentials(const TokenAuth* auth,
                           std::optional<grpc::SslServerCredentialsOptions> tls,
                           RejectedCallFn on_rejected)
      : auth_(auth), tls_(std::move(tls)), on_rejected_(std::move(on_rejected)) {}

  // The token check is this credentials' processor; a second one would
  // replace it. Programmer error.
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    LogError("TokenCheckingServerCredentials take no other auth metadata processor");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds = tls_.has_value() ? NewSslCredentials(*tls_)
                                                      : grpc_insecure_server_credentials_create();
    if (creds == nullptr) return 0;
    grpc_auth_metadata_processor processor;
    processor.process = Process;
    processor.destroy = Destroy;
    processor.state = new ProcessorState{auth_, on_rejected_};
    grpc_server_credentials_set_auth_metadata_processor(creds, processor);
    const int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  // As grpc::SslServerCredentials (src/cpp/server/secure_server_credentials.cc).
  static grpc_server_credentials* NewSslCredentials(const grpc::SslServerCredentialsOptions& o) {
    std::vector<grpc_ssl_pem_key_cert_pair> pairs;
    for (const auto& pair : o.pem_key_cert_pairs) {
      pairs.push_back({pair.private_key.c_str(), pair.cert_chain.c_str()});
    }
    return grpc_ssl_server_credentials_create_ex(
        o.pem_root_certs.empty() ? nullptr : o.pem_root_certs.c_str(),
        pairs.empty() ? nullptr : pairs.data(), pairs.size(),
        o.force_client_auth ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : o.client_certificate_request,
        nullptr);
  }

  const TokenAuth* const auth_;
  const std::optional<grpc::SslServerCredentialsOptions> tls_;
  const RejectedCallFn on_rejected_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> TokenCheckingServerCredentials(
    const TokenAuth* auth, std::optional<grpc::SslServerCredentialsOptions> tls,
    RejectedCallFn on_rejected) {
  return std::make_shared<TokenCheckingCredentials>(auth, std::move(tls), std::move(on_rejected));
}

}  // namespace wfm::server
