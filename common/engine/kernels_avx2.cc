// AVX2+FMA kernels. Vectorised across output columns (linear), channels (conv, scan) or
// symbols (quantizer) — never across a reduction — so each output is computed by the same
// operation sequence as the scalar reference and the results are bit-identical.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "common/engine/detmath_avx2.h"
#include "common/engine/kernels.h"
#include "common/engine/reference.h"

// No standard-library templates in this file: an instantiation compiled for AVX2 could be
// picked by the linker for scalar code and fault on CPUs without AVX2.

namespace boa::engine {

namespace {

namespace va = detmath::avx2;

template <Epilogue E>
__attribute__((always_inline)) inline __m256 ApplyEpilogue(__m256 acc, __m256 old) {
  if constexpr (E == Epilogue::kAdd) return _mm256_add_ps(old, acc);
  if constexpr (E == Epilogue::kRelu) return _mm256_max_ps(acc, _mm256_setzero_ps());  // NaN -> 0, as scalar
  if constexpr (E == Epilogue::kGelu) return va::Gelu(acc);
  if constexpr (E == Epilogue::kSoftplus) return va::Softplus(acc);
  return acc;
}

inline __m256i TailMask(int valid) {  // lanes [0, valid) set
  __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), idx);
}

// Stores one row's NV vectors of outputs, the first `valid_cols` of them.
template <int NV, Epilogue E>
__attribute__((always_inline)) inline void StoreRow(float* y, const __m256* acc, int valid_cols) {
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    if (valid_cols >= 8 * (v + 1)) {
      __m256 old = E == Epilogue::kAdd ? _mm256_loadu_ps(y + 8 * v) : acc[v];
      _mm256_storeu_ps(y + 8 * v, ApplyEpilogue<E>(acc[v], old));
    } else {
      __m256i m = TailMask(valid_cols - 8 * v);
      __m256 old = E == Epilogue::kAdd ? _mm256_maskload_ps(y + 8 * v, m) : acc[v];
      _mm256_maskstore_ps(y + 8 * v, m, ApplyEpilogue<E>(acc[v], old));
    }
  }
}

// MR rows x 8*NV columns of a panel: acc[r][v] += W[k][v*8 .. v*8+7] * X[r][k], k ascending.
// NV = 1 serves a last panel with at most 8 valid columns (x_proj's 36 outputs), so no
// multiply-adds are spent on padding. Every loop over r is unrolled so the accumulators live
// in registers; the epilogue is a template argument so nothing is called per vector.
template <int MR, int NV, Epilogue E>
void Tile(const float* wp, int K, const float* X, size_t ldx, const float* bias, float* Y,
          size_t ldy, int valid_cols) {
  __m256 acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_load_ps(bias + 8 * v);
  for (int k = 0; k < K; ++k) {
    __m256 w[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) w[v] = _mm256_load_ps(wp + static_cast<size_t>(k) * kPanel + 8 * v);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 xb = _mm256_broadcast_ss(X + r * ldx + k);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(w[v], xb, acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) StoreRow<NV, E>(Y + r * ldy, acc[r], valid_cols);
}

constexpr int kMaxRows = 6;

template <int NV, Epilogue E>
void PanelRows(const float* wp, int K, const float* X, size_t ldx, size_t r0, size_t r1,
               const float* bias, float* Y, size_t ldy, int valid) {
  using TileFn = void (*)(const float*, int, const float*, size_t, const float*, float*, size_t, int);
  static constexpr TileFn kTiles[kMaxRows + 1] = {nullptr, Tile<1, NV, E>, Tile<2, NV, E>, Tile<3, NV, E>,
                                                  Tile<4, NV, E>, Tile<5, NV, E>, Tile<6, NV, E>};
  size_t r = r0;
  for (; r + kMaxRows <= r1; r += kMaxRows) Tile<kMaxRows, NV, E>(wp, K, X + r * ldx, ldx, bias, Y + r * ldy, ldy, valid);
  if (r < r1) kTiles[r1 - r](wp, K, X + r * ldx, ldx, bias, Y + r * ldy, ldy, valid);
}

template <Epilogue E>
void LinearWith(const PackedLinear& W, const float* X, size_t ldx, size_t rows, float* Y, size_t ldy) {
  // Rows in blocks that stay in L2 while every weight panel streams past them once.
  size_t row_block = (96 * 1024 / 4) / static_cast<size_t>(W.in > 0 ? W.in : 1) / kMaxRows * kMaxRows;
  if (row_block < kMaxRows) row_block = kMaxRows;
  for (size_t r0 = 0; r0 < rows; r0 += row_block) {
    size_t r1 = rows < r0 + row_block ? rows : r0 + row_block;
    for (int p = 0; p < W.panels; ++p) {
      const float* wp = W.w.data() + static_cast<size_t>(p) * W.in * kPanel;
      const float* bias = W.bias.data() + static_cast<size_t>(p) * kPanel;
      int valid = W.out - p * kPanel < kPanel ? W.out - p * kPanel : kPanel;
      if (valid <= 8)
        PanelRows<1, E>(wp, W.in, X, ldx, r0, r1, bias, Y + p * kPanel, ldy, valid);
      else
        PanelRows<2, E>(wp, W.in, X, ldx, r0, r1, bias, Y + p * kPanel, ldy, valid);
    }
  }
}

void LinearAvx2(const PackedLinear& W, const float* X, size_t ldx, size_t rows, float* Y,
                size_t ldy, Epilogue e) {
  switch (e) {
    case Epilogue::kStore: return LinearWith<Epilogue::kStore>(W, X, ldx, rows, Y, ldy);
    case Epilogue::kAdd: return LinearWith<Epilogue::kAdd>(W, X, ldx, rows, Y, ldy);
    case Epilogue::kRelu: return LinearWith<Epilogue::kRelu>(W, X, ldx, rows, Y, ldy);
    case Epilogue::kGelu: return LinearWith<Epilogue::kGelu>(W, X, ldx, rows, Y, ldy);
    case Epilogue::kSoftplus: return LinearWith<Epilogue::kSoftplus>(W, X, ldx, rows, Y, ldy);
  }
}

void LayerNormAvx2(const float* X, size_t ldx, size_t rows, int D, const float* weight,
                   const float* bias, float* Y, size_t ldy) {
  const float d = static_cast<float>(D);
  const int D8 = D / 8 * 8;
  alignas(32) float s[8];
  for (size_t r = 0; r < rows; ++r) {
    const float* x = X + r * ldx;
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < D8; k += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + k));
    _mm256_store_ps(s, acc);
    for (int k = D8; k < D; ++k) s[k % 8] = s[k % 8] + x[k];
    float mean = reference::Combine8(s) / d;
    __m256 vm = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (int k = 0; k < D8; k += 8) {
      __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + k), vm);
      acc = _mm256_fmadd_ps(c, c, acc);
    }
    _mm256_store_ps(s, acc);
    for (int k = D8; k < D; ++k) {
      float c = x[k] - mean;
      s[k % 8] = __builtin_fmaf(c, c, s[k % 8]);
    }
    float var = reference::Combine8(s) / d;
    float rstd = 1.0f / std::sqrt(var + 1e-5f);
    __m256 vr = _mm256_set1_ps(rstd);
    float* y = Y + r * ldy;
    for (int k = 0; k < D8; k += 8) {
      __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), vm), vr);
      _mm256_storeu_ps(y + k, _mm256_fmadd_ps(c, _mm256_loadu_ps(weight + k), _mm256_loadu_ps(bias + k)));
    }
    for (int k = D8; k < D; ++k) y[k] = __builtin_fmaf((x[k] - mean) * rstd, weight[k], bias[k]);
  }
}

// The window shift is fused into the pass: each vector of the window is loaded once, used,
// and stored one slot earlier (no separate memmove per row).
void ConvSiluAvx2(const float* x_t, float* window, const float* conv_w, const float* conv_b,
                  int E, int d_conv, float* c_out) {
  const int E8 = E / 8 * 8;
  for (int ch = 0; ch < E8; ch += 8) {
    __m256 acc = _mm256_loadu_ps(conv_b + ch);
    for (int j = 0; j < d_conv - 1; ++j) {
      __m256 wj = _mm256_loadu_ps(window + static_cast<size_t>(j) * E + ch);
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(conv_w + static_cast<size_t>(j) * E + ch), wj, acc);
      if (j > 0) _mm256_storeu_ps(window + static_cast<size_t>(j - 1) * E + ch, wj);
    }
    __m256 x = _mm256_loadu_ps(x_t + ch);
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(conv_w + static_cast<size_t>(d_conv - 1) * E + ch), x, acc);
    if (d_conv > 1) _mm256_storeu_ps(window + static_cast<size_t>(d_conv - 2) * E + ch, x);
    _mm256_storeu_ps(c_out + ch, va::Silu(acc));
  }
  for (int ch = E8; ch < E; ++ch) {
    c_out[ch] = reference::ConvChannel(x_t, window, conv_w, conv_b, E, d_conv, ch);
    for (int j = 0; j + 1 < d_conv - 1; ++j)
      window[static_cast<size_t>(j) * E + ch] = window[static_cast<size_t>(j + 1) * E + ch];
    if (d_conv > 1) window[static_cast<size_t>(d_conv - 2) * E + ch] = x_t[ch];
  }
}

// The states of eight channels: h updated, returns acc + Σ_n h[n] C[n] (n ascending).
template <bool kClamp>
__attribute__((always_inline)) inline __m256 ScanStates(__m256 dt, __m256 du, __m256 acc, const float* B,
                                                        const float* C, const float* A, int S, float* h) {
  for (int n = 0; n < S; ++n) {
    const size_t i = static_cast<size_t>(n) * 8;
    __m256 dA = va::Pow2NonPos<kClamp>(_mm256_mul_ps(dt, _mm256_loadu_ps(A + i)));
    __m256 hn = _mm256_fmadd_ps(dA, _mm256_loadu_ps(h + i), _mm256_mul_ps(du, _mm256_set1_ps(B[n])));
    _mm256_storeu_ps(h + i, hn);
    acc = _mm256_fmadd_ps(hn, _mm256_set1_ps(C[n]), acc);
  }
  return acc;
}

void ScanAvx2(const float* delta, const float* u, const float* z, const float* B,
              const float* C, const float* A, float a_min, const float* D_skip, int E, int S,
              float* h, float* y) {
  const int E8 = E / 8 * 8;
  const __m256 vmin = _mm256_set1_ps(a_min), floor = _mm256_set1_ps(detmath::kPow2Min), zero = _mm256_setzero_ps();
  for (int ch = 0; ch < E8; ch += 8) {
    __m256 dt = _mm256_loadu_ps(delta + ch);
    __m256 uu = _mm256_loadu_ps(u + ch);
    __m256 du = _mm256_mul_ps(dt, uu);
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(D_skip + ch), uu);
    const size_t base = StateIndex(0, ch, S);
    // For 0 <= dt < inf and A >= a_min, fl(dt * A) >= fl(dt * a_min) (rounding is monotonic),
    // so when dt * a_min >= the clamp's floor in every lane no clamp can act. Any other lane
    // (dt negative or NaN, dt * a_min below the floor or NaN, a NaN a_min) takes the clamped
    // loop.
    const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(dt, zero, _CMP_GE_OQ),
                                    _mm256_cmp_ps(_mm256_mul_ps(dt, vmin), floor, _CMP_GE_OQ));
    const bool clamp_idle = _mm256_movemask_ps(ok) == 0xFF;
    acc = clamp_idle ? ScanStates<false>(dt, du, acc, B, C, A + base, S, h + base)
                     : ScanStates<true>(dt, du, acc, B, C, A + base, S, h + base);
    _mm256_storeu_ps(y + ch, _mm256_mul_ps(acc, va::Silu(_mm256_loadu_ps(z + ch))));
  }
  for (int ch = E8; ch < E; ++ch) y[ch] = reference::ScanChannel(delta, u, z, B, C, A, D_skip, S, h, ch);
}

// QuantizeFinish (quantize.h) eight symbols at a time: the same integer arithmetic, so the
// same table. Sums fit 32-bit lanes: each lane adds 32 values <= 2^24 + 1.
// `wsum` holds eight partial sums of w.
void QuantizeFinishAvx2(const uint32_t* w, __m256i wsum, int argmax, uint32_t* cum) {
  __m256i acc = wsum;
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  uint64_t total = 0;
  for (int j = 0; j < 8; ++j) total += lanes[j];
  const uint32_t scale = static_cast<uint32_t>((static_cast<uint64_t>(kProbTotal - 256) << 32) / total);
  const __m256i vs = _mm256_set1_epi32(static_cast<int>(scale)), one = _mm256_set1_epi32(1);
  alignas(32) uint32_t f[256];
  acc = _mm256_setzero_si256();
  for (int i = 0; i < 256; i += 8) {
    __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + i));
    __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(x, vs), 32);         // (w*scale)>>32, even lanes
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), vs);          // high halves in odd lanes
    __m256i fi = _mm256_add_epi32(_mm256_blend_epi32(even, odd, 0xAA), one);
    _mm256_store_si256(reinterpret_cast<__m256i*>(f + i), fi);
    acc = _mm256_add_epi32(acc, fi);
  }
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  uint32_t sum = 0;
  for (int j = 0; j < 8; ++j) sum += lanes[j];
  f[argmax] += kProbTotal - sum;
  cum[0] = 0;
  __m256i carry = _mm256_setzero_si256();
  const __m256i last = _mm256_set1_epi32(7), third = _mm256_set1_epi32(3);
  for (int i = 0; i < 256; i += 8) {  // prefix sums within 128-bit halves, then across, then carry
    __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(f + i));
    x = _mm256_add_epi32(x, _mm256_slli_si256(x, 4));
    x = _mm256_add_epi32(x, _mm256_slli_si256(x, 8));
    x = _mm256_add_epi32(x, _mm256_blend_epi32(_mm256_setzero_si256(), _mm256_permutevar8x32_epi32(x, third), 0xF0));
    x = _mm256_add_epi32(x, carry);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(cum + 1 + i), x);
    carry = _mm256_permutevar8x32_epi32(x, last);
  }
}

void QuantizeAvx2(const float* logits, uint32_t* cum) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 vmax = ninf;
  for (int i = 0; i < 256; i += 8) {
    __m256 l = _mm256_loadu_ps(logits + i);
    l = _mm256_blendv_ps(l, ninf, _mm256_cmp_ps(l, l, _CMP_UNORD_Q));  // NaN never wins
    vmax = _mm256_max_ps(vmax, l);
  }
  alignas(32) float mx[8];
  _mm256_store_ps(mx, vmax);
  float m = mx[0];
  for (int j = 1; j < 8; ++j) m = mx[j] > m ? mx[j] : m;  // the set's maximum: order-free
  alignas(32) uint32_t w[256];
  int argmax = 0;
  __m256i wsum = _mm256_setzero_si256();
  if (!(m > -INFINITY && m < INFINITY)) {
    for (int i = 0; i < 256; ++i) w[i] = 1u << 24;
    wsum = _mm256_set1_epi32(32 << 24);
  } else {
    __m256 vm = _mm256_set1_ps(m);
    for (int i = 0;; i += 8) {  // the first index holding the maximum
      int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(logits + i), vm, _CMP_EQ_OQ));
      if (hit) {
        argmax = i + __builtin_ctz(static_cast<unsigned>(hit));
        break;
      }
    }
    __m256 scale = _mm256_set1_ps(0x1p24f);
    for (int i = 0; i < 256; i += 8) {
      __m256 v = _mm256_mul_ps(va::ExpNonPos(_mm256_sub_ps(_mm256_loadu_ps(logits + i), vm)), scale);
      __m256i wi = _mm256_cvttps_epi32(v);
      _mm256_store_si256(reinterpret_cast<__m256i*>(w + i), wi);
      wsum = _mm256_add_epi32(wsum, wi);
    }
  }
  QuantizeFinishAvx2(w, wsum, argmax, cum);
}

}  // namespace

const KernelSet* Avx2Kernels() {
  static const KernelSet k = {"avx2", LinearAvx2, LayerNormAvx2, ConvSiluAvx2, ScanAvx2, QuantizeAvx2};
  return &k;
}

}  // namespace boa::engine
