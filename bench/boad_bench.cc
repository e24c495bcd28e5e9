// boad-bench: the daemon's batching efficiency and latency under load. Starts a boad on a
// free loopback port with a scratch model store and prints two tables (docs/server.md):
//  - aggregate MB/s of 32 concurrent 256 KiB compress requests against one 8 MiB request;
//  - p50/p99 latency of a 64 KiB compress request on an idle server and while a 100 MiB
//    bulk request runs, with the small requests at bulk and at online priority.
// With --replicas: three boads of one step thread each on a shared store, and the aggregate
// MB/s of one file compressed in parts (--parallel) over 1, 2 and 3 of them.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "rpc/parallel.h"
#include "rpc/remote_client.h"
#include "server/metrics.h"
#include "testkit/boad_process.h"
#include "testkit/http_get.h"
#include "testkit/test_util.h"

namespace boa::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// `total` bytes cycling through `pattern`, ending early with CANCELLED once *stop is set.
class RepeatingSource final : public ByteSource {
 public:
  RepeatingSource(const std::vector<uint8_t>& pattern, uint64_t total, const std::atomic<bool>* stop)
      : pattern_(pattern), total_(total), stop_(stop) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    if (stop_ && *stop_) return Status::Cancelled("benchmark done with the bulk request");
    size_t got = 0;
    while (got < n && pos_ < total_) {
      size_t off = pos_ % pattern_.size();
      size_t take = std::min<uint64_t>({n - got, pattern_.size() - off, total_ - pos_});
      std::memcpy(buf + got, pattern_.data() + off, take);
      got += take;
      pos_ += take;
    }
    return got;
  }
  int64_t SizeHint() const override { return static_cast<int64_t>(total_); }
  const std::string& name() const override { return name_; }

 private:
  const std::vector<uint8_t>& pattern_;
  uint64_t total_, pos_ = 0;
  const std::atomic<bool>* stop_;
  std::string name_ = "<generated>";
};

Status CompressBytes(rpc::RemoteClient& c, const std::vector<uint8_t>& data, size_t n) {
  RepeatingSource src(data, n, nullptr);
  CountingSink sink;
  return c.Compress("bench", CodecOptions(), &src, &sink, nullptr, nullptr);
}

struct Percentiles {
  double p50 = 0, p99 = 0;
};

Percentiles Latencies(rpc::RemoteClient& c, const std::vector<uint8_t>& data, int samples) {
  std::vector<double> t;
  for (int i = 0; i < samples; ++i) {
    auto t0 = Clock::now();
    Status s = CompressBytes(c, data, 64 << 10);
    if (!s.ok()) std::fprintf(stderr, "boad-bench: %s\n", s.message().c_str());
    t.push_back(Since(t0));
  }
  std::sort(t.begin(), t.end());
  Percentiles p;
  p.p50 = t[t.size() / 2];
  p.p99 = t[std::min(t.size() - 1, static_cast<size_t>(0.99 * t.size()))];
  return p;
}

// A sample's value in a scrape ("name value" on its own line), or -1.
double Sample(const std::string& scrape, const std::string& name) {
  const size_t at = scrape.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(scrape.c_str() + at + name.size() + 2);
}

// What the metrics cost the hot path: the bookkeeping of one model step and one chunk, timed
// here on the same code boad runs, against the mean model step boad itself measured.
void PrintMetricsCost(const std::string& metrics_address) {
  const std::string scrape = testing::HttpGet(metrics_address, "/metrics").body;
  const double step_sum = Sample(scrape, R"(boad_model_step_duration_seconds_sum{device="cpu",model="bench"})");
  const double steps = Sample(scrape, R"(boad_model_step_duration_seconds_count{device="cpu",model="bench"})");
  const double chunks = Sample(scrape, R"(boad_chunks_total{device="cpu",kind="encode",model="bench"})");
  server::Metrics m;
  std::shared_ptr<server::SchedulerObserver> o = m.ForModel("cost", "cpu");
  constexpr int kCalls = 1000000;
  auto t0 = Clock::now();
  for (int i = 0; i < kCalls; ++i) {
    const auto start = Clock::now();  // as the scheduler times a step
    o->OnStep(64, 128, std::chrono::duration<double>(Clock::now() - start).count());
  }
  const double per_step = Since(t0) / kCalls;
  t0 = Clock::now();
  for (int i = 0; i < kCalls; ++i) {
    o->OnAdmitted(0.001);
    o->OnChunkDone(false, 0.01);
  }
  const double per_chunk = Since(t0) / kCalls;
  if (steps <= 0 || step_sum <= 0) return;
  const double mean_step = step_sum / steps;
  const double overhead = (per_step * steps + per_chunk * chunks) / step_sum;
  std::printf("\n| metrics bookkeeping | ns |\n|---|---:|\n");
  std::printf("| per model step (two clock reads, 3 counters, 1 histogram) | %.0f |\n", per_step * 1e9);
  std::printf("| per chunk (2 histograms, 1 counter) | %.0f |\n", per_chunk * 1e9);
  std::printf("| mean model step measured by boad | %.0f |\n", mean_step * 1e9);
  std::printf("| bookkeeping / model time, this run | %.4f %% |\n", 100 * overhead);
}

// Writes a random model of the bench's shape; its path, or "" on failure.
std::string WriteBenchModel(const std::string& dir, uint32_t d_model, uint32_t layers) {
  const std::string path = dir + "/bench.boam";
  ModelWeights w = InitRandomModel(ModelConfig::Default(d_model, layers), 1);
  return WriteFileAtomic(path, SerializeModel(w, WeightType::kF32, "bench"), true).ok() ? path : "";
}

// One file in parts over 1, 2 and 3 replicas (one step thread each, one shared store), as
// `boa-client compress --parallel` sends it; medians over `rounds` interleaved rounds.
int Replicas(const std::string& boad_path, uint32_t d_model, uint32_t layers, int rounds) {
  testing::TempDir dir("boad_bench");
  const std::string config = dir.path() + "/shared.yaml";
  const std::string text = "shared_model_dir: true\nmodel_rescan_seconds: 0\nthreads: 1\n";
  if (!WriteFileAtomic(config, std::vector<uint8_t>(text.begin(), text.end()), true).ok()) return 1;
  std::vector<std::unique_ptr<testing::Boad>> boads;
  std::vector<std::string> addresses;
  for (int i = 0; i < 3; ++i) {
    boads.push_back(std::make_unique<testing::Boad>(
        boad_path, dir.path() + "/models",
        std::vector<std::string>{"--config", config, "--jobs-dir", dir.path() + "/jobs" + std::to_string(i)}));
    if (boads.back()->address().empty()) {
      std::fprintf(stderr, "boad-bench: cannot start replica %d of %s\n", i, boad_path.c_str());
      return 1;
    }
    addresses.push_back(boads.back()->address());
  }
  const std::string model_path = WriteBenchModel(dir.path(), d_model, layers);
  auto first = boads[0]->Connect();
  if (model_path.empty() || !first || !first->UploadModel(model_path, "bench", 0).ok()) {
    std::fprintf(stderr, "boad-bench: cannot register the model\n");
    return 1;
  }
  for (auto& b : boads) {
    auto c = b->Connect();
    if (!c || !c->LoadModel("bench").ok()) {
      std::fprintf(stderr, "boad-bench: a replica cannot load the model\n");
      return 1;
    }
  }
  const size_t bytes = d_model >= 64 ? (3u << 20) : (8u << 20);
  const std::vector<uint8_t> data = testing::FloatTable(bytes / 4, 1);
  rpc::ParallelOptions p;
  p.part_chunks = 8;  // 512 KiB parts of 64 KiB chunks: enough parts to keep 3 replicas busy
  struct Row {
    int replicas, streams;
    std::vector<double> mbps;
  };
  std::vector<Row> rows = {{1, 1, {}}, {1, 2, {}}, {2, 4, {}}, {3, 6, {}}};
  for (int r = 0; r < rounds; ++r) {
    for (Row& row : rows) {
      std::string target = "ipv4:";
      for (int i = 0; i < row.replicas; ++i) target += (i ? "," : "") + addresses[i];
      auto c = rpc::RemoteClient::Connect(target);
      if (!c.ok()) return 1;
      MemorySource src(data);
      CountingSink sink;
      p.streams = row.streams;
      const auto t0 = Clock::now();
      Status s = row.streams == 1 ? (*c)->Compress("bench", CodecOptions(), &src, &sink, nullptr, nullptr)
                                  : rpc::ParallelCompress(c->get(), "bench", CodecOptions(), p, &src, &sink, nullptr, nullptr);
      if (!s.ok()) {
        std::fprintf(stderr, "boad-bench: %s\n", s.message().c_str());
        return 1;
      }
      row.mbps.push_back(data.size() / Since(t0) / 1e6);
    }
  }
  std::printf("# boad-bench --replicas: d_model %u x %u, %.1f MiB of float rows, replicas of 1 step thread each on one\n"
              "# shared store, parts of %u x 64 KiB chunks; median of %d rounds\n\n",
              d_model, layers, bytes / 1048576.0, p.part_chunks, rounds);
  std::printf("| replicas | requests at once | MB/s | vs 1 replica, 1 request |\n|---:|---:|---:|---:|\n");
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double base = median(rows[0].mbps);
  for (const Row& row : rows) {
    const double m = median(row.mbps);
    std::printf("| %d | %d%s | %.3f | %.2fx |\n", row.replicas, row.streams, row.streams == 1 ? " (no --parallel)" : "", m,
                m / base);
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::string boad_path = BOAD;
  uint32_t d_model = 64, layers = 2;
  int samples = 15, rounds = 3;
  bool metrics = false, replicas = false;
  std::string devices;  // boad's --devices (empty: its default, the CPU)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      d_model = 16;
      layers = 1;
      samples = 5;
      rounds = 1;
    } else if (a == "--replicas") {
      replicas = true;
    } else if (a == "--boad" && i + 1 < argc) {
      boad_path = argv[++i];
    } else if (a == "--metrics") {
      metrics = true;
    } else if (a == "--devices" && i + 1 < argc) {
      devices = argv[++i];
    } else {
      std::fprintf(stderr, "usage: boad-bench [--quick] [--metrics | --replicas] [--boad PATH] [--devices LIST]\n");
      return 2;
    }
  }
  if (replicas) return Replicas(boad_path, d_model, layers, rounds);
  testing::TempDir dir("boad_bench");
  std::vector<std::string> flags;
  if (metrics) flags = {"--metrics-listen", "127.0.0.1:0"};
  if (!devices.empty()) flags.insert(flags.end(), {"--devices", devices});
  testing::Boad boad(boad_path, dir.path() + "/models", flags);
  auto c = boad.Connect();
  if (!c || (metrics && boad.metrics_address().empty())) {
    std::fprintf(stderr, "boad-bench: cannot start or reach %s\n", boad_path.c_str());
    return 1;
  }
  // With --metrics, /metrics is scraped every second for the whole run (15 s is usual).
  std::atomic<bool> done{false};
  std::thread scraper;
  if (metrics) {
    scraper = std::thread([&] {
      while (!done) {
        testing::HttpGet(boad.metrics_address(), "/metrics");
        for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  struct JoinScraper {
    std::atomic<bool>& done;
    std::thread& t;
    ~JoinScraper() {
      done = true;
      if (t.joinable()) t.join();
    }
  } join_scraper{done, scraper};
  const std::string model_path = WriteBenchModel(dir.path(), d_model, layers);
  if (model_path.empty() || !c->UploadModel(model_path, "bench", 0).ok() || !c->LoadModel("bench").ok()) {
    std::fprintf(stderr, "boad-bench: cannot register the model\n");
    return 1;
  }
  const std::vector<uint8_t> data = testing::FloatTable(8 << 20, 1);
  std::string where;
  const Result<v1::ServerInfoResponse> info = c->Info();
  if (!info.ok()) {
    std::fprintf(stderr, "boad-bench: ServerInfo: %s\n", info.status().message().c_str());
    return 1;
  }
  for (const auto& d : info->device_info()) {
    where += (where.empty() ? "" : ", ") + d.description() + ": " + std::to_string(d.threads()) + " threads x " +
             std::to_string(d.lanes()) + " lanes";
  }
  std::printf("# boad-bench: d_model %u x %u, boad on %s%s\n\n", d_model, layers, where.c_str(),
              metrics ? ", metrics on and scraped every second" : "");

  // Batching efficiency.
  auto t0 = Clock::now();
  Status s = CompressBytes(*c, data, 8 << 20);
  const double one = (8 << 20) / Since(t0) / 1e6;
  if (!s.ok()) std::fprintf(stderr, "boad-bench: %s\n", s.message().c_str());
  t0 = Clock::now();
  std::vector<std::thread> clients;
  std::atomic<int> failed{0};
  for (int k = 0; k < 32; ++k) {
    clients.emplace_back([&, k] {
      auto ck = boad.Connect();
      std::vector<uint8_t> part(data.begin() + k * (256 << 10), data.begin() + (k + 1) * (256 << 10));
      if (!ck || !CompressBytes(*ck, part, part.size()).ok()) ++failed;
    });
  }
  for (auto& t : clients) t.join();
  const double many = (8 << 20) / Since(t0) / 1e6;
  std::printf("| workload | MB/s |\n|---|---:|\n");
  std::printf("| one 8 MiB compress request | %.3f |\n", one);
  std::printf("| 32 concurrent 256 KiB compress requests (aggregate) | %.3f |\n", many);
  std::printf("| ratio (target >= 0.9) | %.2f |\n\n", many / one);
  if (failed) std::printf("(%d of the 32 requests failed)\n\n", failed.load());

  // Latency of a small request under a bulk load.
  std::vector<uint8_t> small(data.begin(), data.begin() + (64 << 10));
  Percentiles idle = Latencies(*c, small, samples);
  std::atomic<bool> stop{false};
  std::thread bulk([&] {
    auto cb = boad.Connect();
    RepeatingSource src(data, 100ull << 20, &stop);
    CountingSink sink;
    Status b = cb->Compress("bench", CodecOptions(), &src, &sink, nullptr, nullptr);
    if (!b.ok() && b.code() != StatusCode::kCancelled) std::fprintf(stderr, "boad-bench: bulk: %s\n", b.message().c_str());
  });
  auto t1 = Clock::now();
  while (c->Info()->lanes_in_use() < 8 && Since(t1) < 30) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Percentiles as_bulk = Latencies(*c, small, samples);
  c->set_online_priority(true);
  Percentiles as_online = Latencies(*c, small, samples);
  stop = true;
  bulk.join();
  std::printf("| 64 KiB compress request (%d samples) | p50 s | p99 s |\n|---|---:|---:|\n", samples);
  std::printf("| idle server | %.3f | %.3f |\n", idle.p50, idle.p99);
  std::printf("| during a 100 MiB bulk request, bulk priority | %.3f | %.3f |\n", as_bulk.p50, as_bulk.p99);
  std::printf("| during a 100 MiB bulk request, online priority | %.3f | %.3f |\n", as_online.p50, as_online.p99);
  if (metrics) PrintMetricsCost(boad.metrics_address());
  return 0;
}

}  // namespace
}  // namespace boa::bench

int main(int argc, char** argv) { return boa::bench::Main(argc, argv); }
