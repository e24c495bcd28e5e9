// Bytes drawn from a model's own predictions: the data a model codes best, so a chunk of it is
// model-coded on every path that codes it (the hybrid keeps LZMA2 for anything else). Tests
// use it, and `boa-client model sample` writes it for checks such as scripts/gpu/boad_check.sh.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/engine/engine.h"

namespace boa::engine {

// `lanes` independent sequences of ceil(n / lanes) bytes, concatenated and cut to n: lane l
// starts with byte (seed + l) mod 256 and draws each next byte from the model's table with a
// xorshift generator seeded from seed + l. Deterministic in (model, n, seed, lanes) on every
// backend; lane 0 alone is the sequence that lanes = 1 gives.
std::vector<uint8_t> SampleBytes(std::shared_ptr<const Engine> engine, size_t n, uint64_t seed, int lanes = 1);

}  // namespace boa::engine
