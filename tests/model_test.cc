// Model files: round trips (f32, f16), the id is the file's SHA-256, initialisation is
// deterministic, and every kind of damage is refused with a clear message.
#include "common/model/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/util/bytes.h"
#include "common/util/hash.h"

namespace boa {
namespace {

TEST(ModelConfig, ParameterCountMatchesThePaper) {
  EXPECT_EQ(ModelConfig::Default(256, 1).ParameterCount(), 1161472u);
  EXPECT_EQ(ModelConfig::Default(256, 8).ParameterCount(), 7911936u);
  EXPECT_EQ(ModelConfig::Default(256, 1).dt_rank, 16u);
  EXPECT_EQ(ModelConfig::Default(100, 1).dt_rank, 7u);
}

TEST(ModelConfig, ValidateNamesTheField) {
  ModelConfig c = ModelConfig::Default(64, 2);
  c.d_state = 0;
  Status s = c.Validate();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("d_state"), std::string::npos) << s.message();
}

TEST(ModelFile, RoundTripF32) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(32, 2), 7);
  std::vector<uint8_t> bytes = SerializeModel(w, WeightType::kF32, "hello=1\n");
  auto m = ParseModelFile(bytes);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->weights.config, w.config);
  EXPECT_EQ(m->metadata, "hello=1\n");
  EXPECT_EQ(m->id, Sha256(bytes.data(), bytes.size()));
  ASSERT_EQ(m->weights.tensors.size(), w.tensors.size());
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    EXPECT_EQ(m->weights.tensors[i].name, w.tensors[i].name);
    EXPECT_EQ(m->weights.tensors[i].data, w.tensors[i].data) << w.tensors[i].name;
  }
}

TEST(ModelFile, RoundTripF16HalvesTheSizeAndRoundsToNearest) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(64, 1), 3);
  std::vector<uint8_t> f32 = SerializeModel(w, WeightType::kF32, "");
  std::vector<uint8_t> f16 = SerializeModel(w, WeightType::kF16, "");
  EXPECT_LT(f16.size(), f32.size() * 0.55);
  auto m = ParseModelFile(f16);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->stored_type, WeightType::kF16);
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    for (size_t j = 0; j < w.tensors[i].data.size(); ++j) {
      float a = w.tensors[i].data[j], b = m->weights.tensors[i].data[j];
      ASSERT_LE(std::fabs(a - b), std::fabs(a) * 0x1p-11f + 0x1p-24f) << w.tensors[i].name;
      ASSERT_EQ(HalfToFloat(FloatToHalf(b)), b);  // widened halves are exact
    }
  }
}

TEST(ModelFile, HalfConversionEdgeCases) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(FloatToHalf(0x1p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(1.0f + 0x1p-11f), 0x3c00);  // tie to even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(HalfToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(HalfToFloat(0x03ff), 0x3ffp-24f);
  for (uint32_t h = 0; h < 0x7c00; ++h) ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h);
}

TEST(ModelFile, InitIsDeterministicAndSeeded) {
  ModelConfig c = ModelConfig::Default(16, 1);
  auto a = SerializeModel(InitRandomModel(c, 1), WeightType::kF32, "");
  auto b = SerializeModel(InitRandomModel(c, 1), WeightType::kF32, "");
  auto d = SerializeModel(InitRandomModel(c, 2), WeightType::kF32, "");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
  // Pinned: the initialisation (and so every golden stream) is identical on every machine.
  Sha256Digest id = Sha256(a.data(), a.size());
  EXPECT_EQ(HexString(id.data(), 8), "fa094b1241ad96da");
}

class ModelDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = SerializeModel(InitRandomModel(ModelConfig::Default(8, 1), 1), WeightType::kF32, "x");
  }
  // Re-seals a modified image with a valid checksum, so the deeper checks are reached.
  static std::vector<uint8_t> Reseal(std::vector<uint8_t> v) {
    uint64_t sum = Xxh3(v.data(), v.size() - 8);
    for (int i = 0; i < 8; ++i) v[v.size() - 8 + i] = static_cast<uint8_t>(sum >> (8 * i));
    return v;
  }
  static std::string Error(const std::vector<uint8_t>& v) {
    auto m = ParseModelFile(v);
    EXPECT_FALSE(m.ok());
    return m.ok() ? "" : m.status().message();
  }
  std::vector<uint8_t> good_;
};

TEST_F(ModelDamage, EveryTruncationIsRefused) {
  for (size_t n = 0; n < good_.size(); n += (n < 200 ? 1 : 97)) {
    std::vector<uint8_t> v(good_.begin(), good_.begin() + n);
    EXPECT_FALSE(ParseModelFile(v).ok()) << n;
  }
}

TEST_F(ModelDamage, BitFlipsAreRefused) {
  for (size_t i = 0; i < good_.size(); i += 13) {
    std::vector<uint8_t> v = good_;
    v[i] ^= 1 << (i % 8);
    EXPECT_FALSE(ParseModelFile(v).ok()) << i;
  }
}

TEST_F(ModelDamage, ClearMessages) {
  std::vector<uint8_t> v = good_;
  v[0] = 'X';
  EXPECT_NE(Error(v).find("bad magic"), std::string::npos);
  v = good_;
  v[8] = 9;
  EXPECT_NE(Error(v).find("version 9"), std::string::npos);
  v = good_;
  v[100] ^= 1;
  EXPECT_NE(Error(v).find("checksum"), std::string::npos);
  v = good_;
  v[16] = 0;  // d_model 0
  EXPECT_NE(Error(Reseal(v)).find("d_model"), std::string::npos);
  v = good_;
  PutU32LE(&v[16 + 4], 1000);  // 1000 layers
  EXPECT_NE(Error(Reseal(v)).find("n_layers"), std::string::npos);
}

// The mixing flags (byte 45: after seven u32 fields of the header at 16 and the weight
// type) survive a round trip; a network-only file stays version 1; the derived-field models
// without the match model, and unknown bits, are refused by name.
TEST_F(ModelDamage, MixingFlagsRoundTripAndUnknownOnesAreRefused) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(16, 1), 3);
  for (auto [match, derived] : {std::pair{false, false}, std::pair{true, false}, std::pair{true, true}}) {
    w.config.match_model = match;
    w.config.derived_fields = derived;
    const std::vector<uint8_t> bytes = SerializeModel(w, WeightType::kF32, "");
    EXPECT_EQ(bytes[8], match ? 2 : 1);  // the version, little-endian
    EXPECT_EQ(bytes[45], (match ? 1 : 0) | (derived ? 2 : 0));
    auto m = ParseModelFile(bytes);
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->weights.config.match_model, match);
    EXPECT_EQ(m->weights.config.derived_fields, derived);
  }
  std::vector<uint8_t> v = SerializeModel(w, WeightType::kF32, "");
  v[45] = 2;
  EXPECT_NE(Error(Reseal(v)).find("the derived-field models (bit 1) mix only after the match model (bit 0)"), std::string::npos);
  v[45] = 7;
  EXPECT_NE(Error(Reseal(v)).find("unknown flags 7"), std::string::npos);
}

TEST_F(ModelDamage, NonFiniteWeightsAreRefused) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(8, 1), 1);
  w.Find("head.2.bias")->data[3] = NAN;
  std::string msg = Error(SerializeModel(w, WeightType::kF32, ""));
  EXPECT_NE(msg.find("head.2.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
}

TEST_F(ModelDamage, ShapeMismatchNamesTheTensor) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(8, 1), 1);
  w.config.dt_rank = 2;  // tensors were made for dt_rank 1
  std::string msg = Error(SerializeModel(w, WeightType::kF32, ""));
  EXPECT_NE(msg.find("x_proj"), std::string::npos) << msg;
}

}  // namespace
}  // namespace boa
