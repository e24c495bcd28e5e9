// Deterministic float32 elementary functions: exp and log (model initialisation), and the
// coding path's 2^t, softplus, SiLU and GELU.
//
// Built only from IEEE-754 operations that are correctly rounded everywhere (+, -, *, /,
// sqrt, fma, comparisons, integer bit manipulation), so every backend that performs the same
// sequence gets the same bits. This scalar code *is* the specification; the AVX2 versions in
// detmath_avx2.h repeat it operation for operation and docs/determinism.md writes it down.
// Changing any constant or operation order changes coded streams: that is a format change.
// Functions are `static` so that a copy compiled for AVX2 is never linked into scalar code,
// and BOA_HD: the CUDA kernels compile these very functions for the device (hd.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/engine/hd.h"

namespace boa::detmath {

static inline BOA_HD float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline BOA_HD uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// The one fused operation; every other +, -, *, / and sqrt is a separately rounded IEEE
// operation (the host builds with -ffp-contract=off, the device with -fmad=false).
static inline BOA_HD float Fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return __builtin_fmaf(a, b, c);
#endif
}

// Constants (hex literals: exact).
constexpr float kLog2e = 0x1.715476p+0f;
constexpr float kLn2Hi = 0x1.62e400p-1f;  // ln 2 with the low 11 bits zero: k*kLn2Hi is exact
constexpr float kLn2Lo = 0x1.7f7d1cp-20f;
constexpr float kRoundMagic = 0x1.8p+23f;  // (t + magic) - magic rounds to nearest even integer
constexpr float kExpMax = 88.0f;           // above: +inf
constexpr float kExpMin = -87.0f;          // below: 0 (keeps results normal: no subnormals)

// e^r on |r| <= ln2/2, degree 6, highest first (tools/fit_coefficients.py; error 2e-9).
// E(0) = 1 exactly.
constexpr int kExpDegree = 6;
BOA_HD_TABLE float kExpPoly[kExpDegree + 1] = {0x1.6d7532p-10f, 0x1.126fa6p-7f, 0x1.5554acp-5f,
                                            0x1.555404p-3f,  0x1.000000p-1f, 0x1.000000p+0f,
                                            0x1.000000p+0f};

// e^x for x in [kExpMin, kExpMax]: x = k ln2 + r, e^x = E(r) * 2^k.
static inline BOA_HD float ExpCore(float x) {
  float t = x * kLog2e;
  float k = (t + kRoundMagic) - kRoundMagic;  // k in [-126, 127]
  float r = Fma(-k, kLn2Hi, x);
  r = Fma(-k, kLn2Lo, r);
  float p = kExpPoly[0];
  for (int i = 1; i <= kExpDegree; ++i) p = Fma(p, r, kExpPoly[i]);
  int32_t ki = static_cast<int32_t>(k);
  float scale = BitsToFloat(static_cast<uint32_t>(ki + 127) << 23);
  return p * scale;
}

static inline BOA_HD float Exp(float x) {
  if (x != x) return x;
  if (x > kExpMax) return INFINITY;
  if (x < kExpMin) return 0.0f;
  return ExpCore(x);
}

// 2/(2n+1) for n = 6 .. 1: log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
BOA_HD_TABLE float kLogPoly[6] = {0x1.3b13b2p-3f, 0x1.745d18p-3f, 0x1.c71c72p-3f,
                               0x1.24924ap-2f, 0x1.99999ap-2f, 0x1.555556p-1f};

// Natural logarithm for positive normal x; x <= 0 gives NaN/-inf, +inf gives +inf.
static inline BOA_HD float Log(float x) {
  if (!(x > 0.0f)) return x == 0.0f ? -INFINITY : NAN;
  if (x == INFINITY) return x;
  uint32_t bits = FloatToBits(x);
  if (bits < 0x00800000u) return NAN;  // subnormal: never produced by the engine
  // Split x = 2^e * m with m in [sqrt(1/2), sqrt(2)).
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  uint32_t mbits = (bits & 0x007fffffu) | 0x3f800000u;
  if (mbits > 0x3fb504f3u) {  // m > sqrt(2): halve it
    mbits -= 0x00800000u;
    e += 1;
  }
  float m = BitsToFloat(mbits);
  float f = m - 1.0f;          // exact (Sterbenz)
  float s = f / (2.0f + f);
  float z = s * s;
  float p = kLogPoly[0];
  for (int i = 1; i < 6; ++i) p = Fma(p, z, kLogPoly[i]);
  float logm = Fma(s * z, p, s + s);
  float ef = static_cast<float>(e);
  return Fma(ef, kLn2Hi, Fma(ef, kLn2Lo, logm));
}

// 2^r = 1 + r * q(r) on |r| <= 1/2, q of degree 4, highest first (error 2e-7 relative).
BOA_HD_TABLE float kPow2Poly[5] = {0x1.5ec866p-10f, 0x1.3cbf60p-7f, 0x1.c6afeep-5f, 0x1.ebfa4cp-3f,
                                0x1.62e430p-1f};
constexpr float kPow2Min = -125.0f;  // 2^-125: the smallest result, still a normal float

// 2^t for t <= 0, the form of every exponential in the coding path (the scan's decay, the
// quantizer, softplus, SiLU, GELU), whose arguments are never positive. t is clamped to
// kPow2Min (NaN gives 2^-125 too), t = k + r with k = round(t) read straight from the bits of
// t + 1.5*2^23, and 2^k is applied by adding k to the exponent field of 2^r (exact: the
// result stays normal). Positive t is outside the contract.
static inline BOA_HD float Pow2NonPos(float t) {
  t = t > kPow2Min ? t : kPow2Min;  // vmaxps(t, min): NaN -> min
  float j = t + kRoundMagic;        // 1.5*2^23 + k: bits(j) = 0x4b400000 + k
  float k = j - kRoundMagic;
  float r = t - k;  // exact
  float q = kPow2Poly[0];
  for (int i = 1; i < 5; ++i) q = Fma(q, r, kPow2Poly[i]);
  float p = Fma(r, q, 1.0f);  // 2^r in [0.70, 1.42]
  return BitsToFloat(FloatToBits(p) + (FloatToBits(j) << 23));  // the shift leaves k << 23
}

// e^x for x <= 0.
static inline BOA_HD float ExpNonPos(float x) { return Pow2NonPos(x * kLog2e); }

// log(1 + u) for u in [0, 1]: 2 atanh(s), s = u / (2 + u), with P of degree 4 in s^2
// (tools/fit_coefficients.py).
BOA_HD_TABLE float kLog1pPoly[5] = {0x1.dba260p-3f, 0x1.bc8cf8p-3f, 0x1.24c926p-2f, 0x1.9998d4p-2f,
                                 0x1.555556p-1f};
static inline BOA_HD float Log1pUnit(float u) {
  float s = u / (2.0f + u);
  float z = s * s;
  float p = kLog1pPoly[0];
  for (int i = 1; i < 5; ++i) p = Fma(p, z, kLog1pPoly[i]);
  return Fma(s * z, p, s + s);
}

// softplus(x) = max(x, 0) + log(1 + e^-|x|). Equals PyTorch's (threshold 20) to rounding:
// above 20 the log term is below half an ulp of x.
static inline BOA_HD float Softplus(float x) {
  float m = x > 0.0f ? x : 0.0f;  // vmaxps(x, 0)
  return m + Log1pUnit(ExpNonPos(-std::fabs(x)));
}

// x * sigmoid(x) with one exponential of -|x|: x / (1 + e^-x) for x >= 0,
// x e^x / (1 + e^x) below.
static inline BOA_HD float Silu(float x) {
  float e = ExpNonPos(-std::fabs(x));
  float n = x >= 0.0f ? x : x * e;
  return n / (1.0f + e);
}

// erfc(a) / 2 = e^(-a^2) H(t), t = 1 / (1 + a/2), 0 <= a < 4: H of degree 8, highest first
// (tools/fit_coefficients.py; error 3e-9).
BOA_HD_TABLE float kHalfErfcxPoly[9] = {-0x1.c1cc3ep-6f, 0x1.7626a8p-3f, -0x1.e621e4p-2f,
                                     0x1.16f7b0p-1f,  -0x1.d94f5ap-3f, 0x1.0145d4p-2f,
                                     0x1.bf65cap-4f,  0x1.2a1aeap-3f,  -0x1.246cbep-12f};
constexpr float kRsqrt2 = 0x1.6a09e6p-1f;  // 1/sqrt(2)

// Exact-form GELU, x * Phi(x), Phi the standard normal CDF, with one branch: the tail
// h = Phi(-|x|) = erfc(|x|/sqrt 2) / 2, and Phi(x) = x >= 0 ? 1 - h : h. h is taken as 0 where
// |x|/sqrt 2 >= 4 (h < 8e-9 there).
static inline BOA_HD float Gelu(float x) {
  float a = std::fabs(x) * kRsqrt2;
  float t = 1.0f / Fma(a, 0.5f, 1.0f);
  float q = kHalfErfcxPoly[0];
  for (int i = 1; i < 9; ++i) q = Fma(q, t, kHalfErfcxPoly[i]);
  float h = ExpNonPos(-(a * a)) * q;
  h = a < 4.0f ? h : 0.0f;
  float phi = x >= 0.0f ? 1.0f - h : h;
  return x * phi;
}

}  // namespace boa::detmath
