// Training's matrix products on the engine's micro-kernel: output and gradients against
// torch::linear, with and without bias, for row counts that are not whole 6-row tiles and
// column counts that are not whole 16-column panels.
#include "common/train/linear.h"

#include <gtest/gtest.h>

#include "tests/train_test_util.h"

namespace boa::train {
namespace {

TEST(Linear, MatchesTorchLinearAndItsGradients) {
  torch::manual_seed(4);
  struct Shape {
    int64_t B, L, K, N;
  };
  for (Shape s : {Shape{2, 37, 64, 256}, Shape{1, 5, 4, 128}, Shape{3, 11, 128, 36}, Shape{1, 1, 7, 3}}) {
    for (bool with_bias : {true, false}) {
      torch::Tensor x = torch::randn({s.B, s.L, s.K}), w = torch::randn({s.N, s.K}) * 0.2, b = torch::randn({s.N});
      torch::Tensor probe = torch::randn({s.B, s.L, s.N});
      std::vector<torch::Tensor> ours = {x.clone().requires_grad_(true), w.clone().requires_grad_(true),
                                         b.clone().requires_grad_(true)};
      std::vector<torch::Tensor> ref = {x.clone().requires_grad_(true), w.clone().requires_grad_(true),
                                        b.clone().requires_grad_(true)};
      torch::Tensor y = Linear(ours[0], ours[1], with_bias ? ours[2] : torch::Tensor());
      torch::Tensor yr = with_bias ? torch::linear(ref[0], ref[1], ref[2]) : torch::linear(ref[0], ref[1]);
      ASSERT_EQ(y.sizes(), yr.sizes());
      EXPECT_LT(MaxRelErr(y, yr), 1e-5) << s.K << "x" << s.N;
      (y * probe).sum().backward();
      (yr * probe).sum().backward();
      for (int i = 0; i < (with_bias ? 3 : 2); ++i)
        EXPECT_LT(MaxRelErr(ours[i].grad(), ref[i].grad()), 1e-5) << "input " << i << ", " << s.K << "x" << s.N;
      if (!with_bias) EXPECT_FALSE(ours[2].grad().defined());
    }
  }
}

TEST(Linear, AddProductAccumulates) {
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({50, 36}), w = torch::randn({128, 36}), acc = torch::randn({50, 128});
  torch::Tensor expected = acc + torch::mm(x, w.t());
  AddProductTransposed(x, w, acc);
  EXPECT_LT(MaxRelErr(acc, expected), 1e-5);
}

TEST(Linear, DoubleAndBf16UseLibTorch) {
  torch::Tensor x = torch::randn({3, 8}, torch::kDouble), w = torch::randn({4, 8}, torch::kDouble);
  EXPECT_TRUE(torch::allclose(ProductTransposed(x, w, torch::Tensor()), torch::mm(x, w.t())));
  torch::Tensor xb = torch::randn({3, 8}).to(torch::kBFloat16), wb = torch::randn({4, 8}).to(torch::kBFloat16);
  EXPECT_EQ(ProductTransposed(xb, wb, torch::Tensor()).scalar_type(), torch::kBFloat16);
}

}  // namespace
}  // namespace boa::train
