// Range coder: round trips on random tables, carry-heavy and extreme distributions,
// corrupt input never crashes, and the coded size is within 0.05 % of the ideal code
// length on over 1 MB of model-coded data.
#include "common/coder/range_coder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/engine/engine.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

constexpr uint32_t kTotal = 1u << 24;

std::vector<uint32_t> TableFromWeights(const std::vector<double>& w) {
  double sum = 0;
  for (double x : w) sum += x;
  std::vector<uint32_t> f(256);
  uint64_t total = 0;
  for (int i = 0; i < 256; ++i) {
    f[i] = 1 + static_cast<uint32_t>(w[i] / sum * (kTotal - 256));
    total += f[i];
  }
  f[0] += kTotal - static_cast<uint32_t>(total);
  std::vector<uint32_t> cum(257, 0);
  for (int i = 0; i < 256; ++i) cum[i + 1] = cum[i] + f[i];
  return cum;
}

void RoundTrip(const std::vector<std::vector<uint32_t>>& tables, const std::vector<int>& which,
               const std::vector<uint8_t>& symbols) {
  std::vector<uint8_t> out;
  RangeEncoder enc(&out);
  for (size_t i = 0; i < symbols.size(); ++i) {
    const auto& c = tables[which[i]];
    enc.Encode(c[symbols[i]], c[symbols[i] + 1] - c[symbols[i]]);
  }
  enc.Finish();
  if (!out.empty()) {
    ASSERT_NE(out.back(), 0) << "trailing zeros must be trimmed";
  }
  RangeDecoder dec(out.data(), out.size());
  for (size_t i = 0; i < symbols.size(); ++i) ASSERT_EQ(dec.Decode(tables[which[i]].data()), symbols[i]) << "symbol " << i;
}

TEST(RangeCoder, EmptyStreamIsEmpty) {
  std::vector<uint8_t> out;
  RangeEncoder enc(&out);
  enc.Finish();
  EXPECT_TRUE(out.empty());
}

TEST(RangeCoder, RoundTripsManyDistributions) {
  std::mt19937_64 rng(1);
  std::vector<std::vector<uint32_t>> tables;
  tables.push_back(TableFromWeights(std::vector<double>(256, 1.0)));  // uniform
  for (int k = 0; k < 20; ++k) {
    std::vector<double> w(256);
    double sharp = std::pow(10.0, k % 7);
    for (auto& x : w) x = std::exp(std::uniform_real_distribution<double>(0, std::log(sharp + 1))(rng));
    tables.push_back(TableFromWeights(w));
  }
  std::vector<double> peaked(256, 0.0);
  peaked[255] = 1.0;  // every other symbol at the minimum frequency 1
  tables.push_back(TableFromWeights(peaked));
  for (int trial = 0; trial < 30; ++trial) {
    size_t n = 1 + rng() % 5000;
    std::vector<int> which(n);
    std::vector<uint8_t> sym(n);
    for (size_t i = 0; i < n; ++i) {
      which[i] = static_cast<int>(rng() % tables.size());
      // Mostly likely symbols, sometimes the rarest ones (which exercise carries).
      const auto& c = tables[which[i]];
      if (rng() % 4 == 0) {
        sym[i] = static_cast<uint8_t>(rng());
      } else {
        uint32_t t = static_cast<uint32_t>(rng() % kTotal);
        int s = 0;
        while (c[s + 1] <= t) ++s;
        sym[i] = static_cast<uint8_t>(s);
      }
    }
    RoundTrip(tables, which, sym);
  }
}

TEST(RangeCoder, CarryPropagationThroughLongRunsOfOnes) {
  // Alternating the top and bottom symbols of a peaked table drives low towards all-ones
  // words and then carries through them.
  std::vector<double> w(256, 0.0);
  w[255] = 1.0;
  auto peaked = TableFromWeights(w);
  std::vector<std::vector<uint32_t>> tables = {peaked};
  for (int pattern = 0; pattern < 8; ++pattern) {
    std::vector<uint8_t> sym;
    for (int i = 0; i < 20000; ++i) sym.push_back(((i >> pattern) % 97 == 0) ? (i % 2 ? 0 : 254) : 255);
    RoundTrip(tables, std::vector<int>(sym.size(), 0), sym);
  }
}

TEST(RangeCoder, CorruptInputNeverCrashes) {
  std::mt19937_64 rng(3);
  auto uniform = TableFromWeights(std::vector<double>(256, 1.0));
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> junk(rng() % 64);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    RangeDecoder dec(junk.data(), junk.size());
    for (int i = 0; i < 100; ++i) {
      int s = dec.Decode(uniform.data());
      ASSERT_GE(s, -1);
      ASSERT_LE(s, 255);
      if (s < 0) break;
    }
  }
  // A value at the very top of the initial range is detected, not decoded.
  std::vector<uint8_t> ones(8, 0xff);
  RangeDecoder dec(ones.data(), ones.size());
  EXPECT_EQ(dec.Decode(uniform.data()), -1);
}

TEST(RangeCoder, OverheadOverIdealCodeLengthOnModelCodedData) {
  // Over 1 MB of model-coded data: drawn from the model itself, so it is predicted as well
  // as a trained model predicts in-distribution data.
  LoadedModel m = boa::testing::MakeModel(16, 1, 5, 8.0f);
  auto engine = engine::Engine::Create(m.weights, engine::Backend::kAuto).value();
  std::vector<uint8_t> data = boa::testing::SampleFromModel(m, 1400000, 9);
  const int tile = 512;
  auto session_owner = engine::Session::New(engine, 1, tile);
  engine::Session& session = *session_owner;
  std::vector<uint32_t> cum(static_cast<size_t>(tile) * 257);
  std::vector<uint8_t> coded;
  RangeEncoder enc(&coded);
  double ideal_bits = 0;
  for (size_t t = 0; t + 1 < data.size(); t += tile) {
    int n = static_cast<int>(std::min<size_t>(tile, data.size() - 1 - t));
    engine::LaneInput in{0, &data[t], n};
    session.Forward(&in, 1, cum.data());
    for (int r = 0; r < n; ++r) {
      const uint32_t* c = &cum[static_cast<size_t>(r) * 257];
      uint8_t s = data[t + r + 1];
      enc.Encode(c[s], c[s + 1] - c[s]);
      ideal_bits += 24 - std::log2(double(c[s + 1] - c[s]));
    }
  }
  enc.Finish();
  double ideal_bytes = ideal_bits / 8;
  double overhead = (coded.size() - ideal_bytes) / ideal_bytes;
  std::printf("[ coder ] %zu input bytes: coded %zu bytes, ideal %.1f bytes, overhead %.5f %%\n",
              data.size(), coded.size(), ideal_bytes, 100 * overhead);
  EXPECT_GT(coded.size(), 0u);
  EXPECT_LT(ideal_bytes, 0.9 * data.size()) << "the predictions should be skewed, not uniform";
  EXPECT_GT(coded.size(), 1000000u) << "over 1 MB of coded data";
  EXPECT_LT(overhead, 0.0005);
  RangeDecoder dec(coded.data(), coded.size());
  session.ResetLane(0);
  std::vector<uint8_t> back = {data[0]};
  for (size_t t = 0; t + 1 < data.size() && t < 20000; ++t) {
    engine::LaneInput in{0, &back[t], 1};
    session.Forward(&in, 1, cum.data());
    back.push_back(static_cast<uint8_t>(dec.Decode(cum.data())));
    ASSERT_EQ(back.back(), data[t + 1]) << "at " << t + 1;
  }
}

}  // namespace
}  // namespace boa
