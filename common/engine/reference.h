// Per-element definitions of the engine's operations (docs/determinism.md): one row's
// LayerNorm, one output's epilogue, one channel's convolution and scan step, one symbol's
// quantizer weight. The scalar kernels are loops over them, the AVX2 kernels use them for the
// channels left over after the last full vector, and the CUDA kernels (common/engine/cuda/)
// compile them for the device (BOA_HD), so every backend shares one definition.
// `static`: each backend compiles its own copy.
#pragma once

#include <cstddef>
#include <cstring>

#include "common/coder/frequency_table.h"
#include "common/engine/detmath.h"
#include "common/engine/hd.h"
#include "common/engine/kernels.h"

namespace boa::engine::reference {

// Sum in 8 interleaved partial sums (element k goes to partial k mod 8), combined as
// ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)): the order an 8-wide vector reduction gives.
static inline BOA_HD float Combine8(const float* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// LayerNorm (eps 1e-5) of one row x[D] into y[D].
static inline BOA_HD void LayerNormRow(const float* x, int D, const float* weight, const float* bias, float* y) {
  const float d = static_cast<float>(D);
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < D; ++k) s[k % 8] = s[k % 8] + x[k];
  const float mean = Combine8(s) / d;
  float q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < D; ++k) {
    const float c = x[k] - mean;
    q[k % 8] = detmath::Fma(c, c, q[k % 8]);
  }
  const float var = Combine8(q) / d;
  const float rstd = 1.0f / std::sqrt(var + 1e-5f);
  for (int k = 0; k < D; ++k) y[k] = detmath::Fma((x[k] - mean) * rstd, weight[k], bias[k]);
}

// What a Linear layer stores for one output whose fma chain ended in `acc`; `y` is the
// output's old value (kAdd: the residual).
static inline BOA_HD float ApplyEpilogue(float acc, float y, Epilogue e) {
  switch (e) {
    case Epilogue::kStore: return acc;
    case Epilogue::kAdd: return y + acc;
    case Epilogue::kRelu: return acc > 0.0f ? acc : 0.0f;
    case Epilogue::kGelu: return detmath::Gelu(acc);
    case Epilogue::kSoftplus: return detmath::Softplus(acc);
  }
  return acc;
}

// The window [d_conv-1][E] (oldest first) of channel ch convolved with x_t, then SiLU.
static inline BOA_HD float ConvChannel(const float* x_t, const float* window, const float* conv_w,
                                       const float* conv_b, int E, int d_conv, int ch) {
  float acc = conv_b[ch];
  for (int j = 0; j < d_conv - 1; ++j)
    acc = detmath::Fma(conv_w[static_cast<size_t>(j) * E + ch], window[static_cast<size_t>(j) * E + ch], acc);
  acc = detmath::Fma(conv_w[static_cast<size_t>(d_conv - 1) * E + ch], x_t[ch], acc);
  return detmath::Silu(acc);
}

// Drops the oldest input from the window [d_conv-1][E] and appends x_t.
static inline void ShiftWindow(float* window, const float* x_t, int E, int d_conv) {
  if (d_conv > 2) std::memmove(window, window + E, static_cast<size_t>(d_conv - 2) * E * sizeof(float));
  if (d_conv > 1) std::memcpy(window + static_cast<size_t>(d_conv - 2) * E, x_t, E * sizeof(float));
}
// The same for channel ch alone (a device thread owns one channel of a lane's window).
static inline BOA_HD void ShiftWindowChannel(float* window, float x, int E, int d_conv, int ch) {
  for (int j = 0; j + 2 < d_conv; ++j) window[static_cast<size_t>(j) * E + ch] = window[static_cast<size_t>(j + 1) * E + ch];
  if (d_conv > 1) window[static_cast<size_t>(d_conv - 2) * E + ch] = x;
}

static inline BOA_HD float ScanChannel(const float* delta, const float* u, const float* z, const float* B,
                                       const float* C, const float* A, const float* D_skip, int S, float* h,
                                       int ch) {
  float dt = delta[ch];
  float du = dt * u[ch];
  float acc = D_skip[ch] * u[ch];
  for (int n = 0; n < S; ++n) {
    size_t i = StateIndex(n, ch, S);
    float dA = detmath::Pow2NonPos(dt * A[i]);  // A holds A * log2(e)
    h[i] = detmath::Fma(dA, h[i], du * B[n]);
    acc = detmath::Fma(h[i], C[n], acc);
  }
  return acc * detmath::Silu(z[ch]);
}

// The quantizer's float stage: logits whose maximum m is not finite (all NaN or -inf, or a
// +inf) give the uniform table; otherwise symbol i weighs floor(e^(l_i - m) * 2^24), in
// [0, 2^24] (NaN and -inf logits: 0), and the first index holding m gets the rounding rest.
static inline BOA_HD bool QuantizeDegenerate(float m) { return !(m > -INFINITY && m < INFINITY); }
static inline BOA_HD uint32_t QuantizeWeight(float logit, float m) {
  return static_cast<uint32_t>(detmath::ExpNonPos(logit - m) * 0x1p24f);
}
constexpr uint32_t kDegenerateWeight = 1u << 24;

// The integer stage (quantize.h): with total = Σ w >= 2^24, scale < 2^32 and each frequency
// 1 + floor(w * scale / 2^32) >= 1.
static inline BOA_HD uint32_t QuantizeScale(uint64_t total) {
  return static_cast<uint32_t>((static_cast<uint64_t>(kProbTotal - 256) << 32) / total);
}
static inline BOA_HD uint32_t QuantizeFrequency(uint32_t w, uint32_t scale) {
  return 1u + static_cast<uint32_t>((static_cast<uint64_t>(w) * scale) >> 32);
}

}  // namespace boa::engine::reference
