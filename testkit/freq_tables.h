// Frequency-table helpers for the tests of what mixes into the network's tables (the match
// and derived-field models): a flat table, the validity check, the cost of a byte.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/coder/frequency_table.h"

namespace boa::testing {

// Every byte equally likely.
inline std::vector<uint32_t> UniformTable() {
  std::vector<uint32_t> t(kFreqTableStride);
  for (uint32_t s = 0; s <= 256; ++s) t[s] = s * (kProbTotal / 256);
  return t;
}

// A table the coder accepts: cum[0] = 0, cum[256] = 2^24, every byte at least 1.
inline void ExpectValidTable(const uint32_t* t) {
  ASSERT_EQ(t[0], 0u);
  ASSERT_EQ(t[256], kProbTotal);
  for (int s = 0; s < 256; ++s) ASSERT_GT(t[s + 1], t[s]) << "byte " << s << " has no frequency";
}

// Bits the coder spends on byte b with table t.
inline double CodeBits(const uint32_t* t, uint8_t b) {
  return kProbBits - std::log2(static_cast<double>(t[b + 1] - t[b]));
}

// A network table of one of four kinds at random: flat; one random byte holding all but 255
// of the mass; `right` holding it (a network sure of the coming byte); the mass split at
// random.
inline void RandomNetworkTable(std::mt19937_64& rng, uint8_t right, uint32_t* t) {
  std::vector<uint32_t> f(256, 1);
  switch (rng() % 4) {
    case 0: f.assign(256, kProbTotal / 256); break;
    case 1: f[rng() % 256] = kProbTotal - 255; break;
    case 2: f[right] = kProbTotal - 255; break;
    default: {
      uint32_t left = kProbTotal - 256;
      for (int s = 0; s < 255 && left; ++s) {
        const uint32_t take = static_cast<uint32_t>(rng() % (left + 1)) / 2;
        f[rng() % 256] += take;
        left -= take;
      }
      f[0] += left;
    }
  }
  t[0] = 0;
  for (int s = 0; s < 256; ++s) t[s + 1] = t[s] + f[s];
}

// Feeds bytes[1..] to a mixer with random network tables: `mix(table)` gives the table to
// code with, which must be valid; `update(pos)` follows. Returns the rows it mixed.
template <class Mix, class Update>
int MixOverRandomTables(const std::vector<uint8_t>& bytes, uint64_t seed, Mix mix, Update update) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> t(kFreqTableStride);
  int mixed = 0;
  for (size_t pos = 1; pos < bytes.size(); ++pos) {
    RandomNetworkTable(rng, bytes[pos], t.data());
    const uint32_t* out = mix(t.data());
    ExpectValidTable(out);
    if (::testing::Test::HasFatalFailure()) return -1;
    mixed += out != t.data();
    update(pos);
  }
  return mixed;
}

// Two inputs equal for their first `prefix` bytes: two fresh `Model`s give the same tables
// over them (`mix(model, table)`), whatever follows.
template <class Model, class Mix>
void ExpectNoLookAhead(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t prefix, Mix mix) {
  ASSERT_TRUE(std::equal(a.begin(), a.begin() + static_cast<long>(prefix), b.begin()));
  Model ma, mb;
  const std::vector<uint32_t> uniform = UniformTable();
  for (size_t pos = 1; pos < prefix; ++pos) {
    const uint32_t* ta = mix(ma, uniform.data());
    const std::vector<uint32_t> copy(ta, ta + kFreqTableStride);
    const uint32_t* tb = mix(mb, uniform.data());
    ASSERT_TRUE(std::equal(copy.begin(), copy.end(), tb)) << "position " << pos;
    ma.Update(a.data(), pos);
    mb.Update(b.data(), pos);
  }
}

}  // namespace boa::testing
