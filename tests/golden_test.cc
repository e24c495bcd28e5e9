// Pins the exact bytes of a .boa stream made from a seeded model and generated input. Any
// change to the engine's arithmetic, the quantizer, the coder or the container changes this
// hash; such a change must be deliberate and bump the format version (docs/format.md).
// Version 3 only added LZMA2 chunks, so the same stream with the version set back to 2 (and
// its checksums redone) is byte for byte what version 2 wrote, and still decodes.
#include <gtest/gtest.h>

#include <cstring>

#include "common/format/container.h"
#include "common/util/hash.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

// A version 3 stream without LZMA2 chunks as version 2 wrote it.
std::vector<uint8_t> AsVersion2(std::vector<uint8_t> v3) {
  v3[8] = 2;
  const uint32_t header = static_cast<uint32_t>(Xxh3(v3.data(), 64));
  std::memcpy(&v3[64], &header, 4);
  const size_t at = v3.size() - 12;  // the container checksum covers every byte before it
  const uint64_t container = Xxh3(v3.data(), at);
  std::memcpy(&v3[at], &container, 8);
  return v3;
}

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
  EXPECT_EQ(stats.lzma2_chunks, 0u);
  Sha256Digest h = Sha256(packed.data(), packed.size());
  EXPECT_EQ(HexString(h.data(), h.size()), "afed838fa65ce43495d1e68b1e6359e343fa365ba914acc2a59a496d5e7e7faa") << "size " << packed.size();
  std::vector<uint8_t> back;
  ASSERT_TRUE(testing::DecompressBytes(model, packed, &back, o).ok());
  EXPECT_EQ(back, in);

  const std::vector<uint8_t> v2 = AsVersion2(packed);
  h = Sha256(v2.data(), v2.size());
  EXPECT_EQ(HexString(h.data(), h.size()), "40f4d2509dbcb61393e4d5ab0fa82b3543c95fd4a8485cf9351549c45af930ca")
      << "the hash version 2 pinned";
  back.clear();
  ASSERT_TRUE(testing::DecompressBytes(model, v2, &back, o).ok());
  EXPECT_EQ(back, in);
}

}  // namespace
}  // namespace boa
