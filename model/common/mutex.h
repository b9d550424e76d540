// A mutex and condition variable whose locking clang's -Wthread-safety
// checks (ABSL_GUARDED_BY, ABSL_LOCKS_EXCLUDED, ... on the data and
// functions they guard) and ThreadSanitizer sees, shared by every layer of
// wfm.
//
// Why not absl::Mutex: it carries the annotations, but Debian's Abseil is
// built without ThreadSanitizer, so its synchronisation (spin locks and
// futexes inside libabsl_synchronization) is invisible to the sanitizer
// build, which would then report every access it guards as a race. The
// pthread mutex under std::mutex is what ThreadSanitizer intercepts, and
// libstdc++'s std::mutex has no annotations; this wraps it with them. The
// interface follows absl::Mutex / absl::CondVar.
#ifndef WFM_MODEL_COMMON_MUTEX_H_
#define WFM_MODEL_COMMON_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace wfm {

class CondVar;

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its lifetime.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits release `mu` (held by the caller) while blocked and hold it again
// when they return; wake-ups may be spurious, so callers wait in a loop on
// the state they need.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    OnHeldLock(mu, [this](std::unique_lock<std::mutex>& lock) {
      cv_.wait(lock);
      return std::cv_status::no_timeout;
    });
  }
  // true when `timeout` (measured on the steady clock) passed.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (timeout == absl::InfiniteDuration()) {
      Wait(mu);
      return false;
    }
    return OnHeldLock(mu, [&](std::unique_lock<std::mutex>& lock) {
      return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout));
    });
  }
  // true when `deadline` passed.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture()) {
      Wait(mu);
      return false;
    }
    return OnHeldLock(mu, [&](std::unique_lock<std::mutex>& lock) {
      return cv_.wait_until(lock, absl::ToChronoTime(deadline));
    });
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  // Runs `wait` on a unique_lock that adopts the caller's hold of `mu` and
  // hands it back; true when it timed out.
  template <typename WaitFn>
  bool OnHeldLock(Mutex* mu, const WaitFn& wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out = wait(lock) == std::cv_status::timeout;
    lock.release();  // still held, by the caller
    return timed_out;
  }

  std::condition_variable cv_;
};

}  // namespace wfm

#endif  // WFM_MODEL_COMMON_MUTEX_H_
