// Compression, decompression and evaluation of whole streams with a model, in process:
// cuts the input into chunks, runs the engine on worker threads (chunk mode for
// compression, step mode with many lanes for decompression), range-codes each chunk and
// writes the .boa container in order with bounded memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/engine/engine.h"
#include "common/format/container.h"
#include "common/model/model.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa {

// Chosen by measurement: docs/performance.md, "Chunk length".
constexpr uint32_t kDefaultChunkLength = 64 * 1024;

struct CodecOptions {
  uint32_t chunk_length = 0;  // compress: bytes per chunk (0 = default)
  uint64_t chunk_count = 0;   // compress: number of chunks instead (input size must be known)
  int threads = 0;            // worker threads (0 = all cores)
  int lanes = 0;              // decompress: chunks decoded together per thread (0 = default)
  engine::Backend backend = engine::Backend::kAuto;
  // Called on the calling thread after each chunk is written: bytes consumed and produced.
  std::function<void(uint64_t in_bytes, uint64_t out_bytes)> progress;
};

struct CodecStats {
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
  uint64_t chunks = 0;
  uint64_t stored_chunks = 0;
  uint64_t lzma2_chunks = 0;
  uint32_t chunk_length = 0;
  int threads = 0;
};

class StreamWriter;
// The figures of the stream `writer` wrote, in chunks of `chunk_length`, on `threads`.
CodecStats StatsOf(const StreamWriter& writer, uint32_t chunk_length, int threads);

// The chunk length a compression will use for an input of `input_size` bytes (-1: unknown).
Result<uint32_t> ChooseChunkLength(const CodecOptions& options, int64_t input_size);

Status Compress(const LoadedModel& model, ByteSource* in, ByteSink* out,
                const CodecOptions& options, CodecStats* stats);

// The whole-input alternative to Compress (docs/format.md, "The whole-input alternative"):
// `in` coded with LZMA2 alone, in chunks of the longest length the format allows (16 MiB;
// the input's length when shorter, but at least the default chunk length), each recorded
// as LZMA2 or stored. The stream names the model of the header `header_like` returns (its
// chunk length is replaced), so that it decodes like any other; `header_like` is called
// once the first record is ready, and may block until a concurrent Compress has written
// its header, or fail to abandon the stream. One thread; once `stop` is set, CANCELLED
// within about a MiB of work.
Status CompressWithLzma2Only(const std::function<Result<ContainerHeader>()>& header_like, ByteSource* in,
                             ByteSink* out, CodecStats* stats, const std::atomic<bool>* stop = nullptr);

// Checks the header against the model before writing anything: a stream made with another
// model fails with FAILED_PRECONDITION naming both ids. The content checksum is verified
// at the end (DATA_LOSS on mismatch); callers write to a temporary file for that reason.
Status Decompress(const LoadedModel& model, ByteSource* in, ByteSink* out,
                  const CodecOptions& options, CodecStats* stats);

// Checks that `header` was written with `model`.
Status CheckModelMatches(const ContainerHeader& header, const LoadedModel& model);

struct EvalResult {
  uint64_t bytes = 0;           // input length
  uint64_t chunks = 0;
  uint64_t predicted = 0;       // bytes the model predicts (all but each chunk's first)
  double cross_entropy_bits = 0;  // -Σ log2 softmax(logits)[byte] over predicted bytes
  double ideal_code_bits = 0;   // -Σ log2(freq / 2^24) with the frequencies the coder uses
  bool match_model = false;     // whether those include the match model (the model's flag)
  bool derived_fields = false;    // and the derived-field models
  double network_code_bits = 0;  // the same with the network's tables alone
  double match_code_bits = 0;    // with the match model mixed in
  double derived_code_bits = 0;   // with the match model, then the derived-field models
  double bits_per_byte() const { return predicted ? cross_entropy_bits / predicted : 0; }
  // Ideal coded size: first bytes stored raw plus the ideal code of the rest.
  double ideal_bytes() const { return chunks + ideal_code_bits / 8; }
};

Result<EvalResult> Evaluate(const LoadedModel& model, ByteSource* in, const CodecOptions& options);
// With an engine already built (boad's resident model); options.backend is not used.
Result<EvalResult> Evaluate(const std::shared_ptr<const engine::Engine>& engine, ByteSource* in,
                            const CodecOptions& options);

int DefaultThreadCount();

}  // namespace boa
