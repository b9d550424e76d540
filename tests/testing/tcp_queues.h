// Whether the bytes sent over loopback TCP connections of a port have been
// read by the receiving processes: the kernel's per-socket send and receive
// queues (/proc/net/tcp, tcp6). For tests that must know a server process has
// taken what a client sent (not only its socket buffers), where the protocol
// acknowledges nothing (a client stream before its end).
#ifndef WFM_TESTS_TESTING_TCP_QUEUES_H_
#define WFM_TESTS_TESTING_TCP_QUEUES_H_

namespace wfm::testing {

// true when at least one established connection has `port` at one end and
// every such connection has empty send and receive queues.
bool TcpQueuesEmpty(int port);

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_TCP_QUEUES_H_
