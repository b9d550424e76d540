// TLS, mutual TLS and bearer tokens: the right client gets in, the wrong
// ones do not; health checking needs no token.
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

// A CA, a server certificate for 127.0.0.1 / localhost and a client
// certificate signed by it, and a second CA with its own client, made with
// the openssl command line (EC P-256 keys).
class Certificates {
 public:
  Certificates() {
    const std::string d = dir_.path();
    const std::string script =
        "set -e; cd '" + d + "'; "
        "key() { openssl ecparam -name prime256v1 -genkey -noout -out \"$1\"; }; "
        "for ca in ca other; do key $ca.key; "
        "openssl req -x509 -new -key $ca.key -out $ca.pem -days 2 -subj /CN=wfm-test-$ca; done; "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
        "sign() { key $1.key; openssl req -new -key $1.key -out $1.csr -subj /CN=$1; "
        "openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem "
        "-days 2 $3; }; "
        "sign server ca '-extfile san.ext'; sign client ca ''; sign stranger other ''";
    ok_ = std::system(("bash -c \"" + Escape(script) + "\" > /dev/null 2>&1").c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string pem(const std::string& name) const { return ReadFile(path(name)); }
  // Server options serving TLS with the server certificate; with
  // `client_ca`, requiring client certificates signed by that CA.
  std::function<void(server::ServerOptions&)> ServerTls(const std::string& client_ca = "") const {
    return [this, client_ca](server::ServerOptions& o) {
      o.tls_cert = path("server.pem");
      o.tls_key = path("server.key");
      if (!client_ca.empty()) o.tls_client_ca = path(client_ca);
    };
  }

 private:
  static std::string Escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\' || c == '$') out.push_back('\\');
      out.push_back(c);
    }
    return out;
  }
  TempDir dir_;
  bool ok_ = false;
};

grpc::Status ListDatasets(const std::shared_ptr<grpc::Channel>& channel,
                          const std::string& token = "") {
  auto stub = pb::WfmService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  pb::ListDatasetsResponse reply;
  return stub->ListDatasets(&context, {}, &reply);
}

TEST(SecurityTest, TlsAcceptsClientsThatTrustTheServer) {
  Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  TestServer server(certs.ServerTls());
  ASSERT_TRUE(server.Start().ok());
  grpc::SslCredentialsOptions trusting;
  trusting.pem_root_certs = certs.pem("ca.pem");
  EXPECT_TRUE(ListDatasets(Connected(server.Channel(grpc::SslCredentials(trusting)))).ok());
  grpc::SslCredentialsOptions wrong_ca;
  wrong_ca.pem_root_certs = certs.pem("other.pem");
  EXPECT_EQ(ListDatasets(server.Channel(grpc::SslCredentials(wrong_ca))).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListDatasets(server.Channel(grpc::InsecureChannelCredentials())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(SecurityTest, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  TestServer server(certs.ServerTls(/*client_ca=*/"ca.pem"));
  ASSERT_TRUE(server.Start().ok());
  auto client = [&](const std::string& name) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = certs.pem("ca.pem");
    if (!name.empty()) {
      o.pem_private_key = certs.pem(name + ".key");
      o.pem_cert_chain = certs.pem(name + ".pem");
    }
    return server.Channel(grpc::SslCredentials(o));
  };
  EXPECT_TRUE(ListDatasets(Connected(client("client"))).ok());
  EXPECT_FALSE(ListDatasets(client("")).ok());
  EXPECT_FALSE(ListDatasets(client("stranger")).ok());
}

TEST(SecurityTest, BearerTokensGuardEveryRpcButHealth) {
  TempDir dir;
  const std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "correct-horse-battery\n";
  TestServer server([&](server::ServerOptions& o) { o.auth_token_file = token_file; });
  ASSERT_TRUE(server.Start().ok());
  auto channel = Connected(server.Channel());
  EXPECT_TRUE(ListDatasets(channel, "correct-horse-battery").ok());
  const grpc::Status missing = ListDatasets(channel);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status wrong = ListDatasets(channel, "correct-horse");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message().find("correct-horse"), std::string::npos);
  // Streaming calls are guarded as well.
  auto stub = pb::WfmService::NewStub(channel);
  EXPECT_EQ(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(2, 1), 2)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SampleNiches(*stub, NicheRequest("m", 1, 5, 1)).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(2, 1), 2), nullptr,
                     [](grpc::ClientContext& c) {
                       c.AddMetadata("authorization", "Bearer correct-horse-battery");
                     })
                  .ok());
  // Health checking is open.
  EXPECT_EQ(HealthStatus(channel, "wfm.v1.WfmService"), 1);
  // Rejections are counted like every other outcome.
  EXPECT_EQ(MetricValue(server.Metrics(), "wfm_rpc_requests_total",
                        {{"method", "ListDatasets"}, {"code", "UNAUTHENTICATED"}}),
            2);
}

TEST(SecurityTest, StartFailsOnUnreadableCredentials) {
  TestServer missing_token([](server::ServerOptions& o) { o.auth_token_file = "/nonexistent/token"; });
  EXPECT_TRUE(absl::IsNotFound(missing_token.Start()));
  TestServer half_tls([](server::ServerOptions& o) { o.tls_cert = "/nonexistent/cert.pem"; });
  EXPECT_TRUE(absl::IsInvalidArgument(half_tls.Start()));
}

}  // namespace
}  // namespace wfm::testing
