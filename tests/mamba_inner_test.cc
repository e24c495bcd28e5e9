// The fused Mamba mixer and GELU: output and every gradient against the LibTorch-operation
// composition in double precision, and the float (AVX2) kernels against that double reference.
#include "common/train/gelu.h"
#include "common/train/mamba_inner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/train_test_util.h"

namespace boa::train {
namespace {

struct Case {
  int64_t B, L, E, S, R, K;
};

std::vector<torch::Tensor> Inputs(const Case& c, torch::Dtype dtype) {
  torch::manual_seed(5);
  auto o = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<torch::Tensor> v = {
      torch::randn({c.B, c.L, 2 * c.E}, o),
      torch::randn({c.E, 1, c.K}, o) * 0.5,
      torch::randn({c.E}, o) * 0.1,
      torch::randn({c.R + 2 * c.S, c.E}, o) * 0.3,
      torch::randn({c.E, c.R}, o) * 0.5,
      torch::randn({c.E}, o) * 0.5 - 1.0,
      torch::log(torch::arange(1, c.S + 1, o)).repeat({c.E, 1}) + torch::randn({c.E, c.S}, o) * 0.1,
      torch::randn({c.E}, o),
  };
  for (auto& t : v) t = t.to(dtype).detach().requires_grad_(true);
  return v;
}

// Output, then the gradients of sum(out * probe) for xz and every weight.
std::vector<torch::Tensor> OutputAndGradients(const std::vector<torch::Tensor>& in, int64_t R, bool fused) {
  MambaInnerWeights w{in[1], in[2], in[3], in[4], in[5], in[6], in[7]};
  torch::Tensor out = fused ? MambaInner(in[0], w, R) : MambaInnerReference(in[0], w, R);
  torch::manual_seed(9);
  torch::Tensor probe = torch::randn(out.sizes(), torch::kDouble).to(out.scalar_type());
  auto grads = torch::autograd::grad({(out * probe).sum()}, in);
  std::vector<torch::Tensor> r = {out.detach().to(torch::kDouble)};
  for (auto& g : grads) r.push_back(g.to(torch::kDouble));
  return r;
}

const char* kNames[] = {"out", "xz", "conv.w", "conv.b", "x_proj.w", "dt_proj.w", "dt_proj.b", "A_log", "D"};

TEST(MambaInner, GradientsMatchTheOperationCompositionInDouble) {
  // L crosses the scan's 64-step checkpoint segments; E = 12 is not a multiple of 8.
  for (Case c : {Case{2, 70, 12, 4, 1, 4}, Case{1, 9, 16, 16, 2, 4}, Case{3, 5, 8, 3, 1, 2}}) {
    auto in = Inputs(c, torch::kDouble);
    auto fused = OutputAndGradients(in, c.R, true), ref = OutputAndGradients(in, c.R, false);
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_LT(MaxRelErr(fused[i], ref[i]), 1e-10) << kNames[i] << " L=" << c.L << " E=" << c.E;
  }
}

TEST(MambaInner, FloatKernelsMatchTheDoubleReference) {
  Case c{2, 100, 32, 16, 2, 4};  // E a multiple of 8: the AVX2 path where the CPU has it
  auto ref = OutputAndGradients(Inputs(c, torch::kDouble), c.R, false);
  auto fused = OutputAndGradients(Inputs(c, torch::kFloat32), c.R, true);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_LT(MaxRelErr(fused[i], ref[i]), 2e-4) << kNames[i];
}

TEST(Gelu, MatchesTorchGeluAndItsGradient) {
  torch::manual_seed(2);
  // Both signs, the tails beyond |x| = 4 sqrt 2 where the kernel's tail term is zero, and a
  // length that is not a multiple of 8.
  torch::Tensor x = torch::cat({torch::randn({1001}, torch::kDouble) * 3, torch::tensor({-7.0, 7.0, 0.0, -0.0})});
  torch::Tensor probe = torch::randn(x.sizes(), torch::kDouble);
  for (auto dtype : {torch::kDouble, torch::kFloat32}) {
    torch::Tensor a = x.to(dtype).requires_grad_(true), b = x.clone().requires_grad_(true);
    torch::Tensor ya = Gelu(a), yb = torch::gelu(b);
    auto ga = torch::autograd::grad({(ya * probe.to(dtype)).sum()}, {a})[0];
    auto gb = torch::autograd::grad({(yb * probe).sum()}, {b})[0];
    const double tol = dtype == torch::kDouble ? 1e-12 : 1e-6;
    EXPECT_LT(MaxRelErr(ya.detach().to(torch::kDouble), yb.detach()), tol) << dtype;
    EXPECT_LT(MaxRelErr(ga.to(torch::kDouble), gb), tol) << dtype;
  }
}

}  // namespace
}  // namespace boa::train
