// The column-sum model's rules: in a float32 table whose records it was never told the
// length of, starting mid-record, it finds the column that is the sum of two others and
// predicts its bytes; its tables are always valid, it never looks at a byte not yet known,
// and tables without such a column cost next to nothing more.
#include "common/codec/sum_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/coder/frequency_table.h"
#include "testkit/freq_tables.h"

namespace boa {
namespace {

using testing::CodeBits;
using testing::ExpectValidTable;
using testing::UniformTable;

// Records of `columns` float32 values; column `sum` (if any) is column a plus column b.
std::vector<uint8_t> Table(size_t rows, uint32_t columns, int sum, int a, int b, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0, 500);
  std::vector<float> v(rows * columns);
  for (size_t r = 0; r < rows; ++r) {
    float* row = &v[r * columns];
    for (uint32_t c = 0; c < columns; ++c) row[c] = rng() % 4 == 0 ? 0.0f : u(rng);
    if (sum >= 0) row[sum] = row[a] + row[b];
  }
  std::vector<uint8_t> bytes(v.size() * 4);
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

// Bits spent per byte with a uniform network table, from `skip` on: on bytes of `column`
// (of `columns`, the data starting `phase` floats into a record) and on the others.
std::pair<double, double> ColumnAndRest(const std::vector<uint8_t>& bytes, uint32_t columns, uint32_t column,
                                        uint32_t phase, size_t skip) {
  SumModel m;
  const std::vector<uint32_t> uniform = UniformTable();
  double in = 0, out = 0;
  size_t n_in = 0, n_out = 0;
  for (size_t pos = 1; pos < bytes.size(); ++pos) {
    const uint32_t* t = m.Mix(uniform.data());
    ExpectValidTable(t);
    const double bits = CodeBits(t, bytes[pos]);
    if (pos >= skip) {
      if ((pos / 4 + phase) % columns == column) {
        in += bits;
        ++n_in;
      } else {
        out += bits;
        ++n_out;
      }
    }
    m.Update(bytes.data(), pos);
  }
  return {in / std::max<size_t>(n_in, 1), out / std::max<size_t>(n_out, 1)};
}

TEST(SumModel, FindsTheSumColumnWithoutKnowingTheRecord) {
  // 13 columns, column 11 = column 2 + column 7; the data starts 5 floats into a record.
  const std::vector<uint8_t> table = Table(3000, 13, 11, 2, 7, 1);
  const std::vector<uint8_t> bytes(table.begin() + 5 * 4, table.end());
  const auto [sum, rest] = ColumnAndRest(bytes, 13, 11, 5, 20000);
  EXPECT_LT(sum, 0.5) << "bits per byte of the sum column";
  EXPECT_NEAR(rest, 8.0, 0.01);
}

TEST(SumModel, TablesWithoutASumCostNextToNothingMore) {
  const std::vector<uint8_t> bytes = Table(3000, 13, -1, 0, 0, 2);
  const auto [column, rest] = ColumnAndRest(bytes, 13, 11, 0, 20000);
  EXPECT_LT((column + 12 * rest) / 13, 8.01);
}

TEST(SumModel, MixedTablesAreValidForAnyNetworkTable) {
  const std::vector<uint8_t> bytes = Table(2000, 6, 4, 0, 1, 3);
  SumModel m;
  const int mixed_rows = testing::MixOverRandomTables(
      bytes, 3, [&](const uint32_t* t) { return m.Mix(t); }, [&](size_t pos) { m.Update(bytes.data(), pos); });
  EXPECT_GT(mixed_rows, 2000);
}

TEST(SumModel, NeverLooksAhead) {
  std::vector<uint8_t> a = Table(1000, 6, 4, 0, 1, 4), b = Table(1000, 6, 4, 0, 1, 5);
  std::copy(a.begin(), a.begin() + a.size() / 2, b.begin());
  testing::ExpectNoLookAhead<SumModel>(a, b, a.size() / 2, [](SumModel& m, const uint32_t* t) { return m.Mix(t); });
}

// NaN, infinities, denormals and sums that overflow: no crash, valid tables.
TEST(SumModel, AnyFloatsAreSafe) {
  std::mt19937_64 rng(6);
  std::vector<uint8_t> bytes(40000);
  for (auto& x : bytes) x = static_cast<uint8_t>(rng());
  const float specials[] = {NAN, INFINITY, -INFINITY, 3e38f, 3e38f, 1e-45f, -0.0f};
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4 * (1 + rng() % 5)) std::memcpy(&bytes[i], &specials[rng() % 7], 4);
  SumModel m;
  const std::vector<uint32_t> uniform = UniformTable();
  for (size_t pos = 1; pos < bytes.size(); ++pos) {
    ExpectValidTable(m.Mix(uniform.data()));
    m.Update(bytes.data(), pos);
  }
}

}  // namespace
}  // namespace boa
