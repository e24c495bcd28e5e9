// `compress`, `decompress` and `verify`: one file pipeline with zstd's conventions (keep
// the source, .boa suffix, -o/-c/-f/--rm, temporary file + rename, every input tried and
// each failure named). The codec work runs on boad or in this process (CodecBackend).
#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "client/lzma2_alternative.h"
#include "client/progress.h"
#include "common/format/container.h"
#include "common/util/io.h"

namespace boa::client {
namespace {

constexpr const char* kSuffix = ".boa";

enum class Mode { kCompress, kDecompress, kVerify };

struct FileOptions {
  std::vector<std::string> inputs;
  std::string model;
  std::string output;
  bool to_stdout = false;
  bool force = false;
  bool remove_source = false;
  int parallel = 1;
  CodecFlags codec;
};

// Output path for one input, or "" for standard output.
Result<std::string> OutputPath(Mode mode, const std::string& input, const FileOptions& f) {
  if (mode == Mode::kVerify) return std::string();
  if (f.to_stdout) return std::string();
  if (!f.output.empty()) return f.output == "-" ? std::string() : f.output;
  if (input == "-") return std::string();
  if (mode == Mode::kCompress) return input + kSuffix;
  const std::string suffix = kSuffix;
  if (input.size() <= suffix.size() || input.compare(input.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return Status::InvalidArgument(input + ": unknown suffix (expected .boa); use -o to name the output");
  }
  return input.substr(0, input.size() - suffix.size());
}

void PrintSummary(Mode mode, const std::string& label, const std::string& dest, const CodecStats& stats, double secs,
                  bool verbose) {
  const uint64_t original = mode == Mode::kCompress ? stats.input_bytes : stats.output_bytes;
  const uint64_t packed = mode == Mode::kCompress ? stats.output_bytes : stats.input_bytes;
  const double ratio = packed ? static_cast<double>(original) / packed : 0;
  const char* verb = mode == Mode::kVerify ? "OK, " : "";
  std::fprintf(stderr, "%s: %s%" PRIu64 " -> %" PRIu64 " bytes (ratio %.3f), %.2f s, %s/s%s\n", label.c_str(), verb,
               mode == Mode::kCompress ? original : packed, mode == Mode::kCompress ? packed : original, ratio, secs,
               HumanBytes(secs > 0 ? original / secs : 0).c_str(), dest.empty() ? "" : (" -> " + dest).c_str());
  if (verbose) {
    std::fprintf(stderr, "  chunks %" PRIu64 " (%" PRIu64 " model-coded, %" PRIu64 " lzma2, %" PRIu64 " stored), chunk length %u, %d threads\n",
                 stats.chunks, stats.chunks - stats.lzma2_chunks - stats.stored_chunks, stats.lzma2_chunks,
                 stats.stored_chunks, stats.chunk_length, stats.threads);
  }
}

class FileCommand final : public Command {
 public:
  FileCommand(Mode mode, const char* name, const char* description, std::vector<std::string> mode_flags)
      : Command(name, description), mode_(mode), mode_flags_(std::move(mode_flags)) {}

  std::vector<std::string> ModeFlags() const override { return mode_flags_; }

  void Define(CLI::App* cmd) override {
    const bool compress = mode_ == Mode::kCompress;
    cmd->add_option("files", f_.inputs, "Input files ('-' or none: standard input)");
    auto* model = cmd->add_option("-m,--model", f_.model,
                                  "Model: a model file (a path or *.boam: works in this process), or NAME[:VERSION] or id on boad" +
                                      std::string(compress ? "" : " (boad: default is the one the stream names)"));
    if (compress) model->required();
    if (mode_ != Mode::kVerify) {
      cmd->add_option("-o,--output", f_.output, "Output file (single input only)");
      cmd->add_flag("-c,--stdout", f_.to_stdout, "Write to standard output");
      cmd->add_flag("-f,--force", f_.force, "Overwrite existing outputs (and write to a terminal)");
      cmd->add_flag("--rm", f_.remove_source, "Remove the source file after success");
      cmd->add_option("--parallel", f_.parallel,
                      "boad: send each file as N requests at once (runs of chunks, spread over the server's replicas; "
                      "the output is the same bytes)")
          ->check(CLI::Range(1, 64));
    }
    f_.codec.Define(cmd, compress, mode_ == Mode::kDecompress);
  }

  Status Run(const GlobalOptions& g) override {
    if (f_.inputs.empty()) f_.inputs.push_back("-");
    if (!f_.output.empty() && f_.inputs.size() > 1) return Status::InvalidArgument("-o can only be used with a single input");
    if (f_.remove_source && (f_.to_stdout || f_.output == "-")) {
      return Status::InvalidArgument("--rm needs an output file (not with -c)");
    }
    BOA_ASSIGN_OR_RETURN(CodecOptions codec, f_.codec.Options(g));
    BackendChoice where = g.Backend();
    where.parallel = f_.parallel;
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<CodecBackend> backend, OpenBackend(where, f_.model));
    return ForEachInput(f_.inputs, [&](const std::string& input) { return ProcessOne(input, *backend, codec, g); });
  }

 private:
  // Compresses, decompresses or verifies one input; the status names it.
  Status ProcessOne(const std::string& input, CodecBackend& backend, const CodecOptions& codec, const GlobalOptions& g) {
    const std::string label = input == "-" ? "<stdin>" : input;
    BOA_ASSIGN_OR_RETURN(std::string output, OutputPath(mode_, input, f_));
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, OpenInput(input));
    const bool to_stdout = mode_ != Mode::kVerify && output.empty();
    if (to_stdout && mode_ == Mode::kCompress && IsTerminal(1) && !f_.force) {
      return Status::InvalidArgument(label + ": refusing to write compressed data to a terminal (redirect it, or use -o)");
    }
    std::unique_ptr<AtomicOutputFile> file;
    std::unique_ptr<ByteSink> sink;
    if (mode_ == Mode::kVerify) {
      sink = std::make_unique<CountingSink>();
    } else if (to_stdout) {
      // `-c >> f.bin` would append to the input while it is read.
      Result<FileIdentity> out = IdentifyFd(1, "<stdout>");
      if (out.ok() && out->SameFile(src->identity())) {
        return Status::InvalidArgument(label + ": standard output is the input file; refusing to write to it");
      }
      sink = std::make_unique<FdSink>(1, "<stdout>");
    } else {
      // The output must not be the input, under any name (checked before anything is written).
      BOA_ASSIGN_OR_RETURN(file, AtomicOutputFile::Create(output, f_.force, {src->identity()}));
    }
    ByteSink* out = file ? static_cast<ByteSink*>(file.get()) : sink.get();
    // A file compressed into a file with the default chunking is also coded whole with
    // LZMA2, and the smaller output kept (lzma2_alternative.h). A stream written to standard
    // output cannot be taken back, and chunks the user sized are kept as asked.
    std::unique_ptr<Lzma2Alternative> alternative;
    if (mode_ == Mode::kCompress && file && input != "-" && codec.chunk_length == 0 && codec.chunk_count == 0) {
      alternative = Lzma2Alternative::Start(*src, output, f_.force, out);
      if (alternative) out = alternative->sink();
    }

    // A decompression's progress counts decoded bytes against the original size in the
    // file's trailer: its compressed input is read (and sent to boad) far ahead of decoding.
    int64_t total = src->SizeHint();
    const bool show = g.ShowProgress(), by_output = mode_ != Mode::kCompress && input != "-";
    if (show && by_output) {
      Result<ContainerInfo> info = ReadContainerInfo(input);
      total = info.ok() ? static_cast<int64_t>(info->trailer.original_length) : -1;
    }
    Progress progress(show, label, total, by_output);
    CodecOptions o = codec;
    o.progress = [&](uint64_t in, uint64_t outb) { progress.Update(in, outb); };
    CodecStats stats;
    const auto start = std::chrono::steady_clock::now();
    Status s = mode_ == Mode::kCompress     ? backend.Compress(src.get(), out, o, &stats)
               : mode_ == Mode::kDecompress ? backend.Decompress(src.get(), out, o, &stats)
                                            : backend.Verify(src.get(), o, &stats);
    progress.Clear();
    if (!s.ok()) return s.WithContext(label);
    AtomicOutputFile* written = file.get();
    const uint64_t model_coded_bytes = stats.output_bytes;
    AtomicOutputFile* smaller = alternative ? alternative->ChooseSmaller(stats, &stats) : nullptr;
    if (smaller) written = smaller;
    if (written) BOA_RETURN_IF_ERROR(written->Commit(input == "-" ? "" : input));
    const double secs = SecondsSince(start);
    if (f_.remove_source && written && input != "-") {
      BOA_RETURN_IF_ERROR(RemoveSource(input, src->identity(), written->identity()));
    }
    if (!g.quiet) {
      const std::string dest = mode_ == Mode::kVerify ? "" : to_stdout ? "<stdout>" : output;
      PrintSummary(mode_, label, dest, stats, secs, g.verbose);
      if (smaller && g.verbose) {
        std::fprintf(stderr, "  whole-input LZMA2 kept: smaller than the model's %" PRIu64 " bytes\n", model_coded_bytes);
      }
    }
    return Status::Ok();
  }

  const Mode mode_;
  const std::vector<std::string> mode_flags_;
  FileOptions f_;
};

}  // namespace

void AddFileCommands(CommandTable* table) {
  table->Add(std::make_unique<FileCommand>(Mode::kCompress, "compress", "Compress files to FILE.boa",
                                           std::vector<std::string>{"-z", "--compress"}));
  table->Add(std::make_unique<FileCommand>(Mode::kDecompress, "decompress", "Decompress FILE.boa to FILE",
                                           std::vector<std::string>{"-d", "--decompress"}));
  table->Add(std::make_unique<FileCommand>(Mode::kVerify, "verify", "Decode and check files without writing anything",
                                           std::vector<std::string>{"-t", "--test"}));
}

}  // namespace boa::client
