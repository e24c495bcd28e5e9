// Matrix products of training on the engine's AVX2 micro-kernel (6 rows x 16 columns, the
// weight packed into column panels) instead of OpenBLAS, which runs BOA's skinny shapes
// (thousands of rows, 4 to 256 columns) at a third to a half of the FMA peak. float32 on
// AVX2+FMA CPUs; anything else (double, bf16 autocast, other CPUs) uses LibTorch.
#pragma once

#include <torch/torch.h>

namespace boa::train {

// x [..., K] times w [N, K] transposed, plus bias [N] (may be undefined): [..., N]. No
// autograd (for use inside autograd functions).
torch::Tensor ProductTransposed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias);
// acc += x w^T, acc contiguous [..., N].
void AddProductTransposed(const torch::Tensor& x, const torch::Tensor& w, torch::Tensor& acc);

// torch::linear(x, w, bias) with autograd: the forward product and the input gradient on the
// micro-kernel, the weight gradient (a long reduction, where OpenBLAS does well) on torch::mm.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias);

}  // namespace boa::train
