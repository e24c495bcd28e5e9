// Data-parallel training steps: replicas on several threads give the gradient and loss of the
// whole batch on one, whatever the split, and Sync makes every replica equal to the primary.
#include "common/train/replicated_net.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace boa::train {
namespace {

struct StepResult {
  double loss = 0;
  std::vector<torch::Tensor> grads;
};

StepResult Step(int threads, const torch::Tensor& windows, bool bf16 = false) {
  ModelConfig c = ModelConfig::Default(32, 2);
  ReplicatedNet nets(c, threads, windows.size(0));
  EXPECT_TRUE(LoadWeights(nets.primary(), InitRandomModel(c, 7)).ok());
  nets.Sync();
  StepResult r;
  r.loss = nets.ForwardBackward(windows, bf16);
  // A second step on the same weights must discard the first step's gradients.
  r.loss = nets.ForwardBackward(windows, bf16);
  for (const torch::Tensor& p : nets.primary()->parameters()) r.grads.push_back(p.grad().clone());
  return r;
}

torch::Tensor Windows(int64_t rows, int64_t len) {
  torch::manual_seed(3);
  return torch::randint(0, 256, {rows, len + 1}, torch::kInt64);
}

TEST(ReplicatedNet, ReplicasGiveTheWholeBatchGradient) {
  for (int64_t rows : {2, 3, 5}) {
    torch::Tensor w = Windows(rows, 40);
    StepResult one = Step(1, w), many = Step(3, w);
    EXPECT_NEAR(many.loss, one.loss, 1e-6 * one.loss) << rows << " rows";
    ASSERT_EQ(one.grads.size(), many.grads.size());
    for (size_t i = 0; i < one.grads.size(); ++i) {
      double scale = std::max(1e-12, one.grads[i].abs().max().item<double>());
      EXPECT_LT((many.grads[i] - one.grads[i]).abs().max().item<double>() / scale, 1e-4)
          << "parameter " << i << ", " << rows << " rows";
    }
  }
}

TEST(ReplicatedNet, NeverMoreReplicasThanRows) {
  ModelConfig c = ModelConfig::Default(32, 1);
  EXPECT_EQ(ReplicatedNet(c, 4, 2).replicas(), 2);
  EXPECT_EQ(ReplicatedNet(c, 2, 8).replicas(), 2);
  EXPECT_EQ(ReplicatedNet(c, 1, 8).replicas(), 1);
}

TEST(ReplicatedNet, RepeatedStepsAreBitIdentical) {
  torch::Tensor w = Windows(4, 64);
  StepResult a = Step(2, w), b = Step(2, w);
  EXPECT_EQ(a.loss, b.loss);
  for (size_t i = 0; i < a.grads.size(); ++i) EXPECT_TRUE(torch::equal(a.grads[i], b.grads[i])) << i;
}

TEST(ReplicatedNet, SyncCopiesThePrimaryToEveryReplica) {
  ModelConfig c = ModelConfig::Default(32, 1);
  ReplicatedNet nets(c, 2, 4);
  ASSERT_TRUE(LoadWeights(nets.primary(), InitRandomModel(c, 11)).ok());
  nets.Sync();
  // After Sync both replicas compute the same per-row loss: one row each, the same row twice.
  torch::Tensor row = Windows(1, 32);
  torch::Tensor twice = torch::cat({row, row});
  ReplicatedNet single(c, 1, 1);
  ASSERT_TRUE(LoadWeights(single.primary(), InitRandomModel(c, 11)).ok());
  EXPECT_NEAR(nets.ForwardBackward(twice, false), single.ForwardBackward(row, false), 1e-6);
}

TEST(ReplicatedNet, AFailingReplicaThrowsOnTheCallingThreadAndTheNextStepWorks) {
  ModelConfig c = ModelConfig::Default(32, 1);
  ReplicatedNet nets(c, 2, 4);
  // Float windows: the embedding refuses them in every replica thread.
  EXPECT_THROW(nets.ForwardBackward(torch::zeros({4, 9}), false), c10::Error);
  EXPECT_TRUE(std::isfinite(nets.ForwardBackward(Windows(4, 8), false)));
}

TEST(ReplicatedNet, EvaluationSharesChunksAndMatchesOneNetwork) {
  ModelConfig c = ModelConfig::Default(32, 1);
  ReplicatedNet nets(c, 2, 4), single(c, 1, 1);
  ASSERT_TRUE(LoadWeights(nets.primary(), InitRandomModel(c, 13)).ok());
  ASSERT_TRUE(LoadWeights(single.primary(), InitRandomModel(c, 13)).ok());
  nets.Sync();
  // Five chunks and a one-byte tail (nothing to predict in it).
  std::vector<uint8_t> data(5 * 300 + 1);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + (i >> 5));
  const double one = CrossEntropyBitsPerByte(single.primary(), data, 300);
  EXPECT_NEAR(nets.CrossEntropyBitsPerByte(data, 300), one, 1e-6 * one);
  EXPECT_NEAR(single.CrossEntropyBitsPerByte(data, 300), one, 1e-12 * one);
  EXPECT_EQ(nets.CrossEntropyBitsPerByte({}, 300), 0.0);
}

TEST(ReplicatedNet, Bf16StepsRun) {
  torch::Tensor w = Windows(2, 32);
  StepResult r = Step(2, w, true);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_GT(r.loss, 4.0);  // about log(256) = 5.5 nats for a random model
}

}  // namespace
}  // namespace boa::train
