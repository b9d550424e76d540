#include "model/common/parallel.h"

#include <algorithm>
#include <atomic>

#include <ATen/Parallel.h>

namespace wfm::model {

void ParallelForEachItem(int64_t items, const std::function<void(int64_t)>& fn) {
  if (items <= 0) return;
  const int64_t threads = std::min<int64_t>(items, at::get_num_threads());
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t i = 0; i < items; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1); i < items; i = next.fetch_add(1)) fn(i);
  });
}

}  // namespace wfm::model
