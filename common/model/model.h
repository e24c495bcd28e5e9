// The BOA network's architecture and weights, the versioned model file (docs/format.md,
// "The model file, version 1") and deterministic random initialisation. The model id is the
// SHA-256 of the file's bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/util/hash.h"
#include "common/util/status.h"

namespace boa {

struct ModelConfig {
  uint32_t d_model = 256;
  uint32_t n_layers = 1;
  uint32_t d_state = 16;
  uint32_t d_conv = 4;
  uint32_t expand = 2;
  uint32_t dt_rank = 16;  // ceil(d_model / 16) by default; stored, never assumed
  uint32_t vocab = 256;
  // Not the network's shape but how it codes: the match model (common/codec/match_model.h)
  // and the derived-field models (energy_model.h, sum_model.h) mix into its tables. Model file
  // version 2, flags bits 0 and 1.
  bool match_model = false;
  bool derived_fields = false;

  uint32_t d_inner() const { return expand * d_model; }
  // Defaults of the public tool for a given width and depth.
  static ModelConfig Default(uint32_t d_model, uint32_t n_layers);
  Status Validate() const;
  // Multiply-adds per coded byte outside the embedding lookup (≈ non-embedding parameters).
  uint64_t MacsPerByte() const;
  uint64_t ParameterCount() const;
  // The same architecture (the mixing flags aside: the same weights fit either way).
  bool operator==(const ModelConfig& o) const;
};

enum class WeightType : uint8_t { kF32 = 1, kF16 = 2 };
const char* WeightTypeName(WeightType t);
// "f32" or "f16", the names WeightTypeName gives.
Result<WeightType> ParseWeightType(const std::string& name);

struct Tensor {
  std::string name;
  std::vector<uint32_t> shape;
  std::vector<float> data;
  uint64_t numel() const;
};

// Weights in canonical order (ExpectedTensorShapes), always widened to float32 in memory.
struct ModelWeights {
  ModelConfig config;
  std::vector<Tensor> tensors;
  const Tensor* Find(const std::string& name) const;
  Tensor* Find(const std::string& name);
  // The tensor `name` of weights that were validated (loaded or made by InitRandomModel),
  // whose tensors are all there at their full size: aborts otherwise.
  const Tensor& Get(const std::string& name) const;
};

// Names and shapes of every parameter, in the public PyTorch checkpoints' naming.
std::vector<Tensor> ExpectedTensorShapes(const ModelConfig& config);

struct LoadedModel {
  ModelWeights weights;
  Sha256Digest id{};
  WeightType stored_type = WeightType::kF32;
  std::string metadata;
  uint64_t file_bytes = 0;
  std::string IdHex() const { return HexString(id.data(), id.size()); }
};

// What a model file's first bytes promise, checked as ParseModelFile checks them (magic,
// version, header length, architecture, weight type, tensor count), so a receiver can refuse
// a wrong file at its first bytes and bound how much it accepts. With fewer bytes than it
// needs, `need` says how many (16, then 16 + header_bytes) and nothing else is set.
struct ModelHead {
  size_t need = 0;
  ModelConfig config;
  WeightType type = WeightType::kF32;
  uint32_t header_bytes = 0;
  uint32_t n_tensors = 0;
  uint64_t file_bytes = 0;  // the size of the file SerializeModel writes for this header
};
Result<ModelHead> ReadModelHead(const uint8_t* p, size_t n);
// Parses and validates a model file image (sizes, shapes, names, checksum, NaN/Inf).
Result<LoadedModel> ParseModelFile(const std::vector<uint8_t>& bytes);
Result<LoadedModel> LoadModelFile(const std::string& path);
std::vector<uint8_t> SerializeModel(const ModelWeights& weights, WeightType type,
                                    const std::string& metadata);

// Deterministic random initialisation (PyTorch-like scales, Mamba's A and dt init), identical
// on every machine for a given config and seed.
ModelWeights InitRandomModel(const ModelConfig& config, uint64_t seed);

// IEEE binary16 conversions (round to nearest even; widening is exact).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);

// Model files end in .boam; boa-client reads a -m value with this suffix as a file, and
// boad's store refuses such names, so the two never meet.
constexpr const char* kModelFileSuffix = ".boam";
bool HasModelFileSuffix(const std::string& name);

// Short form of a model id for messages: the first 16 hex digits.
std::string ShortId(const Sha256Digest& id);

}  // namespace boa
