// Plain HTTP/1.1 over a loopback socket, for the metrics endpoint: one
// request, the whole response (the server closes the connection).
#ifndef WFM_TESTS_TESTING_HTTP_H_
#define WFM_TESTS_TESTING_HTTP_H_

#include <map>
#include <optional>
#include <string>
#include <utility>

namespace wfm::testing {

struct HttpResponse {
  int status = -1;  // -1: no connection or no parsable status line
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string raw;  // everything received
};

// Sends `request` (bytes as given) to 127.0.0.1:<port> and reads until the
// server closes the connection.
HttpResponse HttpExchange(int port, const std::string& request);

// GET http://127.0.0.1:<port><path>: the status code and the body (-1 when
// the connection fails).
std::pair<int, std::string> HttpGet(int port, const std::string& path);

// The value of the sample `name` whose labels include `labels` in a
// Prometheus text exposition (the first match), or nullopt.
std::optional<double> MetricValue(const std::string& text, const std::string& name,
                                  const std::map<std::string, std::string>& labels = {});

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_HTTP_H_
