// The BOA network as LibTorch modules, with the parameter names of the public PyTorch
// checkpoints (embedding.weight, blocks.0.mamba.in_proj.weight, ..., head.2.bias), for
// training on full sequences. Conversions to and from ModelWeights connect it to the model
// file and the engine; the engine alone is used for coding.
#pragma once

#include <torch/torch.h>

#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::train {

struct MambaImpl : torch::nn::Module {
  MambaImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, L, D] -> [B, L, D]
  ModelConfig config;
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  torch::Tensor A_log, D;
};
TORCH_MODULE(Mamba);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  Mamba mamba{nullptr};
  torch::nn::Sequential ff{nullptr};
};
TORCH_MODULE(Block);

struct BoaNetImpl : torch::nn::Module {
  explicit BoaNetImpl(const ModelConfig& c);
  // bytes [B, L] (int64) -> logits [B, L, 256]: position t predicts byte t + 1.
  torch::Tensor forward(const torch::Tensor& bytes);
  ModelConfig config;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(BoaNet);

// Copies weights into the module (names and shapes must match exactly).
Status LoadWeights(BoaNet& net, const ModelWeights& weights);
// Reads the module's parameters back as float32 ModelWeights in canonical order.
ModelWeights ExportWeights(BoaNet& net);

// Mean cross-entropy in bits per predicted byte of `data` cut into chunks of `chunk_length`
// (each chunk from a zero state, its first byte not predicted), as the engine codes it.
double CrossEntropyBitsPerByte(BoaNet& net, const std::vector<uint8_t>& data, int64_t chunk_length);
// Cross-entropy in nats summed over the len - 1 bytes of one chunk that are predicted.
double ChunkCrossEntropyNats(BoaNet& net, const uint8_t* bytes, int64_t len);

}  // namespace boa::train
