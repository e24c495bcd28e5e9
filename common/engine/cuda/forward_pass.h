// The CUDA backend's forward pass and session logic, written once over an executor: the
// device executor (cuda_engine.cu) launches the kernels of kernel_bodies.h on a CUDA stream,
// the host executor (host_exec.h) runs them on the CPU, so CI runs this very sequence of
// launches, buffer offsets and copies without a GPU.
//
// An executor provides Launch(kernel, shape), CopyToDevice(dst, src, bytes) and
// CopyToHost(dst, src, bytes), the last returning once the data is on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/engine/cuda/kernel_bodies.h"
#include "common/engine/engine.h"
#include "common/model/model.h"

namespace boa::engine::cuda {

struct DeviceLayer {
  const float* ln1_w;
  const float* ln1_b;
  const float* ln2_w;
  const float* ln2_b;
  const float* conv_w;  // [d_conv][E]
  const float* conv_b;
  const float* A;  // -exp(A_log) * log2(e), StateIndex layout
  const float* D_skip;
  LinearWeights in_proj, x_proj, dt_proj, out_proj, ff0, ff2;
};

// A model's weights where the executor's kernels read them (model_image.h lays them out).
struct DeviceModel {
  int D = 0, E = 0, R = 0, S = 0, d_conv = 0;
  const float* embedding = nullptr;  // [256][D]
  float* first_xz = nullptr;         // [256][2E]: layer 0's in_proj(LN1(embedding[b]))
  float* first_ln = nullptr;         // [256][D]: scratch for making first_xz
  std::vector<DeviceLayer> layers;
  LinearWeights head0, head2;
  size_t ConvStride() const { return static_cast<size_t>(d_conv - 1) * static_cast<size_t>(E); }
  size_t SsmStride() const { return StateSize(E, S); }
};

template <class Exec>
void LaunchLinear(Exec& ex, const LinearWeights& W, const float* X, size_t ldx, int rows, float* Y, size_t ldy,
                  Epilogue e) {
  ex.Launch(LinearKernel{W, X, ldx, rows, Y, ldy, e}, LinearKernel::Shape(rows, W.out));
}

template <class Exec>
void LaunchLayerNorm(Exec& ex, const float* X, int rows, int D, const float* w, const float* b, float* Y) {
  ex.Launch(LayerNormKernel{X, static_cast<size_t>(D), rows, D, w, b, Y, static_cast<size_t>(D)},
            LayerNormKernel::Shape(rows));
}

// Layer 0's input is one of 256 embedding rows: its LN1 and in_proj become a table at load
// time, made by the same kernels (the CPU engine does the same with its kernels).
template <class Exec>
void MakeFirstLayerTable(Exec& ex, const DeviceModel& m) {
  const DeviceLayer& L0 = m.layers[0];
  LaunchLayerNorm(ex, m.embedding, 256, m.D, L0.ln1_w, L0.ln1_b, m.first_ln);
  LaunchLinear(ex, L0.in_proj, m.first_ln, static_cast<size_t>(m.D), 256, m.first_xz, static_cast<size_t>(2 * m.E),
               Epilogue::kStore);
}

// Where one session's buffers lie in its one device allocation: every lane's recurrent state,
// the activations of max_rows rows, the frequency tables, and the inputs of a call.
struct SessionLayout {
  size_t conv_state, ssm_state, x, u, xz, c, dbc, delta, y, mix, f, logits;  // float offsets
  size_t float_count;
  size_t tables, bytes, runs, reset;  // byte offsets of the rest
  size_t total_bytes;

  SessionLayout(const DeviceModel& m, int lanes, int max_rows) {
    const size_t L = m.layers.size(), rows = static_cast<size_t>(max_rows), n = static_cast<size_t>(lanes);
    const size_t D = static_cast<size_t>(m.D), E = static_cast<size_t>(m.E);
    size_t at = 0;
    auto take = [&at](size_t floats) {
      const size_t here = at;
      at += (floats + 63) / 64 * 64;  // 256-byte aligned
      return here;
    };
    conv_state = take(L * n * m.ConvStride());
    ssm_state = take(L * n * m.SsmStride());
    x = take(rows * D);
    u = take(rows * D);
    xz = take(rows * 2 * E);
    c = take(rows * E);
    dbc = take(rows * static_cast<size_t>(m.R + 2 * m.S));
    delta = take(rows * E);
    y = take(rows * E);
    mix = take(rows * D);
    f = take(rows * 4 * D);
    logits = take(rows * 256);
    float_count = at;
    size_t b = at * sizeof(float);
    auto take_bytes = [&b](size_t bytes) {
      const size_t here = b;
      b += (bytes + 255) / 256 * 256;
      return here;
    };
    tables = take_bytes(rows * kFreqTableStride * sizeof(uint32_t));
    bytes = take_bytes(rows);
    runs = take_bytes(n * sizeof(InputRun));
    reset = take_bytes(n * sizeof(int));
    total_bytes = b;
  }
};

// One session's state and calls over an executor; `block` is its device allocation of
// SessionLayout::total_bytes. Lanes reset between calls are zeroed at the start of the next
// one, in stream order. Not thread-safe: a session is one thread's (engine.h).
template <class Exec>
class SessionCore {
 public:
  SessionCore(Exec* exec, const DeviceModel* model, int lanes, int max_rows, void* block)
      : exec_(exec), m_(model), lanes_(lanes), layout_(*model, lanes, max_rows) {
    char* base = static_cast<char*>(block);
    float* fl = reinterpret_cast<float*>(base);
    conv_state_ = fl + layout_.conv_state;
    ssm_state_ = fl + layout_.ssm_state;
    x_ = fl + layout_.x;
    u_ = fl + layout_.u;
    xz_ = fl + layout_.xz;
    c_ = fl + layout_.c;
    dbc_ = fl + layout_.dbc;
    delta_ = fl + layout_.delta;
    y_ = fl + layout_.y;
    mix_ = fl + layout_.mix;
    f_ = fl + layout_.f;
    logits_ = fl + layout_.logits;
    tables_ = reinterpret_cast<uint32_t*>(base + layout_.tables);
    bytes_ = reinterpret_cast<uint8_t*>(base + layout_.bytes);
    runs_ = reinterpret_cast<InputRun*>(base + layout_.runs);
    reset_ = reinterpret_cast<int*>(base + layout_.reset);
    host_bytes_.resize(static_cast<size_t>(max_rows));
    host_runs_.reserve(static_cast<size_t>(lanes));
  }

  // Every lane starts zeroed, as a new session's lanes do on the CPU.
  void ResetAll() {
    for (int i = 0; i < lanes_; ++i) pending_reset_.push_back(i);
  }
  void ResetLane(int lane) { pending_reset_.push_back(lane); }

  size_t RunNetwork(const LaneInput* inputs, int n_inputs) {
    rows_ = 0;
    logits_on_host_ = true;  // none
    host_runs_.clear();
    int rows = 0;
    for (int i = 0; i < n_inputs; ++i) {
      if (inputs[i].count <= 0) continue;
      host_runs_.push_back(InputRun{inputs[i].lane, inputs[i].count, rows});
      std::memcpy(&host_bytes_[static_cast<size_t>(rows)], inputs[i].bytes, static_cast<size_t>(inputs[i].count));
      rows += inputs[i].count;
    }
    if (rows == 0) return 0;
    ApplyResets();
    const int n_runs = static_cast<int>(host_runs_.size());
    exec_->CopyToDevice(bytes_, host_bytes_.data(), static_cast<size_t>(rows));
    exec_->CopyToDevice(runs_, host_runs_.data(), host_runs_.size() * sizeof(InputRun));
    Network(n_runs, rows);
    rows_ = rows;
    logits_on_host_ = false;
    return static_cast<size_t>(rows);
  }

  void Quantize(size_t rows, uint32_t* tables) {
    exec_->Launch(QuantizeKernel{logits_, tables_}, QuantizeKernel::Shape(static_cast<int>(rows)));
    exec_->CopyToHost(tables, tables_, rows * kFreqTableStride * sizeof(uint32_t));
  }

  // The last call's logits, copied to the host on the first request.
  const float* Logits() {
    if (!logits_on_host_) {
      host_logits_.resize(static_cast<size_t>(rows_) * 256);
      exec_->CopyToHost(host_logits_.data(), logits_, host_logits_.size() * sizeof(float));
      logits_on_host_ = true;
    }
    return host_logits_.data();
  }

 private:
  void ApplyResets() {
    if (pending_reset_.empty()) return;
    const int n = static_cast<int>(pending_reset_.size());
    for (int done = 0; done < n; done += lanes_) {  // the reset buffer holds `lanes` entries
      const int count = n - done < lanes_ ? n - done : lanes_;
      exec_->CopyToDevice(reset_, pending_reset_.data() + done, static_cast<size_t>(count) * sizeof(int));
      exec_->Launch(ResetLanesKernel{reset_, conv_state_, ssm_state_, static_cast<int>(m_->layers.size()), lanes_,
                                     m_->ConvStride(), m_->SsmStride()},
                    ResetLanesKernel::Shape(count));
    }
    pending_reset_.clear();
  }

  // The layers of CpuSession::RunNetwork, stage for stage.
  void Network(int n_runs, int rows) {
    const DeviceModel& m = *m_;
    const int D = m.D, E = m.E, R = m.R, S = m.S;
    const size_t ldbc = static_cast<size_t>(R + 2 * S), d = static_cast<size_t>(D), e = static_cast<size_t>(E);
    const size_t lanes = static_cast<size_t>(lanes_);
    exec_->Launch(EmbedKernel{bytes_, m.embedding, m.first_xz, D, E, x_, xz_}, EmbedKernel::Shape(rows));
    for (size_t l = 0; l < m.layers.size(); ++l) {
      const DeviceLayer& L = m.layers[l];
      if (l > 0) {
        LaunchLayerNorm(*exec_, x_, rows, D, L.ln1_w, L.ln1_b, u_);
        LaunchLinear(*exec_, L.in_proj, u_, d, rows, xz_, 2 * e, Epilogue::kStore);
      }
      exec_->Launch(ConvSiluKernel{{}, runs_, xz_, conv_state_ + l * lanes * m.ConvStride(), m.ConvStride(), L.conv_w,
                                   L.conv_b, E, m.d_conv, c_},
                    ConvSiluKernel::Shape(n_runs, E));
      LaunchLinear(*exec_, L.x_proj, c_, e, rows, dbc_, ldbc, Epilogue::kStore);
      LaunchLinear(*exec_, L.dt_proj, dbc_, ldbc, rows, delta_, e, Epilogue::kSoftplus);
      exec_->Launch(ScanKernel{{}, runs_, delta_, c_, xz_, dbc_, R, S, E, L.A, L.D_skip,
                               ssm_state_ + l * lanes * m.SsmStride(), m.SsmStride(), y_},
                    ScanKernel::Shape(n_runs, E));
      LaunchLinear(*exec_, L.out_proj, y_, e, rows, mix_, d, Epilogue::kStore);
      LaunchLayerNorm(*exec_, mix_, rows, D, L.ln2_w, L.ln2_b, u_);
      LaunchLinear(*exec_, L.ff0, u_, d, rows, f_, 4 * d, Epilogue::kGelu);
      LaunchLinear(*exec_, L.ff2, f_, 4 * d, rows, x_, d, Epilogue::kAdd);  // residual
    }
    LaunchLinear(*exec_, m.head0, x_, d, rows, u_, d, Epilogue::kRelu);
    LaunchLinear(*exec_, m.head2, u_, d, rows, logits_, 256, Epilogue::kStore);
  }

  Exec* const exec_;
  const DeviceModel* const m_;
  const int lanes_;
  const SessionLayout layout_;
  // Device pointers into the session's block.
  float *conv_state_, *ssm_state_, *x_, *u_, *xz_, *c_, *dbc_, *delta_, *y_, *mix_, *f_, *logits_;
  uint32_t* tables_;
  uint8_t* bytes_;
  InputRun* runs_;
  int* reset_;
  // Host side.
  std::vector<uint8_t> host_bytes_;
  std::vector<InputRun> host_runs_;
  std::vector<int> pending_reset_;
  std::vector<float> host_logits_;
  int rows_ = 0;
  bool logits_on_host_ = false;
};

}  // namespace boa::engine::cuda
