// A minimal HTTP/1.1 endpoint for the Prometheus scrape: GET (or HEAD) of one
// path answers with a body produced on demand; anything else gets 404 / 405.
// One thread serves the connections one at a time with short socket timeouts
// (scrapes are rare and small); every response closes its connection.
//
// Written for wfm-server because civetweb (prometheus-cpp's exposer) starts
// its threads with a fixed small stack, which glibc refuses (EINVAL) in a
// process whose static TLS is as large as LibTorch's.
#ifndef WFM_SERVER_HTTP_ENDPOINT_H_
#define WFM_SERVER_HTTP_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace wfm::server {

class HttpEndpoint {
 public:
  // Binds `listen` ("host:port", "[v6]:port"; port 0 picks a free one) and
  // starts serving `path` with the body `body()` and `content_type`.
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                             std::string path,
                                                             std::string content_type,
                                                             std::function<std::string()> body);
  // Stops the thread and closes the socket.
  ~HttpEndpoint();

  int port() const { return port_; }

 private:
  HttpEndpoint() = default;
  void Serve();
  void HandleConnection(int fd);

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: written to stop the thread
  int port_ = 0;
  std::string path_;
  std::string content_type_;
  std::function<std::string()> body_;
  std::thread thread_;
};

}  // namespace wfm::server

#endif  // WFM_SERVER_HTTP_ENDPOINT_H_
