// `new-experiment` (the original tool's interactive creator) and `run --config NAME` (its
// pipeline: read -> train or load -> compress -> decompress -> verify, with a timings table).
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <vector>

#include "client/commands.h"
#include "client/experiment.h"
#include "client/new_experiment.h"
#include "client/progress.h"
#include "common/codec/codec.h"
#include "common/util/io.h"
#ifdef BOA_WITH_TRAIN
#include "common/train/trainer.h"
#endif

namespace boa::client {
namespace {

class Timings {
 public:
  void Add(const std::string& stage, double seconds) { rows_.emplace_back(stage, seconds); }
  void Print() const {
    std::printf("\n%-16s %10s\n", "stage", "seconds");
    double total = 0;
    for (const auto& [stage, s] : rows_) {
      std::printf("%-16s %10.2f\n", stage.c_str(), s);
      total += s;
    }
    std::printf("%-16s %10.2f\n", "total", total);
  }

 private:
  std::vector<std::pair<std::string, double>> rows_;
};

Status CodeFile(bool compress, CodecBackend& backend, const std::string& in_path, const std::string& out_path,
                const CodecOptions& o, CodecStats* stats) {
  BOA_ASSIGN_OR_RETURN(auto in, FileSource::Open(in_path));
  BOA_ASSIGN_OR_RETURN(auto out, AtomicOutputFile::Create(out_path, true, {in->identity()}));
  Status s = compress ? backend.Compress(in.get(), out.get(), o, stats) : backend.Decompress(in.get(), out.get(), o, stats);
  if (!s.ok()) return s.WithContext(in_path);
  return out->Commit(in_path);
}

class NewExperimentCommand final : public Command {
 public:
  NewExperimentCommand()
      : Command("new-experiment", "Create experiments/NAME/NAME.yaml interactively (answers may be piped)") {}
  void Define(CLI::App*) override {}
  Status Run(const GlobalOptions&) override { return NewExperiment(std::cin, std::cout, std::cerr); }
};

class RunCommand final : public Command {
 public:
  RunCommand()
      : Command("run", "Run an experiment: train (or load) -> compress -> decompress -> verify, in this process (on boad "
                       "with --server or $BOA_SERVER)") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("--config", config_, "NAME (experiments/NAME/NAME.yaml) or a path")->required();
    auto* only_train = cmd->add_flag("--train-only", train_only_, "Only train");
    auto* only_compress = cmd->add_flag("--compress-only", compress_only_, "Only compress (needs a model)");
    auto* only_decompress = cmd->add_flag("--decompress-only", decompress_only_, "Only decompress <name>.boa");
    only_train->excludes(only_compress)->excludes(only_decompress);
    only_compress->excludes(only_decompress);
    cmd->add_flag("--verify", verify_, "Compare the decompressed file with the original");
    cmd->add_flag("--show-timings", show_timings_, "Print the time of each stage");
    cmd->add_option("--model-path", model_path_, "Use this model instead of training");
    cmd->add_option("--precision", precision_, "Training precision (fp32)");
    codec_.Define(cmd, /*chunking=*/false, /*lanes=*/false);  // -T; the chunking is the config's
    cmd->add_flag("--resume", resume_, "Continue training from the last epoch checkpoint");
  }

  Status Run(const GlobalOptions& g) override;

 private:
  std::string config_;
  bool train_only_ = false, compress_only_ = false, decompress_only_ = false;
  bool verify_ = false, show_timings_ = false, resume_ = false;
  std::string model_path_;  // overrides the config's model_path
  std::string precision_;   // overrides the config's precision
  CodecFlags codec_;
};

Status RunCommand::Run(const GlobalOptions& g) {
  BOA_ASSIGN_OR_RETURN(ExperimentConfig c, LoadExperiment(config_));
  for (const std::string& w : c.warnings) PrintWarning(w);
  if (!codec_.device.empty()) c.device = codec_.device;  // --device overrides the config's
  codec_.device = c.device;
  if (!precision_.empty()) c.precision = precision_;
  if (!model_path_.empty()) c.model_path = model_path_;
  BOA_ASSIGN_OR_RETURN(CodecOptions co, codec_.Options(g));
  if (co.threads) c.threads = co.threads;
  const std::string data = c.Resolve(c.file_path);
  const std::string to_compress = c.file_to_compress.empty() ? data : c.Resolve(c.file_to_compress);
  const std::string packed = c.Resolve(c.name + ".boa");
  const std::string unpacked = c.Resolve(c.name + ".decompressed");
  const std::string model_path = c.model_path.empty() ? c.ModelOutput() : c.Resolve(c.model_path);
  const bool stage_only = train_only_ || compress_only_ || decompress_only_;
  const bool do_train = c.model_path.empty() && (!stage_only || train_only_);
  const bool do_compress = !stage_only || compress_only_;
  const bool do_decompress = !stage_only || decompress_only_;
  Timings timings;

  if (!PathExists(data)) return Status::NotFound(data + ": training data not found (file_path in " + c.path + ")");
  // Every file the run writes is checked against the data before any stage starts.
  std::vector<std::string> outputs = {packed, unpacked};
  if (do_train) outputs.push_back(model_path);
  if (Status s = RefuseOverwritingInputs(outputs, {data, to_compress}); !s.ok()) {
    return Status::InvalidArgument(s.message() + " (file names in " + c.path + ")");
  }
  auto t0 = std::chrono::steady_clock::now();
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> original, ReadFile(to_compress, 64ull << 30));
  timings.Add("read", SecondsSince(t0));

  if (do_train) {
#ifdef BOA_WITH_TRAIN
    train::TrainOptions t = TrainingOf(c);
    t.resume = resume_;
    if (c.progress) t.progress = g.ProgressLines();
    t0 = std::chrono::steady_clock::now();
    train::TuneHeapForTraining();
    train::TrainReport r;
    BOA_RETURN_IF_ERROR(train::Train(t, &r));
    timings.Add("training", SecondsSince(t0));
    if (!g.quiet) {
      std::printf("trained %s: %" PRIu64 " steps, validation %.4f, test %.4f bits/byte (ratio ~%.2f)\n",
                  model_path.c_str(), r.steps, r.val_bpb, r.test_bpb, r.test_bpb > 0 ? 8 / r.test_bpb : 0);
    }
#else
    return Status::FailedPrecondition("this build has no training support (LibTorch was not found); give a model_path");
#endif
  }
  if (train_only_) {
    if (show_timings_) timings.Print();
    return Status::Ok();
  }

  t0 = std::chrono::steady_clock::now();
  Result<LoadedModel> model = LoadModelFile(model_path);
  if (!model.ok()) {
    if (!c.model_path.empty()) return model.status();
    return Status(model.status().code(),
                  model.status().message() + " (train it first: boa-client run --config " + config_ + " --train-only)");
  }
  // In this process, unless a server is named (--server or $BOA_SERVER): then compression and
  // decompression run on boad, the model uploaded to its store if it is not there yet, and
  // saying so.
  const BackendChoice where = g.Backend();
  std::unique_ptr<CodecBackend> backend;
  if (where.local || !where.ServerNamed()) {
    backend = LocalBackend(std::move(*model));
  } else {
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RemoteClient> client,
                         where.Endpoint().Connect());
    bool uploaded = false;
    BOA_ASSIGN_OR_RETURN(v1::ModelInfo on_server, EnsureOnServer(*client, model_path, *model, c.name, &uploaded));
    if (uploaded && !g.quiet) {
      std::fprintf(stderr, "boa-client: %s was not in the store of boad at %s: uploaded it as %s:%u\n",
                   model_path.c_str(), client->address().c_str(), on_server.name().c_str(), on_server.version());
    }
    client->set_deadline(where.timeout);
    backend = RemoteBackend(std::move(client), on_server.id(), model->file_bytes);
  }
  timings.Add("load model", SecondsSince(t0));

  co.threads = c.threads;
  co.chunk_length = c.chunk_size;
  if (!c.chunk_size) co.chunk_count = c.chunks_count;
  CodecStats cs, ds;
  if (do_compress) {
    t0 = std::chrono::steady_clock::now();
    BOA_RETURN_IF_ERROR(CodeFile(true, *backend, to_compress, packed, co, &cs));
    timings.Add("compression", SecondsSince(t0));
    if (!g.quiet) {
      std::printf("compressed %s: %" PRIu64 " -> %" PRIu64 " bytes (ratio %.3f) -> %s\n", to_compress.c_str(),
                  cs.input_bytes, cs.output_bytes, cs.output_bytes ? double(cs.input_bytes) / cs.output_bytes : 0.0,
                  packed.c_str());
    }
  }
  if (do_decompress) {
    t0 = std::chrono::steady_clock::now();
    BOA_RETURN_IF_ERROR(CodeFile(false, *backend, packed, unpacked, co, &ds));
    timings.Add("decompression", SecondsSince(t0));
    if (!g.quiet) std::printf("decompressed %s -> %s\n", packed.c_str(), unpacked.c_str());
  }
  if (verify_ && do_decompress) {
    Result<std::vector<uint8_t>> back = ReadFile(unpacked, 64ull << 30);
    if (!back.ok() || *back != original) {
      return Status::DataLoss("verify: " + unpacked + " differs from " + to_compress);
    }
    if (!g.quiet) std::printf("verify: %s is identical to %s\n", unpacked.c_str(), to_compress.c_str());
  }
  if (show_timings_) timings.Print();
  return Status::Ok();
}

}  // namespace

void AddExperimentCommands(CommandTable* table) {
  table->Add(std::make_unique<NewExperimentCommand>());
  table->Add(std::make_unique<RunCommand>());
}

}  // namespace boa::client
