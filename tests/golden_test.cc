// Pins the exact bytes of a .boa stream made from a seeded model and generated input. Any
// change to the engine's arithmetic, the quantizer, the coder or the container changes this
// hash; such a change must be deliberate and bump the format version (docs/format.md).
#include <gtest/gtest.h>

#include "common/util/hash.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

TEST(Golden, StreamBytesArePinned) {
  LoadedModel model = testing::MakeModel(32, 2, 2026, 4.0f);
  EXPECT_EQ(model.IdHex(), "1b48fd5f8d299eb1f13e75bc47f90501f1ff30b54f96a6df61ef2ecc19df6322");
  // Data the model predicts (drawn from it), so chunks are model-coded, plus a random tail
  // that is stored: both methods are pinned.
  std::vector<uint8_t> in = testing::SampleFromModel(model, 20000, 1);
  std::vector<uint8_t> tail = testing::RandomBytes(5000, 2);
  in.insert(in.end(), tail.begin(), tail.end());
  CodecOptions o;
  o.chunk_length = 4096;
  MemorySource src(in);
  MemorySink sink;
  CodecStats stats;
  ASSERT_TRUE(Compress(model, &src, &sink, o, &stats).ok());
  const std::vector<uint8_t>& packed = sink.data;
  EXPECT_EQ(stats.chunks, 7u);
  EXPECT_EQ(stats.stored_chunks, 2u) << "the random tail is stored, the rest model-coded";
  Sha256Digest h = Sha256(packed.data(), packed.size());
  EXPECT_EQ(HexString(h.data(), h.size()), "40f4d2509dbcb61393e4d5ab0fa82b3543c95fd4a8485cf9351549c45af930ca") << "size " << packed.size();
  std::vector<uint8_t> back;
  ASSERT_TRUE(testing::DecompressBytes(model, packed, &back, o).ok());
  EXPECT_EQ(back, in);
}

}  // namespace
}  // namespace boa
