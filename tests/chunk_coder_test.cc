// The per-chunk state machines: however the model's rows are split into calls, an encoder
// writes the same record; a decoder reads it back byte for byte; LZMA2 records a chunk when
// its code is smaller than the model's; a record that coding would not shrink is stored; a
// corrupt code is DATA_LOSS naming the chunk, never a crash.
#include "common/codec/chunk_coder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

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

// Bytes the stand-in model predicts well and LZMA2 does not: each is the previous one or
// one more, at random, with a rare jump.
std::vector<uint8_t> Runs(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  uint8_t b = 7;
  for (auto& x : v) {
    const uint64_t r = rng();
    if (r % 64 == 0) b = static_cast<uint8_t>(r >> 8);
    else b = static_cast<uint8_t>(b + (r >> 7) % 2);
    x = b;
  }
  return v;
}

// Encodes taking `step` inputs at a time (the last call takes what is left).
EncodedChunk Encode(const std::vector<uint8_t>& chunk, size_t step, Mixing mixing = {}) {
  ChunkEncoder enc(chunk, mixing);
  while (enc.inputs_left() > 0) {
    const engine::LaneInput in = enc.TakeInputs(3, std::min(step, enc.inputs_left()));
    EXPECT_EQ(in.lane, 3);
    enc.Code(TablesFor(in).data(), static_cast<size_t>(in.count));
  }
  EXPECT_TRUE(enc.coded());
  return enc.Seal();
}

Result<std::vector<uint8_t>> Decode(EncodedChunk e, uint64_t index, Mixing mixing = {}) {
  ChunkRecord rec;
  rec.method = e.method;
  rec.original_length = e.original_length;
  rec.payload = std::move(e.payload);
  std::vector<uint8_t> out;
  BOA_ASSIGN_OR_RETURN(bool without_model, DecodeWithoutModel(&rec, index, &out));
  if (without_model) return out;
  ChunkDecoder dec(std::move(rec), index, mixing);
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
  Result<bool> decoded = DecodeWithoutModel(&model_coded, 0, &out);
  ASSERT_TRUE(decoded.ok() && *decoded);
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

// Text the stand-in model knows nothing about, with long exact repeats: LZMA2's ground.
std::vector<uint8_t> RepeatedLines(size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) s += "E " + std::to_string(i % 7) + " 0 1.3000000000000000e+04 2 0 0 0 0\n";
  s.resize(n);
  return {s.begin(), s.end()};
}

TEST(ChunkCoder, LzmaRecordsAChunkWhenItsCodeIsSmallerThanTheModels) {
  const std::vector<uint8_t> chunk = RepeatedLines(20000);
  const EncodedChunk e = Encode(chunk, 1000);
  ASSERT_EQ(e.method, ChunkMethod::kLzma2);
  EXPECT_LT(e.payload.size(), chunk.size() / 20);
  Result<std::vector<uint8_t>> back = Decode(e, 3);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, chunk);
  // However the rows were split, the same record.
  EXPECT_EQ(Encode(chunk, 1).payload, e.payload);
  // The model's code wins where it is smaller, on the same kind of decision.
  EXPECT_EQ(Encode(Runs(20000, 4), 1000).method, ChunkMethod::kModel);
}

// The match model is part of the model's code: however rows are split, the same record;
// the decoder, fed a byte per step, follows it; on repeats it shortens the code.
TEST(ChunkCoder, TheMatchModelMixesIntoTheModelsCode) {
  std::vector<uint8_t> chunk = Runs(6000, 21);
  const std::vector<uint8_t> again(chunk.begin(), chunk.begin() + 3000);
  chunk.insert(chunk.end(), again.begin(), again.end());  // the first half, repeated
  const EncodedChunk plain = Encode(chunk, 1);
  const EncodedChunk mixed = Encode(chunk, 1, Mixing{true, false});
  ASSERT_EQ(plain.method, ChunkMethod::kModel);
  ASSERT_EQ(mixed.method, ChunkMethod::kModel);
  EXPECT_LT(mixed.payload.size() * 10, plain.payload.size() * 8) << plain.payload.size() << " -> " << mixed.payload.size();
  for (size_t step : {7, 512, 8999, 10000}) EXPECT_EQ(Encode(chunk, step, Mixing{true, false}).payload, mixed.payload) << step;
  Result<std::vector<uint8_t>> back = Decode(mixed, 0, Mixing{true, false});
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, chunk);
  // Decoded without the match model, the same record is a different (wrong) chunk or an error.
  Result<std::vector<uint8_t>> wrong = Decode(mixed, 0, Mixing{});
  EXPECT_TRUE(!wrong.ok() || *wrong != chunk);
}

// Four-momentum lines "px py pz E" (%17.10g) whose px, py, pz digits follow Runs' rule (the
// stand-in predicts them, LZMA2 does not) and whose E = sqrt(p² + m²) only the energy model
// predicts.
std::vector<uint8_t> RunDigitListing(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto number = [&] {
    std::string d(1, static_cast<char>('1' + rng() % 9));
    d += '.';
    for (char c = d[0]; d.size() < 11; d += c) c = rng() % 2 && c < '9' ? static_cast<char>(c + 1) : c;
    return (rng() % 2 ? -1 : 1) * std::stod(d);
  };
  std::string s;
  char line[100];
  while (s.size() < n) {
    const double px = number(), py = number(), pz = number(), m = rng() % 2 ? 0.13957039 : 0.493677;
    std::snprintf(line, sizeof line, "%17.10g%17.10g%17.10g%17.10g\n", px, py, pz, std::sqrt(px * px + py * py + pz * pz + m * m));
    s += line;
  }
  s.resize(n);
  return std::vector<uint8_t>(s.begin(), s.end());
}

// The energy model mixes after the match model: on a four-momentum listing (after bytes the
// stand-in predicts well) it shortens the code, the same however rows are split; the
// decoder needs both to follow it.
TEST(ChunkCoder, TheEnergyModelMixesIntoTheModelsCode) {
  std::vector<uint8_t> chunk = Runs(30000, 7);
  const std::vector<uint8_t> listing = RunDigitListing(6000, 7);
  chunk.push_back('\n');
  chunk.insert(chunk.end(), listing.begin(), listing.end());
  const EncodedChunk match = Encode(chunk, 1, Mixing{true, false});
  const EncodedChunk both = Encode(chunk, 1, Mixing{true, true});
  ASSERT_EQ(both.method, ChunkMethod::kModel);
  // (The match model's record is LZMA2's: the listing costs the stand-in more than that.)
  EXPECT_LT(both.payload.size() + 400, match.payload.size()) << match.payload.size() << " -> " << both.payload.size();
  for (size_t step : {3, 700, 35999, 36000}) EXPECT_EQ(Encode(chunk, step, Mixing{true, true}).payload, both.payload) << step;
  Result<std::vector<uint8_t>> back = Decode(both, 0, Mixing{true, true});
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, chunk);
  Result<std::vector<uint8_t>> wrong = Decode(both, 0, Mixing{true, false});
  EXPECT_TRUE(!wrong.ok() || *wrong != chunk);
}

TEST(ChunkCoder, DamagedLzmaDataIsDataLossNamingTheChunk) {
  const std::vector<uint8_t> chunk = RepeatedLines(30000);
  const EncodedChunk good = Encode(chunk, 4096);
  ASSERT_EQ(good.method, ChunkMethod::kLzma2);
  std::mt19937_64 rng(12);
  int refused = 0;
  for (int trial = 0; trial < 200; ++trial) {  // every damage ends: no hang, no crash, no overrun
    EncodedChunk bad = good;
    bad.payload[rng() % bad.payload.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    Result<std::vector<uint8_t>> back = Decode(bad, 41);
    if (back.ok()) {
      EXPECT_EQ(back->size(), chunk.size());  // a wrong decode is the checksum's to catch
    } else {
      ++refused;
      EXPECT_EQ(back.status().code(), StatusCode::kDataLoss);
      EXPECT_NE(back.status().message().find("chunk 41"), std::string::npos) << back.status().message();
    }
  }
  EXPECT_GT(refused, 100);
  for (size_t cut : {size_t{1}, good.payload.size() / 2, good.payload.size() - 1}) {  // truncated
    EncodedChunk bad = good;
    bad.payload.resize(cut);
    EXPECT_FALSE(Decode(bad, 41).ok()) << cut;
  }
  EncodedChunk longer = good;  // a byte after the end of the LZMA2 data
  longer.payload.push_back(0);
  EXPECT_FALSE(Decode(longer, 41).ok());
  EncodedChunk shorter = good;  // the data decodes to more than the record's length
  shorter.original_length -= 1;
  EXPECT_FALSE(Decode(shorter, 41).ok());
  EncodedChunk more = good;  // or to less
  more.original_length += 1;
  EXPECT_FALSE(Decode(more, 41).ok());
}

}  // namespace
}  // namespace boa
