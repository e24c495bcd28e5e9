// The scalar reference kernels: the executable specification of every operation's order.
#include <algorithm>
#include <cmath>

#include "common/engine/detmath.h"
#include "common/engine/kernels.h"
#include "common/engine/quantize.h"
#include "common/engine/reference.h"

namespace boa::engine {

using detmath::Fma;

void PackedLinear::Pack(const float* weight, const float* bias_or_null, int out_features,
                        int in_features) {
  in = in_features;
  out = out_features;
  panels = (out + kPanel - 1) / kPanel;
  w.assign(static_cast<size_t>(panels) * in * kPanel, 0.0f);
  bias.assign(static_cast<size_t>(panels) * kPanel, 0.0f);
  for (int n = 0; n < out; ++n) {
    int p = n / kPanel, j = n % kPanel;
    for (int k = 0; k < in; ++k) {
      w[(static_cast<size_t>(p) * in + k) * kPanel + j] = weight[static_cast<size_t>(n) * in + k];
    }
    if (bias_or_null) bias[n] = bias_or_null[n];
  }
}

void ConvTapsByTime(const float* conv1d, int E, int d_conv, float* out) {
  for (int ch = 0; ch < E; ++ch)
    for (int j = 0; j < d_conv; ++j)
      out[static_cast<size_t>(j) * E + ch] = conv1d[static_cast<size_t>(ch) * d_conv + j];
}

void ScanDecayExponents(const float* a_log, int E, int S, float* out) {
  std::fill(out, out + StateSize(E, S), 0.0f);
  for (int ch = 0; ch < E; ++ch)
    for (int n = 0; n < S; ++n)
      out[StateIndex(n, ch, S)] = -detmath::Exp(a_log[static_cast<size_t>(ch) * S + n]) * detmath::kLog2e;
}

namespace {

void LinearScalar(const PackedLinear& W, const float* X, size_t ldx, size_t rows, float* Y,
                  size_t ldy, Epilogue e) {
  for (size_t r = 0; r < rows; ++r) {
    const float* x = X + r * ldx;
    for (int n = 0; n < W.out; ++n) {
      int p = n / kPanel, j = n % kPanel;
      const float* wp = W.w.data() + static_cast<size_t>(p) * W.in * kPanel + j;
      float acc = W.bias[n];
      for (int k = 0; k < W.in; ++k) acc = Fma(wp[static_cast<size_t>(k) * kPanel], x[k], acc);
      float* y = Y + r * ldy + n;
      *y = reference::ApplyEpilogue(acc, *y, e);
    }
  }
}

void LayerNormScalar(const float* X, size_t ldx, size_t rows, int D, const float* weight,
                     const float* bias, float* Y, size_t ldy) {
  for (size_t r = 0; r < rows; ++r) reference::LayerNormRow(X + r * ldx, D, weight, bias, Y + r * ldy);
}

void ConvSiluScalar(const float* x_t, float* window, const float* conv_w, const float* conv_b,
                    int E, int d_conv, float* c_out) {
  for (int ch = 0; ch < E; ++ch) c_out[ch] = reference::ConvChannel(x_t, window, conv_w, conv_b, E, d_conv, ch);
  reference::ShiftWindow(window, x_t, E, d_conv);
}

void ScanScalar(const float* delta, const float* u, const float* z, const float* B,
                const float* C, const float* A, float /*a_min: the reference always clamps*/,
                const float* D_skip, int E, int S, float* h, float* y) {
  for (int ch = 0; ch < E; ++ch) y[ch] = reference::ScanChannel(delta, u, z, B, C, A, D_skip, S, h, ch);
}

void QuantizeScalar(const float* logits, uint32_t* cum) {
  float m = -INFINITY;
  int argmax = -1;
  for (int i = 0; i < 256; ++i) {
    if (logits[i] > m) {
      m = logits[i];
      argmax = i;
    }
  }
  uint32_t w[256];
  if (reference::QuantizeDegenerate(m)) {
    std::fill(w, w + 256, reference::kDegenerateWeight);
    argmax = 0;
  } else {
    // In [2^-101, 2^24]: NaN and -inf logits come out of ExpNonPos as 2^-125, w = 0.
    for (int i = 0; i < 256; ++i) w[i] = reference::QuantizeWeight(logits[i], m);
  }
  QuantizeFinish(w, argmax, cum);
}

}  // namespace

const KernelSet& ScalarKernels() {
  static const KernelSet k = {"scalar",       LinearScalar, LayerNormScalar, ConvSiluScalar,
                              ScanScalar, QuantizeScalar};
  return k;
}

const char* BackendName(Backend b) {
  switch (b) {
    case Backend::kAuto: return "auto";
    case Backend::kScalar: return "scalar";
    case Backend::kAvx2: return "avx2";
    case Backend::kCuda: return "cuda";
  }
  return "?";
}

Result<Backend> ParseBackend(const std::string& name) {
  for (Backend b : {Backend::kAuto, Backend::kScalar, Backend::kAvx2}) {
    if (name == BackendName(b)) return b;
  }
  return Status::InvalidArgument("unknown kernel backend '" + name + "' (expected auto, scalar or avx2)");
}

bool CpuHasAvx2Fma() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const KernelSet* SelectKernels(Backend backend) {
  switch (backend) {
    case Backend::kScalar: return &ScalarKernels();
    case Backend::kAvx2: return CpuHasAvx2Fma() ? Avx2Kernels() : nullptr;
    case Backend::kAuto:
      if (CpuHasAvx2Fma() && Avx2Kernels()) return Avx2Kernels();
      return &ScalarKernels();
    case Backend::kCuda: return nullptr;
  }
  return nullptr;
}

}  // namespace boa::engine
