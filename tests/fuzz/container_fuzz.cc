// The .boa reader on any bytes: header, records, end, index and trailer checks, never a
// crash, an unbounded allocation or a hang.
#include <cstddef>
#include <cstdint>

#include "common/codec/stream.h"
#include "common/util/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boa::MemorySource src(data, size);
  boa::StreamReader reader(&src);
  boa::ContainerHeader header;
  if (!reader.ReadHeader(&header).ok()) return 0;
  boa::ChunkRecord rec;
  for (;;) {
    boa::Result<bool> more = reader.Next(&rec);
    if (!more.ok() || !*more) break;
  }
  return 0;
}
