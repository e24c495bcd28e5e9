// The .boa container, version 3 (normative spec: docs/format.md). Format constants live here.
//
//   header   68 bytes: magic, version, chunk length, model id and summary, header checksum
//   records  one per chunk: tag, [original length], [payload length], payload
//   end      one zero byte
//   index    varint chunk count, then each record's size in bytes (random access)
//   trailer  44 bytes: original length, chunk count, index offset, content checksum,
//            container checksum, end magic
//
// The writer streams (input of unknown length); the reader is strict: every length is
// checked against limits before anything is allocated, and every byte of the file is
// covered by a checksum.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/util/hash.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa {

namespace format {
constexpr uint8_t kMagic[8] = {0x89, 'B', 'O', 'A', '\r', '\n', 0x1a, '\n'};
constexpr uint8_t kEndMagic[4] = {'B', 'O', 'A', 'E'};
constexpr uint16_t kVersion = 3;         // written
constexpr uint16_t kOldestVersion = 2;   // read: version 2 is version 3 without LZMA2 chunks
constexpr size_t kHeaderBytes = 68;
constexpr size_t kTrailerBytes = 44;
constexpr uint32_t kMinChunkLength = 1;
constexpr uint32_t kMaxChunkLength = 1u << 24;  // 16 MiB
constexpr uint8_t kTagEnd = 0;
constexpr uint8_t kTagExplicitLength = 0x80;  // flag: original length follows (final short chunk)
}  // namespace format

// How a chunk is recorded. A writer takes whichever is smallest (docs/format.md).
enum class ChunkMethod : uint8_t { kModel = 1, kStored = 2, kLzma2 = 3 };
// "model", "stored", "lzma2".
const char* ChunkMethodName(ChunkMethod m);

struct ModelSummary {
  uint32_t d_model = 0;
  uint16_t n_layers = 0, d_state = 0, d_conv = 0, expand = 0, dt_rank = 0;
  uint8_t weight_type = 0;
};

struct ContainerHeader {
  uint16_t version = format::kVersion;
  uint32_t chunk_length = 0;
  Sha256Digest model_id{};
  ModelSummary model;
};

struct ContainerTrailer {
  uint64_t original_length = 0;
  uint64_t chunk_count = 0;
  uint64_t index_offset = 0;
  uint64_t content_checksum = 0;
  uint64_t container_checksum = 0;
};

struct ChunkRecord {
  ChunkMethod method = ChunkMethod::kStored;
  uint32_t original_length = 0;
  std::vector<uint8_t> payload;  // model: first byte + range-coded bytes; stored: raw bytes; lzma2: raw LZMA2
};

std::vector<uint8_t> EncodeHeader(const ContainerHeader& h);
// Parses and checks a 68-byte header (magic, version, checksum, field ranges).
Status DecodeHeader(const uint8_t* p, ContainerHeader* h);

class ContainerWriter {
 public:
  ContainerWriter(ByteSink* sink, const ContainerHeader& header);
  Status WriteHeader();
  // Every chunk but the last must have the header's chunk length.
  Status WriteChunk(ChunkMethod method, uint32_t original_length, const uint8_t* payload, size_t n);
  Status Finish(uint64_t content_checksum);
  uint64_t bytes_written() const { return offset_; }

 private:
  Status Put(const uint8_t* p, size_t n);
  ByteSink* sink_;
  ContainerHeader header_;
  Xxh3Hasher hash_;
  uint64_t offset_ = 0;
  uint64_t original_ = 0;
  uint64_t chunks_ = 0;
  bool short_chunk_seen_ = false;
  std::vector<uint8_t> index_;  // varint record sizes
};

// The head of a chunk record — tag, then the original length of a final short chunk, then
// a model chunk's payload length — checked by the rules every reader applies (docs/format.md):
// a method the header's version knows, nothing after the final short chunk, a short length
// of 1..chunk_length-1, a model or LZMA2 payload of 1..original length.
struct RecordHead {
  ChunkMethod method = ChunkMethod::kStored;
  uint32_t original_length = 0;
  uint64_t payload_length = 0;
};
class RecordRules {
 public:
  RecordRules(uint32_t chunk_length, uint16_t version) : chunk_length_(chunk_length), version_(version) {}
  // `tag` is the record's first byte (not the end marker); `varint` reads the next number of
  // the head, naming the field for its errors. `index` is the chunk's, for messages.
  Result<RecordHead> Parse(uint8_t tag, uint64_t index, const std::function<Result<uint64_t>(const char* what)>& varint);

 private:
  uint32_t chunk_length_;
  uint16_t version_;
  bool short_chunk_seen_ = false;
};

// Sequential, strict reader. Call ReadHeader, then Next until it returns false (the end
// marker, index and trailer have then been read and cross-checked; the caller verifies the
// content checksum against the decoded data).
class ContainerReader {
 public:
  explicit ContainerReader(ByteSource* src) : src_(src) {}
  Status ReadHeader(ContainerHeader* header);
  // Reads the next record into *rec (reusing its buffer). Returns false at the end.
  Result<bool> Next(ChunkRecord* rec);
  const ContainerTrailer& trailer() const { return trailer_; }
  uint64_t chunks_read() const { return chunks_; }
  uint64_t bytes_read() const { return offset_; }

 private:
  Status Get(uint8_t* p, size_t n, const char* what);
  Result<uint64_t> GetVarint(const char* what);
  Status ReadEnd();
  ByteSource* src_;
  ContainerHeader header_;
  RecordRules rules_{format::kMaxChunkLength, format::kVersion};  // set from the header
  Xxh3Hasher hash_;
  Xxh3Hasher index_hash_;  // hash of the varint record sizes seen, to check the index
  uint64_t offset_ = 0;
  uint64_t chunks_ = 0;
  uint64_t original_ = 0;
  bool done_ = false;
  ContainerTrailer trailer_;
};

// What `boa-client info` shows: header, trailer and per-method chunk counts, read from a
// regular file through its trailer and index (no decoding, no model). Every record's head is
// read and checked by the same RecordRules as the sequential reader, against the index and
// the trailer's total; only the checksums, which need every byte, are left to a full read.
struct ContainerInfo {
  ContainerHeader header;
  ContainerTrailer trailer;
  uint64_t file_bytes = 0;
  uint64_t model_chunks = 0;
  uint64_t stored_chunks = 0;
  uint64_t lzma2_chunks = 0;
};
// One chunk as the index and its record's head describe it.
struct ChunkInfo {
  uint64_t index = 0;
  uint64_t offset = 0;        // of the record in the file
  uint64_t record_bytes = 0;  // tag through payload
  ChunkMethod method = ChunkMethod::kStored;
  uint32_t original_length = 0;
};
// `each_chunk`, if given, sees every chunk in order once its head has been checked (the
// file may still be refused later, e.g. for a wrong total).
Result<ContainerInfo> ReadContainerInfo(const std::string& path,
                                        const std::function<void(const ChunkInfo&)>& each_chunk = nullptr);

}  // namespace boa
