// Gelu: forward and backward through block_kernels.h, split across threads by elements.
#include "common/train/gelu.h"

#include <ATen/Parallel.h>

#include <type_traits>

#include "common/train/block_kernels.h"
#include "common/train/scan_kernels.h"

namespace boa::train {

namespace {

using torch::Tensor;
namespace k = kernels;

constexpr int64_t kGrain = 1 << 14;  // elements; a multiple of 8

// The AVX2 kernels take whole vectors of floats; the portable templates the rest.
template <typename T>
void Forward(const T* x, T* y, int64_t n) {
  int64_t n8 = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (k::Avx2Available()) k::GeluForwardAvx2(x, y, n8 = n / 8 * 8);
  }
  k::GeluForward<T>(x + n8, y + n8, n - n8);
}
template <typename T>
void Backward(const T* x, const T* g, T* dx, int64_t n) {
  int64_t n8 = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (k::Avx2Available()) k::GeluBackwardAvx2(x, g, dx, n8 = n / 8 * 8);
  }
  k::GeluBackward<T>(x + n8, g + n8, dx + n8, n - n8);
}

class GeluFunction : public torch::autograd::Function<GeluFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor x) {
    x = x.contiguous();
    Tensor y = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gelu_forward", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      scalar_t* py = y.data_ptr<scalar_t>();
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) { Forward(px + b, py + b, e - b); });
    });
    ctx->save_for_backward({x});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Tensor x = ctx->get_saved_variables()[0];
    const Tensor g = grads[0].contiguous();
    Tensor dx = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gelu_backward", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      const scalar_t* pg = g.data_ptr<scalar_t>();
      scalar_t* pd = dx.data_ptr<scalar_t>();
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) { Backward(px + b, pg + b, pd + b, e - b); });
    });
    return {dx};
  }
};

}  // namespace

Tensor Gelu(const Tensor& x) {
  if (x.scalar_type() != torch::kFloat32 && x.scalar_type() != torch::kFloat64) return torch::gelu(x);
  return GeluFunction::apply(x);
}

}  // namespace boa::train
