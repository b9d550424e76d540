#include "model/common/parallel.h"

#include <dlfcn.h>

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

namespace {

// libgomp's per-thread thread count (the nthreads ICV), as loaded by ATen.
struct OpenMpThreads {
  using Set = void (*)(int);
  using Get = int (*)();
  Set set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  Get get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  bool usable() const { return set != nullptr && get != nullptr; }
};

const OpenMpThreads& OpenMp() {
  static const OpenMpThreads omp;
  return omp;
}

}  // namespace

CallingThreadOnly::CallingThreadOnly() {
  const OpenMpThreads& omp = OpenMp();
  if (!omp.usable()) return;
  at::get_num_threads();  // ATen sets this thread's count on first use: let it do so first
  previous_ = omp.get();
  omp.set(1);
}

CallingThreadOnly::~CallingThreadOnly() {
  if (previous_ > 0) OpenMp().set(previous_);
}

}  // namespace wfm::model
