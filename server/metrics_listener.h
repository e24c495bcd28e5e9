// The /metrics endpoint: a minimal HTTP/1.1 server for Prometheus scrapes on its own port.
// prometheus-cpp's own listener (CivetWeb) cannot start its threads in boad: it asks for
// 100 KiB stacks, less than the static TLS of the libraries boad links (LibTorch), so
// pthread_create refuses them. Scrapes are few and small, so one thread serves them in turn;
// every connection is bounded (8 KiB of headers, 5 s for the whole exchange, non-blocking
// sockets so a scraper that stops reading cannot hold the thread) and closes after its
// answer. Stopping interrupts whatever it waits for.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/util/status.h"
#include "server/config.h"

namespace boa::server {

class MetricsListener {
 public:
  // Listens on `address` (port 0: a free one) and answers GET /metrics with `scrape()`.
  static Result<std::unique_ptr<MetricsListener>> Start(const ListenAddress& address,
                                                        std::function<std::string()> scrape);
  ~MetricsListener();  // stops accepting and joins the thread
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  int port() const { return port_; }

 private:
  using Clock = std::chrono::steady_clock;
  MetricsListener(int fd, int port, std::function<std::string()> scrape);
  void Serve();
  // Reads one request and answers it; false if the connection failed or ran out of time.
  bool Answer(int connection, Clock::time_point deadline);
  // Whether `fd` became ready for `events` before the deadline and before a stop.
  bool Ready(int fd, short events, Clock::time_point deadline) const;
  bool Send(int connection, const std::string& data, Clock::time_point deadline) const;

  const int fd_;
  const int port_;
  const std::function<std::string()> scrape_;
  int wake_[2] = {-1, -1};  // a byte written here stops Serve
  std::thread thread_;
};

}  // namespace boa::server
