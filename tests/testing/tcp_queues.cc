#include "tests/testing/tcp_queues.h"

#include <fstream>
#include <sstream>
#include <string>

namespace wfm::testing {
namespace {

constexpr int kEstablished = 0x01;

// Counts the established connections of `port` in one /proc/net file;
// false when one of them has bytes queued.
bool QueuesEmptyIn(const char* path, int port, int* connections) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    if (!(fields >> slot >> local >> remote >> state >> queues)) continue;
    const int local_port = std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16);
    const int remote_port = std::stoi(remote.substr(remote.rfind(':') + 1), nullptr, 16);
    if (std::stoi(state, nullptr, 16) != kEstablished ||
        (local_port != port && remote_port != port)) {
      continue;
    }
    ++*connections;
    const size_t colon = queues.find(':');
    const unsigned long tx = std::stoul(queues.substr(0, colon), nullptr, 16);
    const unsigned long rx = std::stoul(queues.substr(colon + 1), nullptr, 16);
    if (tx != 0 || rx != 0) return false;
  }
  return true;
}

}  // namespace

bool TcpQueuesEmpty(int port) {
  int connections = 0;
  return QueuesEmptyIn("/proc/net/tcp", port, &connections) &&
         QueuesEmptyIn("/proc/net/tcp6", port, &connections) && connections > 0;
}

}  // namespace wfm::testing
