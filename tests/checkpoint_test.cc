// PyTorch checkpoint import: OrderedDict and plain-dict state_dicts (fixtures written by
// tools/make_checkpoint_fixtures.py in torch.save's format), key mismatches listed, a
// hostile pickle refused without running anything, damaged files refused cleanly.
#include "common/model/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/util/io.h"

namespace boa {
namespace {

std::vector<uint8_t> Fixture(const std::string& name) {
  return ReadFile(std::string(BOA_TEST_DATA) + "/" + name, 1 << 20).value();
}

// The values the fixture script writes: tensor t (in canonical order), element i.
float Expected(size_t t, size_t i) { return static_cast<float>(static_cast<int>((t * 131 + i * 7) % 256) - 128) / 64.0f; }

void CheckTinyModel(const ModelWeights& w) {
  EXPECT_EQ(w.config, ModelConfig::Default(8, 1));
  for (size_t t = 0; t < w.tensors.size(); ++t)
    for (size_t i = 0; i < w.tensors[t].data.size(); ++i)
      ASSERT_EQ(w.tensors[t].data[i], Expected(t, i)) << w.tensors[t].name << "[" << i << "]";
}

TEST(CheckpointImport, OrderedDictStateDict) {
  auto w = ImportTorchCheckpoint(Fixture("tiny_ordereddict.pt"));
  ASSERT_TRUE(w.ok()) << w.status().message();
  CheckTinyModel(*w);
  // The imported weights make a valid model file.
  EXPECT_TRUE(ParseModelFile(SerializeModel(*w, WeightType::kF32, "")).ok());
}

TEST(CheckpointImport, PlainDictWithHalfStorages) {
  auto w = ImportTorchCheckpoint(Fixture("tiny_dict.pt"));
  ASSERT_TRUE(w.ok()) << w.status().message();
  CheckTinyModel(*w);
}

TEST(CheckpointImport, MissingAndUnexpectedKeysAreListed) {
  auto w = ImportTorchCheckpoint(Fixture("tiny_wrong_keys.pt"));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("missing: head.2.bias"), std::string::npos) << w.status().message();
  EXPECT_NE(w.status().message().find("unexpected: extra.weight"), std::string::npos) << w.status().message();
}

TEST(CheckpointImport, HostilePickleIsRefusedAndNothingRuns) {
  unlink("/tmp/pwned");
  auto w = ImportTorchCheckpoint(Fixture("hostile.pt"));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("'os.system'"), std::string::npos) << w.status().message();
  EXPECT_NE(access("/tmp/pwned", F_OK), 0) << "the pickle's command must not have run";
}

TEST(CheckpointImport, DamagedFilesAreRefusedCleanly) {
  std::vector<uint8_t> good = Fixture("tiny_ordereddict.pt");
  for (size_t n = 0; n < good.size(); n += 97) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    EXPECT_FALSE(ImportTorchCheckpoint(cut).ok()) << n;
  }
  for (size_t i = 0; i < good.size(); i += 37) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0xff;
    (void)ImportTorchCheckpoint(bad);  // may or may not fail; must not crash
  }
  EXPECT_FALSE(ImportTorchCheckpoint(std::vector<uint8_t>(100, 0)).ok());
}

}  // namespace
}  // namespace boa
