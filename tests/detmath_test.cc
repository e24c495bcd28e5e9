// Deterministic math: constants match their definitions, accuracy against libm, and the AVX2
// versions equal the scalar specification bit for bit.
#include "common/engine/detmath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/engine/kernels.h"

namespace boa::detmath {
namespace {

TEST(DetMath, ConstantsMatchDefinitions) {
  EXPECT_EQ(kExpPoly[kExpDegree], 1.0f);  // e^0 = 1 exactly
  for (int i = 0; i < 6; ++i) {
    int n = 6 - i;
    EXPECT_EQ(kLogPoly[i], static_cast<float>(2.0 / (2 * n + 1))) << i;
  }
  EXPECT_EQ(kLog2e, static_cast<float>(1.0 / std::log(2.0)));
  EXPECT_EQ(static_cast<double>(kLn2Hi) + kLn2Lo, static_cast<double>(kLn2Hi) + static_cast<float>(std::log(2.0) - kLn2Hi));
  EXPECT_EQ(kRsqrt2, static_cast<float>(1.0 / std::sqrt(2.0)));
}

double RelErr(double got, double want) { return std::fabs(got - want) / std::max(std::fabs(want), 1e-30); }

TEST(DetMath, ExpAccuracy) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) worst = std::max(worst, RelErr(Exp(x), std::exp(double(x))));
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(Exp(0.0f), 1.0f);
  EXPECT_EQ(Exp(-100.0f), 0.0f);
  EXPECT_EQ(Exp(89.0f), INFINITY);
  EXPECT_EQ(Exp(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(Exp(NAN)));
}

TEST(DetMath, Pow2NonPos) {
  double worst = 0;
  for (float t = -125.0f; t <= 0.0f; t += 0.00137f) worst = std::max(worst, RelErr(Pow2NonPos(t), std::exp2(double(t))));
  EXPECT_LT(worst, 4e-7);
  for (int k = -125; k <= 0; ++k) ASSERT_EQ(Pow2NonPos(static_cast<float>(k)), std::ldexp(1.0f, k)) << k;
  for (float t : {-125.5f, -1000.0f, -INFINITY, NAN}) EXPECT_EQ(Pow2NonPos(t), std::ldexp(1.0f, -125)) << t;
  EXPECT_EQ(Pow2NonPos(-0.0f), 1.0f);
  for (float t = -126.0f; t <= 0.0f; t += 0.0173f) ASSERT_TRUE(std::isnormal(Pow2NonPos(t))) << t;
  // e^x = 2^(x log2 e): rounding x log2 e costs up to |x| 2^-24 of relative accuracy, the
  // same as rounding the argument x itself (the scan's dt * A) already does.
  double worst_e = 0;
  for (float x = -86.0f; x <= 0.0f; x += 0.0031f)
    worst_e = std::max(worst_e, RelErr(ExpNonPos(x), std::exp(double(x))) / std::max(1.0f, -x));
  EXPECT_LT(worst_e, 4e-7);
}

TEST(DetMath, LogAccuracy) {
  double worst = 0;
  for (float x = 1e-30f; x < 1e30f; x *= 1.0173f) worst = std::max(worst, std::fabs(Log(x) - std::log(double(x))) / std::max(1.0, std::fabs(std::log(double(x)))));
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(Log(1.0f), 0.0f);
  EXPECT_EQ(Log(0.0f), -INFINITY);
  EXPECT_TRUE(std::isnan(Log(-1.0f)));
}

TEST(DetMath, SoftplusSiluAccuracy) {
  double worst_l = 0, worst_s = 0, worst_si = 0;
  for (float u = 0.0f; u <= 1.0f; u += 0.000137f) worst_l = std::max(worst_l, RelErr(Log1pUnit(u), std::log1p(double(u))));
  for (float x = -30.0f; x < 30.0f; x += 0.0091f) {
    double sp = x > 20 ? x : std::log1p(std::exp(double(x)));
    worst_s = std::max(worst_s, RelErr(Softplus(x), sp) / std::max(1.0f, -x));  // e^x below 0
    worst_si = std::max(worst_si, std::fabs(Silu(x) - x / (1 + std::exp(-double(x)))) / std::max(1.0, std::fabs(double(x))));
  }
  EXPECT_LT(worst_l, 3e-7);
  EXPECT_LT(worst_s, 5e-7);
  EXPECT_LT(worst_si, 3e-7);
  EXPECT_EQ(Softplus(25.0f), 25.0f);  // PyTorch's threshold: x itself
  EXPECT_EQ(Silu(0.0f), 0.0f);
}

TEST(DetMath, GeluAccuracy) {
  double worst = 0;
  for (float x = -8.0f; x < 8.0f; x += 0.00071f) {
    double g = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    worst = std::max(worst, std::fabs(Gelu(x) - g) / std::max(1.0, std::fabs(g)));
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(Gelu(0.0f), 0.0f);
  EXPECT_EQ(Gelu(10.0f), 10.0f);
  EXPECT_EQ(Gelu(-10.0f), 0.0f);
}

}  // namespace
}  // namespace boa::detmath
