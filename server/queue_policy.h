// How a sampling request waits in its model's queue (batcher.h): its
// priority and its queue timeout. Plain C++; proto_convert.h maps the
// request fields onto it. No gRPC here.
#ifndef WFM_SERVER_QUEUE_POLICY_H_
#define WFM_SERVER_QUEUE_POLICY_H_

#include "absl/time/time.h"

namespace wfm::server {

// Priorities of the queue, lowest first: higher ones are taken first.
enum class QueuePriority { kLow = 0, kNormal = 1, kHigh = 2 };

inline constexpr int kQueuePriorities = 3;
inline constexpr QueuePriority kAllQueuePriorities[kQueuePriorities] = {
    QueuePriority::kLow, QueuePriority::kNormal, QueuePriority::kHigh};

// "low", "normal", "high" (the metrics' priority label).
inline const char* QueuePriorityName(QueuePriority priority) {
  switch (priority) {
    case QueuePriority::kLow:
      return "low";
    case QueuePriority::kHigh:
      return "high";
    case QueuePriority::kNormal:
      break;
  }
  return "normal";
}

// The longest queue timeout a request may ask for (one day).
inline constexpr double kMaxQueueTimeoutSeconds = 86400;

struct QueuePolicy {
  QueuePriority priority = QueuePriority::kNormal;
  // Longest wait in the queue before a call takes the request;
  // InfiniteDuration = no limit (the RPC's own deadline still applies).
  absl::Duration timeout = absl::InfiniteDuration();
};

}  // namespace wfm::server

#endif  // WFM_SERVER_QUEUE_POLICY_H_
