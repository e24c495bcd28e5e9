// Sampling from a model (common/engine/sample.h): deterministic, lanes are independent
// sequences, and lane 0 is the one-lane sequence.
#include "common/engine/sample.h"

#include <gtest/gtest.h>

#include "common/model/model.h"

namespace boa::engine {
namespace {

std::shared_ptr<const Engine> Model(uint64_t seed) {
  return Engine::Create(InitRandomModel(ModelConfig::Default(16, 1), seed), Backend::kAuto).value();
}

TEST(SampleBytes, DeterministicAndLaneZeroIsTheOneLaneSequence) {
  auto e = Model(1);
  const std::vector<uint8_t> one = SampleBytes(e, 300, 9);
  ASSERT_EQ(one.size(), 300u);
  EXPECT_EQ(one.front(), 9);
  EXPECT_EQ(SampleBytes(e, 300, 9), one);
  EXPECT_NE(SampleBytes(e, 300, 10), one);
  EXPECT_NE(SampleBytes(Model(2), 300, 9), one) << "another model, other bytes";
  // Four lanes of 250 bytes: lane l is the one-lane sequence of seed 9 + l.
  const std::vector<uint8_t> four = SampleBytes(e, 1000, 9, 4);
  ASSERT_EQ(four.size(), 1000u);
  EXPECT_EQ(std::vector<uint8_t>(four.begin(), four.begin() + 250), std::vector<uint8_t>(one.begin(), one.begin() + 250));
  EXPECT_EQ(std::vector<uint8_t>(four.begin() + 750, four.end()), SampleBytes(e, 250, 12));
  // Lengths that do not divide: cut to n.
  EXPECT_EQ(SampleBytes(e, 7, 9, 4).size(), 7u);
  EXPECT_TRUE(SampleBytes(e, 0, 9, 4).empty());
  EXPECT_EQ(SampleBytes(e, 1, 9), std::vector<uint8_t>{9});
}

}  // namespace
}  // namespace boa::engine
