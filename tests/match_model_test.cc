// The match model's rules: it predicts the byte that followed the last occurrence of the
// context, its mixed tables are always valid (every byte >= 1, sum 2^24), it learns its
// confidence from its own hits and misses, and it never looks at a byte not yet known.
#include "common/codec/match_model.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/coder/frequency_table.h"
#include "testkit/freq_tables.h"

namespace boa {
namespace {

using testing::CodeBits;
using testing::ExpectValidTable;
using testing::UniformTable;

TEST(MatchModel, PredictsWhatFollowedTheContextBefore) {
  const std::string text = "event header 0123456789; event header 0123456789; event header 0123456789;";
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  MatchModel m(static_cast<uint32_t>(text.size()));
  const std::vector<uint32_t> uniform = UniformTable();
  double first = 0, later = 0;
  for (size_t pos = 1; pos < text.size(); ++pos) {
    const uint32_t* t = m.Mix(bytes, uniform.data());
    ExpectValidTable(t);
    (pos < 26 ? first : later) += CodeBits(t, bytes[pos]);
    m.Update(bytes, pos);
  }
  EXPECT_NEAR(first / 25, 8.0, 1e-6);   // nothing repeats yet: the network's table as it is
  EXPECT_LT(later / (text.size() - 26), 1.5);  // the repeats cost a fraction of a byte
}

TEST(MatchModel, MixedTablesAreValidForAnyNetworkTable) {
  std::mt19937_64 rng(3);
  std::vector<uint8_t> bytes(20000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = i >= 5000 && rng() % 4 ? bytes[i - 5000] : static_cast<uint8_t>(rng() % 4);
  MatchModel m(static_cast<uint32_t>(bytes.size()));
  const int mixed_rows = testing::MixOverRandomTables(
      bytes, 3, [&](const uint32_t* t) { return m.Mix(bytes.data(), t); }, [&](size_t pos) { m.Update(bytes.data(), pos); });
  EXPECT_GT(mixed_rows, 5000);
}

TEST(MatchModel, ConfidenceFollowsHowOftenMatchesComeTrue) {
  // A context seen before, followed by a different byte every time: the model learns its
  // matches are wrong and stops trusting them.
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 4000; ++i) {
    const std::string s = "context:";
    bytes.insert(bytes.end(), s.begin(), s.end());
    bytes.push_back(static_cast<uint8_t>('a' + i % 26));
  }
  MatchModel m(static_cast<uint32_t>(bytes.size()));
  const std::vector<uint32_t> uniform = UniformTable();
  double late_wrong_cost = 0;
  int n = 0;
  for (size_t pos = 1; pos < bytes.size(); ++pos) {
    const uint32_t* t = m.Mix(bytes.data(), uniform.data());
    if (pos > bytes.size() - 900 && pos % 9 == 8) {  // the letter after "context:"
      late_wrong_cost += CodeBits(t, bytes[pos]);
      ++n;
    }
    m.Update(bytes.data(), pos);
  }
  EXPECT_LT(late_wrong_cost / n, 8.5);  // barely more than the network's 8 bits
}

TEST(MatchModel, NeverReadsAByteNotYetKnown) {
  // Bytes after the current position are poison: the model must give the same tables
  // whatever they hold (the decoder has not decoded them yet).
  std::mt19937_64 rng(9);
  std::vector<uint8_t> a(3000);
  for (auto& x : a) x = static_cast<uint8_t>("abcab"[rng() % 5]);
  const std::vector<uint32_t> uniform = UniformTable();
  MatchModel x(3000), y(3000);
  std::vector<uint8_t> b(3000, 0);
  for (size_t pos = 1; pos < a.size(); ++pos) {
    std::copy(a.begin(), a.begin() + static_cast<long>(pos), b.begin());
    for (size_t i = pos; i < b.size(); ++i) b[i] = static_cast<uint8_t>(rng());
    const uint32_t* ta = x.Mix(a.data(), uniform.data());
    const uint32_t* tb = y.Mix(b.data(), uniform.data());
    ASSERT_TRUE(std::equal(ta, ta + kFreqTableStride, tb)) << "position " << pos;
    b[pos] = a[pos];
    x.Update(a.data(), pos);
    y.Update(b.data(), pos);
  }
}

}  // namespace
}  // namespace boa
