// The Mamba mixer between in_proj and out_proj as one autograd function: causal depthwise
// convolution + SiLU, x_proj, dt_proj + softplus, the selective scan, the D skip and the SiLU(z)
// gate. Its backward pass is written out by hand, so a training step runs a few fused loops
// here instead of ~60 LibTorch operations (each a pass over memory) for the same arithmetic.
#pragma once

#include <torch/torch.h>

namespace boa::train {

struct MambaInnerWeights {
  torch::Tensor conv_w;     // [E, 1, K]
  torch::Tensor conv_b;     // [E]
  torch::Tensor x_proj_w;   // [R + 2S, E]
  torch::Tensor dt_proj_w;  // [E, R]
  torch::Tensor dt_proj_b;  // [E]
  torch::Tensor A_log;      // [E, S]
  torch::Tensor D;          // [E]
};

// xz [B, L, 2E] (in_proj's output: the convolution's input, then z) -> [B, L, E], the input of
// out_proj. float or double; differentiable in xz and every weight.
torch::Tensor MambaInner(const torch::Tensor& xz, const MambaInnerWeights& w, int64_t dt_rank);

// The same function composed of LibTorch operations (autograd through each): what runs under
// bf16 autocast, and the reference the fused gradients are tested against.
torch::Tensor MambaInnerReference(const torch::Tensor& xz, const MambaInnerWeights& w, int64_t dt_rank);

}  // namespace boa::train
