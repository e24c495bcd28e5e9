// A model's weights laid out for the CUDA kernels (kernel_bodies.h), in one float array that
// is copied to the device as it is: Linear weights transposed and padded to the tile width,
// the convolution as [d_conv][E], A as -exp(A_log) * log2(e) in the StateIndex layout.
// Built on the host by plain C++, so the device backend and the host executor that CI runs
// read the same image.
#pragma once

#include <cstddef>
#include <vector>

#include "common/engine/cuda/forward_pass.h"
#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::engine::cuda {

class ModelImage {
 public:
  static Result<ModelImage> Build(const ModelWeights& weights);
  const ModelConfig& config() const { return config_; }
  // The floats to copy to the device (the first-layer table is filled there, by
  // MakeFirstLayerTable).
  const std::vector<float>& floats() const { return floats_; }
  size_t Bytes() const { return floats_.size() * sizeof(float); }
  // The model's pointers into a copy of floats() that starts at `base`.
  DeviceModel Bind(float* base) const;

 private:
  struct LinearAt {
    size_t w, bias;
    int in, out, ldw;
  };
  struct LayerAt {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, conv_w, conv_b, A, D_skip;
    LinearAt in_proj, x_proj, dt_proj, out_proj, ff0, ff2;
  };
  size_t Take(size_t count);
  size_t Put(const std::vector<float>& values);
  LinearAt PutLinear(const float* weight, const float* bias_or_null, int out, int in);

  ModelConfig config_;
  std::vector<float> floats_;
  size_t embedding_ = 0, first_xz_ = 0, first_ln_ = 0;
  std::vector<LayerAt> layers_;
  LinearAt head0_{}, head2_{};
};

}  // namespace boa::engine::cuda
