// The frequency tables between the engine and the range coder (docs/determinism.md,
// "Quantizer"; docs/format.md, "Range coding"): for every byte it predicts, the engine's
// quantizer writes one cumulative table of kFreqTableStride entries, cum[0] = 0 <= cum[1]
// <= ... <= cum[256] = kProbTotal, every byte value with a frequency of at least 1; the
// coder splits its range by it. Tables of consecutive rows lie kFreqTableStride apart.
#pragma once

#include <cstddef>
#include <cstdint>

namespace boa {

constexpr uint32_t kProbBits = 24;  // frequencies sum to exactly 2^24
constexpr uint32_t kProbTotal = 1u << kProbBits;
constexpr size_t kFreqTableStride = 257;  // 256 byte values and the total

}  // namespace boa
