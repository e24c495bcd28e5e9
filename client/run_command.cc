// The experiment pipeline (see run_command.h).
#include "client/run_command.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "client/progress.h"
#include "common/codec/codec.h"
#include "common/util/io.h"
#ifdef BOA_WITH_TRAIN
#include "common/train/trainer.h"
#endif

namespace boa::client {

namespace {

void Fail(const std::string& msg) { std::fprintf(stderr, "boa-client: %s\n", msg.c_str()); }

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

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Status CodeFile(bool compress, CodecBackend& backend, const std::string& in_path, const std::string& out_path,
                const CodecOptions& o, CodecStats* stats) {
  BOA_ASSIGN_OR_RETURN(auto in, FileSource::Open(in_path));
  BOA_ASSIGN_OR_RETURN(auto out, AtomicOutputFile::Create(out_path, true, {in->identity()}));
  Status s = compress ? backend.Compress(in.get(), out.get(), o, stats) : backend.Decompress(in.get(), out.get(), o, stats);
  if (!s.ok()) return s.WithContext(in_path);
  return out->Commit(in_path);
}

}  // namespace

int RunExperiment(const RunOptions& o) {
  Result<ExperimentConfig> loaded = LoadExperiment(o.config);
  if (!loaded.ok()) {
    Fail(loaded.status().message());
    return 1;
  }
  ExperimentConfig c = std::move(loaded).value();
  for (const std::string& w : c.warnings) std::fprintf(stderr, "boa-client: warning: %s\n", w.c_str());
  if (!o.device.empty()) c.device = o.device;
  if (!o.precision.empty()) c.precision = o.precision;
  if (!o.model_path.empty()) c.model_path = o.model_path;
  if (c.device == "cuda") {
    Fail("--device cuda: this build of boa has no CUDA support (use --device cpu)");
    return 1;
  }
  if (c.device != "cpu") {
    Fail("unknown device '" + c.device + "' (expected cpu or cuda)");
    return 1;
  }
  const std::string data = c.Resolve(c.file_path);
  const std::string to_compress = c.file_to_compress.empty() ? data : c.Resolve(c.file_to_compress);
  const std::string packed = c.Resolve(c.name + ".boa");
  const std::string unpacked = c.Resolve(c.name + ".decompressed");
  std::string model_path = c.model_path.empty() ? c.ModelOutput() : c.Resolve(c.model_path);
  const bool stage_only = o.train_only || o.compress_only || o.decompress_only;
  const bool do_train = c.model_path.empty() && (!stage_only || o.train_only);
  const bool do_compress = !stage_only || o.compress_only;
  const bool do_decompress = !stage_only || o.decompress_only;
  Timings timings;

  if (!PathExists(data)) {
    Fail(data + ": training data not found (file_path in " + c.path + ")");
    return 1;
  }
  // Every file the run writes is checked against the data before any stage starts.
  std::vector<std::string> outputs = {packed, unpacked};
  if (do_train) outputs.push_back(model_path);
  if (Status s = RefuseOverwritingInputs(outputs, {data, to_compress}); !s.ok()) {
    Fail(s.message() + " (file names in " + c.path + ")");
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  Result<std::vector<uint8_t>> original = ReadFile(to_compress, 64ull << 30);
  if (!original.ok()) {
    Fail(original.status().message());
    return 1;
  }
  timings.Add("read", Since(t0));

  if (do_train) {
#ifdef BOA_WITH_TRAIN
    train::TrainOptions t;
    t.files = {data};
    t.model = ModelConfig::Default(c.d_model, c.num_layers);
    t.seed = c.seed;
    t.seq_len = c.seq_len;
    t.batch_size = c.batch_size;
    t.lr = c.lr;
    t.weight_decay = c.weight_decay;
    t.epochs = c.epochs;
    t.max_seconds = c.max_seconds;
    t.max_bytes = c.max_bytes;
    t.splits = c.splits;
    t.threads = o.threads ? o.threads : c.threads;
    t.precision = c.precision;
    t.output = model_path;
    t.resume = o.resume;
    t.patience = c.patience;
    if (c.progress) t.progress = o.progress;
    t0 = std::chrono::steady_clock::now();
    train::TuneHeapForTraining();
    train::TrainReport r;
    Status s = train::Train(t, &r);
    if (!s.ok()) {
      Fail(s.message());
      return 1;
    }
    timings.Add("training", Since(t0));
    if (!o.quiet) {
      std::printf("trained %s: %" PRIu64 " steps, validation %.4f, test %.4f bits/byte (ratio ~%.2f)\n",
                  model_path.c_str(), r.steps, r.val_bpb, r.test_bpb, r.test_bpb > 0 ? 8 / r.test_bpb : 0);
    }
#else
    Fail("this build has no training support (LibTorch was not found); give a model_path");
    return 1;
#endif
  }
  if (o.train_only) {
    if (o.show_timings) timings.Print();
    return 0;
  }

  t0 = std::chrono::steady_clock::now();
  Result<LoadedModel> model = LoadModelFile(model_path);
  if (!model.ok()) {
    Fail(model.status().message() + (c.model_path.empty() ? " (train it first: boa-client run --config " + o.config + " --train-only)" : ""));
    return 1;
  }
  // In this process, unless a server is named (--server or $BOA_SERVER): then compression and
  // decompression run on boad, the model uploaded to its store if it is not there yet — and
  // saying so.
  std::unique_ptr<CodecBackend> backend;
  if (o.backend.local || !o.backend.ServerNamed()) {
    backend = LocalBackend(std::move(*model));
  } else {
    Result<std::unique_ptr<rpc::RemoteClient>> client = rpc::RemoteClient::Connect(rpc::ServerAddress(o.backend.server));
    bool uploaded = false;
    Result<v1::ModelInfo> on_server = client.ok() ? EnsureOnServer(**client, model_path, *model, c.name, &uploaded)
                                                  : Result<v1::ModelInfo>(client.status());
    if (!on_server.ok()) {
      Fail(on_server.status().message());
      return 1;
    }
    if (uploaded && !o.quiet) {
      std::fprintf(stderr, "boa-client: %s was not in the store of boad at %s: uploaded it as %s:%u\n",
                   model_path.c_str(), (*client)->address().c_str(), on_server->name().c_str(), on_server->version());
    }
    (*client)->set_deadline(o.backend.timeout);
    backend = RemoteBackend(std::move(*client), on_server->id(), model->file_bytes);
  }
  timings.Add("load model", Since(t0));

  CodecOptions co;
  co.threads = o.threads ? o.threads : c.threads;
  co.chunk_length = c.chunk_size;
  if (!c.chunk_size) co.chunk_count = c.chunks_count;
  CodecStats cs, ds;
  if (do_compress) {
    t0 = std::chrono::steady_clock::now();
    Status s = CodeFile(true, *backend, to_compress, packed, co, &cs);
    if (!s.ok()) {
      Fail(s.message());
      return 1;
    }
    timings.Add("compression", Since(t0));
    if (!o.quiet) {
      std::printf("compressed %s: %" PRIu64 " -> %" PRIu64 " bytes (ratio %.3f) -> %s\n", to_compress.c_str(),
                  cs.input_bytes, cs.output_bytes, cs.output_bytes ? double(cs.input_bytes) / cs.output_bytes : 0.0,
                  packed.c_str());
    }
  }
  if (do_decompress) {
    t0 = std::chrono::steady_clock::now();
    Status s = CodeFile(false, *backend, packed, unpacked, co, &ds);
    if (!s.ok()) {
      Fail(s.message());
      return 1;
    }
    timings.Add("decompression", Since(t0));
    if (!o.quiet) std::printf("decompressed %s -> %s\n", packed.c_str(), unpacked.c_str());
  }
  if (o.verify && do_decompress) {
    Result<std::vector<uint8_t>> back = ReadFile(unpacked, 64ull << 30);
    if (!back.ok() || *back != *original) {
      Fail("verify: " + unpacked + " differs from " + to_compress);
      return 1;
    }
    if (!o.quiet) std::printf("verify: %s is identical to %s\n", unpacked.c_str(), to_compress.c_str());
  }
  if (o.show_timings) timings.Print();
  return 0;
}

}  // namespace boa::client
