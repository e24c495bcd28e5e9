// Progress display (see progress.h).
#include "client/progress.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

namespace boa::client {

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

Progress::Progress(bool enabled, std::string label, int64_t total_bytes, bool by_output)
    : enabled_(enabled), label_(std::move(label)), total_(total_bytes), by_output_(by_output) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::Update(uint64_t in_bytes, uint64_t out_bytes) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  const uint64_t done = by_output_ ? out_bytes : in_bytes;
  double rate = secs > 0 ? done / secs : 0;
  char line[256];
  if (total_ > 0) {
    double frac = static_cast<double>(done) / total_;
    double eta = rate > 0 ? (total_ - static_cast<double>(done)) / rate : 0;
    std::snprintf(line, sizeof line, "%s: %5.1f%%  %s -> %s  %s/s  ETA %d:%02d", label_.c_str(),
                  100 * frac, HumanBytes(in_bytes).c_str(), HumanBytes(out_bytes).c_str(),
                  HumanBytes(rate).c_str(), static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  } else {
    std::snprintf(line, sizeof line, "%s: %s -> %s  %s/s", label_.c_str(), HumanBytes(in_bytes).c_str(),
                  HumanBytes(out_bytes).c_str(), HumanBytes(rate).c_str());
  }
  std::fprintf(stderr, "\r\033[K%s", line);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Clear() {
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

std::function<void(const std::string&, bool)> ProgressLines(bool quiet, bool no_progress) {
  const bool tty = ::isatty(2) == 1 && !no_progress && !quiet;
  const bool lines = !tty && !quiet && !no_progress;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now() - std::chrono::hours(1));
  return [tty, lines, last](const std::string& line, bool milestone) {
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), milestone ? "\n" : "");
    } else if (lines) {
      auto now = std::chrono::steady_clock::now();
      if (!milestone && now - *last < std::chrono::seconds(10)) return;
      *last = now;
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  };
}

}  // namespace boa::client
