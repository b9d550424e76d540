// server/http_endpoint: the metrics endpoint's HTTP/1.1 answers over a real
// loopback socket (GET, HEAD, unknown paths and methods, malformed request
// lines, a body produced per request), its port choice, and bind failures.
#include "server/http_endpoint.h"

#include <atomic>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/http.h"
#include "tests/testing/status.h"

namespace wfm::server {
namespace {

using ::testing::HasSubstr;
using ::wfm::testing::HttpExchange;
using ::wfm::testing::HttpGet;
using ::wfm::testing::HttpResponse;

class HttpEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint = HttpEndpoint::Start(
        "127.0.0.1:0", "/metrics", "text/plain; version=0.0.4", [this] {
          return "calls " + std::to_string(++calls_) + "\n";
        });
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
  }

  HttpResponse Send(const std::string& request) {
    return HttpExchange(endpoint_->port(), request);
  }

  std::atomic<int> calls_{0};
  std::unique_ptr<HttpEndpoint> endpoint_;
};

TEST_F(HttpEndpointTest, GetAnswersWithTheBodyMadeForThatRequest) {
  EXPECT_GT(endpoint_->port(), 0);
  const HttpResponse r = Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "calls 1\n");
  EXPECT_EQ(r.headers.at("content-type"), "text/plain; version=0.0.4");
  EXPECT_EQ(r.headers.at("content-length"), "8");
  EXPECT_EQ(r.headers.at("connection"), "close");
  EXPECT_THAT(r.raw, ::testing::StartsWith("HTTP/1.1 200 OK\r\n"));
  // Each request produces the body anew; a query string is ignored.
  EXPECT_EQ(HttpGet(endpoint_->port(), "/metrics?x=1"), std::make_pair(200, std::string("calls 2\n")));
  EXPECT_EQ(calls_.load(), 2);
}

TEST_F(HttpEndpointTest, HeadSendsTheHeadersWithoutTheBody) {
  const HttpResponse r = Send("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.headers.at("content-length"), "8");  // of the body a GET gets
}

TEST_F(HttpEndpointTest, OtherPathsAreNotFound) {
  const HttpResponse r = Send("GET /other HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "not found\n");
  EXPECT_EQ(Send("HEAD /metricsx HTTP/1.1\r\n\r\n").body, "");  // HEAD: no body
  EXPECT_EQ(Send("HEAD /metricsx HTTP/1.1\r\n\r\n").status, 404);
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(HttpEndpointTest, OtherMethodsAreNotAllowed) {
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    const HttpResponse r = Send(std::string(method) + " /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.body, "use GET\n");
  }
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(HttpEndpointTest, MalformedRequestLinesAreBadRequests) {
  for (const char* request : {"GET /metrics\r\n\r\n", "GET /metrics FTP/1.0\r\n\r\n",
                              "GET  /metrics HTTP/1.1\r\n\r\n", "\r\n\r\n"}) {
    const HttpResponse r = Send(request);
    EXPECT_EQ(r.status, 400) << request;
    EXPECT_EQ(r.body, "bad request\n");
  }
  // A request whose head never ends is answered once the limit (16 KiB) is
  // read, as a bad request when its first line is not one.
  EXPECT_EQ(Send(std::string(16 << 10, 'x')).status, 400);
  // The endpoint still serves.
  EXPECT_EQ(HttpGet(endpoint_->port(), "/metrics").first, 200);
}

TEST_F(HttpEndpointTest, ServesConnectionsOneAfterAnother) {
  for (int i = 1; i <= 20; ++i) {
    EXPECT_EQ(HttpGet(endpoint_->port(), "/metrics").second, "calls " + std::to_string(i) + "\n");
  }
}

TEST(HttpEndpointStartTest, RefusesBadAddressesAndBusyPorts) {
  const absl::Status no_port =
      HttpEndpoint::Start("127.0.0.1", "/m", "text/plain", [] { return ""; }).status();
  EXPECT_TRUE(absl::IsInvalidArgument(no_port)) << no_port;
  EXPECT_EQ(no_port.message(), "expected host:port, got '127.0.0.1'");

  const absl::Status bad_port =
      HttpEndpoint::Start("127.0.0.1:http", "/m", "text/plain", [] { return ""; }).status();
  EXPECT_TRUE(absl::IsUnavailable(bad_port)) << bad_port;
  EXPECT_THAT(std::string(bad_port.message()), HasSubstr("cannot resolve '127.0.0.1:http'"));

  WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpEndpoint> first,
                           HttpEndpoint::Start("127.0.0.1:0", "/m", "text/plain",
                                               [] { return "first"; }));
  const std::string taken = "127.0.0.1:" + std::to_string(first->port());
  const absl::Status busy =
      HttpEndpoint::Start(taken, "/m", "text/plain", [] { return ""; }).status();
  EXPECT_TRUE(absl::IsUnavailable(busy)) << busy;
  EXPECT_THAT(std::string(busy.message()),
              HasSubstr("cannot listen on " + taken + ": Address already in use"));
  EXPECT_EQ(HttpGet(first->port(), "/m").second, "first");
}

TEST(HttpEndpointStartTest, StopsWhenDestroyed) {
  int port = 0;
  {
    WFM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpEndpoint> endpoint,
                             HttpEndpoint::Start("127.0.0.1:0", "/m", "text/plain",
                                                 [] { return "up"; }));
    port = endpoint->port();
    EXPECT_EQ(HttpGet(port, "/m").first, 200);
  }
  // The socket is closed: connections are refused.
  EXPECT_EQ(HttpGet(port, "/m").first, -1);
}

}  // namespace
}  // namespace wfm::server
