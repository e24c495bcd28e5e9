// The daemon's scheduler in process: chunks coded through it equal the in-process codec's
// records whatever else shares the batch; round robin and priority order admission;
// cancelling a request frees its lanes at once.
#include "server/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "testkit/test_util.h"

namespace boa::server {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::vector<uint8_t>> Chunks(const std::vector<uint8_t>& data, size_t len) {
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < data.size(); i += len) out.emplace_back(data.begin() + i, data.begin() + std::min(data.size(), i + len));
  return out;
}

// The records the in-process codec writes for `data`.
std::vector<ChunkRecord> LocalRecords(const LoadedModel& m, const std::vector<uint8_t>& data, uint32_t len) {
  CodecOptions o;
  o.chunk_length = len;
  std::vector<uint8_t> packed;
  EXPECT_TRUE(testing::CompressBytes(m, data, &packed, o).ok());
  MemorySource src(packed);
  ContainerReader reader(&src);
  ContainerHeader h;
  EXPECT_TRUE(reader.ReadHeader(&h).ok());
  std::vector<ChunkRecord> out;
  for (;;) {
    ChunkRecord r;
    Result<bool> more = reader.Next(&r);
    EXPECT_TRUE(more.ok());
    if (!more.ok() || !*more) break;
    out.push_back(std::move(r));
  }
  return out;
}

ChunkScheduler::Options SmallOptions(int threads, int lanes) {
  ChunkScheduler::Options o;
  o.threads = threads;
  o.lanes_per_thread = lanes;
  o.poll = std::chrono::milliseconds(5);
  return o;
}

std::shared_ptr<const engine::Engine> MakeEngine(const LoadedModel& m) {
  return engine::Engine::Create(m.weights, engine::Backend::kAuto).value();
}

TEST(Scheduler, EncodesAndDecodesLikeTheCodecWhateverSharesTheBatch) {
  LoadedModel m = testing::MakeModel(16, 1, 3, 4.0f);
  const uint32_t len = 1000;
  std::vector<uint8_t> data = testing::SampleFromModel(m, 9001, 4);  // the last chunk is 1 byte
  std::vector<ChunkRecord> want = LocalRecords(m, data, len);
  for (int threads : {1, 2}) {
    ChunkScheduler sched(MakeEngine(m), SmallOptions(threads, 5));
    // Noise: other requests coding other data at the same time.
    std::atomic<bool> stop{false};
    std::vector<std::thread> noise;
    for (int k = 0; k < 3; ++k) {
      noise.emplace_back([&, k] {
        auto req = sched.Open(Priority::kBulk, nullptr);
        std::vector<uint8_t> other = testing::RandomBytes(700 + 97 * k, 50 + k);
        while (!stop) {
          ASSERT_TRUE(req->SubmitEncode(other).ok());
          ChunkResult r;
          ASSERT_TRUE(req->Next(&r).ok());
        }
      });
    }
    auto req = sched.Open(Priority::kBulk, nullptr);
    std::vector<std::vector<uint8_t>> chunks = Chunks(data, len);
    for (auto& c : chunks) ASSERT_TRUE(req->SubmitEncode(c).ok());
    for (size_t i = 0; i < chunks.size(); ++i) {
      ChunkResult r;
      ASSERT_TRUE(req->Next(&r).ok());
      EXPECT_EQ(r.encoded.method, want[i].method) << "chunk " << i;
      EXPECT_EQ(r.encoded.payload, want[i].payload) << "chunk " << i << ", " << threads << " threads";
    }
    for (auto rec : want) ASSERT_TRUE(req->SubmitDecode(rec).ok());
    for (size_t i = 0; i < chunks.size(); ++i) {
      ChunkResult r;
      ASSERT_TRUE(req->Next(&r).ok());
      EXPECT_EQ(r.decoded, chunks[i]) << "chunk " << i;
    }
    stop = true;
    for (auto& t : noise) t.join();
  }
}

TEST(Scheduler, CorruptChunkFailsOnlyItsRequest) {
  LoadedModel m = testing::MakeModel(16, 1, 3, 4.0f);
  std::vector<uint8_t> data = testing::SampleFromModel(m, 3000, 4);
  std::vector<ChunkRecord> recs = LocalRecords(m, data, 3000);
  ASSERT_EQ(recs.size(), 1u);
  ASSERT_EQ(recs[0].method, ChunkMethod::kModel);
  ChunkScheduler sched(MakeEngine(m), SmallOptions(1, 4));
  auto good = sched.Open(Priority::kBulk, nullptr);
  auto bad = sched.Open(Priority::kBulk, nullptr);
  ChunkRecord broken = recs[0];
  broken.payload.resize(broken.payload.size() / 2);  // the code runs out: garbage, then failure
  for (size_t i = 1; i < broken.payload.size(); ++i) broken.payload[i] ^= 0x5a;
  ASSERT_TRUE(good->SubmitDecode(recs[0]).ok());
  ASSERT_TRUE(bad->SubmitDecode(broken).ok());
  ChunkResult r;
  Status s = bad->Next(&r);
  // A damaged range code either fails to decode or decodes to other bytes (the container's
  // checksum catches those); it never disturbs the other request.
  if (s.ok()) {
    EXPECT_NE(r.decoded, data);
  }
  ASSERT_TRUE(good->Next(&r).ok());
  EXPECT_EQ(r.decoded, data);
}

TEST(Scheduler, RoundRobinLetsASmallRequestPassALargeOne) {
  LoadedModel m = testing::MakeModel(16, 1, 3);
  ChunkScheduler sched(MakeEngine(m), SmallOptions(1, 1));
  auto large = sched.Open(Priority::kBulk, nullptr);
  auto small = sched.Open(Priority::kBulk, nullptr);
  const std::vector<uint8_t> chunk = testing::RandomBytes(20000, 9);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(large->SubmitEncode(chunk).ok());
  ASSERT_TRUE(small->SubmitEncode(chunk).ok());
  ChunkResult r;
  ASSERT_TRUE(small->Next(&r).ok());
  // One lane: the small request's chunk was admitted second or third, so at most two of the
  // large request's twelve have finished (one more may have started since).
  EXPECT_GE(sched.stats().queued_chunks, 8u);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(large->Next(&r).ok());
}

TEST(Scheduler, OnlinePriorityGoesFirst) {
  LoadedModel m = testing::MakeModel(16, 1, 3);
  ChunkScheduler sched(MakeEngine(m), SmallOptions(1, 1));
  auto bulk1 = sched.Open(Priority::kBulk, nullptr);
  auto bulk2 = sched.Open(Priority::kBulk, nullptr);
  auto online = sched.Open(Priority::kOnline, nullptr);
  const std::vector<uint8_t> chunk = testing::RandomBytes(20000, 9);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(bulk1->SubmitEncode(chunk).ok());
    ASSERT_TRUE(bulk2->SubmitEncode(chunk).ok());
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(online->SubmitEncode(chunk).ok());
  ChunkResult r;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(online->Next(&r).ok());
  // The three online chunks ran right after the bulk chunk already in the lane (or two).
  EXPECT_GE(sched.stats().queued_chunks, 9u);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(bulk1->Next(&r).ok());
    ASSERT_TRUE(bulk2->Next(&r).ok());
  }
}

TEST(Scheduler, CancelFreesLanesAtOnce) {
  LoadedModel m = testing::MakeModel(64, 2, 3);
  ChunkScheduler sched(MakeEngine(m), SmallOptions(1, 8));
  auto req = sched.Open(Priority::kBulk, nullptr);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(req->SubmitEncode(testing::RandomBytes(200000, i)).ok());
  auto t0 = Clock::now();
  while (sched.stats().lanes_in_use == 0 && Clock::now() - t0 < std::chrono::seconds(5)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_GT(sched.stats().lanes_in_use, 0u);
  req->Cancel(Status::Cancelled("test"));
  t0 = Clock::now();
  while (sched.stats().lanes_in_use > 0 && Clock::now() - t0 < std::chrono::seconds(5)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(sched.stats().lanes_in_use, 0u);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500)) << "lanes are freed between steps";
  EXPECT_EQ(sched.stats().queued_chunks, 0u);
  ChunkResult r;
  EXPECT_EQ(req->Next(&r).code(), StatusCode::kCancelled);
}

TEST(Scheduler, ModelsShareTheDeviceLanes) {
  LoadedModel a = testing::MakeModel(16, 1, 3), b = testing::MakeModel(16, 1, 4);
  ChunkScheduler::Options o = SmallOptions(1, 4);
  o.device_lanes = std::make_shared<LaneBudget>(3);
  ChunkScheduler sa(MakeEngine(a), o), sb(MakeEngine(b), o);
  auto ra = sa.Open(Priority::kBulk, nullptr);
  auto rb = sb.Open(Priority::kBulk, nullptr);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ra->SubmitEncode(testing::RandomBytes(30000, i)).ok());
    ASSERT_TRUE(rb->SubmitEncode(testing::RandomBytes(30000, 10 + i)).ok());
  }
  std::atomic<bool> done{false};
  uint32_t most = 0;
  std::thread watch([&] {
    while (!done) {
      most = std::max(most, sa.stats().lanes_in_use + sb.stats().lanes_in_use);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  ChunkResult r;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ra->Next(&r).ok());
    ASSERT_TRUE(rb->Next(&r).ok());
  }
  done = true;
  watch.join();
  EXPECT_LE(most, 3u) << "never more chunks running than the device has lanes";
  EXPECT_GE(most, 2u);
  // A lane goes back at the step after its chunk's result was handed over.
  const auto t0 = Clock::now();
  while (o.device_lanes->free() != 3u && Clock::now() - t0 < std::chrono::seconds(2)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(o.device_lanes->free(), 3u) << "every lane given back";
}

TEST(Scheduler, CancellationCheckIsPolled) {
  LoadedModel m = testing::MakeModel(64, 2, 3);
  ChunkScheduler sched(MakeEngine(m), SmallOptions(1, 2));
  std::atomic<bool> gone{false};
  auto req = sched.Open(Priority::kBulk, [&] { return gone ? Status::DeadlineExceeded("deadline") : Status::Ok(); });
  ASSERT_TRUE(req->SubmitEncode(testing::RandomBytes(300000, 1)).ok());
  gone = true;
  ChunkResult r;
  EXPECT_EQ(req->Next(&r).code(), StatusCode::kDeadlineExceeded);
}

TEST(Scheduler, WindowBoundsWhatARequestHolds) {
  LoadedModel m = testing::MakeModel(16, 1, 3);
  ChunkScheduler::Options o = SmallOptions(1, 2);
  o.window_bytes = 10000;  // two 2000-byte chunks cost 8000 (input + output)
  ChunkScheduler sched(MakeEngine(m), o);
  auto req = sched.Open(Priority::kBulk, nullptr);
  const std::vector<uint8_t> chunk = testing::RandomBytes(2000, 1);
  ASSERT_TRUE(req->SubmitEncode(chunk).ok());
  ASSERT_TRUE(req->SubmitEncode(chunk).ok());
  std::atomic<bool> third{false};
  std::thread t([&] {
    EXPECT_TRUE(req->SubmitEncode(chunk).ok());
    third = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(third) << "the third chunk must wait until a result is taken";
  ChunkResult r;
  ASSERT_TRUE(req->Next(&r).ok());
  t.join();
  EXPECT_TRUE(third);
  ASSERT_TRUE(req->Next(&r).ok());
  ASSERT_TRUE(req->Next(&r).ok());
}

}  // namespace
}  // namespace boa::server
