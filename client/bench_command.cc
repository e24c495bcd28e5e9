// `bench FILE [-m MODEL]`: boa next to the usual compressors on one file (the original
// tool's --comparison-baseline-only, with more baselines and speeds). The compressors run as
// the system's command-line tools where installed; a missing one is listed as such.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "client/commands.h"
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

// Each baseline compresses the file to a temporary file; its row has the size and time.
std::vector<Row> RunBaselines(const std::string& file) {
  struct Tool {
    const char* name;
    const char* tool;
    const char* args;
  };
  const Tool tools[] = {{"xz -9e", "xz", "-9e -T1 -c"},
                        {"zstd -19", "zstd", "-19 -q -c"},
                        {"zstd --ultra -22", "zstd", "--ultra -22 -q -c"},
                        {"brotli -q 11", "brotli", "-q 11 -c"},
                        {"bzip3", "bzip3", "-e -c"},
                        {"bzip2 -9", "bzip2", "-9 -c"}};
  std::vector<Row> rows;
  char tmpl[] = "/tmp/boa-bench-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::close(fd);
  const std::string tmp = tmpl;
  for (const Tool& t : tools) {
    Row r;
    r.method = t.name;
    if (fd < 0) {
      r.note = "no temporary file";
    } else if (!HaveTool(t.tool)) {
      r.note = "not installed";
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      const std::string cmd = std::string(t.tool) + " " + t.args + " < " + Quote(file) + " > " + Quote(tmp);
      const int rc = std::system(cmd.c_str());
      r.seconds = SecondsSince(t0);
      struct stat out;
      if (rc != 0 || ::stat(tmp.c_str(), &out) != 0) {
        r.note = "failed";
      } else {
        r.bytes = static_cast<uint64_t>(out.st_size);
      }
    }
    rows.push_back(r);
  }
  if (fd >= 0) ::unlink(tmp.c_str());
  return rows;
}

class BenchCommand final : public Command {
 public:
  BenchCommand() : Command("bench", "Compare boa with xz, zstd, brotli, bzip3 and bzip2 on a file") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("file", file_, "File to compress")->required();
    cmd->add_option("-m,--model", model_, "A model file (in this process) or a model on boad (omit for the baselines only)");
    codec_.Define(cmd, /*chunking=*/true, /*lanes=*/false);
  }

  Status Run(const GlobalOptions& g) override {
    struct stat st;
    if (::stat(file_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Status::InvalidArgument(file_ + ": not a regular file");
    }
    BOA_ASSIGN_OR_RETURN(CodecOptions codec, codec_.Options(g));
    const uint64_t original = static_cast<uint64_t>(st.st_size);
    std::vector<Row> rows = RunBaselines(file_);
    if (!model_.empty()) {
      BOA_ASSIGN_OR_RETURN(std::unique_ptr<CodecBackend> backend, OpenBackend(g.Backend(), model_));
      BOA_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, FileSource::Open(file_));
      CountingSink sink;
      CodecStats stats;
      const auto t0 = std::chrono::steady_clock::now();
      Status s = backend->Compress(src.get(), &sink, codec, &stats);
      if (!s.ok()) return s.WithContext(file_);
      Row r;
      r.method = "boa (" + model_ + (backend->in_process() ? "" : " on boad") + ")";
      r.bytes = sink.bytes;
      r.seconds = SecondsSince(t0);
      r.extra = backend->model_bytes();
      rows.push_back(r);
    }
    std::printf("%s: %" PRIu64 " bytes\n\n", file_.c_str(), original);
    std::printf("| method | bytes | ratio | ratio incl. model | MB/s |\n|---|---:|---:|---:|---:|\n");
    for (const Row& r : rows) {
      if (!r.note.empty()) {
        std::printf("| %s | %s | | | |\n", r.method.c_str(), r.note.c_str());
        continue;
      }
      const double ratio = r.bytes ? static_cast<double>(original) / r.bytes : 0;
      const double eff = r.bytes ? static_cast<double>(original) / (r.bytes + r.extra) : 0;
      std::printf("| %s | %" PRIu64 " | %.3f | %.3f | %.2f |\n", r.method.c_str(), r.bytes, ratio, eff,
                  r.seconds > 0 ? original / r.seconds / 1e6 : 0);
    }
    return Status::Ok();
  }

 private:
  std::string file_;
  std::string model_;
  CodecFlags codec_;
};

}  // namespace

void AddBenchCommand(CommandTable* table) { table->Add(std::make_unique<BenchCommand>()); }

}  // namespace boa::client
