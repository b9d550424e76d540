// A channel that is connected before a test's first call on it. gRPC 1.51
// (Debian 12) can fail a fresh connection attempt spuriously (connect()'s
// errno is overwritten before it is read; fixed upstream by
// grpc/grpc#35064), and a fail-fast call on a channel whose only attempt
// failed fails at once. Waiting lets the channel try again after its
// backoff. A channel still not connected after 30 s is returned as it is:
// the test's call then reports why.
#ifndef WFM_TESTS_TESTING_CONNECTED_H_
#define WFM_TESTS_TESTING_CONNECTED_H_

#include <chrono>
#include <memory>
#include <utility>

#include <grpcpp/channel.h>

namespace wfm::testing {

inline std::shared_ptr<grpc::Channel> Connected(std::shared_ptr<grpc::Channel> channel) {
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return channel;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_CONNECTED_H_
