// The ends of a .boa stream (see stream.h).
#include "common/codec/stream.h"

namespace boa {

ContainerHeader MakeHeader(const LoadedModel& model, uint32_t chunk_length) {
  ContainerHeader h;
  h.chunk_length = chunk_length;
  h.model_id = model.id;
  const ModelConfig& c = model.weights.config;
  h.model.d_model = c.d_model;
  h.model.n_layers = static_cast<uint16_t>(c.n_layers);
  h.model.d_state = static_cast<uint16_t>(c.d_state);
  h.model.d_conv = static_cast<uint16_t>(c.d_conv);
  h.model.expand = static_cast<uint16_t>(c.expand);
  h.model.dt_rank = static_cast<uint16_t>(c.dt_rank);
  h.model.weight_type = static_cast<uint8_t>(model.stored_type);
  return h;
}

Result<bool> ChunkCutter::Next(std::vector<uint8_t>* chunk) {
  if (ended_) return false;
  chunk->resize(chunk_length_);
  BOA_ASSIGN_OR_RETURN(size_t got, in_->Read(chunk->data(), chunk->size()));
  chunk->resize(got);
  ended_ = got < chunk_length_;
  content_.Update(chunk->data(), got);
  bytes_ += got;
  return got > 0;
}

Status StreamWriter::Add(const EncodedChunk& chunk) {
  BOA_RETURN_IF_ERROR(writer_.WriteChunk(chunk.method, chunk.original_length, chunk.payload.data(), chunk.payload.size()));
  input_bytes_ += chunk.original_length;
  ++chunks_;
  stored_chunks_ += chunk.method == ChunkMethod::kStored;
  lzma2_chunks_ += chunk.method == ChunkMethod::kLzma2;
  return Status::Ok();
}

Status StreamReader::CheckContent(uint64_t decoded_checksum) const {
  if (decoded_checksum != reader_.trailer().content_checksum) {
    return Status::DataLoss("content checksum mismatch: the decoded data differs from the original");
  }
  return Status::Ok();
}

}  // namespace boa
