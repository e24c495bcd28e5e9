// AVX2 float versions of block_kernels.h, eight channels at a time with the engine's
// vectorised exponential (detmath_avx2.h). Compiled with -mavx2 -mfma and called only when
// the CPU has both; no standard-library templates here (an AVX2 instantiation must never be
// linked into portable code).
#include <immintrin.h>

#include "common/engine/detmath_avx2.h"
#include "common/train/block_kernels.h"

namespace boa::train::kernels {

namespace {

namespace va = detmath::avx2;

inline __m256 Set(float v) { return _mm256_set1_ps(v); }

// sigmoid(x) from e = exp(-|x|): 1/(1+e) for x >= 0, e/(1+e) below.
inline __m256 SigmoidAvx2(__m256 x) {
  __m256 e = va::ExpNonPos(va::NegAbs(x));
  __m256 num = _mm256_blendv_ps(e, Set(1.0f), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_div_ps(num, _mm256_add_ps(Set(1.0f), e));
}

// SiLU'(x) = s (1 + x (1 - s)).
inline __m256 SiluGrad(__m256 x, __m256 s) {
  return _mm256_mul_ps(s, _mm256_fmadd_ps(x, _mm256_sub_ps(Set(1.0f), s), Set(1.0f)));
}

}  // namespace

void ConvSiluForwardAvx2(const float* xz, int64_t L, int64_t E, int64_t K, const float* w, const float* bias,
                         float* pre, float* c) {
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t d = 0; d < E; d += 8) {
      __m256 acc = _mm256_loadu_ps(bias + d);
      for (int64_t j = 0; j < K; ++j) {
        const int64_t s = t - (K - 1) + j;
        if (s >= 0) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + j * E + d), _mm256_loadu_ps(xz + s * 2 * E + d), acc);
      }
      _mm256_storeu_ps(pre + t * E + d, acc);
      _mm256_storeu_ps(c + t * E + d, _mm256_mul_ps(acc, SigmoidAvx2(acc)));
    }
  }
}

void ConvSiluBackwardAvx2(const float* xz, const float* pre, float* dc, int64_t L, int64_t E, int64_t K,
                          const float* w, float* dxz, float* dw, float* dbias) {
  for (int64_t i = 0; i < L * E; i += 8) {
    __m256 p = _mm256_loadu_ps(pre + i);
    _mm256_storeu_ps(dc + i, _mm256_mul_ps(_mm256_loadu_ps(dc + i), SiluGrad(p, SigmoidAvx2(p))));
  }
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t d = 0; d < E; d += 8) {
      const __m256 g = _mm256_loadu_ps(dc + t * E + d);
      __m256 gx = _mm256_setzero_ps();
      for (int64_t j = 0; j < K; ++j) {
        const int64_t o = t + (K - 1) - j;
        if (o < L) gx = _mm256_fmadd_ps(_mm256_loadu_ps(w + j * E + d), _mm256_loadu_ps(dc + o * E + d), gx);
        const int64_t s = t - (K - 1) + j;
        if (s >= 0) {
          float* dwj = dw + j * E + d;
          _mm256_storeu_ps(dwj, _mm256_fmadd_ps(g, _mm256_loadu_ps(xz + s * 2 * E + d), _mm256_loadu_ps(dwj)));
        }
      }
      _mm256_storeu_ps(dxz + t * 2 * E + d, gx);
      _mm256_storeu_ps(dbias + d, _mm256_add_ps(_mm256_loadu_ps(dbias + d), g));
    }
  }
}

void SoftplusAvx2(const float* raw, float* delta, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(delta + i, va::Softplus(_mm256_loadu_ps(raw + i)));
}

void SoftplusBackwardAvx2(const float* raw, float* g, int64_t n) {
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), SigmoidAvx2(_mm256_loadu_ps(raw + i))));
}

void GateForwardAvx2(const float* xz, const float* c, const float* D, int64_t rows, int64_t E, float* y, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < E; d += 8) {
      const int64_t i = r * E + d;
      const __m256 z = _mm256_loadu_ps(xz + r * 2 * E + E + d);
      const __m256 yp = _mm256_fmadd_ps(_mm256_loadu_ps(c + i), _mm256_loadu_ps(D + d), _mm256_loadu_ps(y + i));
      _mm256_storeu_ps(y + i, yp);
      _mm256_storeu_ps(out + i, _mm256_mul_ps(yp, _mm256_mul_ps(z, SigmoidAvx2(z))));
    }
  }
}

void GateBackwardAvx2(const float* xz, const float* c, const float* D, const float* yp, const float* dout,
                      int64_t rows, int64_t E, float* dxz, float* dyp, float* dc, float* dD) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < E; d += 8) {
      const int64_t i = r * E + d;
      const __m256 z = _mm256_loadu_ps(xz + r * 2 * E + E + d), s = SigmoidAvx2(z);
      const __m256 g = _mm256_loadu_ps(dout + i);
      _mm256_storeu_ps(dxz + r * 2 * E + E + d, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_loadu_ps(yp + i)), SiluGrad(z, s)));
      const __m256 gy = _mm256_mul_ps(g, _mm256_mul_ps(z, s));
      _mm256_storeu_ps(dyp + i, gy);
      _mm256_storeu_ps(dc + i, _mm256_mul_ps(gy, _mm256_loadu_ps(D + d)));
      _mm256_storeu_ps(dD + d, _mm256_fmadd_ps(gy, _mm256_loadu_ps(c + i), _mm256_loadu_ps(dD + d)));
    }
  }
}

void GeluForwardAvx2(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, va::Gelu(_mm256_loadu_ps(x + i)));
}

// The engine's GELU pieces (detmath.h): a = |x|/sqrt 2, e = e^(-a^2), the normal tail
// h = Phi(-|x|) = e H(t); phi(x) = e / sqrt(2 pi).
void GeluBackwardAvx2(const float* x, const float* g, float* dx, int64_t n) {
  const __m256 inv_sqrt_2pi = Set(0.3989422804014327f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 a = _mm256_mul_ps(_mm256_andnot_ps(Set(-0.0f), v), Set(detmath::kRsqrt2));
    const __m256 t = _mm256_div_ps(Set(1.0f), _mm256_fmadd_ps(a, Set(0.5f), Set(1.0f)));
    __m256 q = Set(detmath::kHalfErfcxPoly[0]);
    for (int k = 1; k < 9; ++k) q = _mm256_fmadd_ps(q, t, Set(detmath::kHalfErfcxPoly[k]));
    const __m256 e = va::Pow2NonPos(_mm256_mul_ps(_mm256_mul_ps(a, a), Set(-detmath::kLog2e)));
    __m256 h = _mm256_and_ps(_mm256_mul_ps(e, q), _mm256_cmp_ps(a, Set(4.0f), _CMP_LT_OQ));
    const __m256 Phi = _mm256_blendv_ps(h, _mm256_sub_ps(Set(1.0f), h), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
    const __m256 d = _mm256_fmadd_ps(v, _mm256_mul_ps(e, inv_sqrt_2pi), Phi);
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), d));
  }
}

}  // namespace boa::train::kernels
