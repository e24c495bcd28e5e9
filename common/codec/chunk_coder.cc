// The per-chunk state machines (see chunk_coder.h).
#include "common/codec/chunk_coder.h"

#include <string>

namespace boa {

namespace {

// The record of a coded chunk: the code when it saves something, else the bytes stored.
EncodedChunk Sealed(std::vector<uint8_t> chunk, std::vector<uint8_t> payload) {
  EncodedChunk e;
  e.original_length = static_cast<uint32_t>(chunk.size());
  if (payload.size() >= chunk.size()) {
    e.method = ChunkMethod::kStored;
    e.payload = std::move(chunk);
  } else {
    e.method = ChunkMethod::kModel;
    e.payload = std::move(payload);
  }
  return e;
}

std::vector<uint8_t> FirstByte(const std::vector<uint8_t>& chunk) { return {chunk.front()}; }

}  // namespace

engine::LaneInput ChunkFeed::TakeInputs(int lane, size_t count) {
  engine::LaneInput in{lane, chunk_.data() + fed_ - 1, static_cast<int>(count)};
  fed_ += count;
  return in;
}

ChunkEncoder::ChunkEncoder(std::vector<uint8_t> chunk)
    : ChunkFeed(std::move(chunk)), payload_(FirstByte(chunk_)), encoder_(&payload_) {}

void ChunkEncoder::Code(const uint32_t* tables, size_t count) {
  for (size_t k = 0; k < count; ++k, tables += kFreqTableStride) {
    const uint8_t b = chunk_[pos_++];
    encoder_.Encode(tables[b], tables[b + 1] - tables[b]);
  }
  if (coded()) encoder_.Finish();
}

EncodedChunk ChunkEncoder::Seal() { return Sealed(std::move(chunk_), std::move(payload_)); }

ChunkDecoder::ChunkDecoder(ChunkRecord record, uint64_t index)
    : record_(std::move(record)),
      index_(index),
      out_(record_.original_length),
      decoder_(record_.payload.data() + 1, record_.payload.size() - 1) {
  out_[0] = record_.payload[0];
}

Result<bool> ChunkDecoder::Decode(const uint32_t* table) {
  const int sym = decoder_.Decode(table);
  if (sym < 0) {
    return Status::DataLoss("corrupt .boa: chunk " + std::to_string(index_) + ": coded data is inconsistent");
  }
  out_[pos_++] = static_cast<uint8_t>(sym);
  return pos_ == out_.size();
}

bool EncodeWithoutModel(std::vector<uint8_t>* chunk, EncodedChunk* out) {
  if (chunk->size() != 1) return false;
  std::vector<uint8_t> payload = *chunk;
  *out = Sealed(std::move(*chunk), std::move(payload));
  return true;
}

bool DecodeWithoutModel(ChunkRecord* rec, std::vector<uint8_t>* out) {
  if (rec->method == ChunkMethod::kStored) {
    *out = std::move(rec->payload);
    return true;
  }
  if (rec->original_length == 1) {
    out->assign(1, rec->payload[0]);
    return true;
  }
  return false;
}

}  // namespace boa
