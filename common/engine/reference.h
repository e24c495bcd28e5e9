// Per-channel scalar definitions of the convolution and scan steps: the scalar kernels are
// loops over them, and the AVX2 kernels use them for the channels left over after the last
// full vector, so both paths share one definition. `static`: each backend compiles its own.
#pragma once

#include <cstddef>
#include <cstring>

#include "common/engine/detmath.h"
#include "common/engine/kernels.h"

namespace boa::engine::reference {

static inline float ConvChannel(const float* x_t, const float* window, const float* conv_w,
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

static inline float ScanChannel(const float* delta, const float* u, const float* z, const float* B,
                                const float* C, const float* A, const float* D_skip, int S,
                                float* h, int ch) {
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

}  // namespace boa::engine::reference
