// Range encoder and decoder (see range_coder.h).
#include "common/coder/range_coder.h"

namespace boa {

namespace {
using u128 = unsigned __int128;
constexpr uint64_t kRenormBelow = uint64_t{1} << 32;

inline uint64_t Split(uint64_t range, uint32_t cum) {
  return static_cast<uint64_t>((static_cast<u128>(range) * cum) >> kProbBits);
}
}  // namespace

void RangeEncoder::EmitWord(uint32_t w) {
  out_->push_back(static_cast<uint8_t>(w >> 24));
  out_->push_back(static_cast<uint8_t>(w >> 16));
  out_->push_back(static_cast<uint8_t>(w >> 8));
  out_->push_back(static_cast<uint8_t>(w));
}

// Moves the top word of `low_` out. A word of all ones may still receive a carry, so it
// waits (pending_) until a later word shows whether the carry came.
void RangeEncoder::ShiftWord() {
  uint32_t top = static_cast<uint32_t>(low_ >> 32);
  if (top != 0xFFFFFFFFu || carry_) {
    // The interval never exceeds the initial [0, 2^64), so a carry always has a cached word
    // to land in and never overflows it.
    if (has_cache_) EmitWord(cache_ + carry_);
    for (; pending_ > 0; --pending_) EmitWord(0xFFFFFFFFu + carry_);
    cache_ = top;
    has_cache_ = true;
    carry_ = 0;
  } else {
    ++pending_;
  }
  low_ <<= 32;
}

void RangeEncoder::Encode(uint32_t cum_lo, uint32_t freq) {
  uint64_t lo = Split(range_, cum_lo);
  uint64_t hi = Split(range_, cum_lo + freq);
  uint64_t new_low = low_ + lo;
  if (new_low < low_) carry_ = 1;
  low_ = new_low;
  range_ = hi - lo;  // >= 2^8 since range_ >= 2^32 and freq >= 1
  if (range_ < kRenormBelow) {
    ShiftWord();
    range_ <<= 32;
  }
}

void RangeEncoder::Finish() {
  // Pick the value in [low, low + range) with the most trailing zero bits; since
  // range >= 2^32 a multiple of 2^32 always lies inside.
  u128 low = (static_cast<u128>(carry_) << 64) | low_;
  u128 end = low + range_;
  u128 v = low;
  for (int shift = 64; shift >= 32; --shift) {
    u128 step = static_cast<u128>(1) << shift;
    u128 candidate = (low + step - 1) / step * step;
    if (candidate < end) {
      v = candidate;
      break;
    }
  }
  carry_ = static_cast<uint32_t>(v >> 64);
  low_ = static_cast<uint64_t>(v);
  ShiftWord();
  ShiftWord();
  if (has_cache_) EmitWord(cache_);
  for (; pending_ > 0; --pending_) EmitWord(0xFFFFFFFFu);
  while (out_->size() > start_ && out_->back() == 0) out_->pop_back();
}

RangeDecoder::RangeDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
  value_ = static_cast<uint64_t>(NextWord()) << 32;
  value_ |= NextWord();
}

uint32_t RangeDecoder::NextWord() {
  uint32_t w = 0;
  for (int i = 0; i < 4; ++i, ++pos_) w = (w << 8) | (pos_ < size_ ? data_[pos_] : 0u);
  return w;
}

int RangeDecoder::Decode(const uint32_t* cum) {
  if (value_ >= range_) return -1;
  // Largest s with floor(range * cum[s] / 2^24) <= value  <=>  cum[s] <= t.
  uint64_t t = static_cast<uint64_t>((((static_cast<u128>(value_) + 1) << kProbBits) - 1) / range_);
  int lo = 0, hi = 256;  // cum[lo] <= t < cum[hi]
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    if (cum[mid] <= t) lo = mid; else hi = mid;
  }
  uint64_t a = Split(range_, cum[lo]);
  uint64_t b = Split(range_, cum[lo + 1]);
  value_ -= a;
  range_ = b - a;
  if (range_ < kRenormBelow) {
    value_ = (value_ << 32) | NextWord();
    range_ <<= 32;
  }
  return lo;
}

}  // namespace boa
