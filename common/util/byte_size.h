// Byte counts as people write them on command lines and in configuration files: "65536",
// "64K", "1MiB", "4G". One grammar for boa-client and boad.
#pragma once

#include <cstdint>
#include <string>

#include "common/util/status.h"

namespace boa {

// Digits, then optionally a binary unit: K, KiB, KB or k (2^10); M, MiB, MB (2^20); G, GiB,
// GB (2^30); T, TiB, TB (2^40). Signs, spaces, fractions and values above 2^64 - 1 are
// refused with a message that quotes the text.
Result<uint64_t> ParseByteSize(const std::string& text);

}  // namespace boa
