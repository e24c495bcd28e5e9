// Times out stalled streams: a call whose stream waits longer than the idle limit in one Read
// (a client that opened a stream and sends nothing) or one Write (a client that stopped
// reading) is cancelled, so it cannot hold a server thread, an admission slot or lanes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace boa::server {

class StreamWatch;

// One thread for all calls; it looks at the calls in a Read or Write a few times per limit.
class StreamWatchdog {
 public:
  // `idle_seconds` <= 0: never times out.
  explicit StreamWatchdog(double idle_seconds);
  ~StreamWatchdog();
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;
  double idle_seconds() const { return idle_seconds_; }

 private:
  friend class StreamWatch;
  void Run();
  const double idle_seconds_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<StreamWatch*> watches_;  // Guarded by mu_
  bool stop_ = false;               // Guarded by mu_
  std::thread thread_;
};

// A call's stream under the watchdog, for the handler's lifetime. Each Read and Write of the
// stream goes through Read or Write (one thread may read while another writes).
class StreamWatch {
 public:
  // `dog` may be null (no timeouts).
  StreamWatch(StreamWatchdog* dog, grpc::ServerContext* ctx);
  ~StreamWatch();
  StreamWatch(const StreamWatch&) = delete;
  StreamWatch& operator=(const StreamWatch&) = delete;
  // Runs one blocking stream Read (Write) and returns what it returns, under the idle limit.
  template <class F>
  bool Read(F&& op) {
    return Io(0, op);
  }
  template <class F>
  bool Write(F&& op) {
    return Io(1, op);
  }
  // Whether the watchdog cancelled the call (then every Io fails).
  bool timed_out() const;

 private:
  friend class StreamWatchdog;
  template <class F>
  bool Io(int side, F& op) {
    Begin(side);
    const bool ok = op();
    End(side);
    return ok;
  }
  void Begin(int side);
  void End(int side);
  StreamWatchdog* const dog_;
  grpc::ServerContext* const ctx_;
  // Guarded by dog_->mu_; [0] the reading side, [1] the writing side:
  bool in_io_[2] = {false, false};
  std::chrono::steady_clock::time_point since_[2];
  bool timed_out_ = false;
};

}  // namespace boa::server
