// The CPU backend of the engine interface (engine.h): weights packed for the scalar or AVX2
// kernel set (kernels.h), one forward pass layer by layer over a batch of rows. Internal to
// common/engine; everything else uses Engine and Session.
#pragma once

#include <string>
#include <vector>

#include "common/engine/engine.h"

namespace boa::engine {

class CpuEngine final : public Engine {
 public:
  static Result<std::shared_ptr<const Engine>> Build(const ModelWeights& weights, Backend backend);
  std::string name() const override { return std::string("cpu (") + kernels_->name + ")"; }
  uint64_t MemoryBytes() const override;
  static uint64_t MemoryBytesFor(const ModelConfig& config);

 private:
  friend class CpuSession;
  CpuEngine(const ModelConfig& config, const KernelSet* kernels) : Engine(config), kernels_(kernels) {}
  std::unique_ptr<Session> NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const override;
  struct Layer {
    FloatBuffer ln1_w, ln1_b, ln2_w, ln2_b;
    PackedLinear in_proj, x_proj, dt_proj, out_proj, ff0, ff2;
    FloatBuffer conv_w;  // [d_conv][E]
    FloatBuffer conv_b;
    FloatBuffer A;       // -exp(A_log) * log2(e): the decay is a power of 2; StateIndex layout
    float A_min = NAN;   // the smallest value in A, NaN if A holds a NaN (the scan then always clamps)
    FloatBuffer D_skip;
  };
  const KernelSet* const kernels_;
  FloatBuffer embedding_;  // [256][D]
  // Layer 0's input is one of 256 embedding rows, so its LayerNorm and in_proj are a table
  // made at load time by the same kernels (the same bits as computing them per byte):
  // [256][2E], row b = in_proj(LN1(embedding[b])).
  FloatBuffer first_xz_;
  std::vector<Layer> layers_;
  PackedLinear head0_, head2_;
};

class CpuSession final : public Session {
 public:
  CpuSession(std::shared_ptr<const CpuEngine> engine, int lanes, int max_rows);
  uint64_t AllocatedBytes() const override;
  void ResetLane(int lane) override;
  const float* logits() override { return logits_buf_.data(); }

 private:
  size_t RunNetwork(const LaneInput* inputs, int n_inputs) override;
  void Quantize(size_t rows, uint32_t* tables) override;
  const std::shared_ptr<const CpuEngine> engine_;
  // Recurrent state per lane and layer, layer-major: one layer's states of lanes 0, 1, 2, ...
  // are one sequential stream, which the hardware prefetcher follows when many lanes step
  // together and their states do not fit in L2.
  size_t StateSlot(int lane, uint32_t layer) const {
    return static_cast<size_t>(layer) * static_cast<size_t>(lanes()) + static_cast<size_t>(lane);
  }
  FloatBuffer conv_state_;  // [layers][lanes][d_conv-1][E]
  FloatBuffer ssm_state_;   // [layers][lanes][StateSize(E, S)]
  // Activations [max_rows][...].
  FloatBuffer x_, u_, xz_, c_, dbc_, delta_, y_, m_, f_, logits_buf_;
  size_t conv_stride_, ssm_stride_;
};

}  // namespace boa::engine
