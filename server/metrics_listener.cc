// The /metrics endpoint (see metrics_listener.h).
#include "server/metrics_listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace boa::server {

namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kReadDeadlineMs = 5000;

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the scraper went away
    done += static_cast<size_t>(n);
  }
}

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

void MetricsListener::Serve() {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;  // the client gave up, or descriptors ran out: the next poll retries
    Answer(c);
    // The answer out first, then what the client still sends is read away (briefly): closing
    // with unread input would reset the connection and lose the answer.
    ::shutdown(c, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16; ++i) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0 || ::recv(c, sink, sizeof sink, 0) <= 0) break;
    }
    ::close(c);
  }
}

void MetricsListener::Answer(int c) {
  std::string request;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadDeadlineMs);
  while (request.find("\r\n\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || request.size() >= kMaxRequestBytes) {
      WriteAll(c, Response("400 Bad Request", "text/plain", "request too large or too slow\n", false));
      return;
    }
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[1024];
    const ssize_t n = ::recv(c, buf, std::min(sizeof buf, kMaxRequestBytes - request.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const std::string line = request.substr(0, request.find("\r\n"));
  const size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    WriteAll(c, Response("400 Bad Request", "text/plain", "bad request line\n", false));
    return;
  }
  const std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string path = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    WriteAll(c, Response("405 Method Not Allowed", "text/plain", "only GET /metrics\n", head));
  } else if (path != "/metrics") {
    WriteAll(c, Response("404 Not Found", "text/plain", "boad serves /metrics only\n", head));
  } else {
    WriteAll(c, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", scrape_(), head));
  }
}

}  // namespace boa::server
