// ProductTransposed and the Linear autograd function.
#include "common/train/linear.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <algorithm>
#include <vector>

#include "common/engine/kernels.h"

namespace boa::train {

namespace {

using torch::Tensor;

bool OnMicroKernel(const Tensor& x, const Tensor& w) {
  static const engine::KernelSet* avx2 = engine::Avx2Kernels() && engine::CpuHasAvx2Fma() ? engine::Avx2Kernels() : nullptr;
  return avx2 && x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
         !at::autocast::is_cpu_enabled();
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  // No bias: an empty tensor (LibTorch 1.13's Function::apply refuses undefined inputs).
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor x, Tensor w, Tensor bias) {
    const bool has_bias = bias.numel() > 0;
    ctx->save_for_backward({x, w});
    ctx->saved_data["has_bias"] = has_bias;
    return ProductTransposed(x, w, has_bias ? bias : Tensor());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1];
    const int64_t K = w.size(1), N = w.size(0);
    const Tensor g = grads[0].contiguous().view({-1, N});
    Tensor dx = ProductTransposed(g, w.t().contiguous(), Tensor()).view(x.sizes());
    Tensor dw = torch::mm(g.t(), x.contiguous().view({-1, K}));
    Tensor db = ctx->saved_data["has_bias"].toBool() ? g.sum(0) : Tensor();
    return {dx, dw, db};
  }
};

// y = x w^T + bias (kStore) or y += x w^T (kAdd), y contiguous [M, N].
void RunMicroKernel(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, engine::Epilogue epilogue) {
  const int64_t K = w.size(1), N = w.size(0);
  TORCH_CHECK(x.size(-1) == K, "product: x has ", x.size(-1), " columns, the weight ", K);
  const Tensor x2 = x.contiguous().view({-1, K});
  const int64_t M = x2.size(0);
  TORCH_CHECK(y.is_contiguous() && y.numel() == M * N, "product: output of the wrong shape");
  engine::PackedLinear packed;
  const Tensor wc = w.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  packed.Pack(wc.data_ptr<float>(), bc.defined() ? bc.data_ptr<float>() : nullptr, static_cast<int>(N),
              static_cast<int>(K));
  const float* px = x2.data_ptr<float>();
  float* py = y.data_ptr<float>();
  // Row blocks of whole 6-row tiles; each output is one fma chain, so the split changes nothing.
  at::parallel_for(0, (M + 5) / 6, 16, [&](int64_t t0, int64_t t1) {
    const int64_t r0 = t0 * 6, r1 = std::min(M, t1 * 6);
    engine::Avx2Kernels()->linear(packed, px + r0 * K, K, r1 - r0, py + r0 * N, N, epilogue);
  });
}

}  // namespace

Tensor ProductTransposed(const Tensor& x, const Tensor& w, const Tensor& bias) {
  if (!OnMicroKernel(x, w)) return bias.defined() ? torch::linear(x, w, bias) : torch::linear(x, w);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = w.size(0);
  Tensor y = torch::empty(shape, x.options());
  RunMicroKernel(x, w, bias, y, engine::Epilogue::kStore);
  return y;
}

void AddProductTransposed(const Tensor& x, const Tensor& w, Tensor& acc) {
  if (!OnMicroKernel(x, w) || !acc.is_contiguous() || acc.scalar_type() != torch::kFloat32) {
    acc.add_(torch::linear(x, w).view(acc.sizes()));
    return;
  }
  RunMicroKernel(x, w, Tensor(), acc, engine::Epilogue::kAdd);
}

Tensor Linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  if (!OnMicroKernel(x, w)) return bias.defined() ? torch::linear(x, w, bias) : torch::linear(x, w);
  return LinearFunction::apply(x, w, bias.defined() ? bias : torch::empty({0}, w.options()));
}

}  // namespace boa::train
