// Helpers shared by the training tests (torch headers; only for tests linking boa_train).
#pragma once

#include <torch/torch.h>

#include <algorithm>

namespace boa::train {

// max |a - b| relative to max |b|.
inline double MaxRelErr(const torch::Tensor& a, const torch::Tensor& b) {
  double scale = std::max(1e-12, b.abs().max().item<double>());
  return (a - b).abs().max().item<double>() / scale;
}

}  // namespace boa::train
