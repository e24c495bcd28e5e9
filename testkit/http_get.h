// A plain HTTP/1.0 GET (no chunked replies to undo), for the tests that read boad's
// /metrics or Prometheus's HTTP API.
#pragma once

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace boa::testing {

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// `host_port`: HOST:PORT (IPv4 or a name); `target`: the path and query.
inline HttpReply HttpGet(const std::string& host_port, const std::string& target) {
  HttpReply reply;
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return reply;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (getaddrinfo(host_port.substr(0, colon).c_str(), host_port.substr(colon + 1).c_str(), &hints, &list) != 0) return reply;
  int fd = socket(list->ai_family, list->ai_socktype, list->ai_protocol);
  const bool connected = fd >= 0 && connect(fd, list->ai_addr, list->ai_addrlen) == 0;
  freeaddrinfo(list);
  if (!connected) {
    if (fd >= 0) close(fd);
    return reply;
  }
  const std::string request = "GET " + target + " HTTP/1.0\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return reply;
  }
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos || raw.size() < 12) return reply;
  reply.status = std::atoi(raw.substr(9, 3).c_str());
  reply.body = raw.substr(end + 4);
  return reply;
}

}  // namespace boa::testing
