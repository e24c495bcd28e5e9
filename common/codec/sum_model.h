// The column-sum model (docs/determinism.md, "Column-sum model"): in tables of float32
// records, a column is often the sum of two others of the same record (a total energy of
// its charged and neutral parts, a multiplicity of its kinds), to the last bit. A byte
// network cannot add, so such a column costs it as much as any other. This model finds
// those columns without knowing the record layout: at each 4-byte-aligned float of the
// chunk it checks, for every pair of floats 1..kReach back, whether this float is their
// float32 sum, and learns which pairs come true at a regular stride (the record length).
// When one is due, it predicts the float's four bytes (little-endian), mixed into the
// table like the match model's prediction with its own learned confidence.
//
// float32 additions and comparisons (IEEE-754, round to nearest) and integer counters
// only. One per chunk, fed the chunk's bytes in order, so it is the same in chunk and step
// mode, for any batch and thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/codec/match_model.h"

namespace boa {

class SumModel {
 public:
  static constexpr uint32_t kReach = 24;  // floats back a summand may lie

  // The table to code the next byte with: `cum` unless a due sum predicts it, else the
  // mixed table (valid until the next call).
  const uint32_t* Mix(const uint32_t* cum);
  // Byte `pos` of `bytes` is now known.
  void Update(const uint8_t* bytes, size_t pos);

 private:
  // A pair (i, j), 1 <= i < j <= kReach: the float j back plus the float i back.
  struct Pair {
    uint64_t last = 0;     // float index + 1 of its last nonzero hit (0: none)
    uint32_t stride = 0;   // the gap between its last two hits (0: one hit so far)
    uint32_t repeats = 0;  // hits at that stride (or a multiple of it) in a row, up to 255
  };
  static constexpr uint32_t kPairs = kReach * (kReach - 1) / 2;
  void EndFloat(const uint8_t* bytes, size_t pos);
  void PredictNext(const uint8_t* bytes, size_t pos);

  std::array<Pair, kPairs> pairs_{};
  // The prediction for the float being coded: its bytes, how many are coded, and whether
  // all so far matched.
  std::array<uint8_t, 4> predicted_{};
  uint32_t level_ = 0;     // confidence level of the pair that predicts (0: no prediction)
  uint32_t offset_ = 0;    // bytes of the predicted float coded so far
  int32_t bucket_ = -1;    // the counter of the prediction Mix made (-1: none)
  std::array<HitCounter, 4 * 8 * 4> counters_{};
  std::array<uint32_t, 257> mixed_{};
};

}  // namespace boa
