// One file's chunks as several boad requests at once (boa-client --parallel N). A file's
// chunks are independent, so runs of them ("parts") can be coded by different replicas:
// each part is its own request, the channel sends it to whichever replica its round robin
// picks, and the parts are put back together in order on this side, byte for byte what one
// request would have made. The client holds at most 2 × N parts in memory.
#pragma once

#include <cstdint>
#include <string>

#include "common/codec/codec.h"
#include "common/util/io.h"
#include "common/util/status.h"
#include "rpc/remote_client.h"

namespace boa::rpc {

struct ParallelOptions {
  int streams = 2;             // requests open at once, 1..64
  uint32_t part_chunks = 16;   // chunks per part
  // Sends of one part whose server went away (UNAVAILABLE: a replica stopped, drained or
  // crashed); the part is then sent again, to another replica if one answers. Any other
  // error ends the whole operation at once.
  int attempts = 3;
};

// Compresses `in` into one .boa on `out`, identical to RemoteClient::Compress's. The model
// reference is resolved to its id first, so every part is coded by the same model even if a
// new version is uploaded meanwhile. Each part that comes back is checked (header, records,
// its content checksum against the bytes sent) before it is written.
Status ParallelCompress(RemoteClient* client, const std::string& model, const CodecOptions& options,
                        const ParallelOptions& parallel, ByteSource* in, ByteSink* out, CodecStats* stats,
                        const RemoteClient::ProgressFn& progress);

// Decompresses the .boa `in`: the container is read and checked here, runs of its records
// go out as parts (DecompressOptions.part), the decoded bytes are written in order, and the
// whole file's content checksum is checked at the end (DATA_LOSS; callers write to a
// temporary file). `model` may be empty: the stream's own.
Status ParallelDecompress(RemoteClient* client, const std::string& model, const ParallelOptions& parallel,
                          ByteSource* in, ByteSink* out, CodecStats* stats, const RemoteClient::ProgressFn& progress);

}  // namespace boa::rpc
