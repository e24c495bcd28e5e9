// Lays out a model's weights for the CUDA kernels (see model_image.h).
#include "common/engine/cuda/model_image.h"

#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/kernels.h"

namespace boa::engine::cuda {

namespace {

// A DeviceModel with the sizes of `c` and no tensors yet.
DeviceModel SizesOf(const ModelConfig& c) {
  DeviceModel m;
  m.D = static_cast<int>(c.d_model);
  m.E = static_cast<int>(c.d_inner());
  m.R = static_cast<int>(c.dt_rank);
  m.S = static_cast<int>(c.d_state);
  m.d_conv = static_cast<int>(c.d_conv);
  return m;
}

}  // namespace

size_t ModelImage::Take(size_t count) {
  const size_t at = floats_.size();
  floats_.resize(at + (count + 63) / 64 * 64, 0.0f);  // 256-byte aligned tensors
  return at;
}

size_t ModelImage::Put(const std::vector<float>& values) {
  const size_t at = Take(values.size());
  std::copy(values.begin(), values.end(), floats_.begin() + static_cast<std::ptrdiff_t>(at));
  return at;
}

ModelImage::LinearAt ModelImage::PutLinear(const float* weight, const float* bias_or_null, int out, int in) {
  LinearAt a;
  a.in = in;
  a.out = out;
  a.ldw = CeilDiv(out, LinearKernel::kCols) * LinearKernel::kCols;
  a.w = Take(static_cast<size_t>(in) * static_cast<size_t>(a.ldw));
  a.bias = Take(static_cast<size_t>(a.ldw));
  for (int n = 0; n < out; ++n) {
    for (int k = 0; k < in; ++k)
      floats_[a.w + static_cast<size_t>(k) * a.ldw + n] = weight[static_cast<size_t>(n) * in + k];
    if (bias_or_null) floats_[a.bias + n] = bias_or_null[n];
  }
  return a;
}

Result<ModelImage> ModelImage::Build(const ModelWeights& w) {
  BOA_RETURN_IF_ERROR(w.config.Validate());
  ModelImage img;
  img.config_ = w.config;
  const ModelConfig& c = w.config;
  const int D = static_cast<int>(c.d_model), E = static_cast<int>(c.d_inner());
  const int R = static_cast<int>(c.dt_rank), S = static_cast<int>(c.d_state);
  auto get = [&w](const std::string& name) -> const Tensor& { return w.Get(name); };
  img.embedding_ = img.Put(get("embedding.weight").data);
  img.first_xz_ = img.Take(static_cast<size_t>(256) * 2 * E);
  img.first_ln_ = img.Take(static_cast<size_t>(256) * D);
  for (uint32_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    LayerAt L;
    L.ln1_w = img.Put(get(p + "ln1.weight").data);
    L.ln1_b = img.Put(get(p + "ln1.bias").data);
    L.ln2_w = img.Put(get(p + "ln2.weight").data);
    L.ln2_b = img.Put(get(p + "ln2.bias").data);
    L.in_proj = img.PutLinear(get(p + "mamba.in_proj.weight").data.data(), nullptr, 2 * E, D);
    L.x_proj = img.PutLinear(get(p + "mamba.x_proj.weight").data.data(), nullptr, R + 2 * S, E);
    L.dt_proj = img.PutLinear(get(p + "mamba.dt_proj.weight").data.data(), get(p + "mamba.dt_proj.bias").data.data(),
                              E, R);
    L.out_proj = img.PutLinear(get(p + "mamba.out_proj.weight").data.data(), nullptr, D, E);
    L.ff0 = img.PutLinear(get(p + "ff.0.weight").data.data(), get(p + "ff.0.bias").data.data(), 4 * D, D);
    L.ff2 = img.PutLinear(get(p + "ff.2.weight").data.data(), get(p + "ff.2.bias").data.data(), D, 4 * D);
    L.conv_w = img.Take(static_cast<size_t>(c.d_conv) * E);
    ConvTapsByTime(get(p + "mamba.conv1d.weight").data.data(), E, static_cast<int>(c.d_conv), &img.floats_[L.conv_w]);
    L.conv_b = img.Put(get(p + "mamba.conv1d.bias").data);
    L.A = img.Take(StateSize(E, S));
    ScanDecayExponents(get(p + "mamba.A_log").data.data(), E, S, &img.floats_[L.A]);
    L.D_skip = img.Put(get(p + "mamba.D").data);
    img.layers_.push_back(L);
  }
  img.head0_ = img.PutLinear(get("head.0.weight").data.data(), get("head.0.bias").data.data(), D, D);
  img.head2_ = img.PutLinear(get("head.2.weight").data.data(), get("head.2.bias").data.data(), 256, D);
  return img;
}

DeviceModel ModelImage::Bind(float* base) const {
  auto linear = [base](const LinearAt& a) { return LinearWeights{base + a.w, base + a.bias, a.in, a.out, a.ldw}; };
  DeviceModel m = SizesOf(config_);
  m.embedding = base + embedding_;
  m.first_xz = base + first_xz_;
  m.first_ln = base + first_ln_;
  for (const LayerAt& L : layers_) {
    m.layers.push_back(DeviceLayer{base + L.ln1_w, base + L.ln1_b, base + L.ln2_w, base + L.ln2_b, base + L.conv_w,
                                   base + L.conv_b, base + L.A, base + L.D_skip, linear(L.in_proj),
                                   linear(L.x_proj), linear(L.dt_proj), linear(L.out_proj), linear(L.ff0),
                                   linear(L.ff2)});
  }
  m.head0 = linear(head0_);
  m.head2 = linear(head2_);
  return m;
}

// SessionLayout reads only the model's sizes, never its pointers.
uint64_t SessionBytes(const ModelConfig& c, int lanes, int max_rows) {
  DeviceModel shape = SizesOf(c);
  shape.layers.resize(c.n_layers);
  return SessionLayout(shape, lanes, max_rows).total_bytes;
}

}  // namespace boa::engine::cuda
