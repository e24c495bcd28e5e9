// The two ends of a .boa stream (docs/format.md), as every coding path uses them: the
// in-process codec and boad's Compress, Decompress and Verify. Compression cuts its input
// into chunks and checksums the content (ChunkCutter) and writes header, records and trailer
// (StreamWriter); decompression reads and checks the container (StreamReader) and verifies
// the decoded content against its checksum. The chunks in between go through the chunk coder
// (chunk_coder.h), on whatever threads and batches the caller likes.
#pragma once

#include <cstdint>
#include <vector>

#include "common/codec/chunk_coder.h"
#include "common/format/container.h"
#include "common/model/model.h"
#include "common/util/hash.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa {

// The container header of a stream coded with `model` in chunks of `chunk_length` bytes.
ContainerHeader MakeHeader(const LoadedModel& model, uint32_t chunk_length);

// Reads an input as chunks of `chunk_length` bytes (the last may be shorter) and checksums
// its content.
class ChunkCutter {
 public:
  ChunkCutter(ByteSource* in, uint32_t chunk_length) : in_(in), chunk_length_(chunk_length) {}
  // The next chunk, or false at the end of the input (no chunk is empty).
  Result<bool> Next(std::vector<uint8_t>* chunk);
  // True once the input has ended (the last chunk was short, or nothing was left).
  bool ended() const { return ended_; }
  uint64_t bytes() const { return bytes_; }
  // Once ended(): the checksum the trailer records.
  uint64_t content_checksum() const { return content_.Digest(); }

 private:
  ByteSource* in_;
  const uint32_t chunk_length_;
  Xxh3Hasher content_;
  uint64_t bytes_ = 0;
  bool ended_ = false;
};

// Writes a .boa stream: the header at once, then each chunk's record in input order, then
// the end (index and trailer).
class StreamWriter {
 public:
  StreamWriter(ByteSink* out, ContainerHeader header) : writer_(out, std::move(header)) {}
  Status WriteHeader() { return writer_.WriteHeader(); }
  Status Add(const EncodedChunk& chunk);
  Status Finish(uint64_t content_checksum) { return writer_.Finish(content_checksum); }
  uint64_t bytes_written() const { return writer_.bytes_written(); }
  uint64_t input_bytes() const { return input_bytes_; }
  uint64_t chunks() const { return chunks_; }
  uint64_t stored_chunks() const { return stored_chunks_; }
  uint64_t lzma2_chunks() const { return lzma2_chunks_; }

 private:
  ContainerWriter writer_;
  uint64_t input_bytes_ = 0;
  uint64_t chunks_ = 0;
  uint64_t stored_chunks_ = 0;
  uint64_t lzma2_chunks_ = 0;
};

// Reads a .boa stream's records in order, and checks the decoded content (hashed by the
// caller as it comes out, with DecodedContent) against the trailer once they are all read.
class StreamReader {
 public:
  explicit StreamReader(ByteSource* in) : reader_(in) {}
  Status ReadHeader(ContainerHeader* header) { return reader_.ReadHeader(header); }
  // The next record, or false after the last (the index and trailer are then checked).
  Result<bool> Next(ChunkRecord* record) { return reader_.Next(record); }
  uint64_t bytes_read() const { return reader_.bytes_read(); }
  // Once Next said false: DATA_LOSS unless the decoded content has the recorded checksum.
  Status CheckContent(uint64_t decoded_checksum) const;

 private:
  ContainerReader reader_;
};

// The decoded bytes of a stream, in order: their count and checksum.
class DecodedContent {
 public:
  void Add(const std::vector<uint8_t>& chunk) {
    hash_.Update(chunk.data(), chunk.size());
    bytes_ += chunk.size();
    ++chunks_;
  }
  uint64_t checksum() const { return hash_.Digest(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t chunks() const { return chunks_; }

 private:
  Xxh3Hasher hash_;
  uint64_t bytes_ = 0;
  uint64_t chunks_ = 0;
};

}  // namespace boa
