// Server credentials that check the bearer token (auth.h) of every call at
// the metadata stage, before any request message is read or parsed: a call
// without a valid token ends UNAUTHENTICATED when its headers arrive, so
// raw bytes or a 64 MiB message from a client without the token never reach
// the protobuf parser or a buffer of the size of the message. gRPC health
// checking stays open (TokenAuth::RequiresToken).
//
// How (gRPC 1.51): gRPC core runs a server credentials' auth metadata
// processor in its server-auth filter on each call's initial metadata (the
// headers, with ":path"); a failure ends the call before the server matches
// it to a method, so no message is read for it. grpc::SslServerCredentials
// take a processor (SetAuthMetadataProcessor), but
// grpc::InsecureServerCredentials() aborts when given one
// (insecure_server_credentials.cc: "Should not be called"), although the
// core's own insecure credentials (grpc_insecure_server_credentials_create)
// carry and run one like any other. So these credentials build the core
// credentials themselves, plaintext or TLS, attach the processor through
// the C API and add the listening port with them: the same check for both.
// (A server interceptor would not do: gRPC reads and parses the request
// message before interceptors and handlers run.)
#ifndef WFM_SERVER_AUTH_CREDENTIALS_H_
#define WFM_SERVER_AUTH_CREDENTIALS_H_

#include <functional>
#include <memory>
#include <optional>

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/string_view.h"
#include "server/auth.h"

namespace wfm::server {

// Called with the method path ("/wfm.v1.WfmService/ListDatasets") of every
// call refused for its token, on a gRPC thread; must not block.
using RejectedCallFn = std::function<void(absl::string_view path)>;

// Plaintext credentials (no `tls`) or TLS ones made from `tls` as
// grpc::SslServerCredentials makes them, with the token check of `auth`
// (which must outlive the server). `on_rejected` may be null.
std::shared_ptr<grpc::ServerCredentials> TokenCheckingServerCredentials(
    const TokenAuth* auth, std::optional<grpc::SslServerCredentialsOptions> tls,
    RejectedCallFn on_rejected);

}  // namespace wfm::server

#endif  // WFM_SERVER_AUTH_CREDENTIALS_H_
