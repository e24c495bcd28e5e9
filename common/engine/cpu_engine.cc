// The CPU backend: weight packing and the layer-by-layer forward pass (see cpu_engine.h).
#include "common/engine/cpu_engine.h"

#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/coder/frequency_table.h"
#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/detmath.h"

namespace boa::engine {

namespace {

FloatBuffer Copy(const Tensor& t) { return FloatBuffer(t.data.begin(), t.data.end()); }

// The smallest value, or NaN if any is NaN (the scan kernel then never skips its clamp).
float MinOrNaN(const FloatBuffer& v) {
  float m = INFINITY;
  for (float x : v) {
    if (std::isnan(x)) return x;
    m = std::min(m, x);
  }
  return m;
}

// Pins the SSE control register to IEEE defaults (round to nearest, no flush-to-zero, no
// denormals-are-zero) for the duration of a forward pass: a library elsewhere in the process
// that sets FTZ/DAZ must not change the coded bits.
class IeeeFloatScope {
 public:
  IeeeFloatScope() : saved_(_mm_getcsr()) { _mm_setcsr(0x1f80); }
  ~IeeeFloatScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
};

}  // namespace

Result<std::shared_ptr<const Engine>> CpuEngine::Build(const ModelWeights& w, Backend backend) {
  BOA_RETURN_IF_ERROR(w.config.Validate());
  const KernelSet* k = SelectKernels(backend);
  if (!k) {
    return Status::InvalidArgument(std::string("kernel backend '") + BackendName(backend) +
                                   "' is not available on this machine");
  }
  IeeeFloatScope ieee;  // A's exponentials and the layer-0 table are coded-path values too
  auto e = std::shared_ptr<CpuEngine>(new CpuEngine(w.config, k));
  const ModelConfig& c = w.config;
  const int D = static_cast<int>(c.d_model), E = static_cast<int>(c.d_inner());
  const int R = static_cast<int>(c.dt_rank), S = static_cast<int>(c.d_state);
  auto get = [&w](const std::string& name) -> const Tensor& { return w.Get(name); };
  e->embedding_ = Copy(get("embedding.weight"));
  for (uint32_t i = 0; i < c.n_layers; ++i) {
    std::string p = "blocks." + std::to_string(i) + ".";
    Layer L;
    L.ln1_w = Copy(get(p + "ln1.weight"));
    L.ln1_b = Copy(get(p + "ln1.bias"));
    L.ln2_w = Copy(get(p + "ln2.weight"));
    L.ln2_b = Copy(get(p + "ln2.bias"));
    L.in_proj.Pack(get(p + "mamba.in_proj.weight").data.data(), nullptr, 2 * E, D);
    L.x_proj.Pack(get(p + "mamba.x_proj.weight").data.data(), nullptr, R + 2 * S, E);
    L.dt_proj.Pack(get(p + "mamba.dt_proj.weight").data.data(),
                   get(p + "mamba.dt_proj.bias").data.data(), E, R);
    L.out_proj.Pack(get(p + "mamba.out_proj.weight").data.data(), nullptr, D, E);
    L.ff0.Pack(get(p + "ff.0.weight").data.data(), get(p + "ff.0.bias").data.data(), 4 * D, D);
    L.ff2.Pack(get(p + "ff.2.weight").data.data(), get(p + "ff.2.bias").data.data(), D, 4 * D);
    L.conv_w.resize(static_cast<size_t>(c.d_conv) * E);
    ConvTapsByTime(get(p + "mamba.conv1d.weight").data.data(), E, static_cast<int>(c.d_conv), L.conv_w.data());
    L.conv_b = Copy(get(p + "mamba.conv1d.bias"));
    L.A.resize(StateSize(E, S));
    ScanDecayExponents(get(p + "mamba.A_log").data.data(), E, S, L.A.data());
    L.A_min = MinOrNaN(L.A);
    L.D_skip = Copy(get(p + "mamba.D"));
    e->layers_.push_back(std::move(L));
  }
  {
    const Layer& L0 = e->layers_[0];
    FloatBuffer normed(static_cast<size_t>(256) * D);
    e->first_xz_.assign(static_cast<size_t>(256) * 2 * E, 0.0f);
    k->layer_norm(e->embedding_.data(), D, 256, D, L0.ln1_w.data(), L0.ln1_b.data(), normed.data(), D);
    k->linear(L0.in_proj, normed.data(), D, 256, e->first_xz_.data(), 2 * E, Epilogue::kStore);
  }
  e->head0_.Pack(get("head.0.weight").data.data(), get("head.0.bias").data.data(), D, D);
  e->head2_.Pack(get("head.2.weight").data.data(), get("head.2.bias").data.data(), 256, D);
  return std::shared_ptr<const Engine>(std::move(e));
}

uint64_t CpuEngine::MemoryBytesFor(const ModelConfig& c) {
  const uint64_t D = c.d_model, E = c.d_inner(), R = c.dt_rank, S = c.d_state;
  auto packed = [](uint64_t out, uint64_t in) { return (out + kPanel - 1) / kPanel * kPanel * (in + 1); };
  const uint64_t layer = 4 * D + c.d_conv * E + E + StateSize(static_cast<int>(E), static_cast<int>(S)) + E +
                         packed(2 * E, D) + packed(R + 2 * S, E) + packed(E, R) + packed(D, E) + packed(4 * D, D) +
                         packed(D, 4 * D);
  const uint64_t floats = 256 * D + 256 * 2 * E + packed(D, D) + packed(256, D) + c.n_layers * layer;
  return floats * sizeof(float);
}

uint64_t CpuEngine::MemoryBytes() const {
  auto bytes = [](const FloatBuffer& b) { return static_cast<uint64_t>(b.size()) * sizeof(float); };
  auto linear = [&](const PackedLinear& l) { return bytes(l.w) + bytes(l.bias); };
  uint64_t total = bytes(embedding_) + bytes(first_xz_) + linear(head0_) + linear(head2_);
  for (const Layer& L : layers_) {
    total += bytes(L.ln1_w) + bytes(L.ln1_b) + bytes(L.ln2_w) + bytes(L.ln2_b) + bytes(L.conv_w) +
             bytes(L.conv_b) + bytes(L.A) + bytes(L.D_skip);
    total += linear(L.in_proj) + linear(L.x_proj) + linear(L.dt_proj) + linear(L.out_proj) +
             linear(L.ff0) + linear(L.ff2);
  }
  return total;
}

namespace {

// Floats of one lane's recurrent state over all layers, and of one row's activations
// (x, u, m: D; xz: 2E; c, delta, y: E; dbc: R + 2S; f: 4D; logits: 256).
uint64_t LaneStateFloats(const ModelConfig& c) {
  const uint64_t E = c.d_inner();
  return c.n_layers * ((c.d_conv - 1) * E + StateSize(static_cast<int>(E), static_cast<int>(c.d_state)));
}
uint64_t RowFloats(const ModelConfig& c) {
  const uint64_t D = c.d_model, E = c.d_inner();
  return 3 * D + 2 * E + 3 * E + c.dt_rank + 2 * c.d_state + 4 * D + 256;
}

}  // namespace

uint64_t Session::MemoryBytes(const ModelConfig& c, int lanes, int max_rows, Backend backend) {
  if (backend == Backend::kCuda) return cuda::SessionBytes(c, lanes, max_rows);
  return (static_cast<uint64_t>(lanes) * LaneStateFloats(c) + static_cast<uint64_t>(max_rows) * RowFloats(c)) *
         sizeof(float);
}

uint64_t CpuSession::AllocatedBytes() const {
  uint64_t floats = conv_state_.size() + ssm_state_.size();
  for (const FloatBuffer* b : {&x_, &u_, &xz_, &c_, &dbc_, &delta_, &y_, &m_, &f_, &logits_buf_}) floats += b->size();
  return floats * sizeof(float);
}

std::unique_ptr<Session> CpuEngine::NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const {
  return std::make_unique<CpuSession>(std::static_pointer_cast<const CpuEngine>(std::move(self)), lanes, max_rows);
}

CpuSession::CpuSession(std::shared_ptr<const CpuEngine> engine, int lanes, int max_rows)
    : Session(lanes, max_rows), engine_(std::move(engine)) {
  const ModelConfig& c = engine_->config();
  const size_t D = c.d_model, E = c.d_inner(), R = c.dt_rank, S = c.d_state;
  conv_stride_ = (c.d_conv - 1) * E;
  ssm_stride_ = StateSize(static_cast<int>(E), static_cast<int>(S));
  conv_state_.assign(static_cast<size_t>(lanes) * c.n_layers * conv_stride_, 0.0f);
  ssm_state_.assign(static_cast<size_t>(lanes) * c.n_layers * ssm_stride_, 0.0f);
  const size_t rows = static_cast<size_t>(max_rows);
  x_.assign(rows * D, 0.0f);
  u_.assign(rows * D, 0.0f);
  xz_.assign(rows * 2 * E, 0.0f);
  c_.assign(rows * E, 0.0f);
  dbc_.assign(rows * (R + 2 * S), 0.0f);
  delta_.assign(rows * E, 0.0f);
  y_.assign(rows * E, 0.0f);
  m_.assign(rows * D, 0.0f);
  f_.assign(rows * 4 * D, 0.0f);
  logits_buf_.assign(rows * 256, 0.0f);
}

void CpuSession::ResetLane(int lane) {
  const ModelConfig& c = engine_->config();
  for (uint32_t l = 0; l < c.n_layers; ++l) {
    std::fill_n(conv_state_.begin() + StateSlot(lane, l) * conv_stride_, conv_stride_, 0.0f);
    std::fill_n(ssm_state_.begin() + StateSlot(lane, l) * ssm_stride_, ssm_stride_, 0.0f);
  }
}

size_t CpuSession::RunNetwork(const LaneInput* inputs, int n_inputs) {
  IeeeFloatScope ieee;
  const CpuEngine& e = *engine_;
  const KernelSet& k = *e.kernels_;
  const ModelConfig& c = e.config();
  const int D = static_cast<int>(c.d_model), E = static_cast<int>(c.d_inner());
  const int R = static_cast<int>(c.dt_rank), S = static_cast<int>(c.d_state);
  const int dc = static_cast<int>(c.d_conv);
  const size_t ldbc = static_cast<size_t>(R + 2 * S);

  size_t rows = 0;
  for (int i = 0; i < n_inputs; ++i) {
    for (int t = 0; t < inputs[i].count; ++t, ++rows) {
      const size_t b = inputs[i].bytes[t];
      std::memcpy(&x_[rows * D], &e.embedding_[b * D], D * sizeof(float));
      std::memcpy(&xz_[rows * 2 * E], &e.first_xz_[b * 2 * E], 2 * E * sizeof(float));
    }
  }
  if (rows == 0) return 0;

  for (uint32_t l = 0; l < c.n_layers; ++l) {
    const CpuEngine::Layer& L = e.layers_[l];
    if (l > 0) {  // layer 0: looked up above
      k.layer_norm(x_.data(), D, rows, D, L.ln1_w.data(), L.ln1_b.data(), u_.data(), D);
      k.linear(L.in_proj, u_.data(), D, rows, xz_.data(), 2 * E, Epilogue::kStore);
    }
    // Convolution over time: sequential within a lane, lanes independent.
    size_t r = 0;
    for (int i = 0; i < n_inputs; ++i) {
      float* window = &conv_state_[StateSlot(inputs[i].lane, l) * conv_stride_];
      for (int t = 0; t < inputs[i].count; ++t, ++r)
        k.conv_silu(&xz_[r * 2 * E], window, L.conv_w.data(), L.conv_b.data(), E, dc, &c_[r * E]);
    }
    k.linear(L.x_proj, c_.data(), E, rows, dbc_.data(), ldbc, Epilogue::kStore);
    k.linear(L.dt_proj, dbc_.data(), ldbc, rows, delta_.data(), E, Epilogue::kSoftplus);
    r = 0;
    for (int i = 0; i < n_inputs; ++i) {
      float* h = &ssm_state_[StateSlot(inputs[i].lane, l) * ssm_stride_];
      for (int t = 0; t < inputs[i].count; ++t, ++r) {
        const float* bc = &dbc_[r * ldbc + R];
        k.scan(&delta_[r * E], &c_[r * E], &xz_[r * 2 * E + E], bc, bc + S, L.A.data(), L.A_min,
               L.D_skip.data(), E, S, h, &y_[r * E]);
      }
    }
    k.linear(L.out_proj, y_.data(), E, rows, m_.data(), D, Epilogue::kStore);
    k.layer_norm(m_.data(), D, rows, D, L.ln2_w.data(), L.ln2_b.data(), u_.data(), D);
    k.linear(L.ff0, u_.data(), D, rows, f_.data(), 4 * D, Epilogue::kGelu);
    k.linear(L.ff2, f_.data(), 4 * D, rows, x_.data(), D, Epilogue::kAdd);  // residual
  }
  k.linear(e.head0_, x_.data(), D, rows, u_.data(), D, Epilogue::kRelu);
  k.linear(e.head2_, u_.data(), D, rows, logits_buf_.data(), 256, Epilogue::kStore);
  return rows;
}

void CpuSession::Quantize(size_t rows, uint32_t* tables) {
  IeeeFloatScope ieee;
  const KernelSet& k = *engine_->kernels_;
  for (size_t r = 0; r < rows; ++r) k.quantize(&logits_buf_[r * 256], tables + r * kFreqTableStride);
}

}  // namespace boa::engine
