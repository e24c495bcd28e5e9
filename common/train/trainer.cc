// The training loop: random windows from the training split, AdamW with warm-up and cosine
// decay, gradient clipping, validation each epoch, test at the end, model file out.
#include "common/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <malloc.h>

#include "common/codec/codec.h"
#include "common/train/boa_net.h"
#include "common/train/replicated_net.h"
#include "common/util/io.h"

namespace boa::train {

Status ValidateSplits(const std::vector<double>& s) {
  if (s.size() != 3) return Status::InvalidArgument("splits: expected 3 fractions [train, val, test]");
  double sum = 0;
  for (double v : s) {
    if (!(v >= 0 && v <= 1)) return Status::InvalidArgument("splits: each fraction must be within 0..1");
    sum += v;
  }
  if (std::fabs(sum - 1.0) > 1e-6) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "splits: fractions sum to %.9g, expected 1", sum);
    return Status::InvalidArgument(buf);
  }
  if (s[0] <= 0) return Status::InvalidArgument("splits: the training fraction must be > 0");
  return Status::Ok();
}

namespace {

Status ValidateOptions(const TrainOptions& o) {
  BOA_RETURN_IF_ERROR(o.model.Validate());
  BOA_RETURN_IF_ERROR(ValidateSplits(o.splits));
  if (o.files.empty()) return Status::InvalidArgument("no training data given");
  if (o.seq_len < 2 || o.seq_len > (1 << 24)) return Status::InvalidArgument("seq_len must be 2..16777216");
  if (o.batch_size < 1 || o.batch_size > 65536) return Status::InvalidArgument("batch_size must be 1..65536");
  // Comparisons written so that NaN fails them.
  if (!(o.lr > 0 && o.lr <= 1)) return Status::InvalidArgument("lr must be in (0, 1]");
  if (!(o.weight_decay >= 0 && o.weight_decay <= 1)) return Status::InvalidArgument("weight_decay must be in [0, 1]");
  if (!(o.max_seconds >= 0 && std::isfinite(o.max_seconds))) {
    return Status::InvalidArgument("max_seconds must be a finite number >= 0 (0: no limit)");
  }
  if (o.epochs < 1) return Status::InvalidArgument("epochs must be >= 1");
  if (o.eval_chunk < 2) return Status::InvalidArgument("eval chunk must be >= 2");
  if (o.patience < 0) return Status::InvalidArgument("patience must be >= 0");
  if (o.threads < 0 || o.threads > 256) return Status::InvalidArgument("threads must be 0 (all cores) to 256");
  if (o.precision != "fp32" && o.precision != "bf16") {
    return Status::InvalidArgument("precision '" + o.precision +
                                   "' is not supported by this CPU build of LibTorch for training "
                                   "(supported: fp32, bf16)");
  }
  if (o.match_model != "auto" && o.match_model != "on" && o.match_model != "off") {
    return Status::InvalidArgument("match model '" + o.match_model + "': expected auto, on or off");
  }
  return Status::Ok();
}

std::string CheckpointDir(const TrainOptions& o) {
  return o.checkpoint_dir.empty() ? o.output + ".ckpt" : o.checkpoint_dir;
}

Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomic(path, std::vector<uint8_t>(text.begin(), text.end()), true);
}

std::string LossCsv(const TrainReport& r) {
  std::string csv = "step,bits_per_byte\n";
  char line[64];
  for (const auto& [step, bpb] : r.loss_curve) {
    std::snprintf(line, sizeof line, "%llu,%.6f\n", static_cast<unsigned long long>(step), bpb);
    csv += line;
  }
  return csv;
}

std::string ReportJson(const TrainOptions& o, const TrainReport& r) {
  char buf[2048];
  std::string files;
  for (const std::string& f : o.files) files += (files.empty() ? "\"" : ", \"") + f + "\"";
  std::snprintf(buf, sizeof buf,
                "{\n  \"model\": {\"d_model\": %u, \"n_layers\": %u, \"d_state\": %u, \"d_conv\": %u, "
                "\"expand\": %u, \"dt_rank\": %u, \"parameters\": %llu},\n"
                "  \"data\": [%s],\n  \"splits\": [%g, %g, %g],\n"
                "  \"training\": {\"seq_len\": %lld, \"batch_size\": %lld, \"lr\": %g, \"weight_decay\": %g, "
                "\"epochs\": %d, \"max_seconds\": %g, \"seed\": %llu, \"precision\": \"%s\"},\n"
                "  \"steps\": %llu,\n  \"epochs_done\": %d,\n  \"best_epoch\": %d,\n  \"early_stopped\": %s,\n"
                "  \"bytes_seen\": %llu,\n  \"seconds\": %.3f,\n  \"train_bpb\": %.6f,\n  \"val_bpb\": %.6f,\n"
                "  \"test_bpb\": %.6f,\n  \"match_model\": %s,\n  \"probe_network_bytes\": %.0f,\n"
                "  \"probe_match_bytes\": %.0f,\n  \"derived_fields\": %s,\n  \"probe_derived_bytes\": %.0f\n}\n",
                o.model.d_model, o.model.n_layers, o.model.d_state, o.model.d_conv, o.model.expand, o.model.dt_rank,
                static_cast<unsigned long long>(o.model.ParameterCount()), files.c_str(), o.splits[0], o.splits[1],
                o.splits[2], static_cast<long long>(o.seq_len), static_cast<long long>(o.batch_size), o.lr,
                o.weight_decay, o.epochs, o.max_seconds, static_cast<unsigned long long>(o.seed), o.precision.c_str(),
                static_cast<unsigned long long>(r.steps), r.epochs_done, r.best_epoch, r.early_stopped ? "true" : "false",
                static_cast<unsigned long long>(r.bytes_seen), r.seconds, r.final_loss_bpb, r.val_bpb, r.test_bpb,
                r.match_model ? "true" : "false", r.probe_network_bytes, r.probe_match_bytes,
                r.derived_fields ? "true" : "false", r.probe_derived_bytes);
  return buf;
}

// Training state after a completed epoch (or a stop request inside one), next to the module
// and optimizer checkpoints.
struct Progress {
  int epoch = 0;  // epochs completed
  // steps counts every step done, so a checkpoint inside an epoch resumes at step
  // steps - epoch * steps_per_epoch of it.
  int best_epoch = 0;
  int since_best = 0;
  double best_val = 0;
  uint64_t steps = 0, bytes_seen = 0;
  double seconds = 0;
  uint64_t planned_steps = 0;  // the schedule's length once planned (0: not yet)
};

Status SaveProgress(const std::string& dir, const Progress& p, const TrainReport& r) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "epoch=%d\nbest_epoch=%d\nsince_best=%d\nbest_val=%.17g\nsteps=%llu\nbytes_seen=%llu\nseconds=%.17g\n"
                "planned_steps=%llu\n",
                p.epoch, p.best_epoch, p.since_best, p.best_val, static_cast<unsigned long long>(p.steps),
                static_cast<unsigned long long>(p.bytes_seen), p.seconds, static_cast<unsigned long long>(p.planned_steps));
  BOA_RETURN_IF_ERROR(WriteText(dir + "/loss.csv", LossCsv(r)));
  return WriteText(dir + "/state.txt", buf);
}

Status LoadProgress(const std::string& dir, Progress* p, TrainReport* r) {
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> text, ReadFile(dir + "/state.txt", 1 << 16));
  std::string s(text.begin(), text.end());
  unsigned long long steps = 0, bytes = 0, planned = 0;
  // planned_steps is absent from checkpoints of earlier builds: planned again on resume.
  if (std::sscanf(s.c_str(),
                  "epoch=%d\nbest_epoch=%d\nsince_best=%d\nbest_val=%lf\nsteps=%llu\nbytes_seen=%llu\nseconds=%lf\n"
                  "planned_steps=%llu",
                  &p->epoch, &p->best_epoch, &p->since_best, &p->best_val, &steps, &bytes, &p->seconds, &planned) < 7) {
    return Status::DataLoss(dir + "/state.txt: not a boa training checkpoint");
  }
  p->steps = steps;
  p->bytes_seen = bytes;
  p->planned_steps = planned;
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> csv, ReadFile(dir + "/loss.csv", 1ull << 30));
  std::string c(csv.begin(), csv.end());
  size_t pos = c.find('\n');
  while (pos != std::string::npos && pos + 1 < c.size()) {
    unsigned long long step;
    double bpb;
    if (std::sscanf(c.c_str() + pos + 1, "%llu,%lf", &step, &bpb) == 2) r->loss_curve.emplace_back(step, bpb);
    pos = c.find('\n', pos + 1);
  }
  return Status::Ok();
}

// A checkpoint is one directory, CHECKPOINT_DIR/gen-NNNNNN, whose files are all written and
// synced before CHECKPOINT_DIR/CURRENT (replaced atomically) names it, as LevelDB's CURRENT
// names its manifest: a process killed at any moment leaves the previous checkpoint whole and
// never pairs one step's module with another step's optimizer.
constexpr char kCurrentFile[] = "CURRENT";

std::string GenerationName(uint64_t g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "gen-%06llu", static_cast<unsigned long long>(g));
  return buf;
}

// The generation CURRENT names; 0 when there is no checkpoint.
Result<uint64_t> CurrentGeneration(const std::string& ckpt) {
  const std::string path = ckpt + "/" + kCurrentFile;
  if (!PathExists(path)) return uint64_t{0};
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> text, ReadFile(path, 64));
  const std::string s(text.begin(), text.end());
  unsigned long long g = 0;
  int end = 0;
  if (std::sscanf(s.c_str(), "gen-%6llu\n%n", &g, &end) != 1 || g == 0 || static_cast<size_t>(end) != s.size() ||
      s != GenerationName(g) + "\n") {
    return Status::DataLoss(path + ": expected one line gen-NNNNNN naming the checkpoint");
  }
  if (!PathExists(ckpt + "/" + GenerationName(g) + "/state.txt")) {
    return Status::DataLoss(path + ": names " + GenerationName(g) + ", which is not a complete checkpoint");
  }
  return uint64_t{g};
}

// Removes every generation but `keep` (older ones, and one a killed run left half written)
// and CURRENT's temporaries.
void RemoveOtherGenerations(const std::string& ckpt, uint64_t keep) {
  std::error_code ec;
  const std::string kept = GenerationName(keep), temporary = std::string(".") + kCurrentFile + ".tmp-";
  for (const auto& entry : std::filesystem::directory_iterator(ckpt, ec)) {
    const std::string name = entry.path().filename().string();
    if ((name.rfind("gen-", 0) == 0 && name != kept) || name.rfind(temporary, 0) == 0) {
      std::error_code rm;
      std::filesystem::remove_all(entry.path(), rm);
    }
  }
}

std::string FormatDuration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

}  // namespace

namespace {

Status TrainOrThrow(const TrainOptions& o, TrainReport* report);
Status OutOfMemory(const TrainOptions& o);


int CoresToUse(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

namespace {

Status OutOfMemory(const TrainOptions& o) {
  Result<uint64_t> need = EstimateTrainingBytes(o);
  return Status::ResourceExhausted("out of memory: training this model needs " +
                                   (need.ok() ? "about " + std::to_string(*need >> 20) + " MiB, " : std::string()) +
                                   "more than there is (lower d_model, layers, batch_size or seq_len)");
}

}  // namespace

void TuneHeapForTraining() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

Result<uint64_t> EstimateTrainingBytes(const TrainOptions& o) {
  BOA_RETURN_IF_ERROR(ValidateOptions(o));
  uint64_t data = 0;
  for (const std::string& f : o.files) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(f, ec);
    if (ec) return Status::NotFound(f + ": " + ec.message());
    data += size;
  }
  // In long double: the products of a huge request overflow 64 bits.
  using Real = long double;
  const ModelConfig& c = o.model;
  const Real D = c.d_model, E = c.d_inner(), L = c.n_layers;
  const Real replicas = static_cast<Real>(std::clamp<int64_t>(o.batch_size, 1, CoresToUse(o.threads)));
  // Each replica: weights and gradients; the primary: AdamW's two moments, the best and the
  // initial weights, and a checkpoint's serialised copy.
  const Real weights = (2 * replicas + 5) * static_cast<Real>(c.ParameterCount()) * sizeof(float);
  // Floats per byte, fitted to peak resident sizes with a margin (docs/training.md).
  const Real train = static_cast<Real>(o.batch_size) * static_cast<Real>(o.seq_len) * (L * 24 * E + 4 * 256 + 4 * D);
  const Real held = (o.files.size() > 1 ? Real(data) : 0) + Real(data) * (o.splits[1] + o.splits[2]);
  const Real eval_bytes = Real(data) * std::max(o.splits[1], o.splits[2]);
  const Real eval = replicas * std::min<Real>(o.eval_chunk, eval_bytes) * (6 * E + 2 * L * E + 4 * 256 + 2 * D);
  const Real total = Real(256ull << 20) + weights + std::max(train, eval) * sizeof(float) + held;
  return total >= Real(UINT64_MAX) ? UINT64_MAX : static_cast<uint64_t>(total);
}

namespace {

// Sets the written model's mixing flags as o.match_model says: "on" mixes the match and
// derived-field models, "off" neither; "auto" codes `probe` (held-out bytes) with the engine
// the three ways, as the codec would, and takes each step (match, then derived) that saves at
// least 0.1 %.
Status ChooseMatchModel(const TrainOptions& o, const std::vector<uint8_t>& probe, ModelWeights* best, TrainReport* r) {
  best->config.match_model = best->config.derived_fields = o.match_model == "on";
  if (o.match_model == "auto" && !probe.empty()) {
    BOA_ASSIGN_OR_RETURN(std::shared_ptr<const engine::Engine> engine, engine::Engine::Create(*best, engine::Backend::kAuto));
    MemorySource src(probe);
    CodecOptions co;
    co.chunk_length = static_cast<uint32_t>(o.eval_chunk);
    co.threads = CoresToUse(o.threads);
    BOA_ASSIGN_OR_RETURN(EvalResult e, Evaluate(engine, &src, co));
    r->probe_network_bytes = static_cast<double>(e.chunks) + e.network_code_bits / 8;
    r->probe_match_bytes = static_cast<double>(e.chunks) + e.match_code_bits / 8;
    r->probe_derived_bytes = static_cast<double>(e.chunks) + e.derived_code_bits / 8;
    double chosen = r->probe_network_bytes;
    if (r->probe_match_bytes < chosen * 0.999) {
      best->config.match_model = true;
      chosen = r->probe_match_bytes;
    }
    if (r->probe_derived_bytes < chosen * 0.999) best->config.match_model = best->config.derived_fields = true;
  }
  r->match_model = best->config.match_model;
  r->derived_fields = best->config.derived_fields;
  return Status::Ok();
}

}  // namespace

Status Train(const TrainOptions& o, TrainReport* report) {
  try {
    return TrainOrThrow(o, report);
  } catch (const std::bad_alloc&) {
    return OutOfMemory(o);
  } catch (const std::system_error& e) {  // a replica's thread that cannot start
    if (e.code() == std::errc::resource_unavailable_try_again) return OutOfMemory(o);
    return Status::Internal(std::string("training failed: ") + e.what());
  } catch (const c10::Error& e) {
    // LibTorch's CPU allocator reports failure as an error, not std::bad_alloc.
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") != std::string::npos) return OutOfMemory(o);
    return Status::Internal("training failed: " + what);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("training failed: ") + e.what());
  }
}

namespace {

Status TrainOrThrow(const TrainOptions& o, TrainReport* report) {
  BOA_RETURN_IF_ERROR(ValidateOptions(o));
  // The model and its report must never replace a training file.
  const std::vector<std::string> outputs = {o.output, o.output + ".report.json", o.output + ".loss.csv"};
  if (!o.output.empty()) BOA_RETURN_IF_ERROR(RefuseOverwritingInputs(outputs, o.files));
  // One file is memory-mapped; several are concatenated in memory.
  std::unique_ptr<MappedFile> mapped;
  std::vector<uint8_t> joined;
  const uint8_t* bytes = nullptr;
  size_t n = 0;
  if (o.files.size() == 1) {
    BOA_ASSIGN_OR_RETURN(mapped, MappedFile::Open(o.files[0]));
    bytes = mapped->data();
    n = mapped->size();
  } else {
    for (const std::string& f : o.files) {
      BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> part, ReadFile(f, 64ull << 30));
      joined.insert(joined.end(), part.begin(), part.end());
    }
    bytes = joined.data();
    n = joined.size();
  }
  const size_t train_end = static_cast<size_t>(n * o.splits[0]);
  const size_t val_end = std::min(n, train_end + static_cast<size_t>(n * o.splits[1]));
  if (train_end < static_cast<size_t>(o.seq_len) + 1) {
    return Status::InvalidArgument("the training split has " + std::to_string(train_end) +
                                   " bytes; seq_len " + std::to_string(o.seq_len) + " needs at least " +
                                   std::to_string(o.seq_len + 1) + " (lower seq_len or give more data)");
  }
  std::vector<uint8_t> val(bytes + train_end, bytes + val_end);
  std::vector<uint8_t> test(bytes + val_end, bytes + n);

  torch::manual_seed(o.seed);
  ReplicatedNet replicas(o.model, CoresToUse(o.threads), o.batch_size);
  BoaNet& net = replicas.primary();
  BOA_RETURN_IF_ERROR(LoadWeights(net, InitRandomModel(o.model, o.seed)));
  torch::optim::AdamW optimizer(net->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  TrainReport r;
  Progress state;
  const std::string ckpt = CheckpointDir(o);
  uint64_t generation = 0;  // the checkpoint CURRENT names; 0: none yet
  if (o.resume) {
    BOA_ASSIGN_OR_RETURN(generation, CurrentGeneration(ckpt));
    RemoveOtherGenerations(ckpt, generation);
  }
  const std::string resumed_from = ckpt + "/" + GenerationName(generation);
  const bool resuming = generation > 0;
  if (!o.resume) {
    // A new run numbers its checkpoints after an earlier run's, so until its first one is
    // complete CURRENT still names a whole (if unrelated) checkpoint.
    Result<uint64_t> earlier = CurrentGeneration(ckpt);
    if (earlier.ok()) generation = *earlier;
  }
  if (resuming) {
    BOA_RETURN_IF_ERROR(LoadProgress(resumed_from, &state, &r));
    try {
      torch::load(net, resumed_from + "/model.pt");
      torch::load(optimizer, resumed_from + "/optimizer.pt");
    } catch (const c10::Error& e) {
      return Status::DataLoss(resumed_from + ": cannot load the checkpoint (does it belong to this architecture?)");
    }
    r.resumed = true;
    r.steps = state.steps;
    r.bytes_seen = state.bytes_seen;
  } else if (o.resume && o.progress) {
    o.progress("no checkpoint in " + ckpt + ": starting from scratch", true);
  }
  ModelWeights best = ExportWeights(net);
  if (state.epoch > 0 && state.best_epoch > 0 && PathExists(resumed_from + "/best.boam")) {
    BOA_ASSIGN_OR_RETURN(LoadedModel b, LoadModelFile(resumed_from + "/best.boam"));
    best = std::move(b.weights);
  }

  const int64_t windows = std::max<int64_t>(1, static_cast<int64_t>(train_end) / o.seq_len);
  const int64_t steps_per_epoch = (windows + o.batch_size - 1) / o.batch_size;
  // The learning-rate schedule (warm-up, cosine decay) spans the steps this run will make:
  // all epochs, fewer under --max-bytes, and under --max-seconds as many as the measured
  // step time allows. A schedule planned for 100 epochs but cut by the clock after a few
  // would stop while the rate is still high (or still warming up). Under --max-seconds the
  // plan is re-estimated after 20, 200, 2000 and 20000 steps of this run (the first steps
  // are slow while caches warm), and the clock, not the plan, ends the run: steps past the
  // plan run at the final rate. The plan is kept in checkpoints for a resumed run.
  const int64_t step_bytes = static_cast<int64_t>(o.batch_size) * o.seq_len;
  int64_t step_limit = steps_per_epoch * o.epochs;
  if (o.max_bytes > 0) step_limit = std::min<int64_t>(step_limit, (o.max_bytes + step_bytes - 1) / step_bytes);
  int64_t planned = step_limit;
  if (state.planned_steps > 0) planned = std::min<int64_t>(planned, state.planned_steps);
  auto replan_point = [](int64_t run_steps) {
    return run_steps == 20 || run_steps == 200 || run_steps == 2000 || run_steps == 20000;
  };
  auto warmup_for = [&](int64_t steps) {
    return std::max<int64_t>(1, static_cast<int64_t>(o.warmup_fraction * steps));
  };
  int64_t warmup = warmup_for(planned);
  std::uniform_int_distribution<int64_t> offset(0, static_cast<int64_t>(train_end) - o.seq_len - 1);
  torch::Tensor train_bytes =
      torch::from_blob(const_cast<uint8_t*>(bytes), {static_cast<int64_t>(train_end)}, torch::kUInt8);
  // bf16: LibTorch's CPU autocast runs the matrix products in bfloat16; evaluation is fp32.
  const bool bf16 = o.precision == "bf16";
  replicas.Sync();

  // Validation and test bits per byte, the chunks shared out over the replicas.
  auto evaluate = [&](const std::vector<uint8_t>& data, double* bpb) -> Status {
    try {
      *bpb = replicas.CrossEntropyBitsPerByte(data, o.eval_chunk);
      return Status::Ok();
    } catch (const std::exception& e) {
      return Status::Internal(std::string("evaluation failed: ") + e.what());
    }
  };
  const auto start = std::chrono::steady_clock::now();
  // Seconds of earlier runs (resume) plus this run's; state.seconds is rewritten at every
  // checkpoint, so it must not be the base.
  const double earlier_seconds = state.seconds;
  auto elapsed = [&] {
    return earlier_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const uint64_t run_first_step = r.steps;  // steps before this run (resume)
  double recent = 0;
  int recent_n = 0;
  bool stop = false;
  const int last_epoch = o.run_epochs > 0 ? std::min(o.epochs, state.epoch + o.run_epochs) : o.epochs;
  // Writes the module, optimizer and progress; `best` too when it changed.
  auto save_checkpoint = [&](bool best_changed) -> Status {
    state.steps = r.steps;
    state.bytes_seen = r.bytes_seen;
    state.seconds = elapsed();
    const uint64_t next = generation + 1;
    const std::string dir = ckpt + "/" + GenerationName(next), previous = ckpt + "/" + GenerationName(generation);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // half written by a run that was killed
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IoError(dir + ": cannot create the checkpoint directory: " + ec.message());
    std::ostringstream module_bytes, optimizer_bytes;
    try {
      torch::save(net, module_bytes);
      torch::save(optimizer, optimizer_bytes);
    } catch (const c10::Error& e) {
      return Status::Internal(dir + ": cannot serialize the checkpoint");
    }
    BOA_RETURN_IF_ERROR(WriteText(dir + "/model.pt", module_bytes.str()));
    BOA_RETURN_IF_ERROR(WriteText(dir + "/optimizer.pt", optimizer_bytes.str()));
    // An unchanged best model is the previous generation's file, linked rather than written.
    if (state.best_epoch > 0 &&
        (best_changed || ::link((previous + "/best.boam").c_str(), (dir + "/best.boam").c_str()) != 0)) {
      BOA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/best.boam", SerializeModel(best, WeightType::kF32, ""), true));
    }
    BOA_RETURN_IF_ERROR(SaveProgress(dir, state, r));
    BOA_RETURN_IF_ERROR(WriteText(ckpt + "/" + kCurrentFile, GenerationName(next) + "\n"));
    generation = next;
    RemoveOtherGenerations(ckpt, generation);
    return Status::Ok();
  };
  for (int epoch = state.epoch; epoch < last_epoch && !stop; ++epoch) {
    net->train();
    bool epoch_complete = true;
    // A checkpoint written inside this epoch resumes where it stopped.
    const int64_t first_step = epoch == state.epoch ? static_cast<int64_t>(state.steps) - epoch * steps_per_epoch : 0;
    for (int64_t s = std::clamp<int64_t>(first_step, 0, steps_per_epoch); s < steps_per_epoch; ++s) {
      if (o.should_stop && o.should_stop()) {
        if (!o.output.empty()) BOA_RETURN_IF_ERROR(save_checkpoint(false));
        if (report) *report = r;  // how far it got
        return Status::Cancelled("training stopped at step " + std::to_string(r.steps) +
                                 (o.output.empty() ? "" : "; resume from the checkpoint in " + ckpt));
      }
      const int64_t step = epoch * steps_per_epoch + s;
      double lr = o.lr;
      if (step < warmup) {
        lr = o.lr * (step + 1) / warmup;
      } else {
        double progress = std::min(1.0, static_cast<double>(step - warmup) / std::max<int64_t>(1, planned - warmup));
        lr = o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * progress)));
      }
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      // Windows depend only on (seed, step): a resumed run sees the same data.
      std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(step));
      std::vector<torch::Tensor> rows;
      for (int64_t b = 0; b < o.batch_size; ++b) rows.push_back(train_bytes.narrow(0, offset(rng), o.seq_len + 1));
      torch::Tensor batch = torch::stack(rows).to(torch::kInt64);
      double loss = 0;
      try {
        loss = replicas.ForwardBackward(batch, bf16);
      } catch (const std::exception& e) {
        return Status::Internal(std::string("training step failed: ") + e.what());
      }
      torch::nn::utils::clip_grad_norm_(net->parameters(), o.grad_clip);
      optimizer.step();
      replicas.Sync();
      const double bpb = loss / std::log(2.0);
      if (!std::isfinite(bpb)) return Status::Internal("training diverged (loss is not finite); lower the learning rate");
      r.loss_curve.emplace_back(step + 1, bpb);
      r.steps = step + 1;
      r.bytes_seen += static_cast<uint64_t>(o.batch_size * o.seq_len);
      recent += bpb;
      ++recent_n;
      const double t = elapsed();
      const int64_t run_steps = static_cast<int64_t>(r.steps - run_first_step);
      const double step_seconds = (t - earlier_seconds) / std::max<int64_t>(1, run_steps);
      if (o.max_seconds > 0 && replan_point(run_steps)) {
        // Evaluation also spends the budget: a validation pass per epoch end and the test
        // pass, each byte a forward pass (about a third of a training byte's work).
        const double eval_byte_seconds = step_seconds / static_cast<double>(step_bytes) / 3;
        int64_t fit = static_cast<int64_t>(r.steps) +
                      static_cast<int64_t>(std::max(0.0, o.max_seconds - t) / step_seconds);
        for (int pass = 0; pass < 2; ++pass) {
          const double evals = static_cast<double>(val.size()) * static_cast<double>((fit + steps_per_epoch - 1) / steps_per_epoch) +
                               static_cast<double>(test.size());
          fit = static_cast<int64_t>(r.steps) +
                static_cast<int64_t>(std::max(0.0, o.max_seconds - t - evals * eval_byte_seconds) / step_seconds);
        }
        planned = std::clamp<int64_t>(fit, static_cast<int64_t>(r.steps), step_limit);
        // A finished warm-up is not restarted by a longer plan.
        const bool warmed = static_cast<int64_t>(r.steps) >= warmup;
        warmup = warmup_for(planned);
        if (warmed) warmup = std::min<int64_t>(warmup, static_cast<int64_t>(r.steps));
        state.planned_steps = static_cast<uint64_t>(planned);
      }
      if (o.progress && (s % 5 == 0 || s + 1 == steps_per_epoch)) {
        double avg = recent / recent_n;
        double rate = r.bytes_seen / std::max(t, 1e-9);
        double eta = step_seconds * static_cast<double>(std::max<int64_t>(0, step_limit - static_cast<int64_t>(r.steps)));
        if (o.max_seconds > 0) eta = std::min(eta, std::max(0.0, o.max_seconds - t));
        char line[256];
        std::snprintf(line, sizeof line, "epoch %d/%lld  step %lld/%lld  loss %.4f bits/byte  ratio ~%.2f  %.1f KB/s  ETA %s",
                      epoch + 1, static_cast<long long>((planned + steps_per_epoch - 1) / steps_per_epoch),
                      static_cast<long long>(s + 1), static_cast<long long>(steps_per_epoch), avg,
                      8 / std::max(avg, 1e-9), rate / 1e3, FormatDuration(eta).c_str());
        o.progress(line, false);
        recent = 0;
        recent_n = 0;
      }
      if ((o.max_seconds > 0 && t >= o.max_seconds) || static_cast<int64_t>(r.steps) >= step_limit) {
        stop = true;
        epoch_complete = s + 1 == steps_per_epoch;
        break;
      }
    }
    net->eval();
    double val_bpb = 0;
    if (!val.empty()) BOA_RETURN_IF_ERROR(evaluate(val, &val_bpb));
    r.val_bpb = val_bpb;
    // Without validation data the latest weights count as the best.
    const bool improved = state.best_epoch == 0 || val.empty() || val_bpb < state.best_val;
    if (improved) {
      state.best_val = val_bpb;
      state.best_epoch = epoch + 1;
      state.since_best = 0;
      best = ExportWeights(net);
    } else {
      ++state.since_best;
    }
    if (o.progress && !val.empty()) {
      char line[192];
      std::snprintf(line, sizeof line, "epoch %d: validation %.4f bits/byte (ratio ~%.2f)%s", epoch + 1, val_bpb,
                    8 / std::max(val_bpb, 1e-9), improved ? "" : "  (no improvement)");
      o.progress(line, true);
    }
    if (epoch_complete && !o.output.empty()) {
      state.epoch = epoch + 1;
      BOA_RETURN_IF_ERROR(save_checkpoint(improved));
    }
    r.epochs_done = epoch + 1;
    if (o.patience > 0 && state.since_best >= o.patience) {
      r.early_stopped = true;
      if (o.progress) o.progress("early stop: no validation gain for " + std::to_string(o.patience) + " epochs", true);
      stop = true;
    }
  }
  size_t tail = std::min<size_t>(r.loss_curve.size(), 20);
  for (size_t i = r.loss_curve.size() - tail; i < r.loss_curve.size(); ++i) r.final_loss_bpb += r.loss_curve[i].second / tail;
  // The written model is the one with the best validation loss.
  BOA_RETURN_IF_ERROR(LoadWeights(net, best));
  net->eval();
  r.best_epoch = state.best_epoch;
  if (!val.empty()) r.val_bpb = state.best_val;
  replicas.Sync();
  if (!test.empty()) BOA_RETURN_IF_ERROR(evaluate(test, &r.test_bpb));
  BOA_RETURN_IF_ERROR(ChooseMatchModel(o, !val.empty() ? val : test, &best, &r));
  r.seconds = elapsed();
  std::string meta = "created_by=boa-client train\nseed=" + std::to_string(o.seed) +
                     "\nsteps=" + std::to_string(r.steps) + "\nbytes_seen=" + std::to_string(r.bytes_seen) +
                     "\nval_bpb=" + std::to_string(r.val_bpb) + "\ntest_bpb=" + std::to_string(r.test_bpb) + "\n";
  if (!o.output.empty()) {
    BOA_RETURN_IF_ERROR(WriteFileAtomic(o.output, SerializeModel(best, o.output_type, meta), true));
    BOA_RETURN_IF_ERROR(WriteText(o.output + ".report.json", ReportJson(o, r)));
    BOA_RETURN_IF_ERROR(WriteText(o.output + ".loss.csv", LossCsv(r)));
  }
  if (report) *report = std::move(r);
  return Status::Ok();
}

}  // namespace

Result<double> MeasureTrainingBytesPerSecond(const ModelConfig& config, int64_t seq_len, int64_t batch_size,
                                             int steps, int threads) {
  BOA_RETURN_IF_ERROR(config.Validate());
  torch::manual_seed(1);
  ReplicatedNet replicas(config, CoresToUse(threads), batch_size);
  BoaNet& net = replicas.primary();
  BOA_RETURN_IF_ERROR(LoadWeights(net, InitRandomModel(config, 1)));
  replicas.Sync();
  torch::optim::AdamW optimizer(net->parameters(), torch::optim::AdamWOptions(1e-4));
  torch::Tensor batch = torch::randint(0, 256, {batch_size, seq_len + 1}, torch::kInt64);
  std::chrono::steady_clock::time_point start;
  for (int i = 0; i <= steps; ++i) {
    if (i == 1) start = std::chrono::steady_clock::now();
    replicas.ForwardBackward(batch, false);
    torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
    optimizer.step();
    replicas.Sync();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(steps) * batch_size * seq_len / seconds;
}

}  // namespace boa::train
