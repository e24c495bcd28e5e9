// The match model's integer rules (docs/determinism.md, "Match model").
#include "common/codec/match_model.h"

#include <algorithm>
#include <tuple>
#include <cstring>

#include "common/coder/frequency_table.h"

namespace boa {

namespace {

constexpr uint16_t kCounterLimit = 1023;  // then both counts halve: recent chunks weigh more

uint32_t ContextHash(const uint8_t* p, uint32_t shift) {
  uint64_t v = 0;
  for (uint32_t i = 0; i < MatchModel::kMinMatch; ++i) v = (v << 8) | p[i];
  return static_cast<uint32_t>((v * 0x9E3779B97F4A7C15ull) >> 32) >> shift;
}

}  // namespace

MatchModel::MatchModel(uint32_t length) {
  uint32_t bits = 10;
  while (bits < 22 && (1u << bits) < length) ++bits;
  table_.assign(size_t{1} << bits, 0);
  shift_ = 32 - bits;
}

uint32_t MatchModel::Bucket(uint32_t match_length, uint32_t network_frequency) {
  uint32_t l = match_length;
  if (l >= 16) {
    uint32_t log2 = 4;
    while (log2 < 31 && (l >> (log2 + 1)) != 0) ++log2;
    l = std::min<uint32_t>(kLengthBuckets - 1, 12 + log2);  // 16 -> 16, 32 -> 17, ...
  }
  return l * 4 + (network_frequency >> (kProbBits - 2));
}

void HitCounter::Count(bool hit) {
  hits += hit;
  if (++total > kCounterLimit) {
    hits /= 2;
    total /= 2;
  }
}

uint64_t HitCounter::Target() const { return ((2ull * hits + 1) << kProbBits) / (2ull * total + 2); }

const uint32_t* MixPredictedByte(const uint32_t* cum, uint32_t b, uint64_t target, uint32_t* mixed) {
  const uint32_t fb = cum[b + 1] - cum[b];
  if (target <= fb) return cum;  // the network already gives the byte at least that much
  // p' = (1 - a) p + a [s = b], a = (target - fb) / (2^24 - fb) in 16 bits: every other
  // byte keeps f - floor(f a / 2^16) >= 1, the predicted byte takes the rest.
  const uint64_t a = ((target - fb) << 16) / (kProbTotal - fb);
  // The others' cumulative sums first (b's own slot empty), then b's share shifts the rest.
  uint32_t acc = 0;
  for (uint32_t s = 0; s < 256; ++s) {
    mixed[s] = acc;
    const uint32_t f = cum[s + 1] - cum[s];
    if (s != b) acc += f - static_cast<uint32_t>((static_cast<uint64_t>(f) * a) >> 16);
  }
  const uint32_t fb_mixed = kProbTotal - acc;
  for (uint32_t s = b + 1; s < 256; ++s) mixed[s] += fb_mixed;
  mixed[256] = kProbTotal;
  return mixed;
}

const uint32_t* MatchModel::Mix(const uint8_t* bytes, const uint32_t* cum) {
  static_assert(std::tuple_size<decltype(mixed_)>::value == kFreqTableStride);
  bucket_ = -1;
  if (match_len_ == 0) return cum;
  predicted_ = bytes[match_ptr_];
  const uint32_t b = predicted_;
  bucket_ = static_cast<int32_t>(Bucket(match_len_, cum[b + 1] - cum[b]));
  return MixPredictedByte(cum, b, counters_[static_cast<size_t>(bucket_)].Target(), mixed_.data());
}

void MatchModel::Update(const uint8_t* bytes, size_t pos) {
  const uint8_t byte = bytes[pos];
  if (match_len_ > 0) {
    if (bucket_ >= 0) counters_[static_cast<size_t>(bucket_)].Count(byte == predicted_);
    if (bytes[match_ptr_] == byte) {
      ++match_ptr_;
      match_len_ = std::min(match_len_ + 1, kMaxLength);
    } else {
      match_len_ = 0;
    }
  }
  bucket_ = -1;
  const size_t next = pos + 1;
  if (next < kMinMatch) return;
  const uint32_t h = ContextHash(bytes + next - kMinMatch, shift_);
  if (match_len_ == 0 && table_[h] != 0) {
    // A candidate: the bytes before it must equal the context (not a hash collision).
    const uint32_t cand = table_[h];
    uint32_t len = 0;
    while (len < 64 && len < cand && bytes[cand - 1 - len] == bytes[pos - len]) ++len;
    if (len >= kMinMatch) {
      match_ptr_ = cand;
      match_len_ = len;
    }
  }
  table_[h] = static_cast<uint32_t>(next);
}

}  // namespace boa
