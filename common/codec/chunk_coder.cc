// The per-chunk state machines (see chunk_coder.h).
#include "common/codec/chunk_coder.h"

#include <algorithm>
#include <string>

#include "common/coder/lzma2.h"

namespace boa {

namespace {

// The record of a coded chunk: the smallest code (the model's on a tie) when it is shorter
// than the chunk, else the bytes stored. An empty `model` or `lzma2` is no candidate.
EncodedChunk Sealed(std::vector<uint8_t> chunk, std::vector<uint8_t> model, std::vector<uint8_t> lzma2) {
  EncodedChunk e;
  e.original_length = static_cast<uint32_t>(chunk.size());
  e.method = ChunkMethod::kStored;
  e.payload = std::move(chunk);
  for (auto [code, method] : {std::pair{&model, ChunkMethod::kModel}, std::pair{&lzma2, ChunkMethod::kLzma2}}) {
    if (!code->empty() && code->size() < e.payload.size()) {
      e.payload = std::move(*code);
      e.method = method;
    }
  }
  return e;
}

std::vector<uint8_t> FirstByte(const std::vector<uint8_t>& chunk) { return {chunk.front()}; }

}  // namespace

TableMixer::TableMixer(Mixing mixing, uint32_t chunk_length)
    : match_(mixing.match ? std::make_unique<MatchModel>(chunk_length) : nullptr),
      energy_(mixing.derived ? std::make_unique<EnergyModel>() : nullptr),
      sum_(mixing.derived ? std::make_unique<SumModel>() : nullptr) {}

const uint32_t* TableMixer::Mix(const uint8_t* bytes, const uint32_t* cum) {
  if (match_) cum = match_->Mix(bytes, cum);
  if (energy_) cum = sum_->Mix(energy_->Mix(cum));
  return cum;
}

void TableMixer::Update(const uint8_t* bytes, size_t pos) {
  if (match_) match_->Update(bytes, pos);
  if (energy_) {
    energy_->Update(bytes, pos);
    sum_->Update(bytes, pos);
  }
}

engine::LaneInput ChunkFeed::TakeInputs(int lane, size_t count) {
  engine::LaneInput in{lane, chunk_.data() + fed_ - 1, static_cast<int>(count)};
  fed_ += count;
  return in;
}

ChunkEncoder::ChunkEncoder(std::vector<uint8_t> chunk, Mixing mixing)
    : ChunkFeed(std::move(chunk)),
      payload_(FirstByte(chunk_)),
      encoder_(&payload_),
      mixer_(mixing, static_cast<uint32_t>(chunk_.size())) {}

void ChunkEncoder::Code(const uint32_t* tables, size_t count) {
  for (size_t k = 0; k < count; ++k, tables += kFreqTableStride) {
    const uint8_t b = chunk_[pos_];
    const uint32_t* t = mixer_.Mix(chunk_.data(), tables);
    encoder_.Encode(t[b], t[b + 1] - t[b]);
    mixer_.Update(chunk_.data(), pos_);
    ++pos_;
  }
  if (coded()) {
    encoder_.Finish();
    // Only a code shorter than both the model's and the chunk can be recorded; liblzma
    // stops once it passes that.
    lzma2_ = lzma2::Encode(chunk_.data(), chunk_.size(), std::min(payload_.size(), chunk_.size()));
  }
}

EncodedChunk ChunkEncoder::Seal() { return Sealed(std::move(chunk_), std::move(payload_), std::move(lzma2_)); }

ChunkDecoder::ChunkDecoder(ChunkRecord record, uint64_t index, Mixing mixing)
    : record_(std::move(record)),
      index_(index),
      out_(record_.original_length),
      decoder_(record_.payload.data() + 1, record_.payload.size() - 1),
      mixer_(mixing, record_.original_length) {
  out_[0] = record_.payload[0];
}

Result<bool> ChunkDecoder::Decode(const uint32_t* table) {
  const uint32_t* t = mixer_.Mix(out_.data(), table);
  const int sym = decoder_.Decode(t);
  if (sym < 0) {
    return Status::DataLoss("corrupt .boa: chunk " + std::to_string(index_) + ": coded data is inconsistent");
  }
  out_[pos_] = static_cast<uint8_t>(sym);
  mixer_.Update(out_.data(), pos_);
  ++pos_;
  return pos_ == out_.size();
}

bool EncodeWithoutModel(std::vector<uint8_t>* chunk, EncodedChunk* out) {
  if (chunk->size() != 1) return false;
  std::vector<uint8_t> payload = *chunk;
  *out = Sealed(std::move(*chunk), std::move(payload), {});
  return true;
}

EncodedChunk EncodeWithLzma2Only(std::vector<uint8_t> chunk, const std::atomic<bool>* stop) {
  std::vector<uint8_t> code = lzma2::Encode(chunk.data(), chunk.size(), chunk.size(), stop);
  return Sealed(std::move(chunk), {}, std::move(code));
}

Result<bool> DecodeWithoutModel(ChunkRecord* rec, uint64_t index, std::vector<uint8_t>* out) {
  if (rec->method == ChunkMethod::kStored) {
    *out = std::move(rec->payload);
    return true;
  }
  if (rec->method == ChunkMethod::kLzma2) {
    out->resize(rec->original_length);
    BOA_RETURN_IF_ERROR(lzma2::Decode(rec->payload.data(), rec->payload.size(), index, rec->original_length, out->data()));
    return true;
  }
  if (rec->original_length == 1) {
    out->assign(1, rec->payload[0]);
    return true;
  }
  return false;
}

}  // namespace boa
