// A loopback TCP port that nothing listens on right now (bound to port 0,
// read back, closed), for tests that start servers or rendezvous on a port
// they must name up front.
#ifndef WFM_TESTS_TESTING_FREE_PORT_H_
#define WFM_TESTS_TESTING_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wfm::testing {

inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_FREE_PORT_H_
