// The one pattern every boa-client command follows. A Command declares its options on the
// subcommand a CommandTable makes for it and, once the command line is parsed, runs and
// reports failure as a Status; Main prints that status and turns it into the exit code, in
// one place. Each command family lives in its own file and registers itself through an
// Add...Commands function (client/commands.h).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/codec_backend.h"
#include "common/codec/codec.h"
#include "common/model/model.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa::client {

// Options that every command takes, before or after its name.
struct GlobalOptions {
  bool local = false;
  std::string server;
  std::string token_file;
  rpc::TlsOptions tls;
  double timeout = 0;
  bool quiet = false;
  bool verbose = false;
  bool progress = false;
  bool no_progress = false;
  std::string backend = "auto";

  // Where codec work runs (--local, --server, --timeout).
  BackendChoice Backend() const;
  // boad as --server and --token-file name it.
  rpc::ServerEndpoint Endpoint() const { return {server, token_file, tls}; }
  // Whether a byte-progress line is drawn on stderr: on a terminal, or with --progress.
  bool ShowProgress() const;
  // How a long job's progress lines (training) are shown.
  std::function<void(const std::string& line, bool milestone)> ProgressLines() const;
};

class Command {
 public:
  Command(std::string name, std::string description) : name_(std::move(name)), description_(std::move(description)) {}
  virtual ~Command() = default;
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;

  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  // zstd's flags that select this command when given instead of a name (-d, --decompress).
  virtual std::vector<std::string> ModeFlags() const { return {}; }
  // Declares the command's options on `cmd`, bound to the command's own members.
  virtual void Define(CLI::App* cmd) = 0;
  virtual Status Run(const GlobalOptions& global) = 0;
  // The process exit code for what Run returned: 0 when it succeeded, else 1 unless a
  // command has codes of its own (health: grpc_health_probe's).
  virtual int ExitCode(const Status& status) const { return status.ok() ? 0 : 1; }

 private:
  const std::string name_;
  const std::string description_;
};

// The commands of a parser, in the order their help lists them.
class CommandTable {
 public:
  explicit CommandTable(CLI::App* root) : root_(root) {}

  // A command that only holds others (`model`, `models`, `jobs`): one of them must follow.
  CLI::App* Group(const std::string& name, const std::string& description);
  // Adds `command` under `group` (nullptr: the top level).
  void Add(std::unique_ptr<Command> command, CLI::App* group = nullptr);

  // The command the parsed line names, or nullptr.
  Command* Parsed() const;
  // Every mode flag of the top-level commands, and the command it selects.
  std::map<std::string, std::string> ModeFlags() const;

 private:
  CLI::App* const root_;
  std::vector<std::pair<CLI::App*, std::unique_ptr<Command>>> commands_;
};

// The codec options a command line gives: chunking, threads, decoding lanes, the device, and
// the CPU kernel set (a global option).
struct CodecFlags {
  std::string chunk_size;
  uint64_t chunks = 0;
  int threads = 0;
  int lanes = 0;
  std::string device;  // --device; empty: cpu

  // Adds -T and --device, and --chunk-size/--chunks with `chunking`, --lanes with `lanes`.
  void Define(CLI::App* cmd, bool chunking, bool lanes);
  Result<CodecOptions> Options(const GlobalOptions& global) const;
};

// The CLI's helpers that more than one command needs.
void PrintError(const Status& status);  // "boa-client: <message>" on stderr
void PrintWarning(const std::string& message);
bool IsTerminal(int fd);
double SecondsSince(std::chrono::steady_clock::time_point start);
// A --chunk-size value: a byte count (64K, 1M) that fits the format's 32-bit field.
Result<uint32_t> ParseChunkLength(const std::string& text);
// A --dtype value: f32 or f16.
Result<WeightType> ParseDtype(const std::string& dtype);
// Runs `work` on every input, as zstd does: one input's failure is the command's; with
// several, each failure gets its own line, every input is tried, and the status says how
// many failed.
Status ForEachInput(const std::vector<std::string>& inputs, const std::function<Status(const std::string&)>& work);
// A file, or standard input for "-" (refused on a terminal: nobody types binary data, and
// waiting for it looks like a hang).
Result<std::unique_ptr<FileSource>> OpenInput(const std::string& input);

}  // namespace boa::client
