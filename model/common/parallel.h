// Parallel loops over independent items, the one way wfm's own code splits
// work among threads (see model/nn/cpu_runtime.h for the thread policy).
//
// Each thread takes the next unclaimed item until none is left, so a thread
// that another process (or an SMT sibling) slows down takes fewer items
// instead of holding the others back at the end, as a static split of the
// range into one chunk per thread would. The threads are ATen's intra-op
// threads (at most at::get_num_threads()), waiting passively between loops
// under the thread policy.
#ifndef WFM_MODEL_COMMON_PARALLEL_H_
#define WFM_MODEL_COMMON_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace wfm::model {

// Runs fn(i) for every i in [0, items). Runs everything on the calling
// thread for one item, one thread, or inside another parallel region. Items
// must be independent (an item may use thread_local scratch). An exception
// thrown by fn is rethrown on the calling thread once the loop ends.
void ParallelForEachItem(int64_t items, const std::function<void(int64_t)>& fn);

// While it lives, the parallel loops this thread starts (ATen's operators
// and ParallelForEachItem) run on this thread alone; other threads keep
// their own setting. For phases made of many small loops: with passive
// waiting, each loop that wakes a second thread costs ~50–100 µs, more than
// a loop over a few thousand values saves (a Gaussian training step at batch
// 16 starts ~60, and took 2× as long at 2 threads as at 1). It sets
// libgomp's per-thread thread count (omp_set_num_threads, found at run time
// in the loaded libgomp, ATen's thread pool); without libgomp it does
// nothing. Not copyable; nests.
class CallingThreadOnly {
 public:
  CallingThreadOnly();
  ~CallingThreadOnly();
  CallingThreadOnly(const CallingThreadOnly&) = delete;
  CallingThreadOnly& operator=(const CallingThreadOnly&) = delete;

 private:
  int previous_ = 0;  // 0: nothing to restore
};

}  // namespace wfm::model

#endif  // WFM_MODEL_COMMON_PARALLEL_H_
