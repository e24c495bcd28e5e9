// The /metrics endpoint (see metrics_listener.h).
#include "server/metrics_listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace boa::server {

namespace {

constexpr size_t kMaxRequestBytes = 8192;
// A whole exchange — request, answer, and the reading away of what follows — ends by then:
// a scraper that stops reading cannot hold the one serving thread.
constexpr auto kConnectionDeadline = std::chrono::seconds(5);
// When accept fails for want of descriptors or memory, the listening socket stays readable:
// wait this long before trying again rather than spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

std::string Response(const char* status, const char* type, const std::string& body, bool head) {
  std::string r = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

Result<std::unique_ptr<MetricsListener>> MetricsListener::Start(const ListenAddress& address,
                                                                std::function<std::string()> scrape) {
  std::string host = address.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* list = nullptr;
  const std::string where = "metrics_listen " + address.WithPort(address.port);
  if (int rc = getaddrinfo(host.c_str(), std::to_string(address.port).c_str(), &hints, &list); rc != 0) {
    return Status::InvalidArgument(where + ": cannot resolve the host: " + gai_strerror(rc));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* ai = list; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  if (fd < 0) return Status::Unavailable(where + ": cannot listen: " + error);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<MetricsListener> l(new MetricsListener(fd, port, std::move(scrape)));
  if (::pipe2(l->wake_, O_CLOEXEC) != 0) return Status::Unavailable(where + ": " + std::strerror(errno));
  try {
    l->thread_ = std::thread([p = l.get()] { p->Serve(); });
  } catch (const std::system_error& e) {
    return Status::ResourceExhausted(where + ": cannot start its thread: " + e.what());
  }
  return l;
}

MetricsListener::MetricsListener(int fd, int port, std::function<std::string()> scrape)
    : fd_(fd), port_(port), scrape_(std::move(scrape)) {}

MetricsListener::~MetricsListener() {
  if (thread_.joinable()) {
    const char stop = 1;
    while (::write(wake_[1], &stop, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int fd : {wake_[0], wake_[1], fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

bool MetricsListener::Ready(int fd, short events, Clock::time_point deadline) const {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd fds[2] = {{fd, events, 0}, {wake_[0], POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || fds[1].revents) return false;  // the deadline, or the listener stops (the pipe stays readable)
    return true;  // readable, writable, or an error the next recv/send reports
  }
}

bool MetricsListener::Send(int c, const std::string& data, Clock::time_point deadline) const {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(c, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!Ready(c, POLLOUT, deadline)) return false;
    } else {
      return false;  // the scraper went away
    }
  }
  return true;
}

void MetricsListener::Serve() {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pollfd wake{wake_[0], POLLIN, 0};
        ::poll(&wake, 1, static_cast<int>(kAcceptBackoff.count()));
      }
      continue;  // or the client gave up before it was accepted
    }
    const Clock::time_point deadline = Clock::now() + kConnectionDeadline;
    if (Answer(c, deadline)) {
      // The answer out first, then what the client still sends is read away (briefly):
      // closing with unread input would reset the connection and lose the answer.
      ::shutdown(c, SHUT_WR);
      const Clock::time_point linger = std::min(deadline, Clock::now() + std::chrono::milliseconds(1600));
      char sink[4096];
      while (Ready(c, POLLIN, linger) && ::recv(c, sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
    }
    ::close(c);
  }
}

bool MetricsListener::Answer(int c, Clock::time_point deadline) {
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() >= kMaxRequestBytes) {
      return Send(c, Response("400 Bad Request", "text/plain", "request too large\n", false), deadline);
    }
    char buf[1024];
    const ssize_t n = ::recv(c, buf, std::min(sizeof buf, kMaxRequestBytes - request.size()), MSG_DONTWAIT);
    if (n > 0) {
      request.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!Ready(c, POLLIN, deadline)) {
        return Send(c, Response("400 Bad Request", "text/plain", "request too slow\n", false), deadline);
      }
    } else {
      return false;  // closed or failed before a whole request
    }
  }
  const std::string line = request.substr(0, request.find("\r\n"));
  const size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    return Send(c, Response("400 Bad Request", "text/plain", "bad request line\n", false), deadline);
  }
  const std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string path = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return Send(c, Response("405 Method Not Allowed", "text/plain", "only GET /metrics\n", head), deadline);
  }
  if (path != "/metrics") return Send(c, Response("404 Not Found", "text/plain", "boad serves /metrics only\n", head), deadline);
  return Send(c, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", scrape_(), head), deadline);
}

}  // namespace boa::server
