// boa-bench: prints this machine's FMA peak, the engine's throughput in step mode
// (decompression) and chunk mode (compression) at several lane counts, each kernel's share of
// a forward pass, and the cost of the quantizer and range coder. Tables go to
// docs/performance.md. Timings on shared machines are noisy: engine cells are sampled in
// interleaved rounds (the median of all samples, and of those taken on a quiet core: see
// contention_probe.h), other cells are the median of several runs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/contention_probe.h"
#include "bench/fma_peak.h"
#include "bench/kernel_budget.h"
#include "bench/lane_batch.h"
#include "common/codec/codec.h"
#include "common/codec/chunk_coder.h"
#include "common/coder/frequency_table.h"
#include "common/coder/lzma2.h"
#include "common/coder/range_coder.h"
#include "common/engine/engine.h"
#include "common/model/model.h"
#ifdef BOA_WITH_TRAIN
#include "common/train/trainer.h"
#endif

namespace boa::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs the per-thread work functions (each returns bytes processed) at once for about
// `seconds`; returns the aggregate bytes per second.
double TimeOnce(const std::vector<std::function<uint64_t()>>& works, double seconds) {
  const size_t threads = works.size();
  std::vector<uint64_t> bytes(threads, 0);
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::duration<double>(seconds);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      while (Clock::now() < deadline) bytes[t] += works[t]();
    });
  }
  for (auto& th : pool) th.join();
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t total = 0;
  for (uint64_t b : bytes) total += b;
  return total / dt;
}

// Runs `work` on `threads` threads at once, `reps` times for about `seconds` each; returns
// the median aggregate bytes per second.
double MeasureRate(int threads, int reps, double seconds, const std::function<std::function<uint64_t()>()>& make_work) {
  std::vector<std::function<uint64_t()>> works;
  for (int t = 0; t < threads; ++t) works.push_back(make_work());
  for (auto& w : works) w();  // warm up
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) rates.push_back(TimeOnce(works, seconds));
  return Median(rates);
}

struct Settings {
  double seconds = 0.4;
  int reps = 3;
  // The engine table: rounds over all cells, each sampling every cell for about this long.
  int engine_rounds = 150;
  double engine_seconds = 0.002;
  int budget_rounds = 40;  // the kernel budget: best of this many samples per kernel
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string backend = "auto";
  bool chunk_study = false;
  bool budget_only = false;
  bool codec_only = false;
  int codec_rounds = 5;  // the in-process codec table: rounds over this much data
  size_t codec_bytes = 1 << 20;
  std::string model_path, data_path;  // chunk study on a real model and file
};

// One thread's share of an engine sample: bytes per second of call time, and the slowest of
// the contention probes timed around and between its calls.
struct ThreadSample {
  double rate, slowest_probe;
};

// Probes between calls at least this often: a co-tenant's burst rarely fits between two
// probes, and a probe (~0.1 ms) still costs no more than a fifth of the sample's wall time.
constexpr double kProbeEvery = 0.0005;

// One engine sample: every thread makes one untimed call (so its caches are warm on the core
// it runs on) and times the probe; once all threads are ready they call their work together
// until about `seconds` of calls have run (at least one), probing every kProbeEvery between
// calls and once more at the end. A call longer than kProbeEvery is probed only around it.
std::vector<ThreadSample> TimeSample(const std::vector<std::function<uint64_t()>>& works, double seconds,
                                     engine::Backend backend) {
  std::vector<ThreadSample> out(works.size());
  std::atomic<size_t> ready{0};
  std::vector<std::thread> pool;
  for (size_t t = 0; t < works.size(); ++t) {
    pool.emplace_back([&, t] {
      works[t]();
      ContentionProbe probe(backend);
      double slowest = probe.Seconds(), busy = 0, since_probe = 0;
      ready.fetch_add(1);
      while (ready.load() < works.size()) std::this_thread::yield();
      uint64_t bytes = 0;
      while (busy < seconds) {
        const auto t0 = Clock::now();
        bytes += works[t]();
        const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        busy += dt;
        since_probe += dt;
        if (since_probe >= kProbeEvery) {
          slowest = std::max(slowest, probe.Seconds());
          since_probe = 0;
        }
      }
      if (since_probe > 0) slowest = std::max(slowest, probe.Seconds());
      out[t] = {bytes / busy, slowest};
    });
  }
  for (auto& th : pool) th.join();
  return out;
}

// A thread sample counts as taken on a quiet core when all its probes ran within 5 % of the
// probe's best time in the whole table.
constexpr double kQuietProbe = 1.05;
bool IsQuiet(double slowest_probe, double probe_best) { return slowest_probe <= kQuietProbe * probe_best; }

// Every round also samples the FMA peak, which keeps its best sample: the peak and the
// engine are measured over the same spells of this shared machine. Updates the peaks.
void EngineTable(const Settings& s, double& peak1, double& peakN) {
  engine::Backend backend = s.backend == "scalar" ? engine::Backend::kScalar : engine::Backend::kAuto;
  struct Cfg {
    uint32_t d, layers;
  };
  // One table row. The cells are sampled in rounds, each round visiting every cell once, so a
  // slow spell of this shared machine lands on one sample of many cells rather than on every
  // sample of one cell. Sessions live for one sample only, so memory stays that of one cell
  // whatever the thread count.
  struct Cell {
    Cfg cfg;
    const char* mode;
    int lanes, threads, per_lane;
    std::shared_ptr<const engine::Engine> engine;
    double flops_per_byte, executed_flops_per_byte;
    std::vector<std::vector<ThreadSample>> samples;
  };
  std::vector<Cell> cells;
  for (Cfg cfg : {Cfg{256, 1}, Cfg{64, 2}}) {
    ModelConfig c = ModelConfig::Default(cfg.d, cfg.layers);
    std::shared_ptr<const engine::Engine> e = engine::Engine::Create(InitRandomModel(c, 1), backend).value();
    for (const char* mode : {"step", "chunk"}) {
      for (int lanes : {1, 16, 64, 256}) {
        for (int threads : {1, s.threads}) {
          const int per_lane = std::strcmp(mode, "step") == 0 ? 1 : std::max(1, 512 / lanes);
          cells.push_back({cfg, mode, lanes, threads, per_lane, e, 2.0 * c.MacsPerByte(),
                           2.0 * e->ExecutedMacsPerByte(), {}});
          if (s.threads == 1) break;
        }
      }
    }
  }
  double probe_best = 1e30;
  std::vector<double> peak_samples;  // one-thread FMA peak, one per round
  for (int r = 0; r < s.engine_rounds; ++r) {
    peak_samples.push_back(MeasureFmaPeak(1, s.engine_seconds));
    peak1 = std::max(peak1, peak_samples.back());
    peakN = s.threads == 1 ? peak1 : std::max(peakN, MeasureFmaPeak(s.threads, s.engine_seconds));
    for (Cell& cell : cells) {
      std::vector<std::unique_ptr<LaneBatch>> batches;
      std::vector<std::function<uint64_t()>> works;
      for (int t = 0; t < cell.threads; ++t) {
        batches.push_back(std::make_unique<LaneBatch>(cell.engine, cell.lanes, cell.per_lane));
        LaneBatch* b = batches.back().get();
        works.push_back([b] { return b->Run(); });
      }
      cell.samples.push_back(TimeSample(works, s.engine_seconds, backend));
      for (const ThreadSample& x : cell.samples.back()) probe_best = std::min(probe_best, x.slowest_probe);
    }
  }
  std::vector<double> probes;  // every thread sample's slowest probe
  for (const Cell& cell : cells)
    for (const auto& sample : cell.samples)
      for (const ThreadSample& x : sample) probes.push_back(x.slowest_probe);
  std::printf("\n## Engine throughput (%s kernels)\n\n", engine::SelectKernels(backend)->name);
  std::printf("GFLOP/s counts 2 x the model's multiply-adds per byte (its non-embedding parameters); %% is of\n"
              "the FMA peak for the same number of cores, its best sample at the start and in every round\n"
              "(1 thread: %.1f, %d threads: %.1f GFLOP/s). Each cell is sampled %d times for %.0f ms of\n"
              "calls, in rounds over all cells; KB/s, GFLOP/s and the first %% are the median sample\n"
              "(threads start together; each counts bytes per second of its own call time). Before, after\n"
              "and every 0.5 ms within a sample, between calls (a longer call only around it), each\n"
              "thread times a contention probe: fixed scan steps on L1-resident data, the engine's own\n"
              "element-wise mix. 'quiet core' uses only the thread samples whose probes all ran within\n"
              "%.0f %% of the probe's best time (%.0f us), i.e. no co-tenant was slowing that core: the\n"
              "condition the FMA peak (a best sample) is measured in. It is threads x their median rate;\n"
              "'quiet samples' counts them. In this run a thread sample's slowest probe was at median\n"
              "%.2fx the best and %.0f %% of thread samples were quiet, while the FMA peak loop's median\n"
              "sample ran at %.0f %% of its best. 'executed' counts only the multiply-adds the engine\n"
              "performs (median sample): layer 0's in_proj is a lookup.\n\n",
              peak1, s.threads, peakN, s.engine_rounds, 1e3 * s.engine_seconds, 100 * (kQuietProbe - 1),
              1e6 * probe_best, Median(probes) / probe_best,
              100.0 * std::count_if(probes.begin(), probes.end(), [&](double p) { return IsQuiet(p, probe_best); }) /
                  probes.size(),
              100 * Median(peak_samples) / peak1);
  std::printf("| model | mode | lanes | threads | KB/s | GFLOP/s | %% of peak | %% of peak, quiet core | quiet samples |"
              " %% of peak, executed |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Cell& cell : cells) {
    // all: each sample's rate summed over its threads; quiet: single threads' rates, those
    // whose probes found the core quiet.
    std::vector<double> all, quiet;
    for (const auto& sample : cell.samples) {
      double sum = 0;
      for (const ThreadSample& x : sample) {
        sum += x.rate;
        if (IsQuiet(x.slowest_probe, probe_best)) quiet.push_back(x.rate);
      }
      all.push_back(sum);
    }
    const double rate = Median(all);
    const double peak = cell.threads == 1 ? peak1 : peakN;
    const double gflops = rate * cell.flops_per_byte / 1e9;
    char quiet_pct[32] = "-";
    if (!quiet.empty()) {
      const double quiet_gflops = cell.threads * Median(quiet) * cell.flops_per_byte / 1e9;
      std::snprintf(quiet_pct, sizeof quiet_pct, "%.0f %%", 100 * quiet_gflops / peak);
    }
    std::printf("| d%u x %u | %s | %d | %d | %.1f | %.1f | %.0f %% | %s | %zu | %.0f %% |\n", cell.cfg.d,
                cell.cfg.layers, cell.mode, cell.lanes, cell.threads, rate / 1e3, gflops, 100 * gflops / peak,
                quiet_pct, quiet.size(), 100 * rate * cell.executed_flops_per_byte / 1e9 / peak);
  }
}

void KernelBudget(const Settings& s, double peak1) {
  PrintKernelBudget(s.backend == "scalar" ? engine::Backend::kScalar : engine::Backend::kAuto, s.budget_rounds, peak1);
}

void CoderTable(const Settings& s) {
  std::printf("\n## Quantizer and range coder (ns per byte, one thread)\n\n");
  std::printf("| stage | ns/byte |\n|---|---:|\n");
  // Logits like a trained model's: one strong candidate and a spread of others.
  const int n = 256;  // a working set like one engine call's
  std::vector<float> logits(static_cast<size_t>(n) * 256);
  uint64_t x = 1;
  for (auto& l : logits) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    l = static_cast<float>(static_cast<int>(x >> 40) % 1000) / 100.0f;
  }
  for (int i = 0; i < n; ++i) logits[static_cast<size_t>(i) * 256 + (i * 7) % 256] += 12.0f;
  std::vector<uint32_t> cum(static_cast<size_t>(n) * 257);
  std::vector<uint8_t> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = static_cast<uint8_t>(i % 5 == 0 ? i * 13 : (i * 7) % 256);
  for (auto backend : {engine::Backend::kScalar, engine::Backend::kAvx2}) {
    const engine::KernelSet* k = engine::SelectKernels(backend);
    if (!k) continue;
    double rate = MeasureRate(1, s.reps, s.seconds / 2, [&]() -> std::function<uint64_t()> {
      return [&, k]() -> uint64_t {
        for (int i = 0; i < n; ++i) k->quantize(&logits[static_cast<size_t>(i) * 256], &cum[static_cast<size_t>(i) * 257]);
        return n;
      };
    });
    std::printf("| quantize (%s) | %.1f |\n", k->name, 1e9 / rate);
  }
  std::vector<uint8_t> coded;
  double enc = MeasureRate(1, s.reps, s.seconds / 2, [&]() -> std::function<uint64_t()> {
    return [&]() -> uint64_t {
      coded.clear();
      RangeEncoder e(&coded);
      for (int i = 0; i < n; ++i) {
        const uint32_t* c = &cum[static_cast<size_t>(i) * 257];
        e.Encode(c[symbols[i]], c[symbols[i] + 1] - c[symbols[i]]);
      }
      e.Finish();
      return n;
    };
  });
  double dec = MeasureRate(1, s.reps, s.seconds / 2, [&]() -> std::function<uint64_t()> {
    return [&]() -> uint64_t {
      RangeDecoder d(coded.data(), coded.size());
      for (int i = 0; i < n; ++i) d.Decode(&cum[static_cast<size_t>(i) * 257]);
      return n;
    };
  });
  std::printf("| range encode | %.1f |\n| range decode | %.1f |\n", 1e9 / enc, 1e9 / dec);
}

// Data drawn from the model itself (`seqs` independent sequences of `len` bytes, sampled in
// one batch): what a trained model's in-distribution data looks like to it.
std::vector<uint8_t> SampleSequences(const std::shared_ptr<const engine::Engine>& e, int seqs, size_t len) {
  auto s_owner = engine::Session::New(e, seqs, seqs);
  engine::Session& s = *s_owner;
  std::vector<std::vector<uint8_t>> out(seqs);
  std::vector<uint32_t> cum(static_cast<size_t>(seqs) * 257);
  uint64_t x = 88172645463325252ull;
  for (int l = 0; l < seqs; ++l) out[l].push_back(static_cast<uint8_t>(l * 37));
  std::vector<engine::LaneInput> in(seqs);
  for (size_t t = 1; t < len; ++t) {
    for (int l = 0; l < seqs; ++l) in[l] = {l, &out[l].back(), 1};
    s.Forward(in.data(), seqs, cum.data());
    for (int l = 0; l < seqs; ++l) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      uint32_t u = static_cast<uint32_t>(x >> 40);
      const uint32_t* c = &cum[static_cast<size_t>(l) * 257];
      int sym = 0;
      while (c[sym + 1] <= u) ++sym;
      out[l].push_back(static_cast<uint8_t>(sym));
    }
  }
  std::vector<uint8_t> all;
  for (auto& o : out) all.insert(all.end(), o.begin(), o.end());
  return all;
}

// Ratio side of the chunk-length choice: per-chunk warm-up (each chunk starts from a zero
// state) and container/coder overhead, on data a model predicts well.
#ifdef BOA_WITH_TRAIN
void TrainingTable(const Settings& s, double peakN) {
  std::printf("\n## Training throughput (LibTorch CPU, %d threads)\n\n", s.threads);
  std::printf("GFLOP/s counts 6 x multiply-adds per byte (forward 2, backward 4); %% is of the %d-thread FMA\n"
              "peak (%.1f GFLOP/s).\n\n", s.threads, peakN);
  std::printf("| model | seq_len x batch | KB/s | GFLOP/s | %% of peak |\n|---|---|---:|---:|---:|\n");
  struct Cfg {
    uint32_t d, layers;
    int64_t seq, batch;
    int steps;
  };
  train::TuneHeapForTraining();  // as boa-client does when it trains
  for (Cfg c : {Cfg{64, 2, 1024, 8, 8}, Cfg{256, 1, 1024, 4, 4}}) {
    ModelConfig mc = ModelConfig::Default(c.d, c.layers);
    std::vector<double> rates;
    for (int r = 0; r < s.reps; ++r) {
      auto rate = train::MeasureTrainingBytesPerSecond(mc, c.seq, c.batch, s.reps > 1 ? c.steps : 2, s.threads);
      if (!rate.ok()) std::abort();
      rates.push_back(*rate);
    }
    double rate = Median(rates);
    double gflops = rate * 6.0 * mc.MacsPerByte() / 1e9;
    std::printf("| d%u x %u | %lld x %lld | %.1f | %.1f | %.0f %% |\n", c.d, c.layers, static_cast<long long>(c.seq),
                static_cast<long long>(c.batch), rate / 1e3, gflops, 100 * gflops / peakN);
    std::fflush(stdout);
  }
}
#endif

int ChunkStudy(const Settings& s) {
  LoadedModel model;
  std::vector<uint8_t> data;
  std::printf("\n## Chunk length (ratio side)\n\n");
  if (!s.model_path.empty()) {
    auto m = LoadModelFile(s.model_path);
    auto d = ReadFile(s.data_path, 1ull << 30);
    if (!m.ok() || !d.ok()) {
      std::fprintf(stderr, "boa-bench: %s\n", (!m.ok() ? m.status() : d.status()).message().c_str());
      return 1;
    }
    model = std::move(m).value();
    data = std::move(d).value();
    std::printf("Model %s on %s (%zu bytes). Cross-entropy relative to 256 KiB chunks.\n\n",
                s.model_path.c_str(), s.data_path.c_str(), data.size());
  } else {
    ModelWeights w = InitRandomModel(ModelConfig::Default(64, 2), 1);
    for (float& v : w.Find("head.2.weight")->data) v *= 6.0f;  // sharp, trained-like predictions
    model = ParseModelFile(SerializeModel(w, WeightType::kF32, "")).value();
    auto e = engine::Engine::Create(model.weights, engine::Backend::kAuto).value();
    const int seqs = 4;
    const size_t len = 256 * 1024;
    data = SampleSequences(e, seqs, len);
    std::printf("Untrained d64 x 2 model with a sharpened head; %d sequences of %zu KiB drawn from it.\n"
                "An untrained model keeps little context, so the warm-up column is only meaningful\n"
                "with a trained model (--model M --data F); the overhead column is real.\n\n",
                seqs, len / 1024);
  }
  std::printf("| chunk | chunks | bits/byte | warm-up loss | container+coder bytes/chunk | total vs 256 KiB |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  double base_bytes = 0, base_bpb = 0;
  std::vector<uint32_t> lengths = {256 * 1024, 64 * 1024, 16 * 1024, 4 * 1024, 1024};
  for (uint32_t L : lengths) {
    CodecOptions o;
    o.chunk_length = L;
    o.threads = s.threads;
    MemorySource src(data);
    EvalResult r = Evaluate(model, &src, o).value();
    MemorySource src2(data);
    MemorySink sink;
    CodecStats st;
    if (!Compress(model, &src2, &sink, o, &st).ok()) std::abort();
    double bpb = r.bits_per_byte();
    if (base_bytes == 0) {
      base_bytes = static_cast<double>(sink.data.size());
      base_bpb = bpb;
    }
    double per_chunk = (sink.data.size() - r.ideal_bytes() - format::kHeaderBytes - 2 - format::kTrailerBytes) / r.chunks;
    std::printf("| %u KiB | %" PRIu64 " | %.4f | %+.2f %% | %.1f | %+.2f %% |\n", L / 1024, r.chunks, bpb,
                100 * (bpb / base_bpb - 1), per_chunk, 100 * (sink.data.size() / base_bytes - 1));
    std::fflush(stdout);
  }
  return 0;
}

// The in-process codec end to end (chunking, engine, range coding, the LZMA2 attempt,
// container, checksum): Compress and Decompress of data a d_model 64 x 2 model predicts well
// (1 MiB), at two chunk lengths and with the match model mixed in, in interleaved rounds
// (median and best round); then the per-byte cost of what the hybrid adds to the model's
// work (the LZMA2 attempt, the match and derived-field models), each measured alone on the same data.
int CodecTable(const Settings& s) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(64, 2), 1);
  for (float& v : w.Find("head.2.weight")->data) v *= 6.0f;  // sharp, trained-like predictions
  const LoadedModel model = ParseModelFile(SerializeModel(w, WeightType::kF32, "")).value();
  w.config.match_model = true;
  const LoadedModel matching = ParseModelFile(SerializeModel(w, WeightType::kF32, "")).value();
  auto e = engine::Engine::Create(model.weights, engine::Backend::kAuto).value();
  const std::vector<uint8_t> data = SampleSequences(e, 8, s.codec_bytes / 8);
  std::printf("\n## In-process codec (%d threads, d_model 64 x 2, %zu KiB, %d rounds)\n\n", s.threads,
              data.size() / 1024, s.codec_rounds);
  struct Row {
    const LoadedModel* model;
    uint32_t length;
    const char* name;
  };
  const std::vector<Row> rows = {{&model, 64 * 1024, "network"}, {&matching, 64 * 1024, "network + match model"},
                                 {&model, 4 * 1024, "network"}};
  std::vector<std::vector<double>> rates(2 * rows.size());
  std::vector<size_t> packed_bytes(rows.size());
  for (int round = 0; round < s.codec_rounds; ++round) {
    for (size_t i = 0; i < rows.size(); ++i) {
      CodecOptions o;
      o.chunk_length = rows[i].length;
      o.threads = s.threads;
      MemorySource src(data);
      MemorySink packed;
      auto t0 = Clock::now();
      if (!Compress(*rows[i].model, &src, &packed, o, nullptr).ok()) std::abort();
      rates[2 * i].push_back(data.size() / std::chrono::duration<double>(Clock::now() - t0).count() / 1e6);
      MemorySource back(packed.data);
      CountingSink out;
      t0 = Clock::now();
      if (!Decompress(*rows[i].model, &back, &out, o, nullptr).ok() || out.bytes != data.size()) std::abort();
      rates[2 * i + 1].push_back(data.size() / std::chrono::duration<double>(Clock::now() - t0).count() / 1e6);
      packed_bytes[i] = packed.data.size();
    }
  }
  std::printf("| model | chunk | ratio | compress MB/s (median / best) | decompress MB/s (median / best) |\n"
              "|---|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    std::printf("| %s | %u KiB | %.3f | %.3f / %.3f | %.3f / %.3f |\n", rows[i].name, rows[i].length / 1024,
                static_cast<double>(data.size()) / packed_bytes[i], Median(rates[2 * i]),
                *std::max_element(rates[2 * i].begin(), rates[2 * i].end()), Median(rates[2 * i + 1]),
                *std::max_element(rates[2 * i + 1].begin(), rates[2 * i + 1].end()));
  }
  // What the hybrid adds, one thread, in 64 KiB chunks: on the same bytes, or on --data.
  constexpr size_t kChunk = 64 * 1024;
  std::vector<uint8_t> file;
  if (!s.data_path.empty()) {
    auto d = ReadFile(s.data_path, 1ull << 30);
    if (!d.ok()) {
      std::fprintf(stderr, "boa-bench: %s\n", d.status().message().c_str());
      return 1;
    }
    file = std::move(*d);
  }
  const std::vector<uint8_t>& bytes = file.empty() ? data : file;
  double lzma = MeasureRate(1, s.reps, s.seconds, [&]() -> std::function<uint64_t()> {
    return [&]() -> uint64_t {
      for (size_t at = 0; at < bytes.size(); at += kChunk) {
        const size_t n = std::min(kChunk, bytes.size() - at);
        lzma2::Encode(bytes.data() + at, n, n);
      }
      return bytes.size();
    };
  });
  std::vector<uint32_t> table(kFreqTableStride);
  for (int b = 0; b <= 256; ++b) table[static_cast<size_t>(b)] = static_cast<uint32_t>(b) << (kProbBits - 8);
  // The chunk coders' mixing as they run it (TableMixer), per mixing the model flags allow.
  const auto mixing_rate = [&](Mixing mixing) {
    return MeasureRate(1, s.reps, s.seconds, [&]() -> std::function<uint64_t()> {
      return [&, mixing]() -> uint64_t {
        static volatile uint32_t sink = 0;
        for (size_t at = 0; at < bytes.size(); at += kChunk) {
          const size_t n = std::min(kChunk, bytes.size() - at);
          TableMixer m(mixing, static_cast<uint32_t>(n));
          for (size_t pos = 1; pos < n; ++pos) {
            sink += m.Mix(bytes.data() + at, table.data())[bytes[at + pos]];
            m.Update(bytes.data() + at, pos);
          }
        }
        return bytes.size();
      };
    });
  };
  const double match = mixing_rate(Mixing{true, false}), match_derived = mixing_rate(Mixing{true, true});
  std::printf("\n%s\n\n| added per byte, one thread | ns/byte | share of one thread's network compression time |\n|---|---:|---:|\n",
              file.empty() ? "On the same data:" : ("On " + s.data_path + ":").c_str());
  const double network_ns = 1e3 * s.threads / Median(rates[0]);  // ns per byte per thread
  std::printf("| LZMA2 attempt (preset 9, 64 KiB chunks) | %.1f | %.1f %% |\n", 1e9 / lzma, 100 * (1e9 / lzma) / network_ns);
  std::printf("| match model (Mix + Update) | %.1f | %.1f %% |\n", 1e9 / match, 100 * (1e9 / match) / network_ns);
  std::printf("| match and derived-field models (Mix + Update) | %.1f | %.1f %% |\n", 1e9 / match_derived,
              100 * (1e9 / match_derived) / network_ns);
  return 0;
}

int Main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      s.seconds = 0.15;
      s.reps = 1;
      s.engine_rounds = 2;
      s.engine_seconds = 0.01;
      s.budget_rounds = 5;
      s.codec_rounds = 1;
      s.codec_bytes = 128 << 10;
    } else if (a == "--threads" && i + 1 < argc) {
      s.threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--budget") {
      s.budget_only = true;
    } else if (a == "--chunk-study") {
      s.chunk_study = true;
    } else if (a == "--codec") {
      s.codec_only = true;
    } else if (a == "--model" && i + 1 < argc) {
      s.model_path = argv[++i];
    } else if (a == "--data" && i + 1 < argc) {
      s.data_path = argv[++i];
    } else if (a == "--backend" && i + 1 < argc) {
      s.backend = argv[++i];
    } else {
      std::fprintf(stderr, "usage: boa-bench [--quick] [--threads N] [--backend auto|scalar] [--budget | --codec [--data F] | --chunk-study --model M --data F]\n");
      return a == "--help" ? 0 : 1;
    }
  }
  std::printf("# boa-bench\n\n");
  if (s.budget_only && s.chunk_study) {
    std::fprintf(stderr, "boa-bench: --budget and --chunk-study are separate runs\n");
    return 1;
  }
  const bool one_thread_only = s.threads == 1 || s.budget_only;
  double peak1 = MeasureFmaPeak(1, 0.5), peakN = one_thread_only ? peak1 : MeasureFmaPeak(s.threads, 0.5);
  std::printf("FMA peak, first measurement (float32, %s): %.1f GFLOP/s on 1 thread", engine::CpuHasAvx2Fma() ? "AVX2+FMA" : "scalar",
              peak1);
  if (!one_thread_only) std::printf(", %.1f GFLOP/s on %d threads", peakN, s.threads);
  std::printf("\n");
  if (!s.codec_only && s.model_path.empty() != s.data_path.empty()) {
    std::fprintf(stderr, "boa-bench: --model and --data go together\n");
    return 1;
  }
  if (s.chunk_study) return ChunkStudy(s);
  if (s.codec_only) return CodecTable(s);
  if (s.budget_only) {
    KernelBudget(s, peak1);
    return 0;
  }
  CoderTable(s);
  CodecTable(s);
  EngineTable(s, peak1, peakN);
  KernelBudget(s, peak1);
#ifdef BOA_WITH_TRAIN
  TrainingTable(s, peakN);
#endif
  return 0;
}

}  // namespace
}  // namespace boa::bench

int main(int argc, char** argv) { return boa::bench::Main(argc, argv); }
