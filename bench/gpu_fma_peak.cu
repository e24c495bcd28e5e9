// The CUDA device's float32 FMA peak (see gpu_fma_peak.h): eight independent chains per
// thread hide the FMA latency; the result is stored so that nothing is optimised away.
#include <cuda_runtime.h>

#include <string>

#include "bench/gpu_fma_peak.h"

namespace boa::bench {

namespace {

constexpr int kChains = 8;
constexpr int kThreads = 256;

__global__ void FmaChains(float* out, int iterations, float a, float b) {
  float v[kChains];
  for (int c = 0; c < kChains; ++c) v[c] = static_cast<float>(threadIdx.x + c);
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (int c = 0; c < kChains; ++c) v[c] = __fmaf_rn(v[c], a, b);
  }
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += v[c];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

}  // namespace

GpuPeak MeasureGpuFmaPeak(double seconds) {
  GpuPeak peak;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return peak;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return peak;
  peak.device = std::string(prop.name) + ", " + std::to_string(prop.multiProcessorCount) + " SMs";
  const int blocks = prop.multiProcessorCount * 8;
  float* out = nullptr;
  if (cudaMalloc(&out, sizeof(float) * blocks * kThreads) != cudaSuccess) return peak;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  int iterations = 1 << 14;
  double spent = 0;
  while (spent < seconds) {
    cudaEventRecord(start);
    FmaChains<<<blocks, kThreads>>>(out, iterations, 0.999f, 0.001f);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    spent += ms / 1e3;
    const double flops = 2.0 * kChains * static_cast<double>(iterations) * blocks * kThreads;
    if (ms > 0 && flops / (ms * 1e6) > peak.gflops) peak.gflops = flops / (ms * 1e6);
    if (ms < 20 && iterations < (1 << 24)) iterations *= 2;  // launches long enough to time
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(out);
  return peak;
}

}  // namespace boa::bench
