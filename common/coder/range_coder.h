// Range coder with a 64-bit state, 32-bit output words and 24-bit probabilities.
//
// Each symbol's interval is an exact proportional split of the current range,
// floor(range * cum / 2^24), computed with a 64x64->128-bit product, so coding costs
// essentially the ideal -log2(freq / 2^24) bits. Carries propagate through a cached word
// and a count of pending 0xFFFFFFFF words. The stream ends with the shortest value inside
// the final interval; trailing zero bytes are dropped (the decoder reads missing bytes as
// zero). Specified in docs/format.md, section "Range coding".
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/coder/frequency_table.h"

namespace boa {

class RangeEncoder {
 public:
  // Appends to *out (after whatever it already holds).
  explicit RangeEncoder(std::vector<uint8_t>* out) : out_(out), start_(out->size()) {}
  // Codes the symbol whose interval is [cum_lo, cum_lo + freq) out of 2^24; freq >= 1.
  void Encode(uint32_t cum_lo, uint32_t freq);
  // Flushes the final interval. The encoder must not be used afterwards.
  void Finish();

 private:
  void ShiftWord();
  void EmitWord(uint32_t w);
  std::vector<uint8_t>* out_;
  size_t start_;  // trimming never touches bytes that were there before
  uint64_t low_ = 0;
  uint64_t range_ = ~uint64_t{0};
  uint32_t carry_ = 0;
  uint32_t cache_ = 0;
  bool has_cache_ = false;
  uint64_t pending_ = 0;  // 0xFFFFFFFF words waiting behind the cache
};

class RangeDecoder {
 public:
  RangeDecoder(const uint8_t* data, size_t size);
  // Decodes one symbol given a cumulative table (common/coder/frequency_table.h). Returns -1 if
  // the stream is inconsistent (corrupt input); the decoder is then unusable.
  int Decode(const uint32_t* cum);
  // Bytes of input consumed so far, including the 8 read at construction (may exceed size).
  size_t consumed() const { return pos_; }

 private:
  uint32_t NextWord();
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t value_ = 0;  // code point minus the interval's low end
  uint64_t range_ = ~uint64_t{0};
};

}  // namespace boa
