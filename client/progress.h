// A one-line progress display on stderr (bytes, percentage, MB/s, ETA), redrawn at most
// ten times a second; silent unless enabled (the CLI enables it on a terminal).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace boa::client {

class Progress {
 public:
  // `total_bytes` (-1: unknown) counts input bytes, or output bytes with `by_output` (a
  // decompression, whose compressed input is read far ahead of what is decoded).
  Progress(bool enabled, std::string label, int64_t total_bytes, bool by_output = false);
  ~Progress() { Clear(); }
  void Update(uint64_t in_bytes, uint64_t out_bytes);
  void Clear();

 private:
  bool enabled_;
  std::string label_;
  int64_t total_;
  bool by_output_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string HumanBytes(double bytes);

// Progress of a long job given as lines (training): one line redrawn in place on a terminal,
// otherwise a line every 10 s and every milestone; nothing with `quiet` or `no_progress`.
std::function<void(const std::string& line, bool milestone)> ProgressLines(bool quiet, bool no_progress);

}  // namespace boa::client
