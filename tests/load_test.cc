// Load against a real boad: 64 clients, each on its own channel, send mixed requests
// (compress then decompress, verify, list, download, upload then delete) for
// BOA_LOAD_SECONDS (default 40). Every output is checked — each compressed stream decodes to
// its input, through boad and, for a quarter of them, in this process — no request may fail
// or stall, boad's resident memory is sampled throughout, and boad drains cleanly at the
// end. Prints a table of the figures (docs/security.md, "Load test"). scripts/tsan.sh runs it
// against a boad built with ThreadSanitizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "common/util/io.h"
#include "rpc/remote_client.h"
#include "testkit/boad_process.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Boad;

enum Op { kRoundTrip, kVerify, kList, kDownload, kUpload, kOps };
constexpr const char* kOpNames[kOps] = {"compress+decompress", "verify", "list models", "download model",
                                        "upload+delete model"};
constexpr int kClients = 64;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// What the clients did, guarded by mu.
struct Tally {
  std::mutex mu;
  std::vector<double> latency[kOps];  // seconds
  uint64_t refused = 0;               // RESOURCE_EXHAUSTED, sent again
  uint64_t bytes_in = 0, bytes_out = 0, checked_locally = 0;
  std::vector<std::string> failures;
  void Done(Op op, double seconds) {
    std::lock_guard<std::mutex> l(mu);
    latency[op].push_back(seconds);
  }
  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    if (failures.size() < 20) failures.push_back(what);
  }
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The model boad serves, as the file uploaded: streams coded by boad decode here too.
    const std::vector<uint8_t> file = SerializeModel(testing::MakeModel(16, 1, 5, 4.0f).weights, WeightType::kF32, "m");
    model_ = ParseModelFile(file).value();
    ASSERT_TRUE(WriteFileAtomic(dir_.path() + "/m.boam", file, true).ok());
    for (int i = 0; i < 4; ++i) {
      const std::string path = dir_.path() + "/u" + std::to_string(i) + ".boam";
      ASSERT_TRUE(WriteFileAtomic(path, SerializeModel(testing::MakeModel(16, 1, 100 + i).weights, WeightType::kF32, "u"),
                                  true).ok());
    }
  }
  // One client's loop until `stop`: a random mix of requests, each output checked.
  void Client(int index, const std::string& address, const std::atomic<bool>& stop, Tally* tally,
              std::atomic<uint64_t>* completed) {
    Result<std::unique_ptr<rpc::RemoteClient>> connected = rpc::RemoteClient::Connect(address, 30);
    if (!connected.ok()) return tally->Fail("client " + std::to_string(index) + ": " + connected.status().message());
    rpc::RemoteClient& c = **connected;
    c.set_deadline(120);  // a request stuck this long is a deadlock
    std::mt19937_64 rng(index);
    std::vector<uint8_t> last_packed;
    const std::string mine = "load-" + std::to_string(index);
    // A request sent again while boad refuses it for load (RESOURCE_EXHAUSTED).
    const auto call = [&](const std::function<Status()>& f) {
      for (;;) {
        Status s = f();
        if (s.code() != StatusCode::kResourceExhausted || stop) return s;
        {
          std::lock_guard<std::mutex> l(tally->mu);
          ++tally->refused;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    };
    while (!stop) {
      const uint64_t pick = rng() % 100;
      const Op op = pick < 45 ? kRoundTrip : pick < 60 ? kVerify : pick < 75 ? kList : pick < 90 ? kDownload : kUpload;
      const auto t0 = Clock::now();
      Status s;
      const std::string what = std::string(kOpNames[op]) + " (client " + std::to_string(index) + ")";
      if (op == kRoundTrip || (op == kVerify && last_packed.empty())) {
        // 0 bytes to 384 KiB, a table of floats or noise, in chunks of 4 to 64 KiB.
        const size_t n = rng() % 8 == 0 ? rng() % 64 : rng() % (384 << 10);
        const std::vector<uint8_t> in = rng() % 2 ? testing::FloatTable(n, rng()) : testing::RandomBytes(n, rng());
        CodecOptions o;
        o.chunk_length = 4096u << (rng() % 5);
        MemorySink packed;
        s = call([&] {
          packed.data.clear();
          MemorySource src(in);
          return c.Compress("m", o, &src, &packed, nullptr, nullptr);
        });
        MemorySink back;
        if (s.ok()) {
          s = call([&] {
            back.data.clear();
            MemorySource src(packed.data);
            return c.Decompress("", &src, &back, nullptr, nullptr);
          });
        }
        if (s.ok() && back.data != in) s = Status::DataLoss("decompressed bytes differ from the input");
        if (s.ok() && rng() % 4 == 0) {
          std::vector<uint8_t> local;
          s = testing::DecompressBytes(model_, packed.data, &local);
          if (s.ok() && local != in) s = Status::DataLoss("decoded in process, the bytes differ from the input");
          std::lock_guard<std::mutex> l(tally->mu);
          ++tally->checked_locally;
        }
        if (s.ok()) {
          std::lock_guard<std::mutex> l(tally->mu);
          tally->bytes_in += in.size();
          tally->bytes_out += packed.data.size();
          last_packed = std::move(packed.data);
        }
      } else if (op == kVerify) {
        s = call([&] {
          MemorySource src(last_packed);
          return c.Verify("", &src, nullptr);
        });
      } else if (op == kList) {
        Result<std::vector<v1::ModelInfo>> models = c.ListModels();
        s = models.status();
        if (s.ok() && std::none_of(models->begin(), models->end(), [](const v1::ModelInfo& m) { return m.name() == "m"; })) {
          s = Status::DataLoss("model m is missing from the list");
        }
      } else if (op == kDownload) {
        s = call([&] {
          MemorySink file;
          return c.DownloadModel("m", &file);  // checked against the model's SHA-256 by the client
        });
      } else {
        uint32_t version = 0;
        s = call([&] {
          Result<v1::ModelInfo> up = c.UploadModel(dir_.path() + "/u" + std::to_string(rng() % 4) + ".boam", mine, 0);
          if (up.ok()) version = up->version();
          return up.status();
        });
        if (s.ok()) s = c.DeleteModel(mine + ":" + std::to_string(version)).status();
      }
      if (!s.ok()) {
        if (!stop) tally->Fail(what + ": " + s.message());
        continue;
      }
      tally->Done(op, Seconds(Clock::now() - t0));
      ++*completed;
    }
  }

  testing::TempDir dir_{"load_test"};
  LoadedModel model_;
};

TEST_F(LoadTest, SixtyFourClientsOfMixedRequestsLoseNothing) {
  const char* env = std::getenv("BOA_LOAD_SECONDS");
  const double seconds = env ? std::atof(env) : 40;
  std::ofstream(dir_.path() + "/boad.yaml") << "queue_limit: 256\nmax_requests_per_caller: 256\n";
  // BOA_LOAD_BOAD: another boad binary (scripts/tsan.sh: one built with ThreadSanitizer).
  const char* other = std::getenv("BOA_LOAD_BOAD");
  Boad b(other ? other : BOAD, dir_.path() + "/store", {"--config", dir_.path() + "/boad.yaml"});
  ASSERT_FALSE(b.address().empty()) << "boad did not start";
  {
    auto c = b.Connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->UploadModel(dir_.path() + "/m.boam", "m", 0).ok());
    ASSERT_TRUE(c->LoadModel("m").ok());
  }
  const uint64_t idle_kb = testing::ProcStatus(b.pid(), "VmRSS");
  Tally tally;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> completed{0};
  std::vector<std::thread> clients;
  const auto t0 = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { Client(i, b.address(), stop, &tally, &completed); });
  }
  // Sampled while they run; no progress for 60 s is a deadlock.
  uint64_t rss_max_kb = 0, threads_max = 0, last_completed = 0;
  auto last_progress = Clock::now();
  bool stalled = false;
  while (Seconds(Clock::now() - t0) < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    rss_max_kb = std::max(rss_max_kb, testing::ProcStatus(b.pid(), "VmRSS"));
    threads_max = std::max(threads_max, testing::ProcStatus(b.pid(), "Threads"));
    if (completed != last_completed) {
      last_completed = completed;
      last_progress = Clock::now();
    } else if (Seconds(Clock::now() - last_progress) > 60) {
      stalled = true;
      break;
    }
  }
  stop = true;
  for (std::thread& t : clients) t.join();
  const double elapsed = Seconds(Clock::now() - t0);
  const uint64_t peak_kb = testing::ProcStatus(b.pid(), "VmHWM");

  std::printf("\n| request | done | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n");
  uint64_t total = 0;
  for (int op = 0; op < kOps; ++op) {
    const std::vector<double>& l = tally.latency[op];
    total += l.size();
    std::printf("| %s | %zu | %.1f | %.1f | %.1f |\n", kOpNames[op], l.size(), 1e3 * Percentile(l, 0.5),
                1e3 * Percentile(l, 0.99), l.empty() ? 0.0 : 1e3 * *std::max_element(l.begin(), l.end()));
  }
  std::printf("\n%d clients, %.0f s: %llu requests (%.0f/s), %.1f MB compressed and checked (%llu streams also decoded "
              "in process), %llu refusals for load sent again, %zu failures\n",
              kClients, elapsed, static_cast<unsigned long long>(total), total / elapsed, tally.bytes_in / 1e6,
              static_cast<unsigned long long>(tally.checked_locally), static_cast<unsigned long long>(tally.refused),
              tally.failures.size());
  std::printf("boad RSS: %.0f MB idle with the model loaded, %.0f MB highest sampled, %.0f MB peak (VmHWM); "
              "%llu threads at most\n\n",
              idle_kb / 1024.0, rss_max_kb / 1024.0, peak_kb / 1024.0, static_cast<unsigned long long>(threads_max));

  EXPECT_FALSE(stalled) << "no request completed for 60 s: deadlock";
  for (const std::string& f : tally.failures) ADD_FAILURE() << f;
  for (int op = 0; op < kOps; ++op) EXPECT_GT(tally.latency[op].size(), 0u) << kOpNames[op] << " never ran";
  // Bounded: what the requests in flight need, not what they sent over the run.
  EXPECT_LT(peak_kb, idle_kb + (1024u << 10)) << "boad's peak RSS grew by more than 1 GiB";
  auto c = b.Connect();
  ASSERT_TRUE(c);
  EXPECT_TRUE(testing::WaitUntil([&] {
    Result<v1::ServerInfoResponse> info = c->Info();
    return info.ok() && info->open_requests() == 0;
  })) << "requests are still open after every client finished";
  EXPECT_EQ(b.Terminate(), 0) << "boad did not drain and exit cleanly (under ThreadSanitizer: a race was reported)";
}

}  // namespace
}  // namespace boa
