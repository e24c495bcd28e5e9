// The AVX2 elementary functions equal the scalar specification bit for bit, on a dense sweep
// and on special values. Built as its own program with -mavx2 -mfma; skips on CPUs without.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/engine/detmath.h"
#include "common/engine/detmath_avx2.h"
#include "common/engine/kernels.h"

namespace boa::detmath {
namespace {

std::vector<float> Inputs() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 20.0f, 20.000002f, 19.999998f, 88.0f,
                          88.00001f, -87.0f, -87.00001f, 1e-45f, -1e-45f, 1e-38f, 3.9999998f, 4.0f,
                          0.99999994f, 1.0000001f, INFINITY, -INFINITY, NAN,
                          std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()};
  for (float x = -100.0f; x <= 100.0f; x += 0.0037f) v.push_back(x);
  std::mt19937 rng(5);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  while (v.size() % 8) v.push_back(0.25f);
  return v;
}

bool SameBits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;  // NaN payloads are not part of the contract
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

enum class Domain { kAll, kNonNegative, kNonPositive };

template <class Scalar, class Vector>
void Check(const char* name, Scalar scalar, Vector vector, Domain domain = Domain::kAll) {
  if (!engine::CpuHasAvx2Fma()) GTEST_SKIP() << "CPU without AVX2+FMA";
  std::vector<float> in = Inputs();
  for (float& x : in) {
    if (domain == Domain::kNonNegative) x = std::fabs(x);
    if (domain == Domain::kNonPositive) x = -std::fabs(x);
  }
  std::vector<float> out(in.size());
  for (size_t i = 0; i < in.size(); i += 8) _mm256_storeu_ps(&out[i], vector(_mm256_loadu_ps(&in[i])));
  size_t bad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!SameBits(out[i], scalar(in[i]))) {
      if (++bad < 5) ADD_FAILURE() << name << "(" << in[i] << "): avx2 " << out[i] << " scalar " << scalar(in[i]);
    }
  }
  EXPECT_EQ(bad, 0u) << name;
}

// The exponentials' contract is t <= 0 (NaN included): every caller guarantees it.
TEST(DetMathAvx2, Pow2NonPos) { Check("pow2", Pow2NonPos, avx2::Pow2NonPos, Domain::kNonPositive); }
TEST(DetMathAvx2, ExpNonPos) { Check("exp", ExpNonPos, avx2::ExpNonPos, Domain::kNonPositive); }
TEST(DetMathAvx2, Log1pUnit) { Check("log1p", Log1pUnit, avx2::Log1pUnit, Domain::kNonNegative); }
TEST(DetMathAvx2, Softplus) { Check("softplus", Softplus, avx2::Softplus); }
TEST(DetMathAvx2, Silu) { Check("silu", Silu, avx2::Silu); }
TEST(DetMathAvx2, Gelu) { Check("gelu", Gelu, avx2::Gelu); }

}  // namespace
}  // namespace boa::detmath
