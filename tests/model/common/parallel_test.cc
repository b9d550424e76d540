#include "model/common/parallel.h"

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace wfm::model {
namespace {

// Restores ATen's thread count when a test ends.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(at::get_num_threads()) { at::set_num_threads(threads); }
  ~ThreadCount() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(ParallelForEachItemTest, RunsEveryItemOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadCount guard(threads);
    for (int64_t items : {0, 1, 3, 17, 100}) {
      std::vector<std::atomic<int>> runs(items);
      ParallelForEachItem(items, [&](int64_t i) { runs[i].fetch_add(1); });
      for (int64_t i = 0; i < items; ++i) {
        EXPECT_EQ(runs[i].load(), 1) << "threads " << threads << " item " << i << " of " << items;
      }
    }
  }
}

TEST(ParallelForEachItemTest, OneThreadRunsOnTheCallingThreadInOrder) {
  ThreadCount guard(1);
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<int64_t> order;
  ParallelForEachItem(5, [&](int64_t i) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(i);
  });
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(ParallelForEachItemTest, NestedLoopsRunOnTheirItemsThread) {
  ThreadCount guard(2);
  std::atomic<int> total{0};
  std::atomic<bool> same_thread{true};
  ParallelForEachItem(4, [&](int64_t) {
    const std::thread::id outer = std::this_thread::get_id();
    ParallelForEachItem(8, [&](int64_t) {
      if (std::this_thread::get_id() != outer) same_thread = false;
      total.fetch_add(1);
    });
  });
  EXPECT_EQ(total.load(), 32);
  EXPECT_TRUE(same_thread.load());
}

TEST(ParallelForEachItemTest, AnItemsExceptionReachesTheCaller) {
  for (int threads : {1, 2}) {
    ThreadCount guard(threads);
    std::atomic<int> ran{0};
    EXPECT_THROW(ParallelForEachItem(10,
                                     [&](int64_t i) {
                                       ran.fetch_add(1);
                                       if (i == 3) throw std::runtime_error("item 3");
                                     }),
                 std::runtime_error)
        << "threads " << threads;
    EXPECT_GE(ran.load(), 4);
  }
}

// The threads that ran at::parallel_for over [0, 2) with grain 1: with two
// threads ATen's OpenMP loop gives each one of the two values.
std::set<std::thread::id> ThreadsOfATwoValueLoop() {
  std::vector<std::thread::id> ids(2);
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) ids[i] = std::this_thread::get_id();
  });
  return {ids.begin(), ids.end()};
}

TEST(CallingThreadOnlyTest, LoopsRunOnTheCallingThreadWhileItLives) {
  ThreadCount guard(2);
  ASSERT_EQ(ThreadsOfATwoValueLoop().size(), 2u);
  {
    const CallingThreadOnly only;
    EXPECT_EQ(at::get_num_threads(), 1);
    const std::thread::id caller = std::this_thread::get_id();
    EXPECT_EQ(ThreadsOfATwoValueLoop(), std::set<std::thread::id>{caller});
    std::vector<int64_t> order;
    ParallelForEachItem(6, [&](int64_t i) {
      EXPECT_EQ(std::this_thread::get_id(), caller);
      order.push_back(i);
    });
    EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  }
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(ThreadsOfATwoValueLoop().size(), 2u);
}

TEST(CallingThreadOnlyTest, NestsAndLeavesOtherThreadsAlone) {
  ThreadCount guard(2);
  {
    const CallingThreadOnly outer;
    {
      const CallingThreadOnly inner;
      EXPECT_EQ(at::get_num_threads(), 1);
    }
    EXPECT_EQ(at::get_num_threads(), 1);
    // A thread started meanwhile has ATen's count, and uses both threads.
    int other_count = 0;
    size_t other_threads = 0;
    std::thread other([&] {
      other_count = at::get_num_threads();
      other_threads = ThreadsOfATwoValueLoop().size();
    });
    other.join();
    EXPECT_EQ(other_count, 2);
    EXPECT_EQ(other_threads, 2u);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
}

}  // namespace
}  // namespace wfm::model
