// AVX2+FMA versions of detmath.h's coding-path functions, eight floats at a time. Each
// function performs, lane by lane, exactly the operations of its scalar counterpart, so
// results are bit-identical. Include only from translation units compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include "common/engine/detmath.h"

namespace boa::detmath::avx2 {

static inline __m256 Set(float v) { return _mm256_set1_ps(v); }

// -|x|: sets the sign bit, as std::fabs then negation does.
static inline __m256 NegAbs(__m256 x) { return _mm256_or_ps(x, Set(-0.0f)); }

// For t <= 0 (the contract): rounding t to the nearest integer (ties to even) gives the
// k of (t + magic) - magic with one dependent step less. kClamp = false leaves out the clamp
// to kPow2Min, for a caller that knows t >= kPow2Min (the clamp would change nothing).
template <bool kClamp = true>
static inline __m256 Pow2NonPos(__m256 t) {
  if constexpr (kClamp) t = _mm256_max_ps(t, Set(kPow2Min));
  __m256 j = _mm256_add_ps(t, Set(kRoundMagic));
  __m256 r = _mm256_sub_ps(t, _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  __m256 q = Set(kPow2Poly[0]);
  for (int i = 1; i < 5; ++i) q = _mm256_fmadd_ps(q, r, Set(kPow2Poly[i]));
  __m256 p = _mm256_fmadd_ps(r, q, Set(1.0f));
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(j), 23)));
}

static inline __m256 ExpNonPos(__m256 x) { return Pow2NonPos(_mm256_mul_ps(x, Set(kLog2e))); }

static inline __m256 Log1pUnit(__m256 u) {
  __m256 s = _mm256_div_ps(u, _mm256_add_ps(Set(2.0f), u));
  __m256 z = _mm256_mul_ps(s, s);
  __m256 p = Set(kLog1pPoly[0]);
  for (int i = 1; i < 5; ++i) p = _mm256_fmadd_ps(p, z, Set(kLog1pPoly[i]));
  return _mm256_fmadd_ps(_mm256_mul_ps(s, z), p, _mm256_add_ps(s, s));
}

static inline __m256 Softplus(__m256 x) {
  __m256 m = _mm256_max_ps(x, _mm256_setzero_ps());
  return _mm256_add_ps(m, Log1pUnit(ExpNonPos(NegAbs(x))));
}

static inline __m256 Silu(__m256 x) {
  __m256 e = ExpNonPos(NegAbs(x));
  __m256 n = _mm256_blendv_ps(_mm256_mul_ps(x, e), x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_div_ps(n, _mm256_add_ps(Set(1.0f), e));
}

static inline __m256 Gelu(__m256 x) {
  __m256 a = _mm256_mul_ps(_mm256_andnot_ps(Set(-0.0f), x), Set(kRsqrt2));
  __m256 t = _mm256_div_ps(Set(1.0f), _mm256_fmadd_ps(a, Set(0.5f), Set(1.0f)));
  __m256 q = Set(kHalfErfcxPoly[0]);
  for (int i = 1; i < 9; ++i) q = _mm256_fmadd_ps(q, t, Set(kHalfErfcxPoly[i]));
  // ExpNonPos(-(a*a)): (a*a) * -log2e has the bits of (-(a*a)) * log2e.
  __m256 h = _mm256_mul_ps(Pow2NonPos(_mm256_mul_ps(_mm256_mul_ps(a, a), Set(-kLog2e))), q);
  h = _mm256_and_ps(h, _mm256_cmp_ps(a, Set(4.0f), _CMP_LT_OQ));
  __m256 phi = _mm256_blendv_ps(h, _mm256_sub_ps(Set(1.0f), h), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_mul_ps(x, phi);
}

}  // namespace boa::detmath::avx2
