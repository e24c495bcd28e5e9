// The match model (docs/determinism.md, "Match model"): long exact repeats inside a chunk —
// event headers, repeated constants, particle listings — that a small network forgets and
// LZ77 exploits. A hash of the last kMinMatch bytes finds where they occurred before; the
// byte that followed then is predicted, with a confidence learned per chunk from how often
// such predictions (by match length and the network's own belief) came true. The prediction
// is mixed into the network's quantized frequency table by integer arithmetic only, so the
// coded bits stay identical on every machine, batch, thread count and path.
//
// One per chunk being coded (encoder and decoder alike): it sees the chunk's bytes in order,
// so chunk mode and step mode feed it identically.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace boa {

// How often one kind of byte prediction came true (16-bit counts that halve past 1023, so
// recent bytes weigh more), and the estimated chance the next one does.
struct HitCounter {
  uint16_t hits = 0, total = 0;
  void Count(bool hit);
  // (2 hits + 1) / (2 total + 2), in kProbBits bits.
  uint64_t Target() const;
};

// The mixing rule the byte predictors share (docs/determinism.md, "Match model"): `cum`
// with byte b raised to probability `target` (of 2^kProbBits) and every other byte lowered
// in proportion, written to `out` (kFreqTableStride entries); `cum` itself when the
// network already gives b at least `target`.
const uint32_t* MixPredictedByte(const uint32_t* cum, uint32_t b, uint64_t target, uint32_t* out);

class MatchModel {
 public:
  static constexpr uint32_t kMinMatch = 6;     // bytes of context hashed and verified
  static constexpr uint32_t kMaxLength = 65535;

  // A chunk of `length` bytes (sizes the hash table: 2^ceil(log2 length), 2^10..2^22 slots).
  explicit MatchModel(uint32_t length);

  // The table to code the next byte with (`bytes` holds those before it): `cum`
  // (the network's cumulative table) when no match predicts it, else the model's own mixed
  // table, valid until the next call.
  const uint32_t* Mix(const uint8_t* bytes, const uint32_t* cum);
  // Byte `pos` is now known: the counters learn from it, the match follows or ends, the
  // context is indexed and, without a match, looked up.
  void Update(const uint8_t* bytes, size_t pos);

  // The bucket of a prediction: match length (exact up to 15, then by powers of two) and
  // the network's frequency of the predicted byte (four levels).
  static uint32_t Bucket(uint32_t match_length, uint32_t network_frequency);

 private:
  static constexpr uint32_t kLengthBuckets = 32;
  std::vector<uint32_t> table_;  // context hash -> position after its last occurrence (0: none)
  uint32_t shift_;               // 32 - log2(table size)
  uint32_t match_ptr_ = 0;       // the position whose byte is predicted next
  uint32_t match_len_ = 0;       // verified length of the current match (0: none)
  int32_t bucket_ = -1;          // the counter of the prediction Mix made (-1: none)
  uint8_t predicted_ = 0;
  std::array<HitCounter, kLengthBuckets * 4> counters_{};
  std::array<uint32_t, 257> mixed_{};  // Mix's output (a kFreqTableStride table)
};

}  // namespace boa
