// boad's metrics: requests, bytes, rejections and scheduler steps are counted under their
// labels, the server's state is read at scrape time, /metrics answers over HTTP, and
// promtool (Prometheus's own linter) accepts the exposition.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "testkit/http_get.h"
#include "testkit/test_util.h"

namespace boa::server {
namespace {

bool Has(const std::string& scrape, const std::string& line) {
  return scrape.find("\n" + line + "\n") != std::string::npos;
}

// promtool's verdict on an exposition: "" if clean, else what it said.
std::string Promtool(const std::string& exposition) {
  testing::TempDir dir("metrics_test");
  const std::string path = dir.path() + "/scrape.txt";
  std::ofstream(path) << exposition;
  FILE* p = popen(("promtool check metrics < '" + path + "' 2>&1").c_str(), "r");
  if (!p) return "cannot run promtool";
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  return rc == 0 ? "" : "promtool (exit " + std::to_string(rc) + "): " + out;
}

TEST(Metrics, RequestsBytesAndFailuresAreCountedByLabel) {
  Metrics m;
  RequestRecord r;
  r.op = "Compress";
  r.model = "jets";
  r.raw_bytes = 1000;
  r.coded_bytes = 250;
  r.seconds = 0.5;
  m.RequestFinished(r);
  m.RequestFinished(r);
  r.op = "Verify";
  r.code = "DATA_LOSS";
  m.RequestFinished(r);
  r.op = "Compress";  // a model file damaged on the server: not data that failed its checks
  r.raw_bytes = r.coded_bytes = 0;
  m.RequestFinished(r);
  r.code = "RESOURCE_EXHAUSTED";  // refused before any work: counted, no duration
  r.refused = true;
  m.RequestFinished(r);
  m.Rejected(Rejection::kQueueFull);
  const std::string s = m.Scrape();
  EXPECT_TRUE(Has(s, R"(boad_requests_total{code="RESOURCE_EXHAUSTED",model="jets",op="Compress"} 1)")) << s;
  EXPECT_FALSE(s.find(R"(boad_data_loss_total{op="Compress"})") != std::string::npos) << s;
  EXPECT_TRUE(Has(s, R"(boad_requests_total{code="OK",model="jets",op="Compress"} 2)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_raw_bytes_total{model="jets",op="Compress"} 2000)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_compressed_bytes_total{model="jets",op="Compress"} 500)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_data_loss_total{op="Verify"} 1)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_rejected_requests_total{reason="queue_full"} 1)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_rejected_requests_total{reason="draining"} 0)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_request_compression_ratio_sum{op="Compress"} 8)")) << s;  // two requests of ratio 4
  EXPECT_TRUE(Has(s, R"(boad_request_duration_seconds_count{op="Compress"} 3)")) << s;  // not the refused one
  EXPECT_EQ(Promtool(s), "");
}

TEST(Metrics, SchedulerStepsAndChunksPerModel) {
  Metrics m;
  std::shared_ptr<SchedulerObserver> o = m.ForModel("jets", "cuda:0");
  o->OnStep(3, 64, 0.001);
  o->OnStep(64, 64, 0.002);
  o->OnAdmitted(0.01);
  o->OnChunkDone(false, 0.2);
  o->OnChunkDone(true, 0.3);
  const std::string s = m.Scrape();
  EXPECT_TRUE(Has(s, R"(boad_model_steps_total{device="cuda:0",model="jets"} 2)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_model_step_lanes_total{device="cuda:0",model="jets"} 67)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_model_step_lane_capacity_total{device="cuda:0",model="jets"} 128)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_chunks_total{device="cuda:0",kind="encode",model="jets"} 1)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_chunks_total{device="cuda:0",kind="decode",model="jets"} 1)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_queue_wait_seconds_count{device="cuda:0",model="jets"} 1)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_chunk_latency_seconds_count{device="cuda:0",model="jets"} 2)")) << s;
  EXPECT_EQ(Promtool(s), "");
}

TEST(Metrics, StateAndProcessAreReadAtScrapeTime) {
  Metrics m;
  int scrapes = 0;
  m.SetStateSource([&] {
    ServerState st;
    st.queued_chunks = 7 + scrapes++;
    DeviceUsage gpu, cpu;
    gpu.name = "cuda:0";
    gpu.lanes = 4096;
    gpu.lanes_busy = 1000;
    gpu.memory_budget = 64ull << 30;
    gpu.resident_bytes = 3ull << 30;
    gpu.models = 2;
    cpu.name = "cpu";
    cpu.lanes = 256;
    cpu.lanes_busy = 6;
    st.devices = {gpu, cpu};
    st.jobs_by_state["running"] = 1;
    return st;
  });
  std::string s = m.Scrape();
  EXPECT_TRUE(Has(s, "boad_queued_chunks 7")) << s;
  EXPECT_TRUE(Has(s, R"(boad_lanes{device="cpu",state="idle"} 250)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_lanes{device="cuda:0",state="busy"} 1000)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_lanes{device="cuda:0",state="idle"} 3096)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_models_loaded{device="cuda:0"} 2)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_models_loaded{device="cpu"} 0)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_model_memory_bytes{device="cuda:0"} 3221225472)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_model_memory_budget_bytes{device="cuda:0"} 68719476736)")) << s;
  EXPECT_TRUE(Has(s, R"(boad_training_jobs{state="running"} 1)")) << s;
  EXPECT_TRUE(Has(s, "boad_queued_chunks 8") || Has(m.Scrape(), "boad_queued_chunks 8"));
  EXPECT_NE(s.find("process_resident_memory_bytes "), std::string::npos) << s;
  EXPECT_NE(s.find("process_open_fds "), std::string::npos) << s;
  EXPECT_NE(s.find(R"(boad_build_info{version=")"), std::string::npos) << s;
  EXPECT_EQ(Promtool(s), "");
  m.SetStateSource(nullptr);
  EXPECT_EQ(m.Scrape().find("boad_queued_chunks"), std::string::npos);
}

TEST(Metrics, ServesMetricsOverHttpAndNothingElse) {
  Metrics m;
  Result<std::string> where = m.Serve("127.0.0.1:0");
  ASSERT_TRUE(where.ok()) << where.status().message();
  testing::HttpReply ok = testing::HttpGet(*where, "/metrics");
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("boad_build_info"), std::string::npos) << ok.body;
  EXPECT_EQ(testing::HttpGet(*where, "/").status, 404);
  EXPECT_EQ(testing::HttpGet(*where, "/metrics/../etc/passwd").status, 404);
  EXPECT_EQ(testing::HttpGet(*where, "/" + std::string(10000, 'a')).status, 400);  // over the request bound
  Metrics other;
  Result<std::string> taken = other.Serve(*where);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.status().message().find("metrics_listen"), std::string::npos) << taken.status().message();
}

}  // namespace
}  // namespace boa::server
