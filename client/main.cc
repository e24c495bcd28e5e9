// boa-client: the command-line interface. Follows zstd's conventions for files (keep the
// source, .boa suffix, -o/-c/-f/--rm, temporary file + rename, exit 1 on any failure with
// one line on stderr). compress, decompress and verify go to boad (--server, $BOA_SERVER,
// localhost:50051) unless --local runs the codec in this process.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <map>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "client/bench_command.h"
#include "client/codec_backend.h"
#include "client/experiment.h"
#include "client/new_experiment.h"
#include "client/progress.h"
#include "rpc/remote_client.h"
#include "client/server_commands.h"
#include "client/run_command.h"
#include "common/codec/codec.h"
#include "common/format/container.h"
#include "common/model/checkpoint.h"
#include "common/model/model.h"
#include "common/util/byte_size.h"
#include "common/util/io.h"
#ifdef BOA_WITH_TRAIN
#include "common/train/trainer.h"
#endif

namespace boa::client {
namespace {

constexpr const char* kSuffix = ".boa";

struct GlobalOptions {
  bool local = false;
  std::string server;
  double timeout = 0;
  bool quiet = false;
  bool verbose = false;
  bool progress = false;
  bool no_progress = false;
  std::string backend = "auto";
};

struct FileOptions {
  std::vector<std::string> inputs;
  std::string model;
  std::string output;
  bool to_stdout = false;
  bool force = false;
  bool remove_source = false;
  std::string chunk_size;
  uint64_t chunks = 0;
  int threads = 0;
  int lanes = 0;
};

void Error(const std::string& msg) { std::fprintf(stderr, "boa-client: %s\n", msg.c_str()); }

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

// A chunk size: a byte count that fits 32 bits.
Result<uint32_t> ParseSize(const std::string& text) {
  BOA_ASSIGN_OR_RETURN(uint64_t bytes, ParseByteSize(text));
  if (bytes > UINT32_MAX) return Status::InvalidArgument("'" + text + "' is too large");
  return static_cast<uint32_t>(bytes);
}

Result<engine::Backend> ParseBackend(const std::string& s) {
  if (s == "auto") return engine::Backend::kAuto;
  if (s == "scalar") return engine::Backend::kScalar;
  if (s == "avx2") return engine::Backend::kAvx2;
  return Status::InvalidArgument("unknown backend '" + s + "' (expected auto, scalar or avx2)");
}

BackendChoice Choice(const GlobalOptions& g) {
  BackendChoice c;
  c.local = g.local;
  c.server = g.server;
  c.timeout = g.timeout;
  return c;
}

bool ShowProgress(const GlobalOptions& g) {
  if (g.no_progress || g.quiet) return false;
  return g.progress || IsTerminal(2);
}

Result<CodecOptions> MakeCodecOptions(const GlobalOptions& g, const FileOptions& f) {
  CodecOptions o;
  if (!f.chunk_size.empty()) {
    BOA_ASSIGN_OR_RETURN(o.chunk_length, ParseSize(f.chunk_size));
    if (o.chunk_length == 0) return Status::InvalidArgument("--chunk-size must be at least 1");
  }
  o.chunk_count = f.chunks;
  if (f.threads < 0 || f.threads > 256) return Status::InvalidArgument("-T must be 0 (all cores) to 256");
  if (f.lanes < 0 || f.lanes > 4096) return Status::InvalidArgument("--lanes must be 0 (default) to 4096");
  o.threads = f.threads;
  o.lanes = f.lanes;
  BOA_ASSIGN_OR_RETURN(o.backend, ParseBackend(g.backend));
  return o;
}

// A file, or standard input for "-" (refused on a terminal: nobody types binary data, and
// waiting for it looks like a hang).
Result<std::unique_ptr<FileSource>> OpenInput(const std::string& input) {
  if (input != "-") return FileSource::Open(input);
  if (IsTerminal(0)) {
    return Status::InvalidArgument("standard input is a terminal: give a file name, or pipe the data in");
  }
  return FileSource::Stdin();
}

enum class Mode { kCompress, kDecompress, kVerify };

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

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Compresses, decompresses or verifies one input; returns a status whose message names it.
Status ProcessOne(Mode mode, const std::string& input, CodecBackend& backend, const CodecOptions& codec,
                  const GlobalOptions& g, const FileOptions& f) {
  const std::string label = input == "-" ? "<stdin>" : input;
  BOA_ASSIGN_OR_RETURN(std::string output, OutputPath(mode, input, f));
  BOA_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, OpenInput(input));
  const bool to_stdout = mode != Mode::kVerify && output.empty();
  if (to_stdout && mode == Mode::kCompress && IsTerminal(1) && !f.force) {
    return Status::InvalidArgument(label + ": refusing to write compressed data to a terminal (redirect it, or use -o)");
  }
  std::unique_ptr<AtomicOutputFile> file;
  std::unique_ptr<ByteSink> sink;
  if (mode == Mode::kVerify) {
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
    Result<std::unique_ptr<AtomicOutputFile>> created = AtomicOutputFile::Create(output, f.force, {src->identity()});
    if (!created.ok()) return created.status();
    file = std::move(created.value());
  }
  ByteSink* out = file ? static_cast<ByteSink*>(file.get()) : sink.get();

  // A decompression's progress counts decoded bytes against the original size in the
  // file's trailer: its compressed input is read (and sent to boad) far ahead of decoding.
  int64_t total = src->SizeHint();
  const bool show = ShowProgress(g), by_output = mode != Mode::kCompress && input != "-";
  if (show && by_output) {
    Result<ContainerInfo> info = ReadContainerInfo(input);
    total = info.ok() ? static_cast<int64_t>(info->trailer.original_length) : -1;
  }
  Progress progress(show, label, total, by_output);
  CodecOptions o = codec;
  o.progress = [&](uint64_t in, uint64_t outb) { progress.Update(in, outb); };
  CodecStats stats;
  auto start = std::chrono::steady_clock::now();
  Status s = mode == Mode::kCompress     ? backend.Compress(src.get(), out, o, &stats)
             : mode == Mode::kDecompress ? backend.Decompress(src.get(), out, o, &stats)
                                         : backend.Verify(src.get(), o, &stats);
  progress.Clear();
  if (!s.ok()) return s.WithContext(label);
  if (file) {
    BOA_RETURN_IF_ERROR(file->Commit(input == "-" ? "" : input));
  }
  double secs = Seconds(start);
  if (f.remove_source && file && input != "-") BOA_RETURN_IF_ERROR(RemoveSource(input, src->identity(), file->identity()));
  if (!g.quiet) {
    uint64_t original = mode == Mode::kCompress ? stats.input_bytes : stats.output_bytes;
    uint64_t packed = mode == Mode::kCompress ? stats.output_bytes : stats.input_bytes;
    double ratio = packed ? static_cast<double>(original) / packed : 0;
    const char* verb = mode == Mode::kVerify ? "OK" : "";
    std::string dest = mode == Mode::kVerify ? "" : (to_stdout ? " -> <stdout>" : " -> " + output);
    std::fprintf(stderr, "%s: %s%s%" PRIu64 " -> %" PRIu64 " bytes (ratio %.3f), %.2f s, %s/s%s\n",
                 label.c_str(), verb, *verb ? ", " : "",
                 mode == Mode::kCompress ? original : packed, mode == Mode::kCompress ? packed : original,
                 ratio, secs, HumanBytes(secs > 0 ? original / secs : 0).c_str(), dest.c_str());
    if (g.verbose) {
      std::fprintf(stderr, "  chunks %" PRIu64 " (%" PRIu64 " stored), chunk length %u, %d threads\n",
                   stats.chunks, stats.stored_chunks, stats.chunk_length, stats.threads);
    }
  }
  return Status::Ok();
}

int RunFiles(Mode mode, const GlobalOptions& g, FileOptions f) {
  if (f.inputs.empty()) f.inputs.push_back("-");
  if (!f.output.empty() && f.inputs.size() > 1) {
    Error("-o can only be used with a single input");
    return 1;
  }
  if (f.remove_source && (f.to_stdout || f.output == "-")) {
    Error("--rm needs an output file (not with -c)");
    return 1;
  }
  Result<CodecOptions> codec = MakeCodecOptions(g, f);
  if (!codec.ok()) {
    Error(codec.status().message());
    return 1;
  }
  Result<std::unique_ptr<CodecBackend>> backend = OpenBackend(Choice(g), f.model);
  if (!backend.ok()) {
    Error(backend.status().message());
    return 1;
  }
  int rc = 0;
  for (const std::string& input : f.inputs) {
    Status s = ProcessOne(mode, input, **backend, *codec, g, f);
    if (!s.ok()) {
      Error(s.message());
      rc = 1;
    }
  }
  return rc;
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

int RunInfo(const std::vector<std::string>& inputs) {
  int rc = 0;
  for (const std::string& path : inputs) {
    if (path == "-") {
      Error("info reads the index at the end of a file: give a file name, not standard input");
      rc = 1;
      continue;
    }
    Result<ContainerInfo> r = ReadContainerInfo(path);
    if (!r.ok()) {
      Error(r.status().WithContext(path).message());
      rc = 1;
      continue;
    }
    const ContainerInfo& i = *r;
    const ModelSummary& m = i.header.model;
    double ratio = i.file_bytes ? static_cast<double>(i.trailer.original_length) / i.file_bytes : 0;
    std::printf("%s\n", path.c_str());
    std::printf("  format version   %u\n", i.header.version);
    std::printf("  model id         %s\n", HexString(i.header.model_id.data(), 32).c_str());
    std::printf("  model            d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u, %s weights\n",
                m.d_model, m.n_layers, m.n_layers == 1 ? "" : "s", m.d_state, m.d_conv, m.expand,
                m.dt_rank, WeightTypeName(static_cast<WeightType>(m.weight_type)));
    std::printf("  chunk length     %u\n", i.header.chunk_length);
    std::printf("  chunks           %" PRIu64 " (%" PRIu64 " model-coded, %" PRIu64 " stored)\n",
                i.trailer.chunk_count, i.model_chunks, i.stored_chunks);
    std::printf("  original size    %" PRIu64 "\n", i.trailer.original_length);
    std::printf("  compressed size  %" PRIu64 "\n", i.file_bytes);
    std::printf("  ratio            %.3f\n", ratio);
    std::printf("  checksum         XXH3-64 %s\n", Hex64(i.trailer.content_checksum).c_str());
  }
  return rc;
}

int RunEval(const GlobalOptions& g, const FileOptions& f) {
  if (f.inputs.size() > 1) {
    Error("eval takes one input");
    return 1;
  }
  Result<CodecOptions> codec = MakeCodecOptions(g, f);
  if (!codec.ok()) {
    Error(codec.status().message());
    return 1;
  }
  const std::string input = f.inputs.empty() ? "-" : f.inputs[0];
  Result<std::unique_ptr<FileSource>> src = OpenInput(input);
  if (!src.ok()) {
    Error(src.status().message());
    return 1;
  }
  Result<std::unique_ptr<CodecBackend>> backend = OpenBackend(Choice(g), f.model);
  if (!backend.ok()) {
    Error(backend.status().message());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  Result<EvalResult> r = (*backend)->Eval(src->get(), *codec);
  if (!r.ok()) {
    Error(r.status().WithContext(input == "-" ? "<stdin>" : input).message());
    return 1;
  }
  double secs = Seconds(start);
  std::printf("bytes: %" PRIu64 " in %" PRIu64 " chunks, %" PRIu64 " predicted\n", r->bytes, r->chunks, r->predicted);
  std::printf("bits per byte: %.6f\n", r->bits_per_byte());
  std::printf("ideal coded size: %.0f bytes (ratio %.3f, quantized code %.6f bits per predicted byte)\n",
              r->ideal_bytes(), r->ideal_bytes() > 0 ? r->bytes / r->ideal_bytes() : 0,
              r->predicted ? r->ideal_code_bits / r->predicted : 0);
  if (g.verbose) std::printf("time: %.2f s (%s/s)\n", secs, HumanBytes(secs > 0 ? r->bytes / secs : 0).c_str());
  return 0;
}

#ifdef BOA_WITH_TRAIN
std::function<void(const std::string&, bool)> TrainProgress(const GlobalOptions& g) {
  return ProgressLines(g.quiet, g.no_progress);
}

struct TrainCliOptions {
  train::TrainOptions train;
  uint32_t d_model = 256;
  uint32_t layers = 1;
  std::string splits = "0.8,0.1,0.1";
  std::string config;
  std::string name;  // train on boad, registering the model under this name
  std::string dtype = "f32";
  std::string max_bytes;
  bool force = false;
};



Result<std::vector<double>> ParseSplits(const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      size_t used = 0;
      out.push_back(std::stod(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (...) {
      return Status::InvalidArgument("--splits: '" + part + "' is not a number (expected e.g. 0.8,0.1,0.1)");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Trains on boad: the files are paths inside its train_data_dir and the model is registered
// in its store as --name. The job goes on if this client stops.
int RunRemoteTrain(const GlobalOptions& g, const TrainCliOptions& o) {
  Result<std::unique_ptr<rpc::RemoteClient>> r = rpc::RemoteClient::Connect(rpc::ServerAddress(g.server));
  if (!r.ok()) {
    Error(r.status().message());
    return 1;
  }
  (*r)->set_deadline(g.timeout);
  v1::TrainRequest req;
  req.set_name(o.name);
  for (const std::string& f : o.train.files) req.add_files(f);
  req.set_d_model(o.train.model.d_model);
  req.set_n_layers(o.train.model.n_layers);
  req.set_seq_len(static_cast<uint64_t>(o.train.seq_len));
  req.set_batch_size(static_cast<uint64_t>(o.train.batch_size));
  req.set_lr(o.train.lr);
  req.set_epochs(static_cast<uint32_t>(o.train.epochs));
  req.set_max_seconds(o.train.max_seconds);
  req.set_max_bytes(o.train.max_bytes);
  for (double v : o.train.splits) req.add_splits(v);
  req.set_seed(o.train.seed);
  req.set_precision(o.train.precision);
  req.set_dtype(o.dtype);
  req.set_patience(static_cast<uint32_t>(o.train.patience));
  return FollowJob(**r, [&](const JobEventFn& on_event) { return (*r)->Train(req, on_event); }, TrainProgress(g), g.quiet);
}

int RunTrain(const GlobalOptions& g, TrainCliOptions o) {
  if (!o.config.empty()) {
    Result<ExperimentConfig> c = LoadExperiment(o.config);
    if (!c.ok()) {
      Error(c.status().message());
      return 1;
    }
    for (const std::string& w : c->warnings) std::fprintf(stderr, "boa-client: warning: %s\n", w.c_str());
    if (o.train.files.empty()) o.train.files = {c->Resolve(c->file_path)};
    o.d_model = c->d_model;
    o.layers = c->num_layers;
    o.train.seq_len = c->seq_len;
    o.train.batch_size = c->batch_size;
    o.train.lr = c->lr;
    o.train.epochs = c->epochs;
    o.train.max_seconds = c->max_seconds;
    o.train.max_bytes = c->max_bytes;
    o.train.weight_decay = c->weight_decay;
    o.train.patience = c->patience;
    o.train.seed = c->seed;
    o.train.precision = c->precision;
    if (!o.train.threads) o.train.threads = c->threads;
    std::string sp;
    for (double v : c->splits) sp += (sp.empty() ? "" : ",") + std::to_string(v);
    o.splits = sp;
    if (o.train.output.empty()) o.train.output = c->ModelOutput();
  }
  if (o.train.files.empty()) {
    Error("no training data (give files or --config NAME)");
    return 1;
  }
  if (o.dtype != "f32" && o.dtype != "f16") {
    Error("unknown --dtype '" + o.dtype + "' (expected f32 or f16)");
    return 1;
  }
  o.train.output_type = o.dtype == "f16" ? WeightType::kF16 : WeightType::kF32;
  if (!o.max_bytes.empty()) {
    Result<uint64_t> b = ParseByteSize(o.max_bytes);
    if (!b.ok()) {
      Error("--max-bytes: " + b.status().message());
      return 1;
    }
    o.train.max_bytes = *b;
  }
  o.train.model = ModelConfig::Default(o.d_model, o.layers);
  Result<std::vector<double>> splits = ParseSplits(o.splits);
  if (!splits.ok()) {
    Error(splits.status().message());
    return 1;
  }
  o.train.splits = *splits;
  if (!o.name.empty()) return RunRemoteTrain(g, o);
  if (o.train.output.empty()) {
    Error("no output model given (use -o MODEL)");
    return 1;
  }
  if (!o.force && !o.train.resume && PathExists(o.train.output)) {
    Error(o.train.output + ": already exists (use -f to overwrite)");
    return 1;
  }
  o.train.progress = TrainProgress(g);
  if (g.verbose) {
    Result<uint64_t> need = train::EstimateTrainingBytes(o.train);
    if (need.ok()) std::fprintf(stderr, "memory: about %" PRIu64 " MiB at the peak\n", *need >> 20);
  }
  train::TuneHeapForTraining();
  train::TrainReport r;
  Status s = train::Train(o.train, &r);
  if (!s.ok()) {
    Error(s.message());
    return 1;
  }
  if (!g.quiet) {
    std::printf("%s: %" PRIu64 " steps, %s of training data in %.1f s (%.1f KB/s)\n", o.train.output.c_str(), r.steps,
                HumanBytes(static_cast<double>(r.bytes_seen)).c_str(), r.seconds, r.bytes_seen / r.seconds / 1e3);
    std::printf("bits per byte: train %.4f, validation %.4f (best, epoch %d), test %.4f (ratio ~%.2f)%s\n",
                r.final_loss_bpb, r.val_bpb, r.best_epoch, r.test_bpb, r.test_bpb > 0 ? 8 / r.test_bpb : 0,
                r.early_stopped ? ", stopped early" : "");
    std::printf("report %s.report.json, loss curve %s.loss.csv\n", o.train.output.c_str(), o.train.output.c_str());
  }
  return 0;
}
#endif

struct InitOptions {
  uint32_t d_model = 256;
  uint32_t layers = 1;
  uint64_t seed = 1;
  std::string dtype = "f32";
  std::string output;
  bool force = false;
};

int RunModelInit(const GlobalOptions& g, const InitOptions& o) {
  ModelConfig c = ModelConfig::Default(o.d_model, o.layers);
  Status valid = c.Validate();
  if (!valid.ok()) {
    Error(valid.message());
    return 1;
  }
  if (o.dtype != "f32" && o.dtype != "f16") {
    Error("unknown --dtype '" + o.dtype + "' (expected f32 or f16)");
    return 1;
  }
  WeightType type = o.dtype == "f16" ? WeightType::kF16 : WeightType::kF32;
  ModelWeights w = InitRandomModel(c, o.seed);
  std::string meta = "created_by=boa-client model init\nseed=" + std::to_string(o.seed) + "\n";
  std::vector<uint8_t> bytes = SerializeModel(w, type, meta);
  Status s = WriteFileAtomic(o.output, bytes, o.force);
  if (!s.ok()) {
    Error(s.message());
    return 1;
  }
  Sha256Digest id = Sha256(bytes.data(), bytes.size());
  if (!g.quiet) {
    std::printf("%s: d_model %u, %u layer%s, %" PRIu64 " parameters, %s, %zu bytes\n", o.output.c_str(),
                c.d_model, c.n_layers, c.n_layers == 1 ? "" : "s", c.ParameterCount(), o.dtype.c_str(),
                bytes.size());
    std::printf("model id %s\n", HexString(id.data(), id.size()).c_str());
  }
  return 0;
}

struct ImportOptions {
  std::string input, output, dtype = "f32";
  bool force = false;
};

int RunModelImport(const GlobalOptions& g, const ImportOptions& o) {
  if (o.dtype != "f32" && o.dtype != "f16") {
    Error("unknown --dtype '" + o.dtype + "' (expected f32 or f16)");
    return 1;
  }
  Result<std::vector<uint8_t>> file = ReadFile(o.input, 16ull << 30);
  if (!file.ok()) {
    Error(file.status().message());
    return 1;
  }
  Result<ModelWeights> w = ImportTorchCheckpoint(*file);
  if (!w.ok()) {
    Error(w.status().WithContext(o.input).message());
    return 1;
  }
  std::vector<uint8_t> bytes = SerializeModel(*w, o.dtype == "f16" ? WeightType::kF16 : WeightType::kF32,
                                              "created_by=boa-client model import\nsource=" + o.input + "\n");
  Result<FileIdentity> input = IdentifyPath(o.input);
  Status s = input.ok() ? WriteFileAtomic(o.output, bytes, o.force, {*input}) : input.status();
  if (!s.ok()) {
    Error(s.message());
    return 1;
  }
  if (!g.quiet) {
    const ModelConfig& c = w->config;
    Sha256Digest id = Sha256(bytes.data(), bytes.size());
    std::printf("%s: d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u, %s\n", o.output.c_str(),
                c.d_model, c.n_layers, c.n_layers == 1 ? "" : "s", c.d_state, c.d_conv, c.expand, c.dt_rank,
                o.dtype.c_str());
    std::printf("model id %s\n", HexString(id.data(), id.size()).c_str());
  }
  return 0;
}

int RunModelInfo(const std::string& path) {
  Result<LoadedModel> m = LoadModelFile(path);
  if (!m.ok()) {
    Error(m.status().message());
    return 1;
  }
  const ModelConfig& c = m->weights.config;
  std::printf("%s\n", path.c_str());
  std::printf("  model id         %s\n", m->IdHex().c_str());
  std::printf("  architecture     d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u\n",
              c.d_model, c.n_layers, c.n_layers == 1 ? "" : "s", c.d_state, c.d_conv, c.expand, c.dt_rank);
  std::printf("  parameters       %" PRIu64 " (%" PRIu64 " multiply-adds per byte)\n", c.ParameterCount(), c.MacsPerByte());
  std::printf("  weights          %s, file %" PRIu64 " bytes\n", WeightTypeName(m->stored_type), m->file_bytes);
  if (!m->metadata.empty()) {
    std::printf("  metadata\n");
    size_t start = 0;
    while (start < m->metadata.size()) {
      size_t nl = m->metadata.find('\n', start);
      if (nl == std::string::npos) nl = m->metadata.size();
      std::printf("    %s\n", m->metadata.substr(start, nl - start).c_str());
      start = nl + 1;
    }
  }
  return 0;
}

void AddFileOptions(CLI::App* cmd, FileOptions* f, bool with_output, bool with_chunks) {
  cmd->add_option("files", f->inputs, "Input files ('-' or none: standard input)");
  auto* model = cmd->add_option("-m,--model", f->model,
                                "Model: a model file (a path or *.boam: works in this process), or NAME[:VERSION] or id on boad" +
                                    std::string(with_chunks ? "" : " (boad: default is the one the stream names)"));
  if (with_chunks) model->required();
  if (with_output) {
    cmd->add_option("-o,--output", f->output, "Output file (single input only)");
    cmd->add_flag("-c,--stdout", f->to_stdout, "Write to standard output");
    cmd->add_flag("-f,--force", f->force, "Overwrite existing outputs (and write to a terminal)");
    cmd->add_flag("--rm", f->remove_source, "Remove the source file after success");
  }
  if (with_chunks) {
    auto* size = cmd->add_option("--chunk-size", f->chunk_size, "Bytes per chunk, e.g. 65536, 64K, 1M (default 64K)");
    auto* count = cmd->add_option("--chunks", f->chunks, "Number of chunks instead of a size (regular files only)");
    size->excludes(count);
  }
  cmd->add_option("-T,--threads", f->threads, "Worker threads (default: all cores)");
}

// Every option name of `app` and its subcommands (-T, --threads), and whether it takes a
// value: read from the parser itself, so the command line is normalised by the same rules.
void CollectOptions(const CLI::App& app, std::map<std::string, bool>* takes_value) {
  for (const CLI::Option* o : app.get_options()) {
    const bool value = o->get_expected_min() > 0;
    for (const std::string& n : o->get_snames()) (*takes_value)["-" + n] |= value;
    for (const std::string& n : o->get_lnames()) (*takes_value)["--" + n] |= value;
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) CollectOptions(*sub, takes_value);
}

// Brings a command line into the form the parser takes, `COMMAND [OPTIONS] [FILES]`:
// - options before the command are moved after it (git style: `boa-client --local -T 1
//   compress f.bin`), since an option placed there may belong to the command;
// - zstd's mode flags pick the command (`-d` decompress, `-t` verify, `-l` info, `-z`
//   compress), and a command line that starts with a file compresses (`boa-client f.bin`);
//   a file named like a command is given after `--` or as `./compress`.
std::vector<std::string> NormalizeCommandLine(const CLI::App& app, std::vector<std::string> args) {
  std::map<std::string, bool> takes_value;
  CollectOptions(app, &takes_value);
  static const std::map<std::string, std::string> kModeFlags = {
      {"-d", "decompress"}, {"--decompress", "decompress"}, {"-t", "verify"}, {"--test", "verify"},
      {"-l", "info"},       {"--list", "info"},             {"-z", "compress"}, {"--compress", "compress"}};
  std::vector<std::string> leading;
  std::string mode;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help" || a == "-V" || a == "--version") return args;
    if (a == "--" || a == "-" || a.empty() || a[0] != '-') break;  // the first positional
    if (auto m = kModeFlags.find(a); m != kModeFlags.end()) {
      mode = m->second;
      continue;
    }
    leading.push_back(a);
    auto t = takes_value.find(a);  // "--opt=value" and "-T1" carry their value already
    if (t != takes_value.end() && t->second && i + 1 < args.size()) leading.push_back(args[++i]);
  }
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  std::vector<std::string> out;
  auto is_command = [&](const std::string& name) {
    return !app.get_subcommands([&](const CLI::App* sub) { return sub->check_name(name); }).empty();
  };
  if (mode.empty() && !rest.empty() && is_command(rest[0])) {
    out.push_back(rest[0]);
    rest.erase(rest.begin());
  } else if (!mode.empty() || !rest.empty() || (!leading.empty() && !isatty(0))) {
    out.push_back(mode.empty() ? "compress" : mode);  // zstd: files (or piped data) compress
  } else {
    return args;  // no command at all: the parser says so
  }
  out.insert(out.end(), leading.begin(), leading.end());
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"boa: lossless compression of physics data with the BOA neural network", "boa-client"};
  app.set_version_flag("-V,--version", "boa-client 0.1.0 (.boa format 2)");
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  GlobalOptions g;
  app.add_flag("--local", g.local, "Work in this process, never on boad (-m is then a model file)");
  app.add_option("--server", g.server, "boad address HOST:PORT (default $BOA_SERVER, else localhost:50051)");
  app.add_option("--timeout", g.timeout, "Give up on a server request after this many seconds (default: none)");
  app.add_flag("-q,--quiet", g.quiet, "Print nothing but errors");
  app.add_flag("-v,--verbose", g.verbose, "Print more detail");
  app.add_flag("--progress", g.progress, "Show progress even when stderr is not a terminal");
  app.add_flag("--no-progress", g.no_progress, "Never show progress");
  app.add_option("--backend", g.backend, "Kernel backend: auto, scalar or avx2 (output is identical)");

  FileOptions comp, decomp, verify, eval;
  auto* c = app.add_subcommand("compress", "Compress files to FILE.boa");
  AddFileOptions(c, &comp, true, true);
  auto* d = app.add_subcommand("decompress", "Decompress FILE.boa to FILE");
  AddFileOptions(d, &decomp, true, false);
  d->add_option("--lanes", decomp.lanes, "Chunks decoded together per thread (default 64)");
  auto* t = app.add_subcommand("verify", "Decode and check files without writing anything");
  AddFileOptions(t, &verify, false, false);
  std::vector<std::string> info_files;
  auto* l = app.add_subcommand("info", "Show a .boa file's header and index (no model needed)");
  l->add_option("files", info_files, "Files")->required();
  auto* e = app.add_subcommand("eval", "Model cross-entropy (bits per byte) and ideal coded size of a file");
  AddFileOptions(e, &eval, false, true);

  auto* model = app.add_subcommand("model", "Model files");
  model->require_subcommand(1);
  model->fallthrough();
  InitOptions init;
  auto* mi = model->add_subcommand("init", "Write a deterministic randomly initialised model");
  mi->add_option("--d-model", init.d_model, "Model width (default 256)");
  mi->add_option("--layers", init.layers, "Number of Mamba blocks (default 1)");
  mi->add_option("--seed", init.seed, "Random seed (default 1)");
  mi->add_option("--dtype", init.dtype, "Stored weight type: f32 or f16 (default f32)");
  mi->add_option("-o,--output", init.output, "Output model file")->required();
  mi->add_flag("-f,--force", init.force, "Overwrite an existing file");
#ifdef BOA_WITH_TRAIN
  TrainCliOptions tr;
  auto* train_cmd = app.add_subcommand("train", "Train a model on files (LibTorch, CPU)");
  train_cmd->add_option("files", tr.train.files, "Training data (concatenated)");
  train_cmd->add_option("--config", tr.config, "Experiment config: NAME (experiments/NAME/NAME.yaml) or a path");
  train_cmd->add_option("-o,--output", tr.train.output, "Model file to write (with --config: <name>_final_model_<precision>.boam)");
  train_cmd->add_option("--name", tr.name, "Train on boad instead (files inside its train_data_dir) and register the model as NAME");
  train_cmd->add_flag("-f,--force", tr.force, "Overwrite an existing model file");
  train_cmd->add_option("--d-model", tr.d_model, "Model width (default 256)");
  train_cmd->add_option("--layers", tr.layers, "Number of Mamba blocks (default 1)");
  train_cmd->add_option("--seq-len", tr.train.seq_len, "Bytes per training window (default 4096)");
  train_cmd->add_option("--batch-size", tr.train.batch_size, "Windows per step (default 4)");
  train_cmd->add_option("--lr", tr.train.lr, "Peak learning rate (default 5e-4)");
  train_cmd->add_option("--epochs", tr.train.epochs, "Passes over the training split (default 1)");
  train_cmd->add_option("--max-seconds", tr.train.max_seconds, "Stop after this much wall time");
  train_cmd->add_option("--splits", tr.splits, "Train,validation,test fractions (default 0.8,0.1,0.1)");
  train_cmd->add_option("--seed", tr.train.seed, "Random seed (default 1)");
  train_cmd->add_option("--precision", tr.train.precision, "fp32 or bf16 (autocast; the CPU build's training precisions)");
  train_cmd->add_option("--max-bytes", tr.max_bytes, "Stop after this many training bytes, e.g. 50M (0: no limit)");
  train_cmd->add_option("-T,--threads", tr.train.threads, "Threads (default: all cores)");
  train_cmd->add_option("--patience", tr.train.patience, "Stop after this many epochs without validation gain (0: off)");
  train_cmd->add_flag("--resume", tr.train.resume, "Continue from the last epoch checkpoint (<output>.ckpt)");
  train_cmd->add_option("--checkpoint-dir", tr.train.checkpoint_dir, "Where epoch checkpoints go (default <output>.ckpt)");
  train_cmd->add_option("--dtype", tr.dtype, "Stored weight type of the model file: f32 or f16 (default f32)");
#endif
  BenchOptions bench;
  std::string bench_chunk;
  auto* bench_cmd = app.add_subcommand("bench", "Compare boa with xz, zstd, brotli, bzip3 and bzip2 on a file");
  bench_cmd->add_option("file", bench.file, "File to compress")->required();
  bench_cmd->add_option("-m,--model", bench.model, "A model file (in this process) or a model on boad (omit for the baselines only)");
  bench_cmd->add_option("--chunk-size", bench_chunk, "Bytes per chunk for boa (default 64K)");
  bench_cmd->add_option("-T,--threads", bench.threads, "Threads for boa (default: all cores)");
  auto* new_exp = app.add_subcommand("new-experiment", "Create experiments/NAME/NAME.yaml interactively (answers may be piped)");
  RunOptions run;
  auto* run_cmd = app.add_subcommand("run", "Run an experiment: train (or load) -> compress -> decompress -> verify, in this "
                                             "process (on boad with --server or $BOA_SERVER)");
  run_cmd->add_option("--config", run.config, "NAME (experiments/NAME/NAME.yaml) or a path")->required();
  auto* only_train = run_cmd->add_flag("--train-only", run.train_only, "Only train");
  auto* only_compress = run_cmd->add_flag("--compress-only", run.compress_only, "Only compress (needs a model)");
  auto* only_decompress = run_cmd->add_flag("--decompress-only", run.decompress_only, "Only decompress <name>.boa");
  only_train->excludes(only_compress)->excludes(only_decompress);
  only_compress->excludes(only_decompress);
  run_cmd->add_flag("--verify", run.verify, "Compare the decompressed file with the original");
  run_cmd->add_flag("--show-timings", run.show_timings, "Print the time of each stage");
  run_cmd->add_option("--model-path", run.model_path, "Use this model instead of training");
  run_cmd->add_option("--device", run.device, "cpu or cuda");
  run_cmd->add_option("--precision", run.precision, "Training precision (fp32)");
  run_cmd->add_option("-T,--threads", run.threads, "Threads (default: all cores)");
  run_cmd->add_flag("--resume", run.resume, "Continue training from the last epoch checkpoint");
  ImportOptions imp;
  auto* mimp = model->add_subcommand("import", "Convert a PyTorch checkpoint (torch.save(model.state_dict())) to a model file");
  mimp->add_option("checkpoint", imp.input, "The .pt file")->required();
  mimp->add_option("-o,--output", imp.output, "Model file to write")->required();
  mimp->add_option("--dtype", imp.dtype, "Stored weight type: f32 or f16 (default f32)");
  mimp->add_flag("-f,--force", imp.force, "Overwrite an existing file");
  std::string show_path;
  auto* ms = model->add_subcommand("show", "Show a model file's architecture and id");
  ms->add_option("file", show_path, "Model file")->required();
  ServerCommands server_cmds;
  AddServerCommands(&app, &server_cmds);

  try {
    std::vector<std::string> args = NormalizeCommandLine(app, std::vector<std::string>(argv + 1, argv + argc));
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    app.parse(args);
  } catch (const CLI::Success& ex) {
    return app.exit(ex);
  } catch (const CLI::ParseError& ex) {
    if (ex.get_exit_code() == 0) return app.exit(ex);
    Error(ex.what());
    std::fprintf(stderr, "Run 'boa-client --help' for usage.\n");
    return 1;
  }
  if (int rc = RunServerCommand(server_cmds, g.server, g.quiet, g.timeout, ProgressLines(g.quiet, g.no_progress)); rc >= 0) {
    return rc;
  }
  if (c->parsed()) return RunFiles(Mode::kCompress, g, comp);
  if (d->parsed()) return RunFiles(Mode::kDecompress, g, decomp);
  if (t->parsed()) return RunFiles(Mode::kVerify, g, verify);
  if (l->parsed()) return RunInfo(info_files);
  if (e->parsed()) return RunEval(g, eval);
  if (mi->parsed()) return RunModelInit(g, init);
  if (ms->parsed()) return RunModelInfo(show_path);
  if (mimp->parsed()) return RunModelImport(g, imp);
  if (bench_cmd->parsed()) {
    if (!bench_chunk.empty()) {
      Result<uint32_t> n = ParseSize(bench_chunk);
      if (!n.ok()) {
        Error(n.status().message());
        return 1;
      }
      bench.chunk_length = *n;
    }
    bench.backend = Choice(g);
    return RunBench(bench);
  }
  if (new_exp->parsed()) return NewExperiment(std::cin, std::cout, std::cerr);
  if (run_cmd->parsed()) {
    run.quiet = g.quiet;
    run.backend = Choice(g);
#ifdef BOA_WITH_TRAIN
    run.progress = TrainProgress(g);
#endif
    return RunExperiment(run);
  }
#ifdef BOA_WITH_TRAIN
  if (train_cmd->parsed()) return RunTrain(g, tr);
#endif
  return 1;
}

}  // namespace
}  // namespace boa::client

int main(int argc, char** argv) {
  boa::RemoveTemporariesOnSignal();
  try {
    return boa::client::Main(argc, argv);
  } catch (const std::bad_alloc&) {  // unwinding has removed every temporary output
    std::fprintf(stderr, "boa-client: out of memory\n");
    return 1;
  }
}
