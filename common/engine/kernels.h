// The engine's compute kernels behind one function table, so the portable scalar reference
// and the AVX2+FMA path are interchangeable at run time. Every kernel's exact operation order
// is specified in docs/determinism.md; all implementations must agree bit for bit.
#pragma once

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#endif

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "common/coder/frequency_table.h"
#include "common/engine/hd.h"
#include "common/util/status.h"

namespace boa::engine {

// Output columns per weight panel: the AVX2 micro-kernel's width (two 8-float vectors).
constexpr int kPanel = 16;

// Cache-line aligned; a buffer of 2 MiB or more (a many-lane session's recurrent state,
// large activations) is aligned to 2 MiB and advised for transparent huge pages: a 256-lane
// step streams ~5 MiB of lane state per thread, and does so 3-8 % faster on 2 MiB pages
// (docs/performance.md). The advice changes where bytes live, never their values.
constexpr size_t kHugePageBytes = size_t{2} << 20;
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    void* p = ::operator new(bytes, Alignment(bytes));
#ifdef MADV_HUGEPAGE
    if (bytes >= kHugePageBytes) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { ::operator delete(p, Alignment(n * sizeof(T))); }
  bool operator==(const AlignedAllocator&) const { return true; }
  bool operator!=(const AlignedAllocator&) const { return false; }

 private:
  static std::align_val_t Alignment(size_t bytes) {
    return std::align_val_t(bytes >= kHugePageBytes ? kHugePageBytes : 64);
  }
};
using FloatBuffer = std::vector<float, AlignedAllocator<float>>;

// A Linear layer's weight W[out][in] repacked as panels of kPanel output columns:
// packed[(p * in + k) * kPanel + j] = W[p * kPanel + j][k] (zero beyond `out`).
struct PackedLinear {
  int in = 0;
  int out = 0;
  int panels = 0;
  FloatBuffer w;
  FloatBuffer bias;  // panels * kPanel entries, zero where the layer has no bias
  void Pack(const float* weight, const float* bias_or_null, int out_features, int in_features);
};

// Layout of the scan state h and of A: channel groups of 8, each holding all S states
// contiguously ([E/8][S][8]), so a group's state is one sequential stream. Internal to the
// engine: results never depend on it.
BOA_HD inline size_t StateIndex(int n, int ch, int S) {
  return static_cast<size_t>(ch >> 3) * static_cast<size_t>(S) * 8 + static_cast<size_t>(n) * 8 + (ch & 7);
}
BOA_HD inline size_t StateSize(int E, int S) { return static_cast<size_t>((E + 7) / 8) * 8 * static_cast<size_t>(S); }

// The layouts both engines give two of a layer's tensors: the depthwise convolution's taps
// [E][1][d_conv] as [d_conv][E], and the scan's decay exponents -exp(A_log[E][S]) * log2(e)
// in the StateIndex layout (StateSize(E, S) floats, zero in the padding).
void ConvTapsByTime(const float* conv1d, int E, int d_conv, float* out);
void ScanDecayExponents(const float* a_log, int E, int S, float* out);

enum class Epilogue { kStore, kAdd, kRelu, kGelu, kSoftplus };

struct KernelSet {
  const char* name;
  // For r < rows, n < out: acc = bias[n]; acc = fma(W[n][k], X[r][k], acc) for k = 0..in-1;
  // then Y[r][n] = acc | Y[r][n] + acc | relu(acc) | gelu(acc) | softplus(acc).
  void (*linear)(const PackedLinear& W, const float* X, size_t ldx, size_t rows, float* Y,
                 size_t ldy, Epilogue epilogue);
  // LayerNorm (eps 1e-5) of `rows` rows of length D.
  void (*layer_norm)(const float* X, size_t ldx, size_t rows, int D, const float* weight,
                     const float* bias, float* Y, size_t ldy);
  // One time step of the causal depthwise conv + SiLU: window holds the previous d_conv-1
  // inputs [d_conv-1][E] (oldest first) and is shifted by one.
  void (*conv_silu)(const float* x_t, float* window, const float* conv_w /*[d_conv][E]*/,
                    const float* conv_b, int E, int d_conv, float* c_out);
  // One time step of the selective scan: h is updated; y [E] = (Σ h C + D u) ⊙ SiLU(z).
  // A holds A * log2(e) (the decay is 2^(delta * A)), no value below a_min (NaN if A holds a
  // NaN); h and A are in the StateIndex layout. a_min lets a kernel skip the decay's clamp for
  // channels whose delta * a_min cannot reach it, which changes no result.
  void (*scan)(const float* delta, const float* u, const float* z, const float* B,
               const float* C, const float* A, float a_min, const float* D_skip, int E, int S,
               float* h, float* y);
  // Logits[256] → cumulative frequency table cum[kFreqTableStride] (common/coder/frequency_table.h).
  void (*quantize)(const float* logits, uint32_t* cum);
};

const KernelSet& ScalarKernels();
// nullptr when the binary was built without AVX2 support.
const KernelSet* Avx2Kernels();

// The CPU kernel sets, and kCuda: the CUDA engine on device 0 (common/engine/cuda/).
enum class Backend { kAuto, kScalar, kAvx2, kCuda };
const char* BackendName(Backend b);
// A CPU kernel set by name: "auto", "scalar" or "avx2" (the device is chosen apart, by
// ResolveDevice in engine.h).
Result<Backend> ParseBackend(const std::string& name);
bool CpuHasAvx2Fma();
// kAuto picks AVX2 when both the build and the CPU support it. Returns nullptr if the
// requested backend is unavailable or is not a CPU kernel set.
const KernelSet* SelectKernels(Backend backend);

}  // namespace boa::engine
