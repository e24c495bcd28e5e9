// Times each kernel of a forward pass alone on a model's shapes, and the whole pass, so
// docs/performance.md can say where a coded byte's time goes from a program's output.
#include "bench/kernel_budget.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/lane_batch.h"
#include "common/engine/engine.h"
#include "common/model/model.h"

namespace boa::bench {
namespace {

using Clock = std::chrono::steady_clock;
using engine::Epilogue;
using engine::FloatBuffer;

constexpr int kRows = 512;  // one chunk-mode call, as in the engine table
constexpr int kLanes = 64;  // >= 64 lanes: the engine target's range
constexpr int kPerLane = kRows / kLanes;

// Deterministic values in [lo, hi): the kernels' speed does not depend on them, and they
// keep every intermediate normal.
std::shared_ptr<FloatBuffer> Values(size_t n, float lo, float hi, uint32_t& seed) {
  auto v = std::make_shared<FloatBuffer>(n);
  for (float& x : *v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(seed >> 8) / 16777216.0f;
  }
  return v;
}

// Calls timed together. After 20 ms of warm-up calls each (this machine reaches its full
// clock only under sustained load), every round takes one sample of about 2 ms of calls from
// each item in turn, so a slow spell of this shared machine costs one sample of many items
// rather than every sample of one. A sample starts with one untimed call, which brings back
// into cache what the other items evicted, as a steady run of the same call would find it.
// Each item keeps its best sample, in seconds per call.
class TimedCalls {
 public:
  int Add(std::function<void()> call) {
    items_.push_back({std::move(call), 1, 1e30});
    return static_cast<int>(items_.size()) - 1;
  }
  void Measure(int rounds) {
    for (Item& item : items_) {
      int calls = 0;
      for (auto t0 = Clock::now(); Elapsed(t0) < 0.02; ++calls) item.call();
      item.per_sample = std::max(1, calls / 10);
    }
    for (int r = 0; r < rounds; ++r) {
      for (Item& item : items_) {
        item.call();
        auto t0 = Clock::now();
        for (int i = 0; i < item.per_sample; ++i) item.call();
        item.best = std::min(item.best, Elapsed(t0) / item.per_sample);
      }
    }
  }
  double Seconds(int item) const { return items_[item].best; }

 private:
  struct Item {
    std::function<void()> call;
    int per_sample;
    double best;
  };
  static double Elapsed(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::vector<Item> items_;
};

struct Stage {
  std::string name;
  double macs;     // per byte
  double seconds;  // per byte
};

void PrintStage(const Stage& s, double total_seconds) {  // GFLOP/s of the executed multiply-adds
  std::string macs = "-", gflops = "-";
  if (s.macs > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", 2 * s.macs / s.seconds / 1e9);
    macs = std::to_string(static_cast<uint64_t>(s.macs));
    gflops = buf;
  }
  std::printf("| %s | %s | %.0f | %s | %.1f %% |\n", s.name.c_str(), macs.c_str(), s.seconds * 1e9,
              gflops.c_str(), 100 * s.seconds / total_seconds);
}

void PrintModelBudget(uint32_t d_model, uint32_t layers, engine::Backend backend, int rounds, double peak1) {
  const engine::KernelSet& k = *engine::SelectKernels(backend);
  const ModelConfig c = ModelConfig::Default(d_model, layers);
  const int D = static_cast<int>(c.d_model), E = static_cast<int>(c.d_inner());
  const int R = static_cast<int>(c.dt_rank), S = static_cast<int>(c.d_state);
  const int dc = static_cast<int>(c.d_conv), L = static_cast<int>(layers);
  uint32_t seed = 1;
  auto values = [&seed](size_t n, float lo, float hi) { return Values(n, lo, hi, seed); };
  TimedCalls timed;

  // One Linear layer over kRows rows whose inputs are `ldx` floats apart, as in the engine.
  auto linear = [&](int in, int out, Epilogue epilogue, int ldx) {
    auto w = std::make_shared<engine::PackedLinear>();
    w->Pack(values(static_cast<size_t>(in) * out, -0.1f, 0.1f)->data(), values(out, -0.1f, 0.1f)->data(), out, in);
    auto x = values(static_cast<size_t>(kRows) * ldx, -1.0f, 1.0f);
    auto y = values(static_cast<size_t>(kRows) * out, 0.0f, 0.0f);
    return timed.Add([&k, w, x, y, ldx, out, epilogue] { k.linear(*w, x->data(), ldx, kRows, y->data(), out, epilogue); });
  };
  const int in_proj = L > 1 ? linear(D, 2 * E, Epilogue::kStore, D) : -1;
  const int x_proj = linear(E, R + 2 * S, Epilogue::kStore, E);
  // dt_proj reads the first R of each row's R + 2S x_proj outputs.
  const int dt_proj = linear(R, E, Epilogue::kStore, R + 2 * S);
  const int dt_softplus = linear(R, E, Epilogue::kSoftplus, R + 2 * S);
  const int out_proj = linear(E, D, Epilogue::kStore, E);
  const int ff0 = linear(D, 4 * D, Epilogue::kStore, D), ff0_gelu = linear(D, 4 * D, Epilogue::kGelu, D);
  const int ff2 = linear(4 * D, D, Epilogue::kAdd, 4 * D);
  const int head0 = linear(D, D, Epilogue::kRelu, D), head2 = linear(D, 256, Epilogue::kStore, D);
  const int norm = [&] {
    auto x = values(static_cast<size_t>(kRows) * D, -1.0f, 1.0f), y = values(x->size(), 0.0f, 0.0f);
    auto w = values(D, 0.5f, 1.5f), b = values(D, -0.1f, 0.1f);
    return timed.Add([&k, x, y, w, b, D] { k.layer_norm(x->data(), D, kRows, D, w->data(), b->data(), y->data(), D); });
  }();
  // The per-row kernels walk 64 lanes of 8 bytes each, every lane with its own state, as a
  // chunk-mode call does.
  const int conv = [&] {
    auto xz = values(static_cast<size_t>(kRows) * 2 * E, -1.0f, 1.0f);
    auto out = values(static_cast<size_t>(kRows) * E, 0.0f, 0.0f);
    auto windows = values(static_cast<size_t>(kLanes) * (dc - 1) * E, 0.0f, 0.0f);
    auto w = values(static_cast<size_t>(dc) * E, -0.5f, 0.5f), b = values(E, -0.1f, 0.1f);
    return timed.Add([&k, xz, out, windows, w, b, E, dc] {
      for (size_t r = 0; r < kRows; ++r)
        k.conv_silu(&(*xz)[r * 2 * E], &(*windows)[r / kPerLane * (dc - 1) * E], w->data(), b->data(), E, dc,
                    &(*out)[r * E]);
    });
  }();
  const int scan = [&] {
    const size_t state = engine::StateSize(E, S);
    auto delta = values(static_cast<size_t>(kRows) * E, 0.001f, 0.1f);
    auto u = values(delta->size(), -1.0f, 1.0f), z = values(delta->size(), -1.0f, 1.0f);
    auto y = values(delta->size(), 0.0f, 0.0f), bc = values(static_cast<size_t>(kRows) * 2 * S, -1.0f, 1.0f);
    auto a = values(state, -23.0f, -1.4f);  // A * log2(e) of A in [-16, -1]
    auto d_skip = values(E, 0.5f, 1.5f), h = values(static_cast<size_t>(kLanes) * state, 0.0f, 0.0f);
    const float a_min = *std::min_element(a->begin(), a->end());
    return timed.Add([&k, delta, u, z, y, bc, a, a_min, d_skip, h, state, E, S] {
      for (size_t r = 0; r < kRows; ++r)
        k.scan(&(*delta)[r * E], &(*u)[r * E], &(*z)[r * E], &(*bc)[r * 2 * S], &(*bc)[r * 2 * S + S], a->data(),
               a_min, d_skip->data(), E, S, &(*h)[r / kPerLane * state], &(*y)[r * E]);
    });
  }();
  const int quantize = [&] {
    auto logits = values(static_cast<size_t>(kRows) * 256, -8.0f, 8.0f);
    auto cum = std::make_shared<std::vector<uint32_t>>(static_cast<size_t>(kRows) * 257);
    return timed.Add([&k, logits, cum] {
      for (size_t r = 0; r < kRows; ++r) k.quantize(&(*logits)[r * 256], &(*cum)[r * 257]);
    });
  }();
  // The whole pass: chunk mode feeds each lane kPerLane bytes per call, step mode one.
  auto whole_pass = [&](int per_lane) {
    auto batch = std::make_shared<LaneBatch>(engine::Engine::Create(InitRandomModel(c, 1), backend).value(), kLanes, per_lane);
    return timed.Add([batch] { batch->Run(); });
  };
  const int whole_chunk = whole_pass(kPerLane), whole_step = whole_pass(1);
  timed.Measure(rounds);

  auto per_byte = [&](int item) { return timed.Seconds(item) / kRows; };
  // An epilogue's cost: the product with it minus the product without it.
  auto extra = [&](int fused, int plain) { return std::max(0.0, per_byte(fused) - per_byte(plain)); };
  std::vector<Stage> stages;
  if (L > 1) stages.push_back({"in_proj (layers 2..N; layer 1's is a table)", 2.0 * E * D * (L - 1), per_byte(in_proj) * (L - 1)});
  stages.push_back({"x_proj", 1.0 * E * (R + 2 * S) * L, per_byte(x_proj) * L});
  stages.push_back({"dt_proj", 1.0 * R * E * L, per_byte(dt_proj) * L});
  stages.push_back({"softplus (dt_proj's epilogue)", 0, extra(dt_softplus, dt_proj) * L});
  stages.push_back({"out_proj", 1.0 * E * D * L, per_byte(out_proj) * L});
  stages.push_back({"ff.0", 4.0 * D * D * L, per_byte(ff0) * L});
  stages.push_back({"GELU (ff.0's epilogue)", 0, extra(ff0_gelu, ff0) * L});
  stages.push_back({"ff.2 and the residual", 4.0 * D * D * L, per_byte(ff2) * L});
  stages.push_back({"head (two layers, ReLU)", 1.0 * D * D + 256.0 * D, per_byte(head0) + per_byte(head2)});
  stages.push_back({"LayerNorm", 0, per_byte(norm) * (2 * L - 1)});
  stages.push_back({"convolution and SiLU", 1.0 * E * dc * L, per_byte(conv) * L});
  stages.push_back({"selective scan", 2.0 * E * S * L, per_byte(scan) * L});
  stages.push_back({"quantizer", 0, per_byte(quantize)});
  double sum = 0, macs = 0;
  for (const Stage& s : stages) {
    sum += s.seconds;
    macs += s.macs;
  }

  std::printf("\n### d_model %u x %u layer%s\n\n", d_model, layers, layers == 1 ? "" : "s");
  std::printf("| stage | multiply-adds per byte | ns per byte | GFLOP/s | %% of the sum |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (const Stage& s : stages) PrintStage(s, sum);
  PrintStage({"**sum of the kernels alone**", macs, sum}, sum);
  const double chunk = per_byte(whole_chunk), step = timed.Seconds(whole_step) / kLanes;
  PrintStage({"**whole forward pass, chunk mode (64 lanes x 8 bytes)**", macs, chunk}, sum);
  PrintStage({"**whole forward pass, step mode (64 lanes x 1 byte)**", macs, step}, sum);
  const double model_flops = 2.0 * c.MacsPerByte() / 1e9 / peak1;
  std::printf("\nCounting the model's multiply-adds per byte as the engine table does, of the one-thread\n"
              "peak (%.1f GFLOP/s): the kernels alone %.0f %%, the whole pass %.0f %% in chunk mode and\n"
              "%.0f %% in step mode.\n",
              peak1, 100 * model_flops / sum, 100 * model_flops / chunk, 100 * model_flops / step);
}

}  // namespace

void PrintKernelBudget(engine::Backend backend, int rounds, double peak1) {
  std::printf("\n## Kernel budget (%s kernels, one thread)\n\n", engine::SelectKernels(backend)->name);
  std::printf("Each kernel of a forward pass timed alone on the model's shapes (%d rows, %d lanes of %d\n"
              "bytes, as a chunk-mode call), next to the whole pass timed the same way: the best of %d\n"
              "samples of ~2 ms, every item sampled in turn. An epilogue's row is the product with it\n"
              "minus the product without it. GFLOP/s counts the multiply-adds each row executes.\n",
              kRows, kLanes, kPerLane, rounds);
  PrintModelBudget(256, 1, backend, rounds, peak1);
  PrintModelBudget(64, 2, backend, rounds, peak1);
}

}  // namespace boa::bench
