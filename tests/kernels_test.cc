// Each AVX2 kernel equals the scalar reference bit for bit on random shapes and data,
// including ragged sizes (tails), every epilogue, and degenerate quantizer inputs.
#include "common/engine/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "common/engine/detmath.h"

namespace boa::engine {
namespace {

class KernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    avx2_ = SelectKernels(Backend::kAvx2);
    if (!avx2_) GTEST_SKIP() << "AVX2 backend not available here";
  }
  std::vector<float> Random(size_t n, float scale) {
    std::uniform_real_distribution<float> d(-scale, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng_);
    return v;
  }
  static void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size());
    size_t bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      if (std::memcmp(&a[i], &b[i], 4) != 0 && ++bad < 4) ADD_FAILURE() << what << " [" << i << "]: " << a[i] << " vs " << b[i];
    }
    EXPECT_EQ(bad, 0u) << what;
  }
  const KernelSet& scalar_ = ScalarKernels();
  const KernelSet* avx2_ = nullptr;
  std::mt19937 rng_{42};
};

TEST_F(KernelsTest, LinearAllShapesAndEpilogues) {
  const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {7, 16, 33}, {13, 48, 64}, {6, 17, 24}, {64, 1024, 256}, {100, 256, 31}, {5, 3, 300},
                           {9, 8, 12}, {13, 40, 20}, {7, 36, 128},  // last panels of <= 8 columns,
                           {8, 8, 12}, {10, 20, 20}};                  // in every row-block size
  for (auto [rows, out, in] : shapes) {
    for (Epilogue e : {Epilogue::kStore, Epilogue::kAdd, Epilogue::kRelu, Epilogue::kGelu, Epilogue::kSoftplus}) {
      auto w = Random(static_cast<size_t>(out) * in, 1.0f / std::sqrt(float(in)));
      auto b = Random(out, 0.5f);
      PackedLinear W;
      W.Pack(w.data(), (out % 2) ? b.data() : nullptr, out, in);
      const size_t ldx = in + 3, ldy = out + 5;  // strided rows, as the engine uses them
      auto x = Random(rows * ldx, 3.0f);
      auto y0 = Random(rows * ldy, 1.0f);
      auto y1 = y0;
      scalar_.linear(W, x.data(), ldx, rows, y0.data(), ldy, e);
      avx2_->linear(W, x.data(), ldx, rows, y1.data(), ldy, e);
      ExpectSameBits(y0, y1, "linear");
    }
  }
}

TEST_F(KernelsTest, LinearIsAnFmaChainInKOrder) {
  // One output, checked against an explicit sequential fma chain.
  const int in = 37;
  auto w = Random(in, 1.0f);
  auto x = Random(in, 1.0f);
  float bias = 0.25f;
  PackedLinear W;
  W.Pack(w.data(), &bias, 1, in);
  float want = bias;
  for (int k = 0; k < in; ++k) want = std::fma(w[k], x[k], want);
  float y0 = 0, y1 = 0;
  scalar_.linear(W, x.data(), in, 1, &y0, 1, Epilogue::kStore);
  avx2_->linear(W, x.data(), in, 1, &y1, 1, Epilogue::kStore);
  EXPECT_EQ(y0, want);
  EXPECT_EQ(y1, want);
}

TEST_F(KernelsTest, LayerNorm) {
  for (int D : {1, 5, 8, 13, 64, 256, 259}) {
    const size_t rows = 9;
    auto x = Random(rows * D, 4.0f);
    auto w = Random(D, 1.5f), b = Random(D, 0.5f);
    std::vector<float> y0(rows * D), y1(rows * D);
    scalar_.layer_norm(x.data(), D, rows, D, w.data(), b.data(), y0.data(), D);
    avx2_->layer_norm(x.data(), D, rows, D, w.data(), b.data(), y1.data(), D);
    ExpectSameBits(y0, y1, "layer_norm");
  }
}

TEST_F(KernelsTest, ConvSiluOverTime) {
  for (int E : {2, 8, 30, 512}) {
    for (int dc : {1, 2, 4}) {
      auto w = Random(static_cast<size_t>(dc) * E, 0.5f), b = Random(E, 0.5f);
      std::vector<float> win0(static_cast<size_t>(std::max(dc - 1, 0)) * E, 0.0f), win1 = win0;
      for (int t = 0; t < 6; ++t) {
        auto x = Random(E, 2.0f);
        std::vector<float> c0(E), c1(E);
        scalar_.conv_silu(x.data(), win0.data(), w.data(), b.data(), E, dc, c0.data());
        avx2_->conv_silu(x.data(), win1.data(), w.data(), b.data(), E, dc, c1.data());
        ExpectSameBits(c0, c1, "conv_silu");
        ExpectSameBits(win0, win1, "conv window");
      }
    }
  }
}

// Steps 0-4 keep every decay above the clamp. From step 5 the groups of eight channels (the
// AVX2 kernel's unit) differ: all deltas small (the clamp-free loop); a third of them large
// enough to push decays below the clamp; one lane just past its channel's bound
// delta * min A = kPow2Min; one NaN, one infinite, two negative lanes (one infinite, against
// A values of -0). The AVX2 kernel must match the reference bit for bit given min(A), and
// given NaN for it (always clamping).
TEST_F(KernelsTest, ScanOverTime) {
  for (int E : {2, 12, 64, 512}) {
    for (int S : {1, 16}) {
      auto A = Random(StateSize(E, S), 1.0f);
      for (auto& a : A) a = -std::fabs(a) * 8;
      for (size_t i = 0; i < A.size(); i += 5) A[i] = -0.0f;  // Exp(A_log) underflowed: -inf * A is NaN
      const float a_min = *std::min_element(A.begin(), A.end());
      auto Dk = Random(E, 1.0f);
      std::vector<float> h0(StateSize(E, S), 0.0f), h1 = h0, h2 = h0;
      for (int t = 0; t < 10; ++t) {
        auto delta = Random(E, 1.0f);
        for (auto& d : delta) d = std::fabs(d) * 0.2f;
        for (int ch = 0; t >= 5 && ch < E; ++ch) {
          const int lane = ch % 8;
          float channel_min = 0;
          for (int n = 0; n < S; ++n) channel_min = std::min(channel_min, A[StateIndex(n, ch, S)]);
          switch (ch / 8 % 6) {
            case 1: if (lane % 3 == 0) delta[ch] *= 1000.0f; break;
            case 2: if (lane == 5) delta[ch] = std::nextafter(detmath::kPow2Min / channel_min, INFINITY); break;
            case 3: if (lane == 2) delta[ch] = NAN; break;
            case 4: if (lane == 6) delta[ch] = INFINITY; break;
            case 5: if (lane == 1) delta[ch] = -delta[ch]; if (lane == 4) delta[ch] = -INFINITY; break;
          }
        }
        auto u = Random(E, 2.0f), z = Random(E, 3.0f), B = Random(S, 1.0f), C = Random(S, 1.0f);
        std::vector<float> y0(E), y1(E), y2(E);
        scalar_.scan(delta.data(), u.data(), z.data(), B.data(), C.data(), A.data(), a_min, Dk.data(), E, S,
                     h0.data(), y0.data());
        avx2_->scan(delta.data(), u.data(), z.data(), B.data(), C.data(), A.data(), a_min, Dk.data(), E, S,
                    h1.data(), y1.data());
        avx2_->scan(delta.data(), u.data(), z.data(), B.data(), C.data(), A.data(), NAN, Dk.data(), E, S,
                    h2.data(), y2.data());
        ExpectSameBits(y0, y1, "scan y");
        ExpectSameBits(h0, h1, "scan h");
        ExpectSameBits(y0, y2, "scan y, a_min NaN");
        ExpectSameBits(h0, h2, "scan h, a_min NaN");
      }
    }
  }
}

void CheckTable(const uint32_t* cum) {
  ASSERT_EQ(cum[0], 0u);
  ASSERT_EQ(cum[256], kProbTotal);
  for (int i = 0; i < 256; ++i) ASSERT_GE(cum[i + 1], cum[i] + 1) << "symbol " << i << " has frequency 0";
}

TEST_F(KernelsTest, QuantizeMatchesAndIsValid) {
  std::vector<std::vector<float>> cases;
  for (float scale : {0.0f, 0.01f, 1.0f, 10.0f, 100.0f, 1e4f}) cases.push_back(Random(256, scale));
  std::vector<float> special(256, 0.0f);
  special[7] = NAN;
  special[9] = -INFINITY;
  special[200] = 50.0f;
  cases.push_back(special);
  cases.push_back(std::vector<float>(256, NAN));
  cases.push_back(std::vector<float>(256, -INFINITY));
  std::vector<float> with_inf(256, 1.0f);
  with_inf[3] = INFINITY;
  cases.push_back(with_inf);
  std::vector<float> huge(256, -3e38f);
  huge[0] = 3e38f;
  cases.push_back(huge);
  std::vector<float> zeros(256, 0.0f);
  zeros[0] = -0.0f;
  cases.push_back(zeros);
  for (size_t c = 0; c < cases.size(); ++c) {
    uint32_t a[257], b[257];
    scalar_.quantize(cases[c].data(), a);
    avx2_->quantize(cases[c].data(), b);
    CheckTable(a);
    EXPECT_EQ(0, std::memcmp(a, b, sizeof a)) << "case " << c;
  }
}

TEST_F(KernelsTest, QuantizeFollowsProbabilities) {
  std::vector<float> l(256, 0.0f);
  l[65] = std::log(1000.0f);  // p(65) = 1000 / 1255
  uint32_t cum[257];
  scalar_.quantize(l.data(), cum);
  double p = double(cum[66] - cum[65]) / kProbTotal;
  EXPECT_NEAR(p, 1000.0 / 1255.0, 1e-5);
  EXPECT_NEAR(double(cum[1] - cum[0]) / kProbTotal, 1.0 / 1255.0, 1e-5);
}

// Buffers of 2 MiB or more are 2 MiB-aligned (for transparent huge pages), smaller ones
// cache-line aligned, also across a reallocation over the threshold (whether each is freed
// with its own alignment only an AddressSanitizer build checks).
TEST(FloatBufferTest, AlignmentFollowsSize) {
  const size_t huge_floats = kHugePageBytes / sizeof(float);
  for (size_t n : {size_t{1}, size_t{1000}, huge_floats - 1, huge_floats, 3 * huge_floats / 2}) {
    FloatBuffer b(n, 1.0f);
    const auto address = reinterpret_cast<uintptr_t>(b.data());
    EXPECT_EQ(address % 64, 0u) << n;
    if (n >= huge_floats) {
      EXPECT_EQ(address % kHugePageBytes, 0u) << n;
    }
    b.resize(n + huge_floats);  // reallocates across the threshold: old and new freed correctly
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kHugePageBytes, 0u) << n;
    EXPECT_EQ(b[n - 1], 1.0f);
  }
}

}  // namespace
}  // namespace boa::engine
