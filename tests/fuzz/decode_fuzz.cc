// The whole decoder on any bytes, with a fixed small model: what the reader lets through is
// decoded (chunks of at most 1 KiB, so one input costs milliseconds) and checked, never
// crashing. The header's model id is set to the small model's (and its checksum made right),
// so every input reaches the decoder whatever model made it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/codec/codec.h"
#include "common/format/container.h"
#include "common/util/hash.h"
#include "common/util/io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const boa::LoadedModel& model = boa::fuzz::SmallModel();
  std::vector<uint8_t> in(data, data + size);
  if (in.size() >= boa::format::kHeaderBytes) {
    std::memcpy(in.data() + 16, model.id.data(), model.id.size());
    const uint32_t sum = static_cast<uint32_t>(boa::Xxh3(in.data(), 64));
    for (int i = 0; i < 4; ++i) in[64 + i] = static_cast<uint8_t>(sum >> (8 * i));
    // The header names the chunk length: long chunks cost time, not coverage.
    boa::ContainerHeader header;
    if (boa::DecodeHeader(in.data(), &header).ok() && header.chunk_length > 1024) return 0;
  }
  boa::MemorySource src(in.data(), in.size());
  boa::MemorySink sink;
  boa::CodecOptions o;
  o.threads = 1;
  boa::Status s = boa::Decompress(model, &src, &sink, o, nullptr);
  (void)s;
  return 0;
}
