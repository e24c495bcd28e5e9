// Deterministic batched inference of the BOA network, behind the interface every backend
// implements (docs/architecture.md, "Engine backends").
//
// An Engine holds a model's weights prepared for its backend (immutable, shared by threads).
// A Session is one thread's working memory plus the recurrent state of `lanes` independent
// sequences. Forward() advances any subset of lanes by any number of bytes each: one byte per
// lane is step mode (decompression), many bytes per lane is chunk mode (compression). The
// frequency tables it produces depend only on each lane's own byte history — never on the
// other lanes, their order, the batch size or the backend (docs/determinism.md).
//
// The CPU backend (cpu_engine.h) runs the network with the scalar or AVX2 kernel set; a
// device backend implements Engine and Session the same way and is chosen in Engine::Create,
// without changes to the codec or boad's scheduler, which only see this interface.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/engine/kernels.h"
#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::engine {

class Session;

// Where the network runs, by the name users give (`--device`, an experiment's `device:`):
// "cpu" runs `cpu_kernels`, "cuda" the CUDA engine, "auto" the CUDA engine where this build
// has it and the machine a CUDA device, else `cpu_kernels`. "cuda" where there is no device
// is FAILED_PRECONDITION saying why; a CPU kernel set other than kAuto does not go with it.
Result<Backend> ResolveDevice(const std::string& device, Backend cpu_kernels);
// Whether Engine::Create can run `backend` here (kCuda: this build has CUDA and the machine
// a device).
bool BackendAvailable(Backend backend);

class Engine {
 public:
  virtual ~Engine() = default;
  // The engine of `backend` for these weights (kAuto: the best CPU kernels this machine has;
  // kCuda: CUDA device `cuda_device`, FAILED_PRECONDITION where there is none).
  static Result<std::shared_ptr<const Engine>> Create(const ModelWeights& weights, Backend backend,
                                                      int cuda_device = 0);
  // What Create will allocate for a model of `config` (known before anything is allocated).
  static uint64_t MemoryBytesFor(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  // The backend, for logs and status (e.g. "cpu (avx2)").
  virtual std::string name() const = 0;
  // Bytes of the weights and tables this engine holds.
  virtual uint64_t MemoryBytes() const = 0;
  // How the codec feeds this backend by default; results never depend on it. A CPU core is
  // fastest on calls of a few hundred rows (they stay in its caches), a GPU needs tens of
  // thousands of rows from many lanes at once, fed by a few threads.
  struct Batching {
    int chunk_rows;   // rows per chunk-mode Forward call
    int chunk_lanes;  // chunks coded together in chunk mode, at most
    int step_lanes;   // lanes of a step-mode session
    int threads;      // worker threads, at most (0: one per core)
  };
  virtual Batching batching() const { return BatchingFor(Backend::kAuto); }
  // The batching of an engine of `backend`, before there is one (boad sizes its lanes by it).
  static Batching BatchingFor(Backend backend);
  // Multiply-adds performed per byte: the model's (ModelConfig::MacsPerByte) less layer 0's
  // in_proj, which is a table lookup.
  uint64_t ExecutedMacsPerByte() const {
    return config_.MacsPerByte() - 2ull * config_.d_inner() * config_.d_model;
  }

 protected:
  friend class Session;
  explicit Engine(const ModelConfig& config) : config_(config) {}
  // A session of this backend; throws std::bad_alloc if its memory cannot be had.
  virtual std::unique_ptr<Session> NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const = 0;

 private:
  ModelConfig config_;
};

// A run of consecutive bytes fed to one lane in a Forward call.
struct LaneInput {
  int lane;
  const uint8_t* bytes;
  int count;
};

class Session {
 public:
  virtual ~Session() = default;
  // Allocates `lanes` lanes of recurrent state and activations for `max_rows` rows
  // (RESOURCE_EXHAUSTED if they cannot be had).
  static Result<std::unique_ptr<Session>> Create(std::shared_ptr<const Engine> engine, int lanes, int max_rows);
  // The same, throwing std::bad_alloc (for callers that allocate several things at once).
  static std::unique_ptr<Session> New(std::shared_ptr<const Engine> engine, int lanes, int max_rows);
  // What a session of `backend` holds, known before it is made: every lane's state for every
  // layer (it grows with d_model x expand x d_state x layers) plus the activations of
  // max_rows rows (a CUDA session: in device memory, with its tables and inputs).
  static uint64_t MemoryBytes(const ModelConfig& config, int lanes, int max_rows, Backend backend = Backend::kAuto);
  // The bytes this session's buffers hold.
  virtual uint64_t AllocatedBytes() const = 0;
  int lanes() const { return lanes_; }
  int max_rows() const { return max_rows_; }
  // Zeroes a lane's recurrent state (a new chunk starts).
  virtual void ResetLane(int lane) = 0;
  // Feeds the inputs; row r of the output (rows in input order, then byte order) is the
  // cumulative frequency table [kFreqTableStride] of the byte that follows that row's input
  // byte. Lanes in one call must be distinct; total bytes <= max_rows. Two stages, each
  // bit-exact on every backend: the network's logits for every row, then their quantization
  // into frequency tables. The match model mixes into those tables afterwards, in integers,
  // in the chunk coders (common/codec/match_model.h): no backend has to reproduce it.
  void Forward(const LaneInput* inputs, int n_inputs, uint32_t* tables);
  // Logits [rows][256] of the last Forward call (a device backend copies them to the host
  // when they are asked for).
  virtual const float* logits() = 0;

 protected:
  Session(int lanes, int max_rows) : lanes_(lanes), max_rows_(max_rows) {}
  // Runs the network over the inputs; returns the rows.
  virtual size_t RunNetwork(const LaneInput* inputs, int n_inputs) = 0;
  // Quantizes the `rows` rows of the last RunNetwork into frequency tables, kFreqTableStride
  // apart.
  virtual void Quantize(size_t rows, uint32_t* tables) = 0;

 private:
  const int lanes_;
  const int max_rows_;
};

}  // namespace boa::engine
