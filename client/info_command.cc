// `info FILE...` (zstd's -l): a .boa file's header and index, read without a model;
// `--chunks` lists every chunk with the method that records it.
#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "common/format/container.h"
#include "common/model/model.h"

namespace boa::client {
namespace {

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

Status PrintInfo(const std::string& path, bool chunks) {
  if (path == "-") {
    return Status::InvalidArgument("info reads the index at the end of a file: give a file name, not standard input");
  }
  Result<ContainerInfo> r = ReadContainerInfo(path);
  if (!r.ok()) return r.status().WithContext(path);
  const ContainerInfo& i = *r;
  const ModelSummary& m = i.header.model;
  const double ratio = i.file_bytes ? static_cast<double>(i.trailer.original_length) / i.file_bytes : 0;
  std::printf("%s\n", path.c_str());
  std::printf("  format version   %u\n", i.header.version);
  std::printf("  model id         %s\n", HexString(i.header.model_id.data(), 32).c_str());
  std::printf("  model            d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u, %s weights\n",
              m.d_model, m.n_layers, m.n_layers == 1 ? "" : "s", m.d_state, m.d_conv, m.expand, m.dt_rank,
              WeightTypeName(static_cast<WeightType>(m.weight_type)));
  std::printf("  chunk length     %u\n", i.header.chunk_length);
  std::printf("  chunks           %" PRIu64 " (%" PRIu64 " model-coded, %" PRIu64 " lzma2, %" PRIu64 " stored)\n",
              i.trailer.chunk_count, i.model_chunks, i.lzma2_chunks, i.stored_chunks);
  std::printf("  original size    %" PRIu64 "\n", i.trailer.original_length);
  std::printf("  compressed size  %" PRIu64 "\n", i.file_bytes);
  std::printf("  ratio            %.3f\n", ratio);
  std::printf("  checksum         XXH3-64 %s\n", Hex64(i.trailer.content_checksum).c_str());
  if (chunks) {
    std::printf("  %8s %12s %10s %10s  %-6s %7s\n", "chunk", "offset", "length", "record", "method", "ratio");
    // A second walk of the checked index prints as it goes: no list of every chunk in memory.
    Result<ContainerInfo> again = ReadContainerInfo(path, [](const ChunkInfo& c) {
      std::printf("  %8" PRIu64 " %12" PRIu64 " %10u %10" PRIu64 "  %-6s %7.3f\n", c.index, c.offset, c.original_length,
                  c.record_bytes, ChunkMethodName(c.method), static_cast<double>(c.original_length) / c.record_bytes);
    });
    if (!again.ok()) return again.status().WithContext(path);
  }
  return Status::Ok();
}

class InfoCommand final : public Command {
 public:
  InfoCommand() : Command("info", "Show a .boa file's header and index (no model needed)") {}
  std::vector<std::string> ModeFlags() const override { return {"-l", "--list"}; }
  void Define(CLI::App* cmd) override {
    cmd->add_option("files", files_, "Files")->required();
    cmd->add_flag("--chunks", chunks_, "List every chunk: offset, length, record size, method (model, lzma2, stored)");
  }

  Status Run(const GlobalOptions&) override {
    return ForEachInput(files_, [this](const std::string& path) { return PrintInfo(path, chunks_); });
  }

 private:
  std::vector<std::string> files_;
  bool chunks_ = false;
};

}  // namespace

void AddInfoCommand(CommandTable* table) { table->Add(std::make_unique<InfoCommand>()); }

}  // namespace boa::client
