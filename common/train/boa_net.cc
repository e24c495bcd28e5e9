// LibTorch modules of the BOA network and weight conversion.
#include "common/train/boa_net.h"

#include <cmath>

#include <ATen/autocast_mode.h>

#include "common/train/gelu.h"
#include "common/train/linear.h"
#include "common/train/mamba_inner.h"

namespace boa::train {

namespace nn = torch::nn;

MambaImpl::MambaImpl(const ModelConfig& c) : config(c) {
  const int64_t dm = c.d_model, E = c.d_inner(), R = c.dt_rank, S = c.d_state;
  in_proj = register_module("in_proj", nn::Linear(nn::LinearOptions(dm, 2 * E).bias(false)));
  conv1d = register_module("conv1d", nn::Conv1d(nn::Conv1dOptions(E, E, c.d_conv).groups(E).padding(c.d_conv - 1)));
  x_proj = register_module("x_proj", nn::Linear(nn::LinearOptions(E, R + 2 * S).bias(false)));
  dt_proj = register_module("dt_proj", nn::Linear(nn::LinearOptions(R, E)));
  A_log = register_parameter("A_log", torch::zeros({E, S}));
  D = register_parameter("D", torch::ones({E}));
  out_proj = register_module("out_proj", nn::Linear(nn::LinearOptions(E, dm).bias(false)));
}

torch::Tensor MambaImpl::forward(const torch::Tensor& x) {
  const MambaInnerWeights w{conv1d->weight, conv1d->bias, x_proj->weight, dt_proj->weight,
                            dt_proj->bias,  A_log,        D};
  torch::Tensor xz = Linear(x, in_proj->weight, torch::Tensor());
  // Under bf16 autocast the products run in bfloat16 operation by operation; the fused
  // function computes in the input's precision.
  torch::Tensor y = at::autocast::is_cpu_enabled() ? MambaInnerReference(xz, w, config.dt_rank)
                                                   : MambaInner(xz, w, config.dt_rank);
  return Linear(y, out_proj->weight, torch::Tensor());
}

BlockImpl::BlockImpl(const ModelConfig& c) {
  const int64_t D = c.d_model;
  ln1 = register_module("ln1", nn::LayerNorm(nn::LayerNormOptions({D}).eps(1e-5)));
  mamba = register_module("mamba", Mamba(c));
  ln2 = register_module("ln2", nn::LayerNorm(nn::LayerNormOptions({D}).eps(1e-5)));
  // ff.1 is the exact GELU of nn::GELU() on the fused kernels (gelu.h).
  ff = register_module("ff", nn::Sequential(nn::Linear(D, 4 * D), nn::Functional([](torch::Tensor x) { return Gelu(x); }),
                                            nn::Linear(4 * D, D)));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  // LayerNorm in float: under bf16 autocast the Mamba output arrives in bfloat16, which
  // LibTorch 1.13's CPU layer norm cannot mix with float weights (a no-op in fp32).
  const auto* f0 = ff[0]->as<nn::Linear>();
  const auto* f2 = ff[2]->as<nn::Linear>();
  torch::Tensor u = ln2(mamba(ln1(x)).to(torch::kFloat32));
  return x + Linear(Gelu(Linear(u, f0->weight, f0->bias)), f2->weight, f2->bias);
}

BoaNetImpl::BoaNetImpl(const ModelConfig& c) : config(c) {
  const int64_t D = c.d_model;
  embedding = register_module("embedding", nn::Embedding(256, D));
  blocks = register_module("blocks", nn::ModuleList());
  for (uint32_t i = 0; i < c.n_layers; ++i) blocks->push_back(Block(c));
  head = register_module("head", nn::Sequential(nn::Linear(D, D), nn::ReLU(), nn::Linear(D, 256)));
}

torch::Tensor BoaNetImpl::forward(const torch::Tensor& bytes) {
  torch::Tensor x = embedding(bytes);
  for (const auto& block : *blocks) x = block->as<Block>()->forward(x);
  const auto* h0 = head[0]->as<nn::Linear>();
  const auto* h2 = head[2]->as<nn::Linear>();
  return Linear(torch::relu(Linear(x, h0->weight, h0->bias)), h2->weight, h2->bias);
}

Status LoadWeights(BoaNet& net, const ModelWeights& weights) {
  if (!(net->config == weights.config)) return Status::InvalidArgument("architecture mismatch");
  torch::NoGradGuard no_grad;
  auto params = net->named_parameters(true);
  if (params.size() != weights.tensors.size()) {
    return Status::Internal("module has " + std::to_string(params.size()) + " parameters, the model " +
                            std::to_string(weights.tensors.size()));
  }
  for (const Tensor& t : weights.tensors) {
    torch::Tensor* p = params.find(t.name);
    if (!p) return Status::Internal("module has no parameter '" + t.name + "'");
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    if (p->sizes() != torch::IntArrayRef(shape)) return Status::Internal("shape mismatch for '" + t.name + "'");
    torch::Tensor src = torch::from_blob(const_cast<float*>(t.data.data()), shape, torch::kFloat32);
    p->copy_(src);
  }
  return Status::Ok();
}

ModelWeights ExportWeights(BoaNet& net) {
  ModelWeights w;
  w.config = net->config;
  w.tensors = ExpectedTensorShapes(w.config);
  auto params = net->named_parameters(true);
  for (Tensor& t : w.tensors) {
    torch::Tensor p = params[t.name].detach().to(torch::kFloat32).contiguous();
    t.data.assign(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  }
  return w;
}

double ChunkCrossEntropyNats(BoaNet& net, const uint8_t* bytes, int64_t len) {
  if (len < 2) return 0;
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(bytes), {1, len}, torch::kUInt8).to(torch::kInt64);
  torch::Tensor logits = net->forward(x.narrow(1, 0, len - 1)).to(torch::kFloat64);
  torch::Tensor target = x.narrow(1, 1, len - 1).reshape({-1});
  return torch::nn::functional::cross_entropy(logits.reshape({-1, 256}), target,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
      .item<double>();
}

double CrossEntropyBitsPerByte(BoaNet& net, const std::vector<uint8_t>& data, int64_t chunk_length) {
  double nats = 0;
  int64_t predicted = 0;
  for (size_t start = 0; start < data.size(); start += chunk_length) {
    int64_t len = std::min<int64_t>(chunk_length, static_cast<int64_t>(data.size() - start));
    if (len < 2) continue;
    nats += ChunkCrossEntropyNats(net, data.data() + start, len);
    predicted += len - 1;
  }
  return predicted ? nats / predicted / std::log(2.0) : 0;
}

}  // namespace boa::train
