// Chunks coded with LZMA2 through liblzma (method 3 of docs/format.md): the classical
// alternative a writer records wherever it is smaller than the model's code, so that no
// chunk is ever larger than `xz -9` would make it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/util/status.h"

namespace boa::lzma2 {

// The raw LZMA2 code of `n` (>= 1) bytes with xz's preset 9 (the dictionary cut to the
// chunk, which changes nothing a chunk can reference), or an empty vector when that code
// would not be shorter than `limit` bytes — the encoder stops as soon as it knows — or once
// `stop` is set (checked after each MiB of input).
std::vector<uint8_t> Encode(const uint8_t* p, size_t n, size_t limit, const std::atomic<bool>* stop = nullptr);

// Decodes a raw LZMA2 stream that must end exactly after `length` bytes of output and use
// all of `payload`; DATA_LOSS naming chunk `index` otherwise. Memory: a dictionary of
// max(4 KiB, length) bytes, whatever the payload claims.
Status Decode(const uint8_t* payload, size_t n, uint64_t index, uint32_t length, uint8_t* out);

}  // namespace boa::lzma2
