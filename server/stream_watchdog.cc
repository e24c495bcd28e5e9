// The stream watchdog (see stream_watchdog.h).
#include "server/stream_watchdog.h"

#include <algorithm>

namespace boa::server {

using Clock = std::chrono::steady_clock;

StreamWatchdog::StreamWatchdog(double idle_seconds) : idle_seconds_(idle_seconds) {
  if (idle_seconds_ > 0) thread_ = std::thread([this] { Run(); });
}

StreamWatchdog::~StreamWatchdog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StreamWatchdog::Run() {
  const auto limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(idle_seconds_));
  // A stalled stream is cancelled between 1 and 1.25 limits (at least every 50 ms, at most every second).
  const auto period = std::clamp<Clock::duration>(limit / 4, std::chrono::milliseconds(50), std::chrono::seconds(1));
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, period);
    const auto now = Clock::now();
    for (StreamWatch* w : watches_) {
      const bool stalled = (w->in_io_[0] && now - w->since_[0] > limit) || (w->in_io_[1] && now - w->since_[1] > limit);
      if (stalled && !w->timed_out_) {
        w->timed_out_ = true;
        w->ctx_->TryCancel();  // any thread may; the blocked Read or Write returns false
      }
    }
  }
}

StreamWatch::StreamWatch(StreamWatchdog* dog, grpc::ServerContext* ctx)
    : dog_(dog != nullptr && dog->idle_seconds() > 0 ? dog : nullptr), ctx_(ctx) {
  if (dog_ == nullptr) return;
  std::lock_guard<std::mutex> l(dog_->mu_);
  dog_->watches_.insert(this);
}

StreamWatch::~StreamWatch() {
  if (dog_ == nullptr) return;
  std::lock_guard<std::mutex> l(dog_->mu_);
  dog_->watches_.erase(this);
}

void StreamWatch::Begin(int side) {
  if (dog_ == nullptr) return;
  std::lock_guard<std::mutex> l(dog_->mu_);
  in_io_[side] = true;
  since_[side] = Clock::now();
}

void StreamWatch::End(int side) {
  if (dog_ == nullptr) return;
  std::lock_guard<std::mutex> l(dog_->mu_);
  in_io_[side] = false;
}

bool StreamWatch::timed_out() const {
  if (dog_ == nullptr) return false;
  std::lock_guard<std::mutex> l(dog_->mu_);
  return timed_out_;
}

}  // namespace boa::server
