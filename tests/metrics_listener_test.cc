// boad's /metrics listener: one serving thread that no scraper can hold — a client that
// sends a request and never reads the answer is cut off at the connection deadline, the next
// scrape is answered, and stopping the listener does not wait for a stalled client.
#include "server/metrics_listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "testkit/http_get.h"

namespace boa::server {
namespace {

using Clock = std::chrono::steady_clock;

// Connects to 127.0.0.1:port with a small receive buffer; -1 on failure.
int ConnectSmall(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(MetricsListener, AScraperThatStopsReadingCannotHoldTheListener) {
  const std::string big(64 << 20, 'x');  // far more than the socket buffers hold
  Result<std::unique_ptr<MetricsListener>> l =
      MetricsListener::Start(ParseListenAddress("127.0.0.1:0").value(), [&] { return big; });
  ASSERT_TRUE(l.ok()) << l.status().message();
  const int port = (*l)->port();
  const int stalled = ConnectSmall(port);
  ASSERT_GE(stalled, 0);
  const std::string get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(stalled, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  // Never read: the answer stalls in the buffers until the deadline closes the connection.
  const auto t0 = Clock::now();
  testing::HttpReply next = testing::HttpGet("127.0.0.1:" + std::to_string(port), "/metrics");
  EXPECT_EQ(next.status, 200) << "the next scrape is answered once the stalled one is cut off";
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30));
  // A second stalled scraper, and the listener stops at once rather than at its deadline.
  const int again = ConnectSmall(port);
  ASSERT_GE(again, 0);
  ASSERT_EQ(::send(again, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  ::usleep(200 * 1000);
  const auto t1 = Clock::now();
  l->reset();
  EXPECT_LT(Clock::now() - t1, std::chrono::seconds(2)) << "stopping waited for a stalled client";
  ::close(stalled);
  ::close(again);
}

}  // namespace
}  // namespace boa::server
