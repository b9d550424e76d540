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

}  // namespace wfm::model

#endif  // WFM_MODEL_COMMON_PARALLEL_H_
