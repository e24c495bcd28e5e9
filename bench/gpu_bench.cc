// boa-gpu-bench: the CUDA engine measured (docs/performance.md, "On a GPU"). Prints markdown
// tables: the device's fp32 FMA peak; engine rates for d_model 64 x 2 and 256 x 1 in chunk
// mode (compression: many bytes per lane and call) and step mode (decompression: one byte
// per lane and call) at 1, 64, 1024 and 4096 lanes, with the share of the peak; and the
// codec on the GPU against the CPU: the same .boa bytes, each decoding the other's; and where
// a call's time goes (kernels, copies, the host's launching and waiting, and the range
// coder's share on the CPU).
//
//   boa-gpu-bench [--quick] [--seconds S]
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/gpu_fma_peak.h"
#include "common/codec/codec.h"
#include "common/coder/frequency_table.h"
#include "common/coder/range_coder.h"
#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/engine.h"
#include "common/engine/sample.h"
#include "common/model/model.h"
#include "common/util/io.h"

namespace boa::bench {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

LoadedModel Model(uint32_t d_model, uint32_t layers) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(d_model, layers), d_model * 10 + layers);
  Result<LoadedModel> m = ParseModelFile(SerializeModel(w, WeightType::kF32, "gpu-bench"));
  if (!m.ok()) std::abort();
  return std::move(m).value();
}

// Bytes with some structure (a float table's digits and exponents), from a fixed LCG.
std::vector<uint8_t> Data(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = (i % 4 == 3) ? static_cast<uint8_t>(0x3f + ((x >> 60) & 1)) : static_cast<uint8_t>(x >> 56);
  }
  return v;
}

struct Cell {
  double mb_per_s, ms_per_call;
  // Per call, from a profiled run after the timed one (cuda::SessionProfile): the kernels'
  // and copies' device time, their counts, and the range coder's time for the call's rows on
  // one CPU core.
  double kernel_ms = 0, copy_ms = 0, coder_ms = 0;
  long launches = 0, copies = 0;
};

// Range-codes every row of `tables` (the bytes that follow each input), as a CPU coder
// thread would; seconds.
double CoderSeconds(const std::vector<uint8_t>& next, const std::vector<uint32_t>& tables) {
  std::vector<uint8_t> out;
  out.reserve(next.size());
  auto t0 = Clock::now();
  RangeEncoder enc(&out);
  for (size_t r = 0; r < next.size(); ++r) {
    const uint32_t* cum = &tables[r * kFreqTableStride];
    enc.Encode(cum[next[r]], cum[next[r] + 1] - cum[next[r]]);
  }
  enc.Finish();
  return SecondsSince(t0);
}

// Forward calls of `lanes` lanes, `per_lane` bytes each, for about `seconds` after one
// warm-up call.
Cell TimeEngine(const std::shared_ptr<const engine::Engine>& e, int lanes, int per_lane, double seconds) {
  const int rows = lanes * per_lane;
  auto session = engine::Session::New(e, lanes, rows);
  std::vector<uint8_t> bytes = Data(static_cast<size_t>(rows), 7);
  std::vector<uint32_t> tables(static_cast<size_t>(rows) * kFreqTableStride);
  std::vector<engine::LaneInput> in;
  for (int l = 0; l < lanes; ++l) in.push_back({l, &bytes[static_cast<size_t>(l) * per_lane], per_lane});
  session->Forward(in.data(), lanes, tables.data());
  int calls = 0;
  auto t0 = Clock::now();
  double spent = 0;
  while (spent < seconds || calls < 3) {
    session->Forward(in.data(), lanes, tables.data());
    ++calls;
    spent = SecondsSince(t0);
  }
  Cell cell{static_cast<double>(rows) * calls / spent / 1e6, spent / calls * 1e3};
  // The bytes each row's table codes: its input's successor (a shifted copy suffices here).
  std::vector<uint8_t> next(bytes.begin() + 1, bytes.end());
  next.push_back(bytes.front());
  cell.coder_ms = CoderSeconds(next, tables) * 1e3;
  if (engine::cuda::StartProfile(session.get()).ok()) {
    constexpr int kProfiled = 3;
    for (int i = 0; i < kProfiled; ++i) session->Forward(in.data(), lanes, tables.data());
    const engine::cuda::SessionProfile p = engine::cuda::ReadProfile(*session).value();
    cell.kernel_ms = p.kernel_seconds / kProfiled * 1e3;
    cell.copy_ms = p.copy_seconds / kProfiled * 1e3;
    cell.launches = p.launches / kProfiled;
    cell.copies = p.copies / kProfiled;
  }
  return cell;
}

int Main(int argc, char** argv) {
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      seconds = 0.1;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: boa-gpu-bench [--quick] [--seconds S]\n");
      return 2;
    }
  }
  if (!engine::BackendAvailable(engine::Backend::kCuda)) {
    std::fprintf(stderr, "boa-gpu-bench: no CUDA device here\n");
    return 1;
  }
  const GpuPeak peak = MeasureGpuFmaPeak(seconds);
  std::printf("device: %s; measured fp32 FMA peak %.0f GFLOP/s\n\n", peak.device.c_str(), peak.gflops);

  std::printf("| model | mode | lanes | bytes per call | MB/s | ms per call | GFLOP/s | %% of fp32 peak |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  std::vector<std::string> split;  // the second table's rows
  const uint32_t shapes[][2] = {{64, 2}, {256, 1}};
  for (const auto& shape : shapes) {
    LoadedModel m = Model(shape[0], shape[1]);
    Result<std::shared_ptr<const engine::Engine>> e = engine::Engine::Create(m.weights, engine::Backend::kCuda);
    if (!e.ok()) {
      std::fprintf(stderr, "boa-gpu-bench: %s\n", e.status().message().c_str());
      return 1;
    }
    const double flop_per_byte = 2.0 * static_cast<double>((*e)->ExecutedMacsPerByte());
    for (const char* mode : {"chunk", "step"}) {
      for (int lanes : {1, 64, 1024, 4096}) {
        // Chunk mode: up to 64K rows per call, at most 4096 bytes per lane (a codec chunk's
        // worth of calls); step mode: one byte per lane.
        const int per_lane = std::strcmp(mode, "step") == 0 ? 1 : std::max(1, std::min(4096, 65536 / lanes));
        Cell c = TimeEngine(*e, lanes, per_lane, seconds);
        const double gflops = c.mb_per_s * 1e6 * flop_per_byte / 1e9;
        std::printf("| d%u x %u | %s | %d | %d | %.2f | %.3f | %.0f | %.1f |\n", shape[0], shape[1], mode, lanes,
                    lanes * per_lane, c.mb_per_s, c.ms_per_call, gflops, 100.0 * gflops / peak.gflops);
        std::fflush(stdout);
        char row[256];
        std::snprintf(row, sizeof row, "| d%u x %u | %s | %d | %.3f | %.3f (%ld) | %.3f (%ld) | %.3f | %.3f |", shape[0],
                      shape[1], mode, lanes, c.ms_per_call, c.kernel_ms, c.launches, c.copy_ms, c.copies,
                      std::max(0.0, c.ms_per_call - c.kernel_ms - c.copy_ms), c.coder_ms);
        split.push_back(row);
      }
    }
  }

  // Where a call's time goes: the kernels' and copies' device time (profiled run), the rest of
  // the call's wall time (launching, waiting, the host's share of the pass), and what range
  // coding the call's rows costs one CPU core (a coder thread overlaps it with the next call).
  std::printf("\n| model | mode | lanes | ms per call | kernels ms (launches) | copies ms (copies) | host and launch ms |"
              " range coder ms, 1 core |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& row : split) std::printf("%s\n", row.c_str());

  // The codec: the same stream from the GPU and the CPU, and each decodes the other's.
  std::printf("\n| codec, d64 x 2 | bytes | MB/s | same .boa as the CPU | decodes the other's |\n|---|---:|---:|---|---|\n");
  LoadedModel m = Model(64, 2);
  // Bytes sampled from the model: every chunk is model-coded (any other data, the untrained
  // model loses to LZMA2 and the network's output would not reach the .boa). Sampled on the
  // GPU, which draws the same bytes as the CPU.
  const std::vector<uint8_t> input =
      engine::SampleBytes(engine::Engine::Create(m.weights, engine::Backend::kCuda).value(),
                          seconds < 0.5 ? (1 << 20) : (4 << 20), 3, 1024);
  uint64_t model_coded = 0;
  auto compress = [&](engine::Backend b, std::vector<uint8_t>* packed, double* mbs) {
    CodecOptions o;
    o.backend = b;
    MemorySource src(input);
    MemorySink sink;
    CodecStats stats;
    auto t0 = Clock::now();
    Status s = Compress(m, &src, &sink, o, &stats);
    *mbs = input.size() / SecondsSince(t0) / 1e6;
    model_coded = stats.chunks - stats.lzma2_chunks - stats.stored_chunks;
    *packed = std::move(sink.data);
    return s;
  };
  auto decompress = [&](engine::Backend b, const std::vector<uint8_t>& packed, double* mbs) {
    CodecOptions o;
    o.backend = b;
    MemorySource src(packed);
    MemorySink sink;
    CodecStats stats;
    auto t0 = Clock::now();
    Status s = Decompress(m, &src, &sink, o, &stats);
    *mbs = input.size() / SecondsSince(t0) / 1e6;
    return s.ok() && sink.data == input;
  };
  std::vector<uint8_t> on_gpu, on_cpu;
  double gpu_c = 0, cpu_c = 0, gpu_d = 0, cpu_d = 0;
  Status sg = compress(engine::Backend::kCuda, &on_gpu, &gpu_c);
  Status sc = compress(engine::Backend::kAuto, &on_cpu, &cpu_c);
  if (!sg.ok() || !sc.ok()) {
    std::fprintf(stderr, "boa-gpu-bench: compress: %s\n", (sg.ok() ? sc : sg).message().c_str());
    return 1;
  }
  const bool same = on_gpu == on_cpu;
  const bool gpu_decodes_cpu = decompress(engine::Backend::kCuda, on_cpu, &gpu_d);
  const bool cpu_decodes_gpu = decompress(engine::Backend::kAuto, on_gpu, &cpu_d);
  std::printf("| compress on the GPU | %zu | %.2f | %s | |\n", input.size(), gpu_c, same ? "yes" : "NO");
  std::printf("| compress on the CPU | %zu | %.2f | | |\n", input.size(), cpu_c);
  std::printf("| decompress on the GPU | %zu | %.2f | | %s |\n", input.size(), gpu_d, gpu_decodes_cpu ? "yes" : "NO");
  std::printf("| decompress on the CPU | %zu | %.2f | | %s |\n", input.size(), cpu_d, cpu_decodes_gpu ? "yes" : "NO");
  std::printf("\n(%" PRIu64 " model-coded chunks in the CPU's .boa)\n", model_coded);
  return same && gpu_decodes_cpu && cpu_decodes_gpu && model_coded > 0 ? 0 : 1;
}

}  // namespace
}  // namespace boa::bench

int main(int argc, char** argv) { return boa::bench::Main(argc, argv); }
