// A mutex, scoped lock and condition variable that clang's thread-safety analysis
// understands (-Wthread-safety; https://clang.llvm.org/docs/ThreadSafetyAnalysis.html): fields
// say which mutex guards them (BOA_GUARDED_BY), functions which mutex they need
// (BOA_REQUIRES) or must not hold (BOA_EXCLUDES), and a clang build checks every access. GCC
// ignores the annotations. `cmake -DBOA_THREAD_SAFETY=ON` with clang turns the warnings into
// errors; ctest runs that check on the files that use them (tests/CMakeLists.txt).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define BOA_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define BOA_THREAD_ANNOTATION(x)
#endif

#define BOA_CAPABILITY(x) BOA_THREAD_ANNOTATION(capability(x))
#define BOA_SCOPED_CAPABILITY BOA_THREAD_ANNOTATION(scoped_lockable)
#define BOA_GUARDED_BY(x) BOA_THREAD_ANNOTATION(guarded_by(x))
#define BOA_PT_GUARDED_BY(x) BOA_THREAD_ANNOTATION(pt_guarded_by(x))
#define BOA_ACQUIRED_BEFORE(...) BOA_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define BOA_REQUIRES(...) BOA_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define BOA_ACQUIRE(...) BOA_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define BOA_RELEASE(...) BOA_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define BOA_EXCLUDES(...) BOA_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define BOA_NO_THREAD_SAFETY_ANALYSIS BOA_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace boa {

class BOA_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() BOA_ACQUIRE() { mu_.lock(); }
  void Unlock() BOA_RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a mutex for its scope.
class BOA_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) BOA_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() BOA_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable waited on with a Mutex held (released while waiting).
class CondVar {
 public:
  void Wait(Mutex* mu) BOA_REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu->mu_, std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // False if the time ran out.
  template <class Rep, class Period>
  bool WaitFor(Mutex* mu, std::chrono::duration<Rep, Period> d) BOA_REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_for(lk, d) == std::cv_status::no_timeout;
    lk.release();
    return woken;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace boa
