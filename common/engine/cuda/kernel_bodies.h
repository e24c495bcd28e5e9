// The CUDA backend's kernels, written once for two executors: nvcc runs them as __global__
// kernels on a GPU (cuda_engine.cu), and the host executor (host_exec.h) runs the very same
// code block by block, thread by thread, on the CPU — which is how CI, with nvcc but no GPU,
// checks the CUDA code paths against the scalar reference bit for bit.
//
// A kernel is a struct of its arguments with Phases() and Phase(p, block, thread, shared,
// registers). Every thread of a block runs phase p before any thread starts phase p + 1 (a
// __syncthreads() between phases on the device); `Shared` is the block's shared memory and
// `Thread` the registers a thread keeps from one phase to the next. Each output is computed
// by the operation sequence docs/determinism.md specifies, with the per-element functions of
// reference.h and detmath.h: tiles and threads change where values live, never the order of
// a reduction (no split-k, no atomics, no warp-order sums of floats).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/coder/frequency_table.h"
#include "common/engine/hd.h"
#include "common/engine/kernels.h"
#include "common/engine/reference.h"

namespace boa::engine::cuda {

// A block or grid index (x fastest), and a launch's shape.
struct Idx {
  int x = 0;
  int y = 0;
};
struct LaunchShape {
  Idx grid;
  Idx block;
};
BOA_HD inline int CeilDiv(int a, int b) { return (a + b - 1) / b; }

// A Linear layer as the device holds it: W transposed, w[k * ldw + n] = W[n][k], ldw a multiple
// of the tile width with zero columns beyond `out`, and bias[ldw] (zero where the layer has no
// bias), so that tiles never read past the weights.
struct LinearWeights {
  const float* w = nullptr;
  const float* bias = nullptr;
  int in = 0;
  int out = 0;
  int ldw = 0;
};

// One lane's run of bytes in a Forward call: its lane, its byte count and its first row.
struct InputRun {
  int lane;
  int count;
  int row0;
};

// Zeroes the recurrent state of the lanes in `lanes` (grid.y: one per lane) in every layer.
struct ResetLanesKernel {
  const int* lanes;
  float* conv_state;  // [layers][lanes][conv_stride]
  float* ssm_state;   // [layers][lanes][ssm_stride]
  int layers, lane_count;
  size_t conv_stride, ssm_stride;
  struct Shared {};
  struct Thread {};
  static constexpr int kThreads = 128;
  static LaunchShape Shape(int n) { return {{1, n}, {kThreads, 1}}; }
  BOA_HD int Phases() const { return 1; }
  BOA_HD void Phase(int, Idx block, Idx thread, Shared&, Thread&) const {
    const size_t lane = static_cast<size_t>(lanes[block.y]);
    for (int l = 0; l < layers; ++l) {
      const size_t slot = static_cast<size_t>(l) * static_cast<size_t>(lane_count) + lane;
      for (size_t i = static_cast<size_t>(thread.x); i < conv_stride; i += kThreads) conv_state[slot * conv_stride + i] = 0.0f;
      for (size_t i = static_cast<size_t>(thread.x); i < ssm_stride; i += kThreads) ssm_state[slot * ssm_stride + i] = 0.0f;
    }
  }
};

// Row r's input byte selects its embedding row and layer 0's precomputed in_proj(LN1(.)).
struct EmbedKernel {
  const uint8_t* bytes;
  const float* embedding;  // [256][D]
  const float* first_xz;   // [256][2E]
  int D, E;
  float* x;   // [rows][D]
  float* xz;  // [rows][2E]
  struct Shared {};
  struct Thread {};
  static constexpr int kThreads = 128;
  static LaunchShape Shape(int rows) { return {{rows, 1}, {kThreads, 1}}; }
  BOA_HD int Phases() const { return 1; }
  BOA_HD void Phase(int, Idx block, Idx thread, Shared&, Thread&) const {
    const size_t r = static_cast<size_t>(block.x), b = bytes[r];
    for (int j = thread.x; j < D; j += kThreads) x[r * D + j] = embedding[b * D + j];
    for (int j = thread.x; j < 2 * E; j += kThreads) xz[r * 2 * E + j] = first_xz[b * 2 * E + j];
  }
};

// LayerNorm of `rows` rows, one thread per row (reference::LayerNormRow).
struct LayerNormKernel {
  const float* X;
  size_t ldx;
  int rows, D;
  const float* weight;
  const float* bias;
  float* Y;
  size_t ldy;
  struct Shared {};
  struct Thread {};
  static constexpr int kThreads = 64;
  static LaunchShape Shape(int rows) { return {{CeilDiv(rows, kThreads), 1}, {kThreads, 1}}; }
  BOA_HD int Phases() const { return 1; }
  BOA_HD void Phase(int, Idx block, Idx thread, Shared&, Thread&) const {
    const int r = block.x * kThreads + thread.x;
    if (r < rows) reference::LayerNormRow(X + static_cast<size_t>(r) * ldx, D, weight, bias, Y + static_cast<size_t>(r) * ldy);
  }
};

// Y[r][n] = epilogue(bias[n] + Σ_k W[n][k] X[r][k]), the sum the fma chain over k = 0, 1, ...
// of the scalar kernel. A block computes a tile of kRows rows x kCols outputs: thread (x, y)
// owns output column x and rows y, y + 8, y + 16, y + 24, and the k axis is walked in slices
// of kDepth staged in shared memory, in order, so each accumulator sees k ascending.
struct LinearKernel {
  static constexpr int kCols = 32, kRows = 32, kDepth = 32, kThreadRows = 8;
  static constexpr int kPerThread = kRows / kThreadRows;
  static constexpr int kThreads = kCols * kThreadRows;
  LinearWeights W;
  const float* X;
  size_t ldx;
  int rows;
  float* Y;
  size_t ldy;
  Epilogue epilogue;
  struct Shared {
    float x[kRows][kDepth + 1];  // +1: rows of X start in different banks
    float w[kDepth][kCols];
  };
  struct Thread {
    float acc[kPerThread];
  };
  static LaunchShape Shape(int rows, int out) {
    return {{CeilDiv(out, kCols), CeilDiv(rows, kRows)}, {kCols, kThreadRows}};
  }
  BOA_HD int Slices() const { return CeilDiv(W.in, kDepth); }
  // 0: accumulators and slice 0; 2s + 1: multiply slice s; 2s + 2: stage slice s + 1, or,
  // after the last slice, the epilogue.
  BOA_HD int Phases() const { return 2 * Slices() + 1; }
  BOA_HD void Phase(int p, Idx block, Idx thread, Shared& s, Thread& t) const {
    const int n0 = block.x * kCols, r0 = block.y * kRows;
    if (p == 0) {
      for (int i = 0; i < kPerThread; ++i) t.acc[i] = W.bias[n0 + thread.x];
      Stage(0, n0, r0, thread, s);
    } else if (p % 2 == 1) {
      const int k0 = (p / 2) * kDepth;
      const int depth = W.in - k0 < kDepth ? W.in - k0 : kDepth;
      for (int k = 0; k < depth; ++k) {
        const float w = s.w[k][thread.x];
        for (int i = 0; i < kPerThread; ++i) t.acc[i] = detmath::Fma(w, s.x[thread.y + kThreadRows * i][k], t.acc[i]);
      }
    } else if (p < Phases() - 1) {
      Stage((p / 2) * kDepth, n0, r0, thread, s);
    } else {
      const int n = n0 + thread.x;
      if (n >= W.out) return;
      for (int i = 0; i < kPerThread; ++i) {
        const int r = r0 + thread.y + kThreadRows * i;
        if (r >= rows) break;
        float* y = Y + static_cast<size_t>(r) * ldy + n;
        *y = reference::ApplyEpilogue(t.acc[i], epilogue == Epilogue::kAdd ? *y : 0.0f, epilogue);
      }
    }
  }

 private:
  // Copies X[r0.., k0..] and W[k0..][n0..] into shared memory (zeros beyond the edges, which
  // the multiply never reads).
  BOA_HD void Stage(int k0, int n0, int r0, Idx thread, Shared& s) const {
    const int tid = thread.y * kCols + thread.x;
    for (int e = tid; e < kRows * kDepth; e += kThreads) {
      const int r = e / kDepth, k = e % kDepth;
      const bool in = r0 + r < rows && k0 + k < W.in;
      s.x[r][k] = in ? X[static_cast<size_t>(r0 + r) * ldx + static_cast<size_t>(k0 + k)] : 0.0f;
    }
    for (int e = tid; e < kDepth * kCols; e += kThreads) {
      const int k = e / kCols, n = e % kCols;
      s.w[k][n] = k0 + k < W.in ? W.w[static_cast<size_t>(k0 + k) * static_cast<size_t>(W.ldw) + static_cast<size_t>(n0 + n)] : 0.0f;
    }
  }
};

// The shape of the kernels that walk each run's bytes in order through its lane's state:
// grid.y is the run, thread (x) of block (x) the channel.
struct LaneChannelKernel {
  struct Shared {};
  struct Thread {};
  static constexpr int kThreads = 128;
  static LaunchShape Shape(int n_runs, int E) { return {{CeilDiv(E, kThreads), n_runs}, {kThreads, 1}}; }
  BOA_HD int Phases() const { return 1; }
  BOA_HD static int Channel(Idx block, Idx thread) { return block.x * kThreads + thread.x; }
};

// The causal depthwise convolution + SiLU over each run: thread (run, channel) walks the run's
// bytes in order through its lane's window (reference::ConvChannel, then the shift).
struct ConvSiluKernel : LaneChannelKernel {
  const InputRun* runs;
  const float* xz;  // x: the first E of each [2E] row
  float* conv_state;  // this layer's [lanes][(d_conv-1) E]
  size_t conv_stride;
  const float* conv_w;
  const float* conv_b;
  int E, d_conv;
  float* c;  // [rows][E]
  BOA_HD void Phase(int, Idx block, Idx thread, Shared&, Thread&) const {
    const int ch = Channel(block, thread);
    if (ch >= E) return;
    const InputRun run = runs[block.y];
    float* window = conv_state + static_cast<size_t>(run.lane) * conv_stride;
    for (int t = 0; t < run.count; ++t) {
      const size_t r = static_cast<size_t>(run.row0 + t);
      const float* x_t = xz + r * 2 * E;
      c[r * E + ch] = reference::ConvChannel(x_t, window, conv_w, conv_b, E, d_conv, ch);
      reference::ShiftWindowChannel(window, x_t[ch], E, d_conv, ch);
    }
  }
};

// The selective scan over each run: thread (run, channel) walks the run's bytes in order
// through its lane's state (reference::ScanChannel; h and A in the StateIndex layout).
struct ScanKernel : LaneChannelKernel {
  const InputRun* runs;
  const float* delta;  // [rows][E]
  const float* u;      // [rows][E]
  const float* xz;     // z: the second E of each [2E] row
  const float* dbc;    // [rows][R + 2S]: B at R, C at R + S
  int R, S, E;
  const float* A;
  const float* D_skip;
  float* ssm_state;  // this layer's [lanes][ssm_stride]
  size_t ssm_stride;
  float* y;  // [rows][E]
  BOA_HD void Phase(int, Idx block, Idx thread, Shared&, Thread&) const {
    const int ch = Channel(block, thread);
    if (ch >= E) return;
    const InputRun run = runs[block.y];
    float* h = ssm_state + static_cast<size_t>(run.lane) * ssm_stride;
    const size_t ldbc = static_cast<size_t>(R + 2 * S);
    for (int t = 0; t < run.count; ++t) {
      const size_t r = static_cast<size_t>(run.row0 + t);
      const float* bc = dbc + r * ldbc + R;
      y[r * E + ch] = reference::ScanChannel(delta + r * E, u + r * E, xz + r * 2 * E + E, bc, bc + S, A, D_skip, S,
                                             h, ch);
    }
  }
};

// Logits [rows][256] -> cumulative frequency tables [rows][kFreqTableStride], one block of 32
// threads per row, thread t owning symbols 8t..8t+7. The float stage is per symbol; the
// maximum, the first index holding it and every sum are exact in any grouping (a maximum,
// integers), so the table is the scalar quantizer's.
struct QuantizeKernel {
  static constexpr int kThreads = 32, kPerThread = 256 / kThreads;
  const float* logits;
  uint32_t* tables;
  struct Shared {
    float max[kThreads];
    int argmax[kThreads];
    uint64_t weight_sum[kThreads];
    uint32_t freq_sum[kThreads];
  };
  struct Thread {
    uint32_t v[kPerThread];  // weights, then frequencies
    int argmax;
  };
  static LaunchShape Shape(int rows) { return {{rows, 1}, {kThreads, 1}}; }
  BOA_HD int Phases() const { return 4; }
  BOA_HD void Phase(int p, Idx block, Idx thread, Shared& s, Thread& t) const {
    const float* l = logits + static_cast<size_t>(block.x) * 256;
    const int base = thread.x * kPerThread;
    if (p == 0) {  // this thread's maximum and its first index (NaN never wins)
      float m = -INFINITY;
      int at = -1;
      for (int j = 0; j < kPerThread; ++j) {
        if (l[base + j] > m) {
          m = l[base + j];
          at = base + j;
        }
      }
      s.max[thread.x] = m;
      s.argmax[thread.x] = at;
    } else if (p == 1) {  // the row's maximum, then the weights
      float m = -INFINITY;
      t.argmax = -1;
      for (int j = 0; j < kThreads; ++j) {
        if (s.max[j] > m) {
          m = s.max[j];
          t.argmax = s.argmax[j];
        }
      }
      const bool degenerate = reference::QuantizeDegenerate(m);
      if (degenerate) t.argmax = 0;
      uint64_t sum = 0;
      for (int j = 0; j < kPerThread; ++j) {
        t.v[j] = degenerate ? reference::kDegenerateWeight : reference::QuantizeWeight(l[base + j], m);
        sum += t.v[j];
      }
      s.weight_sum[thread.x] = sum;
    } else if (p == 2) {  // frequencies
      uint64_t total = 0;
      for (int j = 0; j < kThreads; ++j) total += s.weight_sum[j];
      const uint32_t scale = reference::QuantizeScale(total);
      uint32_t sum = 0;
      for (int j = 0; j < kPerThread; ++j) {
        t.v[j] = reference::QuantizeFrequency(t.v[j], scale);
        sum += t.v[j];
      }
      s.freq_sum[thread.x] = sum;
    } else {  // the rest to the maximum's symbol, then the running sums
      uint32_t sum = 0, before = 0;
      for (int j = 0; j < kThreads; ++j) {
        sum += s.freq_sum[j];
        if (j < thread.x) before += s.freq_sum[j];
      }
      const uint32_t rest = kProbTotal - sum;
      const int owner = t.argmax / kPerThread;
      if (owner == thread.x) t.v[t.argmax % kPerThread] += rest;
      if (owner < thread.x) before += rest;
      uint32_t* cum = tables + static_cast<size_t>(block.x) * kFreqTableStride;
      if (thread.x == 0) cum[0] = 0;
      for (int j = 0; j < kPerThread; ++j) {
        before += t.v[j];
        cum[base + j + 1] = before;
      }
    }
  }
};

}  // namespace boa::engine::cuda
