// AVX2 training-scan kernels (see scan_kernels.h). Compiled with -mavx2 -mfma and called only
// when the CPU has both; no standard-library templates here (an AVX2 instantiation must
// never be linked into portable code).
#include <immintrin.h>

#include "common/engine/detmath_avx2.h"
#include "common/engine/kernels.h"
#include "common/train/scan_kernels.h"

namespace boa::train::kernels {

bool Avx2Available() { return engine::CpuHasAvx2Fma(); }

namespace {

constexpr int kMaxState = 256;  // ModelConfig::Validate bounds d_state

// Lane j of the result = A[(d0 + j) * S + n].
inline __m256 LoadA(const float* A, int64_t S, int64_t d0, int64_t n) {
  return _mm256_set_ps(A[(d0 + 7) * S + n], A[(d0 + 6) * S + n], A[(d0 + 5) * S + n], A[(d0 + 4) * S + n],
                       A[(d0 + 3) * S + n], A[(d0 + 2) * S + n], A[(d0 + 1) * S + n], A[d0 * S + n]);
}

inline void StoreStrided(__m256 v, float* base, int64_t stride) {
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int j = 0; j < 8; ++j) base[j * stride] = tmp[j];
}

// Sums the lanes of x and of y: returns {sum(x), sum(y)}.
inline void SumLanes2(__m256 x, __m256 y, float* sx, float* sy) {
  __m256 h = _mm256_hadd_ps(x, y);  // x01 x23 y01 y23 | x45 x67 y45 y67
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));  // x0123+x4567..
  s = _mm_hadd_ps(s, s);  // (x_lo + x_hi), (y_lo + y_hi), ...
  *sx = _mm_cvtss_f32(s);
  *sy = _mm_cvtss_f32(_mm_shuffle_ps(s, s, 1));
}

}  // namespace

void ForwardBlock8(const ScanArgs& a, int64_t b, int64_t d0, float* y, float* checkpoints) {
  const int64_t L = a.L, E = a.E, S = a.S;
  __m256 At[kMaxState], h[kMaxState];
  for (int64_t n = 0; n < S; ++n) {
    At[n] = LoadA(a.A, S, d0, n);
    h[n] = _mm256_setzero_ps();
  }
  for (int64_t t = 0; t < L; ++t) {
    if (t % a.segment == 0) {
      float* ck = checkpoints + ((b * E + d0) * a.nseg + t / a.segment) * S;
      for (int64_t n = 0; n < S; ++n) StoreStrided(h[n], ck + n, a.nseg * S);
    }
    const int64_t i = (b * L + t) * E + d0;
    const __m256 dt = _mm256_loadu_ps(a.delta + i);
    const __m256 du = _mm256_mul_ps(dt, _mm256_loadu_ps(a.u + i));
    const float* bt = a.Bm + (b * L + t) * S;
    const float* ct = a.Cm + (b * L + t) * S;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t n = 0; n < S; ++n) {
      __m256 decay = detmath::avx2::ExpNonPos(_mm256_mul_ps(dt, At[n]));
      h[n] = _mm256_fmadd_ps(decay, h[n], _mm256_mul_ps(du, _mm256_set1_ps(bt[n])));
      acc = _mm256_fmadd_ps(h[n], _mm256_set1_ps(ct[n]), acc);
    }
    _mm256_storeu_ps(y + i, acc);
  }
}

void BackwardBlock8(const ScanArgs& a, int64_t b, int64_t d0, const float* checkpoints, const float* dy,
                    float* du, float* ddelta, float* dA, float* dB, float* dC, float* scratch) {
  const int64_t L = a.L, E = a.E, S = a.S, K = a.segment;
  __m256 At[kMaxState], g[kMaxState], dAacc[kMaxState];
  for (int64_t n = 0; n < S; ++n) {
    At[n] = LoadA(a.A, S, d0, n);
    g[n] = _mm256_setzero_ps();
    dAacc[n] = _mm256_setzero_ps();
  }
  float* hs = scratch;                    // [(K + 1) * S * 8]: hs[k] = h_{t0 + k - 1}
  float* decay = scratch + (K + 1) * S * 8;  // [K * S * 8]
  for (int64_t s = a.nseg - 1; s >= 0; --s) {
    const int64_t t0 = s * K, t1 = t0 + K < L ? t0 + K : L;
    const float* ck = checkpoints + ((b * E + d0) * a.nseg + s) * S;
    for (int64_t n = 0; n < S; ++n) {
      alignas(32) float tmp[8];
      for (int j = 0; j < 8; ++j) tmp[j] = ck[j * a.nseg * S + n];
      _mm256_storeu_ps(hs + n * 8, _mm256_load_ps(tmp));
    }
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = (b * L + t) * E + d0, k = t - t0;
      const __m256 dt = _mm256_loadu_ps(a.delta + i);
      const __m256 dux = _mm256_mul_ps(dt, _mm256_loadu_ps(a.u + i));
      const float* bt = a.Bm + (b * L + t) * S;
      for (int64_t n = 0; n < S; ++n) {
        __m256 dec = detmath::avx2::ExpNonPos(_mm256_mul_ps(dt, At[n]));
        _mm256_storeu_ps(decay + (k * S + n) * 8, dec);
        __m256 hp = _mm256_loadu_ps(hs + (k * S + n) * 8);
        _mm256_storeu_ps(hs + ((k + 1) * S + n) * 8, _mm256_fmadd_ps(dec, hp, _mm256_mul_ps(dux, _mm256_set1_ps(bt[n]))));
      }
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const int64_t i = (b * L + t) * E + d0, k = t - t0;
      const __m256 dt = _mm256_loadu_ps(a.delta + i), x = _mm256_loadu_ps(a.u + i), gy = _mm256_loadu_ps(dy + i);
      const float* bt = a.Bm + (b * L + t) * S;
      const float* ct = a.Cm + (b * L + t) * S;
      float* dBt = dB + (b * L + t) * S;
      float* dCt = dC + (b * L + t) * S;
      __m256 ddt = _mm256_setzero_ps(), dx = _mm256_setzero_ps();
      const __m256 dtx = _mm256_mul_ps(dt, x);
      for (int64_t n = 0; n < S; ++n) {
        const __m256 h = _mm256_loadu_ps(hs + ((k + 1) * S + n) * 8);
        const __m256 hp = _mm256_loadu_ps(hs + (k * S + n) * 8);
        const __m256 dec = _mm256_loadu_ps(decay + (k * S + n) * 8);
        const __m256 bn = _mm256_set1_ps(bt[n]);
        const __m256 gt = _mm256_fmadd_ps(gy, _mm256_set1_ps(ct[n]), g[n]);  // dLoss/dh_t
        const __m256 hpa = _mm256_mul_ps(hp, dec);
        ddt = _mm256_fmadd_ps(gt, _mm256_fmadd_ps(hpa, At[n], _mm256_mul_ps(bn, x)), ddt);
        dAacc[n] = _mm256_fmadd_ps(_mm256_mul_ps(gt, hpa), dt, dAacc[n]);
        dx = _mm256_fmadd_ps(_mm256_mul_ps(gt, dt), bn, dx);
        float sb, sc;
        SumLanes2(_mm256_mul_ps(gt, dtx), _mm256_mul_ps(gy, h), &sb, &sc);
        dBt[n] += sb;
        dCt[n] += sc;
        g[n] = _mm256_mul_ps(gt, dec);  // carried to h_{t-1}
      }
      _mm256_storeu_ps(ddelta + i, ddt);
      _mm256_storeu_ps(du + i, dx);
    }
  }
  for (int64_t n = 0; n < S; ++n) StoreStrided(dAacc[n], dA + (b * E + d0) * S + n, S);
}

}  // namespace boa::train::kernels
