// The feed-forward's GELU (exact form, as torch::nn::GELU()) as an autograd function on the
// AVX2 kernels of block_kernels.h: one pass forward and one backward, instead of LibTorch's
// erf-based kernels (~5 % of a d_model 64 training step).
#pragma once

#include <torch/torch.h>

namespace boa::train {

// float or double; other types (bf16 autocast) take torch::gelu.
torch::Tensor Gelu(const torch::Tensor& x);

}  // namespace boa::train
