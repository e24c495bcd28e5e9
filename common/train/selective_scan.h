// Mamba's selective scan for training: a custom autograd function backed by a C++ CPU
// kernel (forward and backward, parallel over batch x channels), instead of a per-time-step
// loop of tensor operations. Part of common/train, the only place that includes torch.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace boa::train {

// u, delta: [B, L, E]; A: [E, S]; Bm, Cm: [B, L, S]. Returns y [B, L, E] with
//   h_t = exp(delta_t * A) * h_{t-1} + delta_t * Bm_t * u_t   (h_{-1} = 0, per channel)
//   y_t = sum_n h_t[n] * Cm_t[n]
// Differentiable in all five inputs. The backward pass recomputes states from checkpoints
// kept every `segment` steps, so memory is O(B * E * S * L / segment).
torch::Tensor SelectiveScan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                            const torch::Tensor& Bm, const torch::Tensor& Cm, int64_t segment = 64);

// The kernels without autograd, for fused functions (mamba_inner.cc). Inputs contiguous, of
// one floating type. ScanForward returns y and the state checkpoints ScanBackward needs;
// ScanBackward returns {du, ddelta, dA, dB, dC} for the gradient dy of y.
torch::Tensor ScanForward(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                          const torch::Tensor& Bm, const torch::Tensor& Cm, int64_t segment,
                          torch::Tensor* checkpoints);
std::vector<torch::Tensor> ScanBackward(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                                        const torch::Tensor& Bm, const torch::Tensor& Cm,
                                        const torch::Tensor& checkpoints, int64_t segment, const torch::Tensor& dy);

// The same recurrence as a loop of tensor operations (autograd through every step): the
// reference the kernel's gradients are checked against. Slow; for tests.
torch::Tensor SelectiveScanReference(const torch::Tensor& u, const torch::Tensor& delta,
                                     const torch::Tensor& A, const torch::Tensor& Bm,
                                     const torch::Tensor& Cm);

}  // namespace boa::train
