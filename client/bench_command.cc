// Baseline comparison table (see bench_command.h). External compressors run as the system's
// command-line tools where installed; a missing one is listed as such.
#include "client/bench_command.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/codec/codec.h"
#include "common/util/io.h"

namespace boa::client {

namespace {

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool HaveTool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

struct Row {
  std::string method;
  uint64_t bytes = 0;
  double seconds = 0;
  uint64_t extra = 0;  // model bytes counted in the effective ratio
  std::string note;
};

}  // namespace

int RunBench(const BenchOptions& o) {
  struct stat st;
  if (::stat(o.file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fprintf(stderr, "boa-client: %s: not a regular file\n", o.file.c_str());
    return 1;
  }
  const uint64_t original = static_cast<uint64_t>(st.st_size);
  std::vector<Row> rows;
  struct Tool {
    const char* name;
    const char* tool;
    const char* args;
  };
  const Tool tools[] = {{"xz -9e", "xz", "-9e -T1 -c"},      {"zstd -19", "zstd", "-19 -q -c"},
                        {"zstd --ultra -22", "zstd", "--ultra -22 -q -c"}, {"brotli -q 11", "brotli", "-q 11 -c"},
                        {"bzip3", "bzip3", "-e -c"},            {"bzip2 -9", "bzip2", "-9 -c"}};
  char tmpl[] = "/tmp/boa-bench-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) {
    std::fprintf(stderr, "boa-client: cannot create a temporary file\n");
    return 1;
  }
  ::close(fd);
  const std::string tmp = tmpl;
  for (const Tool& t : tools) {
    Row r;
    r.method = t.name;
    if (!HaveTool(t.tool)) {
      r.note = "not installed";
      rows.push_back(r);
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::string cmd = std::string(t.tool) + " " + t.args + " < " + Quote(o.file) + " > " + Quote(tmp);
    int rc = std::system(cmd.c_str());
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct stat out;
    if (rc != 0 || ::stat(tmp.c_str(), &out) != 0) {
      r.note = "failed";
    } else {
      r.bytes = static_cast<uint64_t>(out.st_size);
    }
    rows.push_back(r);
  }
  ::unlink(tmp.c_str());
  if (!o.model.empty()) {
    Result<std::unique_ptr<CodecBackend>> backend = OpenBackend(o.backend, o.model);
    if (!backend.ok()) {
      std::fprintf(stderr, "boa-client: %s\n", backend.status().message().c_str());
      return 1;
    }
    auto src = FileSource::Open(o.file);
    if (!src.ok()) {
      std::fprintf(stderr, "boa-client: %s\n", src.status().message().c_str());
      return 1;
    }
    CodecOptions co;
    co.chunk_length = o.chunk_length;
    co.threads = o.threads;
    CountingSink sink;
    CodecStats stats;
    auto t0 = std::chrono::steady_clock::now();
    Status s = (*backend)->Compress(src->get(), &sink, co, &stats);
    if (!s.ok()) {
      std::fprintf(stderr, "boa-client: %s\n", s.WithContext(o.file).message().c_str());
      return 1;
    }
    Row r;
    r.method = "boa (" + o.model + ((*backend)->in_process() ? "" : " on boad") + ")";
    r.bytes = sink.bytes;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.extra = (*backend)->model_bytes();
    rows.push_back(r);
  }
  std::printf("%s: %" PRIu64 " bytes\n\n", o.file.c_str(), original);
  std::printf("| method | bytes | ratio | ratio incl. model | MB/s |\n|---|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    if (!r.note.empty()) {
      std::printf("| %s | %s | | | |\n", r.method.c_str(), r.note.c_str());
      continue;
    }
    double ratio = r.bytes ? static_cast<double>(original) / r.bytes : 0;
    double eff = r.bytes ? static_cast<double>(original) / (r.bytes + r.extra) : 0;
    std::printf("| %s | %" PRIu64 " | %.3f | %.3f | %.2f |\n", r.method.c_str(), r.bytes, ratio, eff,
                r.seconds > 0 ? original / r.seconds / 1e6 : 0);
  }
  return 0;
}

}  // namespace boa::client
