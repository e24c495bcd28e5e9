// The per-chunk state machines: however the model's rows are split into calls, an encoder
// writes the same record; a decoder reads it back byte for byte; a record that coding would
// not shrink is stored; a corrupt code is DATA_LOSS naming the chunk, never a crash.
#include "common/codec/chunk_coder.h"

#include <gtest/gtest.h>

#include <random>

namespace boa {
namespace {

// A fixed table per position, from the previous byte (a stand-in for the model: the coder
// only needs the decoder to see the tables the encoder saw).
void TableAfter(uint8_t previous, uint32_t* t) {
  std::vector<uint32_t> f(256, 1);
  f[previous] += kProbTotal / 2;                     // "the same byte again" is likely
  f[static_cast<uint8_t>(previous + 1)] += kProbTotal / 4;
  uint32_t total = 0;
  for (uint32_t x : f) total += x;
  f[0] += kProbTotal - total;
  t[0] = 0;
  for (int i = 0; i < 256; ++i) t[i + 1] = t[i] + f[i];
}

// The tables of the rows `in` asks for, kFreqTableStride apart.
std::vector<uint32_t> TablesFor(const engine::LaneInput& in) {
  std::vector<uint32_t> t(static_cast<size_t>(in.count) * kFreqTableStride);
  for (int k = 0; k < in.count; ++k) TableAfter(in.bytes[k], &t[k * kFreqTableStride]);
  return t;
}

std::vector<uint8_t> Runs(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  uint8_t b = 7;
  for (auto& x : v) {
    if (rng() % 8 == 0) b = static_cast<uint8_t>(rng());
    x = b;
  }
  return v;
}

// Encodes taking `step` inputs at a time (the last call takes what is left).
EncodedChunk Encode(const std::vector<uint8_t>& chunk, size_t step) {
  ChunkEncoder enc(chunk);
  while (enc.inputs_left() > 0) {
    const engine::LaneInput in = enc.TakeInputs(3, std::min(step, enc.inputs_left()));
    EXPECT_EQ(in.lane, 3);
    enc.Code(TablesFor(in).data(), static_cast<size_t>(in.count));
  }
  EXPECT_TRUE(enc.coded());
  return enc.Seal();
}

Result<std::vector<uint8_t>> Decode(EncodedChunk e, uint64_t index) {
  ChunkRecord rec;
  rec.method = e.method;
  rec.original_length = e.original_length;
  rec.payload = std::move(e.payload);
  std::vector<uint8_t> out;
  if (DecodeWithoutModel(&rec, &out)) return out;
  ChunkDecoder dec(std::move(rec), index);
  std::vector<uint32_t> t(kFreqTableStride);
  for (;;) {
    const engine::LaneInput in = dec.Input(0);
    TableAfter(in.bytes[0], t.data());
    BOA_ASSIGN_OR_RETURN(bool complete, dec.Decode(t.data()));
    if (complete) return dec.TakeBytes();
  }
}

TEST(ChunkCoder, TheRecordDoesNotDependOnHowRowsAreSplit) {
  const std::vector<uint8_t> chunk = Runs(5000, 1);
  const EncodedChunk one = Encode(chunk, 1);
  EXPECT_EQ(one.method, ChunkMethod::kModel);
  EXPECT_EQ(one.original_length, chunk.size());
  EXPECT_EQ(one.payload[0], chunk[0]);  // the first byte is stored as is
  EXPECT_LT(one.payload.size(), chunk.size() / 2);
  for (size_t step : {7, 512, 4999, 10000}) {
    const EncodedChunk e = Encode(chunk, step);
    EXPECT_EQ(e.payload, one.payload) << "rows per call " << step;
  }
}

TEST(ChunkCoder, DecodesWhatWasEncoded) {
  for (size_t n : {2, 3, 100, 65536}) {
    const std::vector<uint8_t> chunk = Runs(n, n);
    Result<std::vector<uint8_t>> back = Decode(Encode(chunk, 64), 0);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, chunk) << n << " bytes";
  }
}

TEST(ChunkCoder, DataTheTablesDoNotPredictIsStored) {
  std::mt19937_64 rng(5);
  std::vector<uint8_t> chunk(3000);
  for (auto& x : chunk) x = static_cast<uint8_t>(rng());
  const EncodedChunk e = Encode(chunk, 100);
  EXPECT_EQ(e.method, ChunkMethod::kStored);
  EXPECT_EQ(e.payload, chunk);
  Result<std::vector<uint8_t>> back = Decode(e, 0);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, chunk);
}

TEST(ChunkCoder, ASingleByteNeedsNoModel) {
  std::vector<uint8_t> chunk = {42};
  EncodedChunk e;
  ASSERT_TRUE(EncodeWithoutModel(&chunk, &e));
  EXPECT_EQ(e.method, ChunkMethod::kStored);
  EXPECT_EQ(e.original_length, 1u);
  EXPECT_EQ(e.payload, std::vector<uint8_t>{42});
  std::vector<uint8_t> two = {1, 2};
  EXPECT_FALSE(EncodeWithoutModel(&two, &e));

  ChunkRecord model_coded;  // a one-byte model record (a writer may choose it) decodes too
  model_coded.method = ChunkMethod::kModel;
  model_coded.original_length = 1;
  model_coded.payload = {9};
  std::vector<uint8_t> out;
  ASSERT_TRUE(DecodeWithoutModel(&model_coded, &out));
  EXPECT_EQ(out, std::vector<uint8_t>{9});
}

TEST(ChunkCoder, ACorruptCodeEndsAndAnInconsistentOneIsDataLossNamingTheChunk) {
  const std::vector<uint8_t> chunk = Runs(20000, 9);
  const EncodedChunk good = Encode(chunk, 512);
  ASSERT_EQ(good.method, ChunkMethod::kModel);
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 100; ++trial) {  // every corruption ends: no hang, no crash
    EncodedChunk bad = good;
    for (int k = 0; k < 4; ++k) bad.payload[1 + rng() % (bad.payload.size() - 1)] ^= static_cast<uint8_t>(1 + rng() % 255);
    Result<std::vector<uint8_t>> back = Decode(bad, 77);
    if (back.ok()) EXPECT_EQ(back->size(), chunk.size());  // a wrong decode is the checksum's to catch
  }
  EncodedChunk bad = good;  // a code no encoder can write: past the top of the range
  std::fill(bad.payload.begin() + 1, bad.payload.end(), 0xff);
  Result<std::vector<uint8_t>> back = Decode(bad, 77);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(back.status().message().find("chunk 77"), std::string::npos) << back.status().message();
}

}  // namespace
}  // namespace boa
