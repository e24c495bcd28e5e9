// The integer half of the quantizer (logits -> frequencies), shared by every backend:
// given w[i] = floor(e_i * 2^24) (e_i = exp(l_i - max), 0 for NaN), produce frequencies
// >= 1 that sum to exactly 2^24 (docs/determinism.md). Pure integer arithmetic, so any
// vectorisation of it gives the same table. `static`: each backend compiles its own copy.
#pragma once

#include <cstdint>

#include "common/engine/reference.h"

namespace boa::engine {

static inline void QuantizeFinish(const uint32_t* w, int argmax, uint32_t* cum) {
  uint64_t total = 0;
  for (int i = 0; i < 256; ++i) total += w[i];
  const uint32_t scale = reference::QuantizeScale(total);
  uint32_t f[256];
  uint32_t sum = 0;
  for (int i = 0; i < 256; ++i) {
    f[i] = reference::QuantizeFrequency(w[i], scale);
    sum += f[i];
  }
  f[argmax] += kProbTotal - sum;
  uint32_t running = 0;  // a local running sum: no store-to-load round trip per symbol
  cum[0] = 0;
  for (int i = 0; i < 256; ++i) {
    running += f[i];
    cum[i + 1] = running;
  }
}

}  // namespace boa::engine
