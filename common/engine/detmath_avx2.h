// AVX2+FMA versions of detmath.h, eight floats at a time. Each function performs, lane by
// lane, exactly the operations of its scalar counterpart, so results are bit-identical.
// Include only from translation units compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include "common/engine/detmath.h"

namespace boa::detmath::avx2 {

static inline __m256 Set(float v) { return _mm256_set1_ps(v); }

static inline __m256 ExpCore(__m256 x) {
  __m256 t = _mm256_mul_ps(x, Set(kLog2e));
  __m256 k = _mm256_sub_ps(_mm256_add_ps(t, Set(kRoundMagic)), Set(kRoundMagic));
  __m256 r = _mm256_fnmadd_ps(k, Set(kLn2Hi), x);  // fma(-k, ln2hi, x)
  r = _mm256_fnmadd_ps(k, Set(kLn2Lo), r);
  __m256 p = Set(kExpPoly[0]);
  for (int i = 1; i <= kExpDegree; ++i) p = _mm256_fmadd_ps(p, r, Set(kExpPoly[i]));
  __m256i ki = _mm256_cvtps_epi32(k);
  __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ki, _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(p, scale);
}

static inline __m256 ExpDecay(__m256 x) {
  const __m256 lo = Set(kExpMin);
  __m256 xc = _mm256_max_ps(_mm256_min_ps(x, Set(kExpMax)), lo);
  return _mm256_and_ps(ExpCore(xc), _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
}

static inline __m256 Exp(__m256 x) {
  const __m256 hi = Set(kExpMax), lo = Set(kExpMin);
  __m256 res = ExpCore(_mm256_min_ps(_mm256_max_ps(x, lo), hi));  // NaN lanes fixed up below
  res = _mm256_blendv_ps(res, Set(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  res = _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// Log for w >= 1 finite (the only inputs Log1p gives it); matches detmath::Log there.
static inline __m256 LogAtLeastOne(__m256 x) {
  __m256i bits = _mm256_castps_si256(x);
  __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  __m256i mbits = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                  _mm256_set1_epi32(0x3f800000));
  __m256i big = _mm256_cmpgt_epi32(mbits, _mm256_set1_epi32(0x3fb504f3));  // signed ok: both positive
  mbits = _mm256_add_epi32(mbits, _mm256_and_si256(big, _mm256_set1_epi32(-0x00800000)));
  e = _mm256_sub_epi32(e, big);  // big is -1 where true
  __m256 m = _mm256_castsi256_ps(mbits);
  __m256 f = _mm256_sub_ps(m, Set(1.0f));
  __m256 s = _mm256_div_ps(f, _mm256_add_ps(Set(2.0f), f));
  __m256 z = _mm256_mul_ps(s, s);
  __m256 p = Set(kLogPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, z, Set(kLogPoly[i]));
  __m256 logm = _mm256_fmadd_ps(_mm256_mul_ps(s, z), p, _mm256_add_ps(s, s));
  __m256 ef = _mm256_cvtepi32_ps(e);
  __m256 res = _mm256_fmadd_ps(ef, Set(kLn2Hi), _mm256_fmadd_ps(ef, Set(kLn2Lo), logm));
  return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, Set(INFINITY), _CMP_EQ_OQ));
}

// Log1p for u >= 0 or NaN.
static inline __m256 Log1p(__m256 u) {
  __m256 w = _mm256_add_ps(Set(1.0f), u);
  __m256 res = _mm256_mul_ps(LogAtLeastOne(w), _mm256_div_ps(u, _mm256_sub_ps(w, Set(1.0f))));
  __m256 same = _mm256_cmp_ps(w, Set(1.0f), _CMP_EQ_OQ);
  res = _mm256_blendv_ps(res, u, same);
  return _mm256_blendv_ps(res, w, _mm256_cmp_ps(w, w, _CMP_UNORD_Q));
}

static inline __m256 Softplus(__m256 x) {
  __m256 res = Log1p(Exp(x));
  return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, Set(20.0f), _CMP_GT_OQ));
}

static inline __m256 Silu(__m256 x) {
  const __m256 sign = Set(-0.0f);
  return _mm256_div_ps(x, _mm256_add_ps(Set(1.0f), Exp(_mm256_xor_ps(x, sign))));
}

static inline __m256 Erf(__m256 x) {
  const __m256 sign = Set(-0.0f);
  __m256 a = _mm256_andnot_ps(sign, x);
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = Set(kErfSmall[0]);
  for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(p, s, Set(kErfSmall[i]));
  __m256 small = _mm256_mul_ps(x, p);
  __m256 t = _mm256_sub_ps(a, Set(2.5f));
  __m256 q = Set(kErfLarge[0]);
  for (int i = 1; i < 13; ++i) q = _mm256_fmadd_ps(q, t, Set(kErfLarge[i]));
  __m256 r = _mm256_sub_ps(Set(1.0f), _mm256_mul_ps(Exp(_mm256_xor_ps(_mm256_mul_ps(a, a), sign)), q));
  r = _mm256_blendv_ps(Set(1.0f), r, _mm256_cmp_ps(a, Set(4.0f), _CMP_LT_OQ));
  r = _mm256_or_ps(_mm256_andnot_ps(sign, r), _mm256_and_ps(sign, x));  // copysign(r, x)
  __m256 res = _mm256_blendv_ps(r, small, _mm256_cmp_ps(a, Set(1.0f), _CMP_LT_OQ));
  return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static inline __m256 Gelu(__m256 x) {
  __m256 e = Erf(_mm256_mul_ps(x, Set(kRsqrt2)));
  return _mm256_mul_ps(_mm256_mul_ps(Set(0.5f), x), _mm256_add_ps(Set(1.0f), e));
}

}  // namespace boa::detmath::avx2
