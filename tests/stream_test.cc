// The ends of a .boa stream: the cutter's chunks and content checksum, a written stream read
// back record for record, and a decoded content that differs from the recorded one refused.
#include "common/codec/stream.h"

#include <gtest/gtest.h>

#include <numeric>

namespace boa {
namespace {

std::vector<uint8_t> Counting(size_t n) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), uint8_t{3});
  return v;
}

std::vector<std::vector<uint8_t>> Cut(const std::vector<uint8_t>& data, uint32_t chunk_length, uint64_t* checksum) {
  MemorySource src(data);
  ChunkCutter cutter(&src, chunk_length);
  std::vector<std::vector<uint8_t>> chunks;
  for (;;) {
    std::vector<uint8_t> chunk;
    Result<bool> more = cutter.Next(&chunk);
    EXPECT_TRUE(more.ok());
    if (!*more) break;
    EXPECT_FALSE(chunk.empty());
    chunks.push_back(std::move(chunk));
  }
  EXPECT_TRUE(cutter.ended());
  EXPECT_EQ(cutter.bytes(), data.size());
  *checksum = cutter.content_checksum();
  return chunks;
}

TEST(ChunkCutter, CutsIntoFullChunksAndAShorterLastOne) {
  const std::vector<uint8_t> data = Counting(1000);
  uint64_t sum = 0;
  auto chunks = Cut(data, 300, &sum);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].size(), 300u);
  EXPECT_EQ(chunks[3].size(), 100u);
  std::vector<uint8_t> joined;
  for (auto& c : chunks) joined.insert(joined.end(), c.begin(), c.end());
  EXPECT_EQ(joined, data);
  EXPECT_EQ(sum, Xxh3(data.data(), data.size()));

  EXPECT_EQ(Cut(Counting(600), 300, &sum).size(), 2u);  // an exact multiple: no empty chunk
  EXPECT_TRUE(Cut({}, 300, &sum).empty());
  EXPECT_EQ(sum, Xxh3(nullptr, 0));
}

// Writes `chunks` stored, as a coder that could not shrink them would.
std::vector<uint8_t> WriteStream(const std::vector<std::vector<uint8_t>>& chunks, uint64_t checksum) {
  MemorySink sink;
  ContainerHeader h;
  h.chunk_length = 300;
  StreamWriter w(&sink, h);
  EXPECT_TRUE(w.WriteHeader().ok());
  for (const auto& c : chunks) {
    EncodedChunk e;
    e.method = ChunkMethod::kStored;
    e.original_length = static_cast<uint32_t>(c.size());
    e.payload = c;
    EXPECT_TRUE(w.Add(e).ok());
  }
  EXPECT_TRUE(w.Finish(checksum).ok());
  EXPECT_EQ(w.chunks(), chunks.size());
  EXPECT_EQ(w.stored_chunks(), chunks.size());
  EXPECT_EQ(w.bytes_written(), sink.data.size());
  return sink.data;
}

TEST(Stream, WhatIsWrittenIsReadBackAndItsContentChecked) {
  const std::vector<uint8_t> data = Counting(1000);
  uint64_t sum = 0;
  const auto chunks = Cut(data, 300, &sum);
  const std::vector<uint8_t> file = WriteStream(chunks, sum);

  MemorySource src(file);
  StreamReader reader(&src);
  ContainerHeader h;
  ASSERT_TRUE(reader.ReadHeader(&h).ok());
  EXPECT_EQ(h.chunk_length, 300u);
  DecodedContent content;
  ChunkRecord rec;
  size_t i = 0;
  for (;;) {
    Result<bool> more = reader.Next(&rec);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) break;
    ASSERT_LT(i, chunks.size());
    EXPECT_EQ(rec.payload, chunks[i++]);
    content.Add(rec.payload);
  }
  EXPECT_EQ(content.bytes(), data.size());
  EXPECT_EQ(content.chunks(), chunks.size());
  EXPECT_EQ(reader.bytes_read(), file.size());
  EXPECT_TRUE(reader.CheckContent(content.checksum()).ok());

  const Status wrong = reader.CheckContent(content.checksum() ^ 1);
  EXPECT_EQ(wrong.code(), StatusCode::kDataLoss);
  EXPECT_NE(wrong.message().find("content checksum mismatch"), std::string::npos);
}

}  // namespace
}  // namespace boa
