// The FMA peak micro-benchmark: 12 independent 8-wide accumulator chains hide the FMA
// latency on every current x86 core, so the loop runs at the FMA units' throughput.
#include "bench/fma_peak.h"

#include <immintrin.h>

#include <chrono>
#include <thread>
#include <vector>

#include "common/engine/kernels.h"

namespace boa::bench {

namespace {

__attribute__((target("avx2,fma"))) double RunAvx2(long iters, float* sink) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(0.001f * i);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  *sink = _mm256_cvtss_f32(s);
  return static_cast<double>(iters) * 12 * 8 * 2;
}

double RunScalar(long iters, float* sink) {
  float a[12];
  for (int i = 0; i < 12; ++i) a[i] = 0.001f * i;
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = __builtin_fmaf(a[i], 0.999999f, 1e-7f);
  }
  float s = 0;
  for (float v : a) s += v;
  *sink = s;
  return static_cast<double>(iters) * 12 * 2;
}

}  // namespace

double MeasureFmaPeakOneThread(double seconds) {
  const bool avx2 = engine::CpuHasAvx2Fma();
  volatile float sink_out = 0;
  float sink = 0;
  long iters = 1 << 20;
  double best = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    auto t0 = std::chrono::steady_clock::now();
    double flops = avx2 ? RunAvx2(iters, &sink) : RunScalar(iters, &sink);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / dt / 1e9);
    sink_out = sink;
    if (dt < 0.05) iters *= 2;
  }
  (void)sink_out;
  return best;
}

double MeasureFmaPeak(int threads, double seconds) {
  if (threads <= 1) return MeasureFmaPeakOneThread(seconds);
  std::vector<double> per(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&per, t, seconds] { per[t] = MeasureFmaPeakOneThread(seconds); });
  for (auto& th : pool) th.join();
  double total = 0;
  for (double p : per) total += p;
  return total;
}

}  // namespace boa::bench
