// `eval FILE -m MODEL`: the model's cross-entropy on a file (bits per byte) and the size an
// ideal coder would reach, without writing anything; on boad or in this process.
#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "client/progress.h"

namespace boa::client {
namespace {

class EvalCommand final : public Command {
 public:
  EvalCommand() : Command("eval", "Model cross-entropy (bits per byte) and ideal coded size of a file") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("file", input_, "Input file ('-' or none: standard input)");
    cmd->add_option("-m,--model", model_, "Model: a model file (works in this process), or NAME[:VERSION] or id on boad")
        ->required();
    codec_.Define(cmd, /*chunking=*/true, /*lanes=*/false);
  }

  Status Run(const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(CodecOptions codec, codec_.Options(g));
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, OpenInput(input_));
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<CodecBackend> backend, OpenBackend(g.Backend(), model_));
    const auto start = std::chrono::steady_clock::now();
    Result<EvalResult> r = backend->Eval(src.get(), codec);
    if (!r.ok()) return r.status().WithContext(input_ == "-" ? "<stdin>" : input_);
    const double secs = SecondsSince(start);
    std::printf("bytes: %" PRIu64 " in %" PRIu64 " chunks, %" PRIu64 " predicted\n", r->bytes, r->chunks, r->predicted);
    std::printf("bits per byte: %.6f\n", r->bits_per_byte());
    std::printf("ideal coded size: %.0f bytes (ratio %.3f, quantized code %.6f bits per predicted byte)\n",
                r->ideal_bytes(), r->ideal_bytes() > 0 ? r->bytes / r->ideal_bytes() : 0,
                r->predicted ? r->ideal_code_bits / r->predicted : 0);
    // Every way, so a user sees what the match and derived-field models give on this data.
    std::printf("match model: %s, derived fields: %s (network alone %.0f bytes, with the match model %.0f, "
                "with both %.0f)\n",
                r->match_model ? "on" : "off", r->derived_fields ? "on" : "off", r->chunks + r->network_code_bits / 8,
                r->chunks + r->match_code_bits / 8, r->chunks + r->derived_code_bits / 8);
    if (g.verbose) std::printf("time: %.2f s (%s/s)\n", secs, HumanBytes(secs > 0 ? r->bytes / secs : 0).c_str());
    return Status::Ok();
  }

 private:
  std::string input_ = "-";
  std::string model_;
  CodecFlags codec_;
};

}  // namespace

void AddEvalCommand(CommandTable* table) { table->Add(std::make_unique<EvalCommand>()); }

}  // namespace boa::client
