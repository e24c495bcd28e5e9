// Deterministic float32 elementary functions: exp, log, log1p, softplus, SiLU, erf, GELU.
//
// Built only from IEEE-754 operations that are correctly rounded everywhere (+, -, *, /,
// sqrt, fma, comparisons, integer bit manipulation), so every backend that performs the same
// sequence gets the same bits. This scalar code *is* the specification; the AVX2 versions in
// detmath_avx2.h repeat it operation for operation and docs/determinism.md writes it down.
// Changing any constant or operation order changes coded streams: that is a format change.
// Functions are `static` so that a copy compiled for AVX2 is never linked into scalar code.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace boa::detmath {

static inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float Fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

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
constexpr float kExpPoly[kExpDegree + 1] = {0x1.6d7532p-10f, 0x1.126fa6p-7f, 0x1.5554acp-5f,
                                            0x1.555404p-3f,  0x1.000000p-1f, 0x1.000000p+0f,
                                            0x1.000000p+0f};

// e^x for x in [kExpMin, kExpMax]: x = k ln2 + r, e^x = E(r) * 2^k.
static inline float ExpCore(float x) {
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

static inline float Exp(float x) {
  if (x != x) return x;
  if (x > kExpMax) return INFINITY;
  if (x < kExpMin) return 0.0f;
  return ExpCore(x);
}

// e^x where x <= 0 is expected (the state decay, the quantizer): cheaper special cases.
// x < kExpMin and NaN give 0; x > kExpMax saturates to e^kExpMax.
static inline float ExpDecay(float x) {
  float xc = x < kExpMax ? x : kExpMax;  // the operand order of vminps / vmaxps
  xc = xc > kExpMin ? xc : kExpMin;
  float r = ExpCore(xc);
  return x >= kExpMin ? r : 0.0f;
}

// 2/(2n+1) for n = 6 .. 1: log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
constexpr float kLogPoly[6] = {0x1.3b13b2p-3f, 0x1.745d18p-3f, 0x1.c71c72p-3f,
                               0x1.24924ap-2f, 0x1.99999ap-2f, 0x1.555556p-1f};

// Natural logarithm for positive normal x; x <= 0 gives NaN/-inf, +inf gives +inf.
static inline float Log(float x) {
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

// log(1 + u) for u >= 0 (Goldberg: exact when 1 + u rounds to 1).
static inline float Log1p(float u) {
  float w = 1.0f + u;
  if (w == 1.0f) return u;
  return Log(w) * (u / (w - 1.0f));
}

// PyTorch's softplus with beta 1 and threshold 20.
static inline float Softplus(float x) { return x > 20.0f ? x : Log1p(Exp(x)); }

static inline float Silu(float x) { return x / (1.0f + Exp(-x)); }

// erf(x) = x * P(x^2) for |x| < 1 (tools/fit_erf.py), highest degree first.
constexpr float kErfSmall[8] = {-0x1.445f48p-17f, 0x1.d88750p-14f, -0x1.bccf66p-11f,
                                0x1.562a60p-8f,   -0x1.b829c8p-6f, 0x1.ce2f08p-4f,
                                -0x1.812746p-2f,  0x1.20dd76p+0f};
// erf(a) = 1 - exp(-a*a) * Q(a - 2.5) for 1 <= a < 4.
constexpr float kErfLarge[13] = {0x1.ba7256p-24f, -0x1.c9ec20p-22f, 0x1.061906p-20f,
                                 -0x1.f6f358p-19f, 0x1.0e5990p-16f, -0x1.f35102p-15f,
                                 0x1.ba53b8p-13f,  -0x1.806220p-11f, 0x1.435cfep-9f,
                                 -0x1.063312p-7f,  0x1.989588p-6f,  -0x1.3086d6p-4f,
                                 0x1.afbb40p-3f};

static inline float Erf(float x) {
  if (x != x) return x;
  float a = std::fabs(x);
  if (a < 1.0f) {
    float s = x * x;
    float p = kErfSmall[0];
    for (int i = 1; i < 8; ++i) p = Fma(p, s, kErfSmall[i]);
    return x * p;
  }
  float r = 1.0f;
  if (a < 4.0f) {
    float t = a - 2.5f;  // exact
    float q = kErfLarge[0];
    for (int i = 1; i < 13; ++i) q = Fma(q, t, kErfLarge[i]);
    r = 1.0f - Exp(-(a * a)) * q;
  }
  return std::copysign(r, x);
}

constexpr float kRsqrt2 = 0x1.6a09e6p-1f;  // 1/sqrt(2)

// Exact-form GELU: 0.5 x (1 + erf(x / sqrt 2)).
static inline float Gelu(float x) { return (0.5f * x) * (1.0f + Erf(x * kRsqrt2)); }

}  // namespace boa::detmath
