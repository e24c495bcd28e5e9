// The energy model (docs/determinism.md, "Energy model"): in text listings of four-momenta
// (px py pz E — HepMC3 `P` lines, FastJet-style listings) the energy is no new information:
// E = sqrt(px² + py² + pz² + m²) for one of the few masses the file's particles have. A byte
// network cannot do that arithmetic, so the digits of E cost it as much as those of a random
// number. This model does it: after three numbers on a line it computes E for each mass it
// has seen, prints it as the line's energies are printed (and one more and one less in the
// last digit: the printed px py pz are rounded), and predicts those bytes — the likeliest
// candidate's, and where others' texts differ, theirs too — mixed into the table like the
// match model's prediction, with their own learned confidence.
//
// Everything it computes is exactly specified: IEEE-754 double products, sums and square
// root in a fixed order (no contraction), decimal parsing and printing correctly rounded
// (std::from_chars / std::to_chars), integer counters. One per chunk, fed the chunk's
// bytes in order, so it is the same in chunk and step mode, for any batch and thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/codec/match_model.h"

namespace boa {

class EnergyModel {
 public:
  static constexpr size_t kMasses = 8;      // masses remembered, the most frequent first
  static constexpr size_t kMaxField = 40;   // longest energy field predicted, separators included
  static constexpr size_t kMaxToken = 40;   // longer tokens are not numbers to it

  // The table to code the next byte with: `cum` unless a predicted energy field is being
  // coded, else the mixed table (valid until the next call).
  const uint32_t* Mix(const uint32_t* cum);
  // Byte `pos` of `bytes` is now known.
  void Update(const uint8_t* bytes, size_t pos);

  // How an energy field is printed, learned from the last one seen: C's %.<precision>e
  // (scientific) or %.<precision>g, right-aligned to `width` (0: after one separator).
  struct Layout {
    bool scientific = false;
    int precision = 0;   // 0: none learned yet
    uint32_t width = 0;
  };
  const Layout& layout() const { return layout_; }

 private:
  struct Mass {
    double lo = 0, hi = 0;  // the mass squared lies in [lo, hi] (every line that had it agrees)
    double m2 = 0;          // the value used: the square of the shortest decimal mass in there
    uint32_t lines = 0;     // lines that had it (halved with the others past 1023)
  };
  struct Candidate {
    std::array<char, kMaxField> text{};
    uint8_t length = 0;
    uint8_t rank = 0;     // its mass's place among the masses
    uint8_t variant = 0;  // 0: E as printed; 1, 2: one more, one less in its last digit
  };
  void EndToken(const uint8_t* bytes, size_t end, uint8_t separator);
  void Predict(uint8_t separator);
  void Learn(const uint8_t* bytes);
  static uint32_t Bucket(const Candidate& c, uint32_t offset, uint32_t distinct, uint32_t network_frequency);

  // The line being read. Tokens are runs of bytes other than space, tab, CR and LF.
  bool line_known_ = false;      // false until the chunk's first line break: its first line is partial
  int64_t token_start_ = -1;     // first byte of the current token (-1: between tokens)
  size_t field_start_ = 0;       // where the current token's field (separators first) began
  std::array<double, 5> run_{};  // the first five floats of the line's first run of four or more
  uint32_t run_length_ = 0;      // floats in run_ (the first run only)
  bool run_closed_ = false;      // the first run of four or more floats has ended
  size_t energy_field_start_ = 0, energy_start_ = 0, energy_end_ = 0;  // the 4th float of the run

  // The prediction under way: candidates still consistent with the bytes coded so far.
  std::array<Candidate, 3 * kMasses> candidates_{};
  uint32_t candidate_count_ = 0;
  uint32_t offset_ = 0;  // bytes of the field coded so far
  // The predictions Mix made: the first candidate's byte, then each next candidate's whose
  // byte differs from those before, up to kPicks, each with its counter (-1: none).
  static constexpr int kPicks = 4;
  std::array<int32_t, kPicks> bucket_{-1, -1, -1, -1};
  std::array<uint8_t, kPicks> predicted_{};

  std::array<Mass, kMasses> masses_{};
  uint32_t mass_count_ = 0;
  Layout layout_;
  std::array<std::array<HitCounter, 6 * 24 * kPicks * 4>, kPicks> counters_{};
  std::array<std::array<uint32_t, 257>, kPicks> mixed_{};
};

}  // namespace boa
