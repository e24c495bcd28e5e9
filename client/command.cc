// The command pattern and the CLI's shared helpers (see command.h).
#include "client/command.h"

#include <unistd.h>

#include <cstdio>

#include "client/progress.h"
#include "common/util/byte_size.h"

namespace boa::client {

BackendChoice GlobalOptions::Backend() const {
  BackendChoice c;
  c.local = local;
  c.server = server;
  c.token_file = token_file;
  c.tls = tls;
  c.timeout = timeout;
  return c;
}

bool GlobalOptions::ShowProgress() const {
  if (no_progress || quiet) return false;
  return progress || IsTerminal(2);
}

std::function<void(const std::string&, bool)> GlobalOptions::ProgressLines() const {
  return client::ProgressLines(quiet, no_progress);
}

CLI::App* CommandTable::Group(const std::string& name, const std::string& description) {
  CLI::App* group = root_->add_subcommand(name, description);
  group->require_subcommand(1);
  group->fallthrough();  // global flags may follow the group's subcommand too
  return group;
}

void CommandTable::Add(std::unique_ptr<Command> command, CLI::App* group) {
  CLI::App* cmd = (group ? group : root_)->add_subcommand(command->name(), command->description());
  command->Define(cmd);
  commands_.emplace_back(cmd, std::move(command));
}

Command* CommandTable::Parsed() const {
  for (const auto& [cmd, command] : commands_) {
    if (cmd->parsed()) return command.get();
  }
  return nullptr;
}

std::map<std::string, std::string> CommandTable::ModeFlags() const {
  std::map<std::string, std::string> flags;
  for (const auto& [cmd, command] : commands_) {
    if (cmd->get_parent() != root_) continue;
    for (const std::string& flag : command->ModeFlags()) flags[flag] = command->name();
  }
  return flags;
}

void PrintError(const Status& status) { std::fprintf(stderr, "boa-client: %s\n", status.message().c_str()); }

void PrintWarning(const std::string& message) { std::fprintf(stderr, "boa-client: warning: %s\n", message.c_str()); }

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Result<std::unique_ptr<FileSource>> OpenInput(const std::string& input) {
  if (input != "-") return FileSource::Open(input);
  if (IsTerminal(0)) {
    return Status::InvalidArgument("standard input is a terminal: give a file name, or pipe the data in");
  }
  return FileSource::Stdin();
}

void CodecFlags::Define(CLI::App* cmd, bool chunking, bool with_lanes) {
  if (chunking) {
    auto* size = cmd->add_option("--chunk-size", chunk_size, "Bytes per chunk, e.g. 65536, 64K, 1M (default 64K)");
    auto* count = cmd->add_option("--chunks", chunks, "Number of chunks instead of a size (regular files only)");
    size->excludes(count);
  }
  cmd->add_option("-T,--threads", threads, "Worker threads (default: all cores)");
  cmd->add_option("--device", device,
                  "Where the network runs in this process: cpu (default), cuda, or auto (cuda where there is a GPU); "
                  "the output is the same");
  if (with_lanes) cmd->add_option("--lanes", lanes, "Chunks decoded together per thread (default 64; 1024 on a GPU)");
}

Result<CodecOptions> CodecFlags::Options(const GlobalOptions& global) const {
  CodecOptions o;
  if (!chunk_size.empty()) {
    BOA_ASSIGN_OR_RETURN(o.chunk_length, ParseChunkLength(chunk_size));
  }
  o.chunk_count = chunks;
  if (threads < 0 || threads > 256) return Status::InvalidArgument("-T must be 0 (all cores) to 256");
  if (lanes < 0 || lanes > 4096) return Status::InvalidArgument("--lanes must be 0 (default) to 4096");
  o.threads = threads;
  o.lanes = lanes;
  Result<engine::Backend> kernels = engine::ParseBackend(global.backend);
  if (!kernels.ok()) return kernels.status().WithContext("--backend");
  Result<engine::Backend> backend = engine::ResolveDevice(device.empty() ? "cpu" : device, *kernels);
  if (!backend.ok()) return backend.status().WithContext("--device");
  o.backend = *backend;
  return o;
}

Result<WeightType> ParseDtype(const std::string& dtype) {
  Result<WeightType> type = ParseWeightType(dtype);
  return type.ok() ? type : type.status().WithContext("--dtype");
}

Status ForEachInput(const std::vector<std::string>& inputs, const std::function<Status(const std::string&)>& work) {
  if (inputs.size() == 1) return work(inputs[0]);
  size_t failed = 0;
  for (const std::string& input : inputs) {
    Status s = work(input);
    if (!s.ok()) {
      PrintError(s);
      ++failed;
    }
  }
  if (failed == 0) return Status::Ok();
  return Status::InvalidArgument(std::to_string(failed) + " of " + std::to_string(inputs.size()) + " inputs failed");
}

Result<uint32_t> ParseChunkLength(const std::string& text) {
  Result<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) return bytes.status().WithContext("--chunk-size");
  if (*bytes == 0) return Status::InvalidArgument("--chunk-size must be at least 1");
  if (*bytes > UINT32_MAX) return Status::InvalidArgument("--chunk-size: '" + text + "' is too large");
  return static_cast<uint32_t>(*bytes);
}

}  // namespace boa::client
