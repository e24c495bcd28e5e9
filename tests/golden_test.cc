// Pins the exact bytes of a .boa stream made from a seeded model and generated input. Any
// change to the engine's arithmetic, the quantizer, the coder or the container changes this
// hash; such a change must be deliberate and bump the format version (docs/format.md).
#include <gtest/gtest.h>

#include "common/util/hash.h"
#include "tests/test_util.h"

namespace boa {
namespace {

TEST(Golden, StreamBytesArePinned) {
  LoadedModel model = testing::MakeModel(32, 2, 2026, 4.0f);
  EXPECT_EQ(model.IdHex(), "1b48fd5f8d299eb1f13e75bc47f90501f1ff30b54f96a6df61ef2ecc19df6322");
  std::vector<uint8_t> in = testing::FloatTable(20000, 1);
  CodecOptions o;
  o.chunk_length = 4096;
  std::vector<uint8_t> packed;
  ASSERT_TRUE(testing::CompressBytes(model, in, &packed, o).ok());
  Sha256Digest h = Sha256(packed.data(), packed.size());
  EXPECT_EQ(HexString(h.data(), h.size()), "b6e59476414e746c8399ee99d4aecb7be5d6a9a732f0405d5602e4cba7336977") << "size " << packed.size();
  std::vector<uint8_t> back;
  ASSERT_TRUE(testing::DecompressBytes(model, packed, &back, o).ok());
  EXPECT_EQ(back, in);
}

}  // namespace
}  // namespace boa
