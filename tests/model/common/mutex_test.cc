// model/common/mutex: the annotated mutex and condition variable.
#include "model/common/mutex.h"

#include <thread>

#include <gtest/gtest.h>

#include "absl/time/clock.h"

namespace wfm {
namespace {

class Flag {
 public:
  void Set() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    set_ = true;
    cv_.SignalAll();
  }
  // Waits up to `timeout` for Set(); whether it came.
  bool WaitFor(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (!set_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return set_;
    }
    return true;
  }
  // One wait of at most `timeout`: true when it timed out.
  bool WaitOnce(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitWithTimeout(&mu_, timeout);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool set_ ABSL_GUARDED_BY(mu_) = false;
};

TEST(MutexTest, AWaitEndsWithTheSignalOrTimesOut) {
  Flag unset;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(unset.WaitFor(absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_TRUE(unset.WaitOnce(absl::Milliseconds(1)));

  Flag flag;
  std::thread setter([&flag] { flag.Set(); });
  EXPECT_TRUE(flag.WaitFor(absl::InfiniteDuration()));
  setter.join();
  EXPECT_TRUE(flag.WaitFor(absl::ZeroDuration()));  // already set: no wait
}

TEST(MutexTest, LocksExcludeEachOther) {
  Mutex mu;
  int64_t counter = 0;  // guarded by mu
  auto add = [&] {
    for (int i = 0; i < 100000; ++i) {
      MutexLock lock(&mu);
      ++counter;
    }
  };
  std::thread a(add), b(add);
  a.join();
  b.join();
  MutexLock lock(&mu);
  EXPECT_EQ(counter, 200000);
}

}  // namespace
}  // namespace wfm
