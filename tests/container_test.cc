// The .boa container: writer/reader agreement, strict limits, the random-access info, and
// versions: 3 adds LZMA2 records, which a version 2 file may not hold.
#include "common/format/container.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "common/util/io.h"

namespace boa {
namespace {

ContainerHeader Header(uint32_t chunk_length) {
  ContainerHeader h;
  h.chunk_length = chunk_length;
  for (int i = 0; i < 32; ++i) h.model_id[i] = static_cast<uint8_t>(i);
  h.model.d_model = 64;
  h.model.n_layers = 2;
  h.model.d_state = 16;
  h.model.d_conv = 4;
  h.model.expand = 2;
  h.model.dt_rank = 4;
  h.model.weight_type = 1;
  return h;
}

std::vector<uint8_t> Sample() {
  MemorySink sink;
  ContainerWriter w(&sink, Header(10));
  EXPECT_TRUE(w.WriteHeader().ok());
  std::vector<uint8_t> a(10, 'a'), coded = {'b', 1, 2, 3};
  EXPECT_TRUE(w.WriteChunk(ChunkMethod::kStored, 10, a.data(), a.size()).ok());
  EXPECT_TRUE(w.WriteChunk(ChunkMethod::kModel, 10, coded.data(), coded.size()).ok());
  EXPECT_TRUE(w.WriteChunk(ChunkMethod::kModel, 3, coded.data(), 2).ok());
  EXPECT_TRUE(w.Finish(0x1234).ok());
  return sink.data;
}

TEST(Container, WriterAndReaderAgree) {
  std::vector<uint8_t> bytes = Sample();
  MemorySource src(bytes);
  ContainerReader r(&src);
  ContainerHeader h;
  ASSERT_TRUE(r.ReadHeader(&h).ok());
  EXPECT_EQ(h.chunk_length, 10u);
  EXPECT_EQ(h.model.d_model, 64u);
  ChunkRecord rec;
  std::vector<std::pair<ChunkMethod, uint32_t>> seen;
  for (;;) {
    auto more = r.Next(&rec);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) break;
    seen.emplace_back(rec.method, rec.original_length);
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_pair(ChunkMethod::kStored, 10u));
  EXPECT_EQ(seen[2], std::make_pair(ChunkMethod::kModel, 3u));
  EXPECT_EQ(r.trailer().original_length, 23u);
  EXPECT_EQ(r.trailer().content_checksum, 0x1234u);
}

TEST(Container, WriterRefusesMisuse) {
  MemorySink sink;
  ContainerWriter w(&sink, Header(10));
  ASSERT_TRUE(w.WriteHeader().ok());
  std::vector<uint8_t> p(20, 1);
  EXPECT_FALSE(w.WriteChunk(ChunkMethod::kStored, 11, p.data(), 11).ok());  // longer than a chunk
  EXPECT_FALSE(w.WriteChunk(ChunkMethod::kModel, 5, p.data(), 6).ok());    // expands
  ASSERT_TRUE(w.WriteChunk(ChunkMethod::kStored, 5, p.data(), 5).ok());
  EXPECT_FALSE(w.WriteChunk(ChunkMethod::kStored, 10, p.data(), 10).ok());  // after the short one
}

TEST(Container, HeaderLimits) {
  std::vector<uint8_t> h = EncodeHeader(Header(format::kMaxChunkLength));
  ContainerHeader out;
  EXPECT_TRUE(DecodeHeader(h.data(), &out).ok());
  h = EncodeHeader(Header(format::kMaxChunkLength + 1));
  Status s = DecodeHeader(h.data(), &out);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("chunk length"), std::string::npos) << s.message();
  h = EncodeHeader(Header(0));
  EXPECT_FALSE(DecodeHeader(h.data(), &out).ok());
}

TEST(Container, InfoReadsTheIndex) {
  std::vector<uint8_t> bytes = Sample();
  char path[] = "/tmp/boa_container_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  auto info = ReadContainerInfo(path);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->trailer.chunk_count, 3u);
  EXPECT_EQ(info->model_chunks, 2u);
  EXPECT_EQ(info->stored_chunks, 1u);
  EXPECT_EQ(info->file_bytes, bytes.size());
  // Every truncation of the file is refused by the random-access reader too.
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_EQ(truncate(path, static_cast<off_t>(n)), 0);
    EXPECT_FALSE(ReadContainerInfo(path).ok()) << n;
  }
  unlink(path);
}

std::string WriteTemp(const std::vector<uint8_t>& bytes) {
  char path[] = "/tmp/boa_container_test_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  return path;
}

Status ReadSequentially(const std::vector<uint8_t>& bytes) {
  MemorySource src(bytes);
  ContainerReader r(&src);
  ContainerHeader h;
  BOA_RETURN_IF_ERROR(r.ReadHeader(&h));
  ChunkRecord rec;
  for (;;) {
    BOA_ASSIGN_OR_RETURN(bool more, r.Next(&rec));
    if (!more) return Status::Ok();
  }
}

// `info` reads only heads, index and trailer, but what it accepts must hold together as the
// sequential reader requires: crafted files whose tags, lengths and totals disagree.
TEST(Container, InfoAppliesTheReadersStructuralChecks) {
  std::vector<std::vector<uint8_t>> crafted;
  {
    // A header claiming 16 MiB chunks over one 3000-byte stored record and a trailer of 3000.
    MemorySink sink;
    ContainerWriter w(&sink, Header(3000));
    std::vector<uint8_t> data(3000, 'x');
    ASSERT_TRUE(w.WriteHeader().ok());
    ASSERT_TRUE(w.WriteChunk(ChunkMethod::kStored, 3000, data.data(), data.size()).ok());
    ASSERT_TRUE(w.Finish(0).ok());
    std::vector<uint8_t> big = EncodeHeader(Header(format::kMaxChunkLength));
    std::copy(big.begin(), big.end(), sink.data.begin());
    crafted.push_back(sink.data);
  }
  // Sample(): header, then 0x02 + 10 bytes, 0x01 4 + 4 bytes, 0x81 3 2 + 2 bytes.
  const size_t second = format::kHeaderBytes + 11, third = second + 6;
  std::vector<uint8_t> b = Sample();
  ASSERT_EQ(b[second], 0x01);
  ASSERT_EQ(b[third], 0x81);
  b[third] = 0x01;  // the last chunk read as a full one: the total no longer matches
  crafted.push_back(b);
  b = Sample();
  b[second] = 0x81;  // the middle chunk read as the short final one: one follows it
  crafted.push_back(b);
  b = Sample();
  b[format::kHeaderBytes] = 0x82;  // a length of 'a' (97) in a 10-byte chunk
  crafted.push_back(b);
  for (size_t i = 0; i < crafted.size(); ++i) {
    const std::string path = WriteTemp(crafted[i]);
    Result<ContainerInfo> info = ReadContainerInfo(path);
    EXPECT_EQ(info.status().code(), StatusCode::kDataLoss) << "case " << i;
    EXPECT_NE(info.status().message().find("corrupt .boa"), std::string::npos) << info.status().message();
    EXPECT_FALSE(ReadSequentially(crafted[i]).ok()) << "case " << i;
    unlink(path.c_str());
  }
  const std::string path = WriteTemp(Sample());
  Result<ContainerInfo> good = ReadContainerInfo(path);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->trailer.original_length, 23u);
  unlink(path.c_str());
}

// Header, 0x03 varint(4) + 4 LZMA2 bytes (a 10-byte chunk), 0x82 varint(3) + 3 stored bytes.
std::vector<uint8_t> WithLzma2(uint16_t version) {
  MemorySink sink;
  ContainerHeader h = Header(10);
  h.version = version;
  ContainerWriter w(&sink, h);
  EXPECT_TRUE(w.WriteHeader().ok());
  std::vector<uint8_t> coded = {9, 8, 7, 6}, tail = {1, 2, 3};
  EXPECT_TRUE(w.WriteChunk(ChunkMethod::kLzma2, 10, coded.data(), coded.size()).ok());
  EXPECT_TRUE(w.WriteChunk(ChunkMethod::kStored, 3, tail.data(), tail.size()).ok());
  EXPECT_TRUE(w.Finish(7).ok());
  return sink.data;
}

TEST(Container, Lzma2RecordsInVersion3) {
  const std::vector<uint8_t> bytes = WithLzma2(3);
  ASSERT_EQ(bytes[8], 3);
  ASSERT_EQ(bytes[format::kHeaderBytes], 0x03);
  ASSERT_EQ(bytes[format::kHeaderBytes + 1], 4);  // its payload length, as a model record has
  MemorySource src(bytes);
  ContainerReader r(&src);
  ContainerHeader h;
  ASSERT_TRUE(r.ReadHeader(&h).ok());
  ChunkRecord rec;
  ASSERT_TRUE(*r.Next(&rec));
  EXPECT_EQ(rec.method, ChunkMethod::kLzma2);
  EXPECT_EQ(rec.original_length, 10u);
  EXPECT_EQ(rec.payload, (std::vector<uint8_t>{9, 8, 7, 6}));
  ASSERT_TRUE(*r.Next(&rec));
  Result<bool> more = r.Next(&rec);
  ASSERT_TRUE(more.ok()) << more.status().message();
  EXPECT_FALSE(*more);

  const std::string path = WriteTemp(bytes);
  std::vector<ChunkInfo> seen;
  Result<ContainerInfo> info = ReadContainerInfo(path, [&](const ChunkInfo& c) { seen.push_back(c); });
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->lzma2_chunks, 1u);
  EXPECT_EQ(info->stored_chunks, 1u);
  EXPECT_EQ(info->model_chunks, 0u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, ChunkMethod::kLzma2);
  EXPECT_EQ(seen[0].offset, format::kHeaderBytes);
  EXPECT_EQ(seen[0].record_bytes, 6u);
  EXPECT_EQ(seen[1].method, ChunkMethod::kStored);
  EXPECT_EQ(seen[1].original_length, 3u);
  EXPECT_EQ(seen[1].offset, format::kHeaderBytes + 6);
  EXPECT_STREQ(ChunkMethodName(ChunkMethod::kLzma2), "lzma2");
  unlink(path.c_str());
}

TEST(Container, VersionsReadAndRefused) {
  MemorySink sink;  // a writer for version 2 refuses an LZMA2 record
  ContainerHeader v2 = Header(10);
  v2.version = 2;
  ContainerWriter w(&sink, v2);
  ASSERT_TRUE(w.WriteHeader().ok());
  std::vector<uint8_t> coded = {1, 2};
  EXPECT_FALSE(w.WriteChunk(ChunkMethod::kLzma2, 10, coded.data(), coded.size()).ok());

  // A version 2 file holding one anyway (hand-made) is refused by both readers, naming it.
  const std::vector<uint8_t> bytes = WithLzma2(3);
  std::vector<uint8_t> old = bytes;
  old[8] = 2;
  const uint32_t hc = static_cast<uint32_t>(Xxh3(old.data(), 64));
  std::memcpy(&old[64], &hc, 4);
  Status s = ReadSequentially(old);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("unknown coding method 3 for format version 2"), std::string::npos) << s.message();
  const std::string path = WriteTemp(old);
  Result<ContainerInfo> info = ReadContainerInfo(path);
  EXPECT_NE(info.status().message().find("unknown coding method 3 for format version 2"), std::string::npos);
  unlink(path.c_str());

  for (uint16_t version : {1, 4, 0xffff}) {  // versions this build does not know: named
    ContainerHeader h = Header(10);
    h.version = version;
    const std::vector<uint8_t> head = EncodeHeader(h);
    ContainerHeader out;
    Status d = DecodeHeader(head.data(), &out);
    EXPECT_EQ(d.code(), StatusCode::kDataLoss);
    EXPECT_NE(d.message().find("unsupported .boa format version " + std::to_string(version) + " (this build reads versions 2 to 3)"),
              std::string::npos) << d.message();
  }
  // Methods above 3 are unknown in version 3 too.
  std::vector<uint8_t> four = bytes;
  four[format::kHeaderBytes] = 0x04;
  EXPECT_NE(ReadSequentially(four).message().find("unknown coding method 4"), std::string::npos);
}

}  // namespace
}  // namespace boa
