// The coding of one chunk, as every path does it (docs/format.md, "Chunk records" and "Range
// coding"): the in-process codec and boad's scheduler drive these two state machines with
// their own batching, and so write and read the same bytes by construction.
//
// A chunk's first byte is stored as is; every following byte is range-coded with the
// frequency table the model gives after seeing the bytes before it. The model input of a
// lane's row k is the byte before the k-th predicted one. A model with the match model (and
// the derived-field models) mixes their predictions into each table before the byte is
// coded (TableMixer). The record is the smallest of that code, the chunk's LZMA2 code and the
// bytes themselves.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/coder/frequency_table.h"
#include "common/coder/range_coder.h"
#include "common/codec/energy_model.h"
#include "common/codec/match_model.h"
#include "common/codec/sum_model.h"
#include "common/engine/engine.h"
#include "common/format/container.h"
#include "common/util/status.h"

namespace boa {

// A chunk as it is recorded: coded with the model, with LZMA2, or stored, whichever is smallest.
struct EncodedChunk {
  ChunkMethod method = ChunkMethod::kStored;
  uint32_t original_length = 0;
  std::vector<uint8_t> payload;
};

// What a model's flags mix into the network's tables: the match model, then (only after it)
// the derived-field models: the energy model (text listings of four-momenta) and the
// column-sum model (float32 records).
struct Mixing {
  bool match = false;
  bool derived = false;
  static Mixing Of(const ModelConfig& c) { return Mixing{c.match_model, c.match_model && c.derived_fields}; }
};

// The predictors a chunk's coder mixes in, fed the chunk's bytes in order (encoder and
// decoder alike, so both build the same tables).
class TableMixer {
 public:
  TableMixer(Mixing mixing, uint32_t chunk_length);
  // The table to code the byte after `bytes[0..pos)` with (valid until the next call).
  const uint32_t* Mix(const uint8_t* bytes, const uint32_t* cum);
  // Byte `pos` is now known.
  void Update(const uint8_t* bytes, size_t pos);

 private:
  std::unique_ptr<MatchModel> match_;    // null: not mixed
  std::unique_ptr<EnergyModel> energy_;  // null: not mixed (nor sum_)
  std::unique_ptr<SumModel> sum_;
};

// The model inputs of one chunk whose bytes are all known (compression, evaluation): chunk
// mode, any number of rows per call.
class ChunkFeed {
 public:
  // A chunk of at least one byte.
  explicit ChunkFeed(std::vector<uint8_t> chunk) : chunk_(std::move(chunk)) {}
  const std::vector<uint8_t>& chunk() const { return chunk_; }
  // Model inputs not taken yet (a chunk of n bytes has n - 1).
  size_t inputs_left() const { return chunk_.size() - fed_; }
  // The next `count` (<= inputs_left()) model inputs, for lane `lane`.
  engine::LaneInput TakeInputs(int lane, size_t count);

 protected:
  std::vector<uint8_t> chunk_;

 private:
  size_t fed_ = 1;  // bytes predicted by the inputs taken so far, plus the first
};

// Encodes one chunk. Inputs are taken for the model ahead of coding (a scheduler may run the
// model one step ahead of its coder thread); tables are consumed in the same order.
class ChunkEncoder : public ChunkFeed {
 public:
  // A chunk of at least two bytes (EncodeWithoutModel takes the others); `mixing` as the
  // model's config says.
  ChunkEncoder(std::vector<uint8_t> chunk, Mixing mixing);
  ChunkEncoder(ChunkEncoder&&) = delete;  // the range encoder points into payload_
  // Codes the next `count` bytes, the tables of their rows `kFreqTableStride` apart. The
  // call that codes the last byte also tries LZMA2 (on the caller's thread: a scheduler's
  // coder thread or a codec worker, never the model's step).
  void Code(const uint32_t* tables, size_t count);
  bool coded() const { return pos_ == chunk().size(); }
  // Once coded(): the record (the range code, the LZMA2 code if strictly smaller, or the
  // bytes stored when neither is smaller). The encoder is spent afterwards.
  EncodedChunk Seal();

 private:
  size_t pos_ = 1;  // bytes coded so far, the first included
  std::vector<uint8_t> payload_;
  std::vector<uint8_t> lzma2_;  // empty unless smaller than payload_ and the chunk
  RangeEncoder encoder_;
  TableMixer mixer_;
};

// Decodes one chunk, a byte per model step (each byte is the next step's input).
class ChunkDecoder {
 public:
  // A record that needs the model (DecodeWithoutModel said no). `index` names it in errors.
  ChunkDecoder(ChunkRecord record, uint64_t index, Mixing mixing);
  ChunkDecoder(ChunkDecoder&&) = delete;  // the range decoder points into the record
  // The model input for the next step: the last byte decoded.
  engine::LaneInput Input(int lane) const { return engine::LaneInput{lane, &out_[pos_ - 1], 1}; }
  uint32_t length() const { return record_.original_length; }
  // Decodes the next byte with its table; true once the chunk is complete, DATA_LOSS when
  // the code is inconsistent (a corrupt file).
  Result<bool> Decode(const uint32_t* table);
  // Once complete: the chunk's bytes.
  std::vector<uint8_t> TakeBytes() { return std::move(out_); }

 private:
  ChunkRecord record_;
  uint64_t index_;
  std::vector<uint8_t> out_;
  size_t pos_ = 1;
  RangeDecoder decoder_;
  TableMixer mixer_;
};

// A chunk's record without the model: its LZMA2 code when shorter than the chunk, else the
// bytes stored (the whole-input alternative of codec.h's CompressWithLzma2Only). Once
// `stop` is set, the bytes stored at once.
EncodedChunk EncodeWithLzma2Only(std::vector<uint8_t> chunk, const std::atomic<bool>* stop = nullptr);

// A chunk that is coded without the model (a single byte) gives its record at once.
bool EncodeWithoutModel(std::vector<uint8_t>* chunk, EncodedChunk* out);
// A record that decodes without the model (stored, LZMA2, or a single byte) gives its bytes
// (true), or DATA_LOSS naming chunk `index` for damaged LZMA2 data.
Result<bool> DecodeWithoutModel(ChunkRecord* record, uint64_t index, std::vector<uint8_t>* out);

}  // namespace boa
