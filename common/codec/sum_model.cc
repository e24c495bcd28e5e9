// The column-sum model's exactly specified rules (docs/determinism.md, "Column-sum model").
#include "common/codec/sum_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/coder/frequency_table.h"

namespace boa {

namespace {

constexpr uint32_t kMaxStrides = 4;  // a pair is due up to this many strides after its last hit

float FloatAt(const uint8_t* bytes, uint64_t index) {
  // Little-endian, as the tables are written; this coder runs on little-endian machines.
  float v;
  std::memcpy(&v, bytes + 4 * index, 4);
  return v;
}

}  // namespace

const uint32_t* SumModel::Mix(const uint32_t* cum) {
  bucket_ = -1;
  if (level_ == 0) return cum;
  const uint32_t b = predicted_[offset_];
  bucket_ = static_cast<int32_t>(((offset_ * 8) + level_) * 4 + ((cum[b + 1] - cum[b]) >> (kProbBits - 2)));
  return MixPredictedByte(cum, b, counters_[static_cast<size_t>(bucket_)].Target(), mixed_.data());
}

void SumModel::Update(const uint8_t* bytes, size_t pos) {
  if (level_ != 0) {
    const bool hit = bytes[pos] == predicted_[offset_];
    if (bucket_ >= 0) counters_[static_cast<size_t>(bucket_)].Count(hit);
    if (!hit || ++offset_ == 4) level_ = 0;
  }
  bucket_ = -1;
  if ((pos + 1) % 4 != 0) return;
  EndFloat(bytes, pos);
  PredictNext(bytes, pos);
}

void SumModel::EndFloat(const uint8_t* bytes, size_t pos) {
  const uint64_t t = pos / 4;  // the float just completed
  const float v = FloatAt(bytes, t);
  if (v == 0 || !std::isfinite(v)) return;
  uint32_t k = 0;
  for (uint32_t j = 2; j <= kReach; ++j) {
    for (uint32_t i = 1; i < j; ++i, ++k) {
      if (j > t) continue;
      const float a = FloatAt(bytes, t - i), b = FloatAt(bytes, t - j);
      if (!std::isfinite(a) || !std::isfinite(b)) continue;
      const float sum = a + b;
      if (std::memcmp(&sum, &v, 4) != 0) continue;
      Pair& p = pairs_[k];
      const uint64_t gap = p.last == 0 ? 0 : t + 1 - p.last;
      if (p.stride != 0 && gap % p.stride == 0 && gap / p.stride <= kMaxStrides) {
        p.repeats = std::min<uint32_t>(p.repeats + 1, 255);
      } else {
        p.stride = static_cast<uint32_t>(std::min<uint64_t>(gap, UINT32_MAX));
        p.repeats = 0;
      }
      p.last = t + 1;
    }
  }
}

void SumModel::PredictNext(const uint8_t* bytes, size_t pos) {
  level_ = 0;
  offset_ = 0;
  const uint64_t next = pos / 4 + 1;  // the float about to be coded (0-based)
  uint32_t best = kPairs, best_repeats = 0, k = 0, best_i = 0, best_j = 0;
  for (uint32_t j = 2; j <= kReach; ++j) {
    for (uint32_t i = 1; i < j; ++i, ++k) {
      const Pair& p = pairs_[k];
      if (p.repeats == 0 || j > next || p.repeats <= best_repeats) continue;
      const uint64_t gap = next + 1 - p.last;
      if (gap % p.stride != 0 || gap / p.stride > kMaxStrides) continue;
      best = k;
      best_repeats = p.repeats;
      best_i = i;
      best_j = j;
    }
  }
  if (best == kPairs) return;
  const float a = FloatAt(bytes, next - best_i), b = FloatAt(bytes, next - best_j);
  if (!std::isfinite(a) || !std::isfinite(b)) return;
  const float sum = a + b;
  std::memcpy(predicted_.data(), &sum, 4);
  level_ = 1 + std::min<uint32_t>(best_repeats - 1, 6);
}

}  // namespace boa
