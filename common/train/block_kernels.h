// Torch-free element-wise kernels of the BOA block for training: those of the fused Mamba
// mixer (mamba_inner.h: the causal depthwise convolution with SiLU, softplus, the D-skip +
// SiLU(z) gate) and the feed-forward's GELU (gelu.h), forward and backward. Portable templates
// (float and double, libm) plus AVX2 float versions, picked when the CPU has AVX2+FMA.
// Training needs accuracy, not bit-exactness.
//
// Layout: a row is one time step of one sequence, rows = batch * L; xz rows hold 2E values
// (the convolution's input in the first E, the gate z in the last E); every other [rows, E]
// array is contiguous. The convolution weight is tap-major, w[j * E + d] (PyTorch's [E, 1, K]
// transposed), tap K-1 multiplying the current step.
#pragma once

#include <cmath>
#include <cstdint>

namespace boa::train::kernels {

template <typename T>
inline T Sigmoid(T x) {
  T e = std::exp(-std::fabs(x));
  return x >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// pre = bias + sum_j w[j] * x[t - (K-1) + j] (zero before the sequence), c = SiLU(pre), for
// the rows [row0, row0 + L) of one sequence.
template <typename T>
void ConvSiluForward(const T* xz, int64_t L, int64_t E, int64_t K, const T* w, const T* bias, T* pre, T* c) {
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t d = 0; d < E; ++d) {
      T acc = bias[d];
      for (int64_t j = 0; j < K; ++j) {
        const int64_t s = t - (K - 1) + j;
        if (s >= 0) acc += w[j * E + d] * xz[s * 2 * E + d];
      }
      pre[t * E + d] = acc;
      c[t * E + d] = acc * Sigmoid(acc);
    }
  }
}

// For one sequence: dpre = dc * SiLU'(pre) (overwrites dc), then the input gradient into the
// first E values of each dxz row, and dw [K, E], dbias [E] accumulated (+=).
template <typename T>
void ConvSiluBackward(const T* xz, const T* pre, T* dc, int64_t L, int64_t E, int64_t K, const T* w, T* dxz,
                      T* dw, T* dbias) {
  for (int64_t i = 0; i < L * E; ++i) {
    const T s = Sigmoid(pre[i]);
    dc[i] *= s * (T(1) + pre[i] * (T(1) - s));
  }
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t d = 0; d < E; ++d) {
      T gx = 0;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t o = t + (K - 1) - j;  // the output step tap j of input t feeds
        if (o < L) gx += w[j * E + d] * dc[o * E + d];
        const int64_t s = t - (K - 1) + j;
        if (s >= 0) dw[j * E + d] += dc[t * E + d] * xz[s * 2 * E + d];
      }
      dxz[t * 2 * E + d] = gx;
      dbias[d] += dc[t * E + d];
    }
  }
}

// delta = softplus(raw) = log(1 + e^raw).
template <typename T>
void Softplus(const T* raw, T* delta, int64_t n) {
  for (int64_t i = 0; i < n; ++i) delta[i] = std::fmax(raw[i], T(0)) + std::log1p(std::exp(-std::fabs(raw[i])));
}

// g *= softplus'(raw) = sigmoid(raw).
template <typename T>
void SoftplusBackward(const T* raw, T* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] *= Sigmoid(raw[i]);
}

// y += c * D (y becomes the pre-gate output yp); out = yp * SiLU(z).
template <typename T>
void GateForward(const T* xz, const T* c, const T* D, int64_t rows, int64_t E, T* y, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < E; ++d) {
      const int64_t i = r * E + d;
      const T z = xz[r * 2 * E + E + d];
      y[i] += c[i] * D[d];
      out[i] = y[i] * (z * Sigmoid(z));
    }
  }
}

// From dout: dz (into the last E values of each dxz row), dyp = dout * SiLU(z), dc = dyp * D,
// and dD [E] accumulated (+=).
template <typename T>
void GateBackward(const T* xz, const T* c, const T* D, const T* yp, const T* dout, int64_t rows, int64_t E, T* dxz,
                  T* dyp, T* dc, T* dD) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < E; ++d) {
      const int64_t i = r * E + d;
      const T z = xz[r * 2 * E + E + d], s = Sigmoid(z);
      dxz[r * 2 * E + E + d] = dout[i] * yp[i] * s * (T(1) + z * (T(1) - s));
      dyp[i] = dout[i] * z * s;
      dc[i] = dyp[i] * D[d];
      dD[d] += dyp[i] * c[i];
    }
  }
}

// GELU (exact form, x * Phi(x)) and its gradient: dx = g * (Phi(x) + x * phi(x)).
template <typename T>
void GeluForward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * T(0.5) * std::erfc(-x[i] * T(M_SQRT1_2));
}
template <typename T>
void GeluBackward(const T* x, const T* g, T* dx, int64_t n) {
  const T inv_sqrt_2pi = T(0.5) * T(M_2_SQRTPI) * T(M_SQRT1_2);
  for (int64_t i = 0; i < n; ++i) {
    const T phi = std::exp(-x[i] * x[i] / 2) * inv_sqrt_2pi;
    dx[i] = g[i] * (T(0.5) * std::erfc(-x[i] * T(M_SQRT1_2)) + x[i] * phi);
  }
}

// AVX2+FMA float versions, same contracts; E and n must be multiples of 8.
void ConvSiluForwardAvx2(const float* xz, int64_t L, int64_t E, int64_t K, const float* w, const float* bias,
                         float* pre, float* c);
void ConvSiluBackwardAvx2(const float* xz, const float* pre, float* dc, int64_t L, int64_t E, int64_t K,
                          const float* w, float* dxz, float* dw, float* dbias);
void SoftplusAvx2(const float* raw, float* delta, int64_t n);
void SoftplusBackwardAvx2(const float* raw, float* g, int64_t n);
void GateForwardAvx2(const float* xz, const float* c, const float* D, int64_t rows, int64_t E, float* y, float* out);
void GateBackwardAvx2(const float* xz, const float* c, const float* D, const float* yp, const float* dout,
                      int64_t rows, int64_t E, float* dxz, float* dyp, float* dc, float* dD);
void GeluForwardAvx2(const float* x, float* y, int64_t n);
void GeluBackwardAvx2(const float* x, const float* g, float* dx, int64_t n);

}  // namespace boa::train::kernels
