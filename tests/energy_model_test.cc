// The energy model's rules: it learns how a listing prints its energies and which masses
// its particles have, then predicts E from px py pz so the energy digits cost a fraction of
// a bit; its tables are always valid, it never looks at a byte not yet known, and text that
// is not a four-momentum listing is left to the network.
#include "common/codec/energy_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "common/coder/frequency_table.h"
#include "testkit/freq_tables.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

using testing::CodeBits;
using testing::ExpectValidTable;
using testing::UniformTable;

// Codes `text` with a uniform network table; the bits spent on each byte.
std::vector<double> CostPerByte(const std::string& text, EnergyModel* m) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const std::vector<uint32_t> uniform = UniformTable();
  std::vector<double> bits(text.size(), 8);
  for (size_t pos = 1; pos < text.size(); ++pos) {
    const uint32_t* t = m->Mix(uniform.data());
    ExpectValidTable(t);
    bits[pos] = CodeBits(t, bytes[pos]);
    m->Update(bytes, pos);
  }
  return bits;
}

// Bits per byte spent on the last `field` bytes of each line (the energy column) after the
// first `skip` bytes, and on everything else there.
std::pair<double, double> EnergyAndRest(const std::string& text, const std::vector<double>& bits, size_t field, size_t skip) {
  double energy = 0, rest = 0;
  size_t n_energy = 0, n_rest = 0;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    const bool listing = text[line_start] != '#' && i - line_start > field;
    for (size_t k = line_start; k < i; ++k) {
      if (k < skip) continue;
      if (listing && k >= i - field) {
        energy += bits[k];
        ++n_energy;
      } else {
        rest += bits[k];
        ++n_rest;
      }
    }
    line_start = i + 1;
  }
  return {energy / std::max<size_t>(n_energy, 1), rest / std::max<size_t>(n_rest, 1)};
}

TEST(EnergyModel, PredictsTheEnergyColumnOfAFourMomentumListing) {
  const std::vector<uint8_t> v = testing::FourMomentumText(60000, 1);
  const std::string text(v.begin(), v.end());
  EnergyModel m;
  const std::vector<double> bits = CostPerByte(text, &m);
  EXPECT_FALSE(m.layout().scientific);
  EXPECT_EQ(m.layout().precision, 10);
  EXPECT_EQ(m.layout().width, 17u);
  const auto [energy, rest] = EnergyAndRest(text, bits, 17, 5000);
  // px py pz stay the network's (uniform here); E costs a fraction of a bit per byte.
  EXPECT_NEAR(rest, 8.0, 0.01);
  EXPECT_LT(energy, 0.8) << "bits per byte of the energy column";
}

// HepMC3's P lines: "P id parent pdg px py pz E m status" in %.16e, the mass listed after
// the energy; every energy that is sqrt(p² + m²) of its line is predicted exactly.
TEST(EnergyModel, LearnsHepMC3PrintingAndItsListedMasses) {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> u(-30, 30);
  const double masses[] = {0.13957, 0.93827000000000005, 0.0, 0.493677};
  std::string text = "HepMC::Version 3.02.05\n";
  char buf[300];
  for (int i = 0; i < 600; ++i) {
    const double px = u(rng), py = u(rng), pz = 10 * u(rng), m = masses[rng() % 4];
    std::snprintf(buf, sizeof buf, "P %d %d 211 %.16e %.16e %.16e %.16e %.16e 1\n", i + 1, i / 2, px, py, pz,
                  std::sqrt(px * px + py * py + pz * pz + m * m), m);
    text += buf;
  }
  EnergyModel m;
  const std::vector<double> bits = CostPerByte(text, &m);
  EXPECT_TRUE(m.layout().scientific);
  EXPECT_EQ(m.layout().precision, 16);
  EXPECT_EQ(m.layout().width, 0u);  // one separator, not a column
  // The energy field is the 4th float: " <E> <m> 1" ends each line; count E's 23 bytes.
  double energy = 0;
  size_t n = 0;
  for (size_t i = 20000; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    const size_t e_end = i - 2 - 23;  // before " <m>" and " 1" (masses are positive: 22 digits and signs)
    for (size_t k = e_end - 22; k < e_end; ++k, ++n) energy += bits[k];
  }
  EXPECT_LT(energy / n, 0.5) << "bits per byte of the energy digits";
}

// Text whose fourth number is not an energy: after a few misses the model stops paying
// for its guesses (its counters learn they fail), so it costs next to nothing.
TEST(EnergyModel, ListingsWhoseFourthNumberIsNoEnergyCostLittle) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 10);
  std::string text;
  char buf[200];
  for (int i = 0; i < 2000; ++i) {
    std::snprintf(buf, sizeof buf, "%17.10g%17.10g%17.10g%17.10g\n", u(rng), u(rng), u(rng), u(rng));
    text += buf;
  }
  EnergyModel m;
  const std::vector<double> bits = CostPerByte(text, &m);
  double total = 0;
  for (size_t i = 20000; i < bits.size(); ++i) total += bits[i];
  EXPECT_LT(total / static_cast<double>(bits.size() - 20000), 8.02);
}

TEST(EnergyModel, MixedTablesAreValidForAnyNetworkTable) {
  const std::vector<uint8_t> bytes = testing::FourMomentumText(30000, 2);
  EnergyModel m;
  const int mixed_rows = testing::MixOverRandomTables(
      bytes, 3, [&](const uint32_t* t) { return m.Mix(t); }, [&](size_t pos) { m.Update(bytes.data(), pos); });
  EXPECT_GT(mixed_rows, 3000);
}

// Two texts with the same first half: the same tables over that half, whatever follows.
TEST(EnergyModel, NeverLooksAhead) {
  std::vector<uint8_t> a = testing::FourMomentumText(20000, 3), b = testing::FourMomentumText(20000, 4);
  std::copy(a.begin(), a.begin() + 10000, b.begin());
  testing::ExpectNoLookAhead<EnergyModel>(a, b, 10000, [](EnergyModel& m, const uint32_t* t) { return m.Mix(t); });
}

// Hostile text: long tokens, lone signs and points, inf/nan, huge exponents, binary bytes.
TEST(EnergyModel, AnyBytesAreSafe) {
  std::string text = "1.5 2.5 3.5 4.5\n+ - . e .e 1e999999 -1e-999 nan inf 1.0 2.0 3.0\n";
  text += std::string(300, '9') + ".5 1.0 1.0 1.0 1.0\n1e308 1e308 1e308 1e308\n";
  text += "0.1 0.2 0.3\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t0.4\n";
  std::mt19937_64 rng(6);
  for (int i = 0; i < 20000; ++i) text += static_cast<char>(rng() % 3 ? "0123456789.e+- \n"[rng() % 16] : rng() % 256);
  EnergyModel m;
  CostPerByte(text, &m);
}

}  // namespace
}  // namespace boa
