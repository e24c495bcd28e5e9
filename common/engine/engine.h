// Deterministic batched inference of the BOA network.
//
// An Engine holds a model's weights packed for the kernels (immutable, shared by threads).
// A Session is one thread's working memory plus the recurrent state of `lanes` independent
// sequences. Forward() advances any subset of lanes by any number of bytes each: one byte per
// lane is step mode (decompression), many bytes per lane is chunk mode (compression). The
// frequency tables it produces depend only on each lane's own byte history — never on the
// other lanes, their order, the batch size or the kernel backend (docs/determinism.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/engine/kernels.h"
#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::engine {

class Engine {
 public:
  static Result<std::shared_ptr<const Engine>> Create(const ModelWeights& weights, Backend backend);
  const ModelConfig& config() const { return config_; }
  const KernelSet& kernels() const { return *kernels_; }
  // Multiply-adds performed per byte: the model's (ModelConfig::MacsPerByte) less layer 0's
  // in_proj, which is a table lookup.
  uint64_t ExecutedMacsPerByte() const {
    return config_.MacsPerByte() - 2ull * config_.d_inner() * config_.d_model;
  }
  // Bytes of the packed weights and tables this engine holds, and what an engine of `config`
  // will hold (the same number, known before anything is allocated).
  uint64_t MemoryBytes() const;
  static uint64_t MemoryBytesFor(const ModelConfig& config);

 private:
  friend class Session;
  static Result<std::shared_ptr<const Engine>> Build(const ModelWeights& weights, Backend backend);
  struct Layer {
    FloatBuffer ln1_w, ln1_b, ln2_w, ln2_b;
    PackedLinear in_proj, x_proj, dt_proj, out_proj, ff0, ff2;
    FloatBuffer conv_w;  // [d_conv][E]
    FloatBuffer conv_b;
    FloatBuffer A;       // -exp(A_log) * log2(e): the decay is a power of 2; StateIndex layout
    float A_min = NAN;   // the smallest value in A, NaN if A holds a NaN (the scan then always clamps)
    FloatBuffer D_skip;
  };
  ModelConfig config_;
  const KernelSet* kernels_ = nullptr;
  FloatBuffer embedding_;  // [256][D]
  // Layer 0's input is one of 256 embedding rows, so its LayerNorm and in_proj are a table
  // made at load time by the same kernels (the same bits as computing them per byte):
  // [256][2E], row b = in_proj(LN1(embedding[b])).
  FloatBuffer first_xz_;
  std::vector<Layer> layers_;
  PackedLinear head0_, head2_;
};

// A run of consecutive bytes fed to one lane in a Forward call.
struct LaneInput {
  int lane;
  const uint8_t* bytes;
  int count;
};

class Session {
 public:
  // Allocates `lanes` lanes of recurrent state and activations for `max_rows` rows; a
  // failed allocation throws std::bad_alloc (Create reports it as RESOURCE_EXHAUSTED).
  Session(std::shared_ptr<const Engine> engine, int lanes, int max_rows);
  static Result<std::unique_ptr<Session>> Create(std::shared_ptr<const Engine> engine, int lanes, int max_rows);
  // What such a session holds, known before it is made: every lane's state for every layer
  // (it grows with d_model x expand x d_state x layers) plus the activations of max_rows rows.
  static uint64_t MemoryBytes(const ModelConfig& config, int lanes, int max_rows);
  // The bytes this session's buffers hold (MemoryBytes of its shape).
  uint64_t AllocatedBytes() const;
  int lanes() const { return lanes_; }
  int max_rows() const { return max_rows_; }
  // Zeroes a lane's recurrent state (a new chunk starts).
  void ResetLane(int lane);
  // Feeds the inputs; row r of the output (rows in input order, then byte order) is the
  // cumulative frequency table [257] of the byte that follows that row's input byte.
  // Lanes in one call must be distinct; total bytes <= max_rows.
  void Forward(const LaneInput* inputs, int n_inputs, uint32_t* cum_out);
  // Logits [rows][256] of the last Forward call.
  const float* logits() const { return logits_.data(); }

 private:
  std::shared_ptr<const Engine> engine_;
  int lanes_;
  int max_rows_;
  // Recurrent state per lane and layer, layer-major: one layer's states of lanes 0, 1, 2, ...
  // are one sequential stream, which the hardware prefetcher follows when many lanes step
  // together and their states do not fit in L2.
  size_t StateSlot(int lane, uint32_t layer) const {
    return static_cast<size_t>(layer) * static_cast<size_t>(lanes_) + static_cast<size_t>(lane);
  }
  FloatBuffer conv_state_;  // [layers][lanes][d_conv-1][E]
  FloatBuffer ssm_state_;   // [layers][lanes][StateSize(E, S)]
  // Activations [max_rows][...].
  FloatBuffer x_, u_, xz_, c_, dbc_, delta_, y_, m_, f_, logits_;
  size_t conv_stride_, ssm_stride_;
};

}  // namespace boa::engine
