// Whole-stream round trips through the .boa container, invariance of the output to threads
// and backends, refusal of every single-bit flip and truncation of a small file (chunks of
// every method in both), the hybrid's promise: no chunk larger than `xz -9` makes it, and the
// whole-input LZMA2 alternative.
#include "common/codec/codec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <map>

#include "common/codec/stream.h"
#include "common/format/container.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

using testing::CompressBytes;
using testing::DecompressBytes;
using testing::EventText;
using testing::FloatTable;
using testing::MakeModel;
using testing::RandomBytes;

class CodecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new LoadedModel(MakeModel(16, 1, 4, 4.0f)); }
  static void TearDownTestSuite() { delete model_; }

  std::vector<uint8_t> RoundTrip(const std::vector<uint8_t>& in, CodecOptions o = {}) {
    std::vector<uint8_t> packed, back;
    Status s = CompressBytes(*model_, in, &packed, o);
    EXPECT_TRUE(s.ok()) << s.message();
    s = DecompressBytes(*model_, packed, &back, o);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back, in);
    return packed;
  }
  static LoadedModel* model_;
};
LoadedModel* CodecTest::model_ = nullptr;

// The records of a stream, in order.
std::vector<ChunkRecord> Records(const std::vector<uint8_t>& packed) {
  MemorySource src(packed);
  ContainerReader r(&src);
  ContainerHeader h;
  EXPECT_TRUE(r.ReadHeader(&h).ok());
  std::vector<ChunkRecord> out;
  for (;;) {
    ChunkRecord rec;
    Result<bool> more = r.Next(&rec);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) return out;
    out.push_back(std::move(rec));
  }
}

std::map<ChunkMethod, int> MethodCounts(const std::vector<uint8_t>& packed) {
  std::map<ChunkMethod, int> n;
  for (const ChunkRecord& r : Records(packed)) ++n[r.method];
  return n;
}

// Bytes sampled from `model` (which it codes best), then event text (which LZMA2 codes
// better than an untrained model), then random bytes: chunks of all three methods.
std::vector<uint8_t> Mixed(const LoadedModel& model, size_t sampled, size_t text, size_t random) {
  std::vector<uint8_t> in = testing::SampleFromModel(model, sampled, 8), t = EventText(text, 2),
                       r = testing::RandomBytes(random, 3);
  in.insert(in.end(), t.begin(), t.end());
  in.insert(in.end(), r.begin(), r.end());
  return in;
}

// `ref` (compressed with `base`) is what 1-3 threads and every backend here (scalar, AVX2,
// CUDA where there is a GPU) write, and it decodes to `in` with 1, 3 or 64 lanes on each.
void ExpectSameForThreadsBackendsAndLanes(const LoadedModel& model, const std::vector<uint8_t>& in,
                                          const std::vector<uint8_t>& ref, const CodecOptions& base) {
  for (int threads : {1, 2, 3}) {
    for (auto backend : {engine::Backend::kScalar, engine::Backend::kAvx2, engine::Backend::kCuda}) {
      if (!engine::BackendAvailable(backend)) continue;
      CodecOptions o = base;
      o.threads = threads;
      o.backend = backend;
      std::vector<uint8_t> packed;
      ASSERT_TRUE(CompressBytes(model, in, &packed, o).ok());
      EXPECT_EQ(packed, ref) << threads << " threads, " << engine::BackendName(backend);
      for (int lanes : {1, 3, 64}) {
        o.lanes = lanes;
        std::vector<uint8_t> back;
        Status st = DecompressBytes(model, ref, &back, o);
        ASSERT_TRUE(st.ok()) << st.message();
        EXPECT_EQ(back, in) << lanes << " lanes";
      }
    }
  }
}

TEST_F(CodecTest, EmptyInput) {
  std::vector<uint8_t> packed = RoundTrip({});
  EXPECT_EQ(packed.size(), format::kHeaderBytes + 2 + format::kTrailerBytes);
}

TEST_F(CodecTest, OneByte) { RoundTrip({42}); }

TEST_F(CodecTest, ChunkSizePlusMinusOne) {
  CodecOptions o;
  o.chunk_length = 100;
  for (size_t n : {99, 100, 101, 199, 200, 201}) RoundTrip(FloatTable(n, n), o);
}

TEST_F(CodecTest, ConstantInputs) {
  CodecOptions o;
  o.chunk_length = 4096;
  RoundTrip(std::vector<uint8_t>(20000, 0), o);
  RoundTrip(std::vector<uint8_t>(20000, 0xff), o);
}

TEST_F(CodecTest, RandomInputIsStoredWithBoundedExpansion) {
  CodecOptions o;
  o.chunk_length = 1000;
  std::vector<uint8_t> in = RandomBytes(10000, 1);
  std::vector<uint8_t> packed = RoundTrip(in, o);
  // Per chunk: a tag byte and an index entry of 2 bytes, plus header and trailer.
  EXPECT_LE(packed.size(), in.size() + 10 * 3 + 150);
}

TEST_F(CodecTest, StructuredMegabyteFloatTable) { RoundTrip(FloatTable(1 << 20, 2)); }

TEST_F(CodecTest, PredictableDataCompressesToItsEntropy) {
  std::vector<uint8_t> in = testing::SampleFromModel(*model_, 100000, 6);
  CodecOptions o;
  o.chunk_length = 1 << 20;  // one chunk: the model sees the data as it was generated
  MemorySource src(in);
  auto r = Evaluate(*model_, &src, o);
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> packed = RoundTrip(in, o);
  EXPECT_LT(r->bits_per_byte(), 7.8);
  EXPECT_LT(packed.size(), r->ideal_bytes() * 1.001 + 200);
}

TEST_F(CodecTest, ChunkCountOption) {
  CodecOptions o;
  o.chunk_count = 7;
  std::vector<uint8_t> in = FloatTable(1000, 5);
  MemorySource src(in);
  MemorySink sink;
  CodecStats st;
  ASSERT_TRUE(Compress(*model_, &src, &sink, o, &st).ok());
  EXPECT_EQ(st.chunk_length, 143u);
  EXPECT_EQ(st.chunks, 7u);
}

TEST_F(CodecTest, OutputDoesNotDependOnThreadsLanesOrBackend) {
  std::vector<uint8_t> in = Mixed(*model_, 30000, 12000, 2000);
  CodecOptions base;
  base.chunk_length = 1000;
  base.threads = 1;
  std::vector<uint8_t> ref;
  ASSERT_TRUE(CompressBytes(*model_, in, &ref, base).ok());
  std::map<ChunkMethod, int> methods = MethodCounts(ref);
  ASSERT_GT(methods[ChunkMethod::kModel], 10);
  ASSERT_GT(methods[ChunkMethod::kLzma2], 5);
  ASSERT_GT(methods[ChunkMethod::kStored], 0);
  ExpectSameForThreadsBackendsAndLanes(*model_, in, ref, base);
}

// A model that mixes the match model: its streams too are the same for every thread count,
// backend and lane count (encoding runs chunk mode, decoding step mode), and smaller on
// repeats than the same network's alone.
TEST_F(CodecTest, MatchModelOutputDoesNotDependOnThreadsLanesOrBackend) {
  const LoadedModel matching = MakeModel(16, 1, 4, 4.0f, WeightType::kF32, true);
  ASSERT_TRUE(matching.weights.config.match_model);
  // Repeats the network cannot predict from a few bytes of context: each 4000-byte chunk
  // is 2500 sampled bytes followed by a copy of its first 1500 (chunks are coded alone, so
  // a repeat must lie in its chunk), then event text.
  const std::vector<uint8_t> sampled = testing::SampleFromModel(*model_, 10000, 8), t = EventText(20000, 5);
  std::vector<uint8_t> in;
  for (int r = 0; r < 4; ++r) {
    in.insert(in.end(), sampled.begin() + 2500 * r, sampled.begin() + 2500 * (r + 1));
    in.insert(in.end(), sampled.begin() + 2500 * r, sampled.begin() + 2500 * r + 1500);
  }
  in.insert(in.end(), t.begin(), t.end());
  CodecOptions base;
  base.chunk_length = 4000;
  base.threads = 1;
  std::vector<uint8_t> ref, plain;
  ASSERT_TRUE(CompressBytes(matching, in, &ref, base).ok());
  ASSERT_TRUE(CompressBytes(*model_, in, &plain, base).ok());
  EXPECT_LT(ref.size(), plain.size()) << "the match model should pay on repeats";
  ExpectSameForThreadsBackendsAndLanes(matching, in, ref, base);
}

// A model that mixes the energy model too: the same stream for every thread count, backend
// and lane count, and smaller than the match model's alone where a four-momentum listing
// shares a model-coded chunk. Each 8000-byte chunk is 7000 bytes sampled from the network
// (which LZMA2 cannot code as small) and 1000 of a listing, then text that only looks like
// one.
TEST_F(CodecTest, EnergyModelOutputDoesNotDependOnThreadsLanesOrBackend) {
  const LoadedModel mixing = MakeModel(16, 1, 4, 4.0f, WeightType::kF32, true, true);
  ASSERT_TRUE(mixing.weights.config.derived_fields);
  const std::vector<uint8_t> sampled = testing::SampleFromModel(*model_, 21000, 8),
                             listing = testing::FourMomentumText(3000, 3), t = EventText(8000, 6);
  std::vector<uint8_t> in;
  for (int r = 0; r < 3; ++r) {
    in.insert(in.end(), sampled.begin() + 7000 * r, sampled.begin() + 7000 * (r + 1));
    in.push_back('\n');
    in.insert(in.end(), listing.begin() + 1000 * r, listing.begin() + 1000 * r + 999);
  }
  in.insert(in.end(), t.begin(), t.end());
  CodecOptions base;
  base.chunk_length = 8000;
  base.threads = 1;
  std::vector<uint8_t> ref, match_only;
  ASSERT_TRUE(CompressBytes(mixing, in, &ref, base).ok());
  ASSERT_TRUE(CompressBytes(MakeModel(16, 1, 4, 4.0f, WeightType::kF32, true), in, &match_only, base).ok());
  EXPECT_LT(ref.size() + 50, match_only.size()) << "the energy model should pay on listings";
  // Evaluate reports it as train's probe sees it.
  MemorySource src(in);
  Result<EvalResult> e = Evaluate(mixing, &src, base);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->derived_fields);
  EXPECT_LT(e->derived_code_bits, e->match_code_bits - 8 * 100);
  EXPECT_DOUBLE_EQ(e->ideal_code_bits, e->derived_code_bits);
  ExpectSameForThreadsBackendsAndLanes(mixing, in, ref, base);
}

TEST_F(CodecTest, WrongModelIsRefusedBeforeAnyOutput) {
  std::vector<uint8_t> packed, back;
  ASSERT_TRUE(CompressBytes(*model_, FloatTable(500, 1), &packed).ok());
  LoadedModel other = MakeModel(16, 1, 5);
  Status s = DecompressBytes(other, packed, &back);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(model_->IdHex()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(other.IdHex()), std::string::npos) << s.message();
  EXPECT_TRUE(back.empty());
}

TEST_F(CodecTest, EveryBitFlipAndTruncationIsAnError) {
  CodecOptions o;
  o.chunk_length = 40;
  std::vector<uint8_t> in = testing::SampleFromModel(*model_, 600, 3);
  const std::string lines = "E 1 2 3\nE 1 2 3\nE 1 2 3\nE 1 2 3\nE 1 2 3\n";
  in.insert(in.begin() + 80, lines.begin(), lines.end());
  const std::vector<uint8_t> noise = testing::RandomBytes(40, 9);  // a chunk stored as it is
  in.insert(in.end(), noise.begin(), noise.end());
  std::vector<uint8_t> packed;
  ASSERT_TRUE(CompressBytes(*model_, in, &packed, o).ok());
  std::map<ChunkMethod, int> methods = MethodCounts(packed);
  ASSERT_GT(methods[ChunkMethod::kModel], 0);
  ASSERT_GT(methods[ChunkMethod::kLzma2], 0);
  ASSERT_GT(methods[ChunkMethod::kStored], 0);
  size_t flips = 0;
  for (size_t i = 0; i < packed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit, ++flips) {
      std::vector<uint8_t> bad = packed, back;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      Status s = DecompressBytes(*model_, bad, &back, o);
      ASSERT_FALSE(s.ok()) << "flip of byte " << i << " bit " << bit << " was not detected";
      ASSERT_TRUE(s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kFailedPrecondition)
          << StatusCodeName(s.code()) << ": " << s.message();
    }
  }
  for (size_t n = 0; n < packed.size(); ++n) {
    std::vector<uint8_t> cut(packed.begin(), packed.begin() + n), back;
    Status s = DecompressBytes(*model_, cut, &back, o);
    ASSERT_EQ(s.code(), StatusCode::kDataLoss) << "truncation to " << n << " bytes: " << s.message();
  }
  std::vector<uint8_t> longer = packed, back;
  longer.push_back(0);
  EXPECT_EQ(DecompressBytes(*model_, longer, &back, o).code(), StatusCode::kDataLoss);
  std::printf("[ codec ] %zu bit flips and %zu truncations of a %zu-byte file refused\n", flips,
              packed.size(), packed.size());
}

// Event text the model was not trained for: every chunk's record is no larger than the
// real `xz -9` output for that chunk alone, and the file decodes.
TEST_F(CodecTest, NoChunkIsLargerThanXz9MakesIt) {
  const std::vector<uint8_t> in = EventText(150000, 7);
  for (uint32_t chunk : {4096u, 32768u}) {
    CodecOptions o;
    o.chunk_length = chunk;
    const std::vector<uint8_t> packed = RoundTrip(in, o);
    const std::vector<ChunkRecord> records = Records(packed);
    ASSERT_EQ(records.size(), (in.size() + chunk - 1) / chunk);
    int lzma2 = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const size_t begin = i * chunk, n = std::min<size_t>(chunk, in.size() - begin);
      testing::TempDir dir("boa_codec_xz");
      const std::string path = dir.path() + "/chunk";
      FILE* f = std::fopen(path.c_str(), "wb");
      ASSERT_EQ(std::fwrite(in.data() + begin, 1, n, f), n);
      std::fclose(f);
      std::string out;
      ASSERT_EQ(testing::RunCommand("xz -9 -c " + path + " | wc -c", &out), 0) << out;
      const size_t xz = std::stoul(out);
      // The whole record: tag, coded length (at most 3 bytes here), payload.
      const size_t record = 1 + (records[i].method == ChunkMethod::kStored ? 0 : 3) + records[i].payload.size();
      EXPECT_LE(record, xz) << "chunk " << i << " of " << chunk << " bytes, " << ChunkMethodName(records[i].method);
      lzma2 += records[i].method == ChunkMethod::kLzma2;
    }
    EXPECT_GT(lzma2, 0) << "the untrained model should lose to LZMA2 on text";
  }
}

// `in` coded with LZMA2 alone under the test model's header.
std::vector<uint8_t> Lzma2Only(const LoadedModel& model, const std::vector<uint8_t>& in, CodecStats* stats = nullptr) {
  MemorySource src(in);
  MemorySink sink;
  Status s = CompressWithLzma2Only([&]() -> Result<ContainerHeader> { return MakeHeader(model, 0); }, &src, &sink, stats);
  EXPECT_TRUE(s.ok()) << s.message();
  return sink.data;
}

size_t XzSize(const std::vector<uint8_t>& in, const std::string& flags) {
  testing::TempDir dir("boa_codec_xz");
  const std::string path = dir.path() + "/in";
  FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_EQ(std::fwrite(in.data(), 1, in.size(), f), in.size());
  std::fclose(f);
  std::string out;
  EXPECT_EQ(testing::RunCommand("xz " + flags + " -c " + path + " | wc -c", &out), 0) << out;
  return std::stoul(out);
}

// The whole-input alternative: one LZMA2 record per 16 MiB (here one for the whole input),
// a stream that decodes with the model it names, and the size of the real `xz -9` of the
// whole input but for the container's framing (boa's header and trailer against xz's).
TEST_F(CodecTest, Lzma2OnlyStreamIsXzOfTheWholeInput) {
  const std::vector<uint8_t> in = EventText(300000, 9);
  CodecStats stats;
  const std::vector<uint8_t> packed = Lzma2Only(*model_, in, &stats);
  std::vector<uint8_t> back;
  ASSERT_TRUE(DecompressBytes(*model_, packed, &back, {}).ok());
  EXPECT_EQ(back, in);
  const std::vector<ChunkRecord> records = Records(packed);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].method, ChunkMethod::kLzma2);
  EXPECT_EQ(stats.chunk_length, in.size());
  EXPECT_EQ(stats.lzma2_chunks, 1u);
  // boa's framing is ~120 bytes, xz's ~60; liblzma's hash table, sized by the dictionary
  // (the input here, 64 MiB for xz -9), may find a few matches differently.
  const size_t xz = XzSize(in, "-9");
  EXPECT_LE(packed.size(), xz + 80) << "xz -9: " << xz;
  // Against the model's own 64 KiB chunks, whose LZMA2 records cannot reach across chunks.
  std::vector<uint8_t> chunked;
  ASSERT_TRUE(CompressBytes(*model_, in, &chunked, {}).ok());
  EXPECT_LT(packed.size(), chunked.size());
  std::printf("[ codec ] event text %zu B: LZMA2 alone %zu, xz -9 %zu, 64 KiB chunks %zu\n", in.size(), packed.size(),
              xz, chunked.size());
}

TEST_F(CodecTest, Lzma2OnlyEdgeCases) {
  // Empty input: header and trailer only; one byte or random bytes: stored; a failing
  // header: nothing written and the failure returned.
  EXPECT_EQ(Lzma2Only(*model_, {}).size(), format::kHeaderBytes + 2 + format::kTrailerBytes);
  for (const std::vector<uint8_t>& in : {std::vector<uint8_t>{7}, RandomBytes(5000, 4)}) {
    const std::vector<uint8_t> packed = Lzma2Only(*model_, in);
    std::vector<uint8_t> back;
    ASSERT_TRUE(DecompressBytes(*model_, packed, &back, {}).ok());
    EXPECT_EQ(back, in);
    EXPECT_EQ(Records(packed).at(0).method, ChunkMethod::kStored);
  }
  const std::vector<uint8_t> in = EventText(1000, 1);
  MemorySource src(in);
  MemorySink sink;
  Status s = CompressWithLzma2Only([]() -> Result<ContainerHeader> { return Status::Cancelled("no header"); }, &src,
                                   &sink, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_TRUE(sink.data.empty());
  // Stopped: CANCELLED, whatever was written is abandoned.
  const std::atomic<bool> stop{true};
  MemorySource again(in);
  s = CompressWithLzma2Only([&]() -> Result<ContainerHeader> { return MakeHeader(*model_, 0); }, &again, &sink, nullptr,
                            &stop);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
}

TEST_F(CodecTest, GarbageNeverCrashes) {
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::vector<uint8_t> junk = RandomBytes(seed % 200, seed), back;
    if (seed % 3 == 0 && junk.size() >= 8) std::copy(format::kMagic, format::kMagic + 8, junk.begin());
    EXPECT_FALSE(DecompressBytes(*model_, junk, &back).ok());
  }
}

TEST_F(CodecTest, EvaluateMatchesCompressedSize) {
  std::vector<uint8_t> in = testing::SampleFromModel(*model_, 50000, 4);
  CodecOptions o;
  o.chunk_length = 10000;
  MemorySource src(in);
  auto r = Evaluate(*model_, &src, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, in.size());
  EXPECT_EQ(r->predicted, in.size() - 5);
  EXPECT_GT(r->bits_per_byte(), 0.1);
  EXPECT_LT(r->bits_per_byte(), 8);
  // Quantization costs little: the quantized code is within 0.5 % of the cross-entropy.
  EXPECT_NEAR(r->ideal_code_bits, r->cross_entropy_bits, 0.005 * r->cross_entropy_bits);
  std::vector<uint8_t> packed;
  ASSERT_TRUE(CompressBytes(*model_, in, &packed, o).ok());
  double overhead = packed.size() - r->ideal_bytes();
  EXPECT_GT(overhead, 0);
  EXPECT_LT(overhead, 5 * 12 + format::kHeaderBytes + format::kTrailerBytes + 10);
}

}  // namespace
}  // namespace boa
