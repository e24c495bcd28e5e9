// A real boad on a free loopback port, driven through the client library and boa-client:
// health and reflection are served, round trips equal the in-process codec byte for byte, concurrency never changes a
// request's output, each status code is provoked on purpose, cancelled and dead clients free
// their lanes, and SIGTERM drains running requests.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <thread>

#include "boa/v1/boa.grpc.pb.h"
#include "rpc/parallel.h"
#include "rpc/remote_client.h"
#include "common/codec/stream.h"
#include "common/format/container.h"
#include "common/util/hash.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/model_store.h"
#include "testkit/boad_process.h"
#include "testkit/http_get.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

using Clock = std::chrono::steady_clock;
using rpc::RemoteClient;
using testing::Boad;

// Polls boad's ServerInfo until `done` holds for it, up to 10 s.
bool WaitForInfo(RemoteClient& c, const std::function<bool(const v1::ServerInfoResponse&)>& done) {
  auto t0 = Clock::now();
  while (Clock::now() - t0 < std::chrono::seconds(10)) {
    Result<v1::ServerInfoResponse> info = c.Info();
    if (info.ok() && done(*info)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Until no request is open and no lane is in use.
bool WaitIdle(RemoteClient& c) {
  return WaitForInfo(c, [](const v1::ServerInfoResponse& i) { return i.open_requests() == 0 && i.lanes_in_use() == 0; });
}

// Until a request holds a lane.
bool WaitBusy(RemoteClient& c) {
  return WaitForInfo(c, [](const v1::ServerInfoResponse& i) { return i.lanes_in_use() > 0; });
}

bool WaitDraining(RemoteClient& c) {
  return WaitForInfo(c, [](const v1::ServerInfoResponse& i) { return i.draining(); });
}

// A Compress request held open for as long as a test needs: options and some data sent,
// no end yet.
class HeldCompress {
 public:
  explicit HeldCompress(const std::string& address)
      : stub_(v1::Boa::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        stream_(stub_->Compress(&ctx_)) {}
  bool Start(const std::vector<uint8_t>& bytes) {
    v1::CompressRequest options, data;
    options.mutable_options()->set_model("m");
    data.set_data(bytes.data(), bytes.size());
    return stream_->Write(options) && stream_->Write(data);
  }
  // Ends the input; the request's status, and the compressed stream in `packed`.
  grpc::Status Finish(std::vector<uint8_t>* packed) {
    stream_->WritesDone();
    v1::CompressResponse r;
    while (stream_->Read(&r)) {
      if (r.has_data()) packed->insert(packed->end(), r.data().begin(), r.data().end());
    }
    return stream_->Finish();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<v1::Boa::Stub> stub_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::CompressRequest, v1::CompressResponse>> stream_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::MakeModel(16, 1, 5, 4.0f);
    std::vector<uint8_t> file = SerializeModel(model_.weights, WeightType::kF32, "test");
    model_path_ = dir_.path() + "/m.boam";
    ASSERT_TRUE(WriteFileAtomic(model_path_, file, true).ok());
  }
  // Starts boad and registers the model as "m".
  std::unique_ptr<Boad> Start(const std::vector<std::string>& extra = {}) {
    auto b = std::make_unique<Boad>(BOAD, dir_.path() + "/store", extra);
    EXPECT_FALSE(b->address().empty()) << "boad did not start";
    auto c = b->Connect();
    if (c) {
      Result<v1::ModelInfo> up = c->UploadModel(model_path_, "m", 0);
      EXPECT_TRUE(up.ok() || up.status().code() == StatusCode::kAlreadyExists) << up.status().message();
    }
    return b;
  }
  static Status RemoteCompress(RemoteClient& c, const std::vector<uint8_t>& in, std::vector<uint8_t>* out,
                               uint32_t chunk = 4096, const std::string& model = "m") {
    MemorySource src(in);
    MemorySink sink;
    CodecOptions o;
    o.chunk_length = chunk;
    Status s = c.Compress(model, o, &src, &sink, nullptr, nullptr);
    *out = std::move(sink.data);
    return s;
  }
  static Status RemoteDecompress(RemoteClient& c, const std::vector<uint8_t>& in, std::vector<uint8_t>* out) {
    MemorySource src(in);
    MemorySink sink;
    Status s = c.Decompress("", &src, &sink, nullptr, nullptr);
    *out = std::move(sink.data);
    return s;
  }
  std::vector<uint8_t> Local(const std::vector<uint8_t>& in, uint32_t chunk = 4096) {
    CodecOptions o;
    o.chunk_length = chunk;
    std::vector<uint8_t> out;
    EXPECT_TRUE(testing::CompressBytes(model_, in, &out, o).ok());
    return out;
  }

  testing::TempDir dir_{"server_test"};
  LoadedModel model_;
  std::string model_path_;
};

TEST_F(ServerTest, RoundTripsEqualTheInProcessCodec) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  EXPECT_EQ(*c->Health(), "SERVING");
  for (size_t n : {0, 1, 4095, 4096, 4097, 30000}) {
    std::vector<uint8_t> data = n > 100 ? testing::SampleFromModel(model_, n, n) : testing::RandomBytes(n, n);
    std::vector<uint8_t> packed, back;
    ASSERT_TRUE(RemoteCompress(*c, data, &packed).ok()) << n;
    EXPECT_EQ(packed, Local(data)) << "size " << n << ": the server writes the same stream";
    ASSERT_TRUE(RemoteDecompress(*c, packed, &back).ok()) << n;
    EXPECT_EQ(back, data) << n;
    MemorySource src(packed);
    EXPECT_TRUE(c->Verify("m:1", &src, nullptr).ok());
  }
  // Decompressing the in-process codec's output works too: one format.
  std::vector<uint8_t> data = testing::FloatTable(50000, 1), back;
  ASSERT_TRUE(RemoteDecompress(*c, Local(data, 10000), &back).ok());
  EXPECT_EQ(back, data);
}

void ExpectExported(const std::string& text, const std::string& scrape);

// Requests of one client spread over two replicas behind one target, with the same output.
TEST_F(ServerTest, OneTargetOfTwoReplicasSharesTheRequests) {
  auto a = Start({"--metrics-listen", "127.0.0.1:0"});
  Boad b(BOAD, dir_.path() + "/store_b", {"--metrics-listen", "127.0.0.1:0"});
  ASSERT_FALSE(b.address().empty());
  {
    auto cb = b.Connect();
    ASSERT_TRUE(cb && cb->UploadModel(model_path_, "m", 0).ok());
  }
  auto requests = [](const Boad& boad) {
    const std::string scrape = testing::HttpGet(boad.metrics_address(), "/metrics").body;
    const std::string line = R"(boad_requests_total{code="OK",model="m",op="Compress"} )";
    const size_t at = scrape.find("\n" + line);
    return at == std::string::npos ? 0 : std::atoi(scrape.c_str() + at + 1 + line.size());
  };
  Result<std::unique_ptr<RemoteClient>> both = RemoteClient::Connect("ipv4:" + a->address() + "," + b.address());
  ASSERT_TRUE(both.ok()) << both.status().message();
  const std::vector<uint8_t> in = testing::FloatTable(20000, 4);
  const std::vector<uint8_t> want = Local(in);
  for (int i = 0; i < 6; ++i) {
    std::vector<uint8_t> out;
    ASSERT_TRUE(RemoteCompress(**both, in, &out).ok());
    EXPECT_EQ(out, want) << "request " << i;
  }
  EXPECT_GT(requests(*a), 0);
  EXPECT_GT(requests(b), 0);
  EXPECT_EQ(requests(*a) + requests(b), 6);
}

// The value of one series in a boad's /metrics (0 when absent).
double Scraped(const Boad& boad, const std::string& series) {
  const std::string scrape = testing::HttpGet(boad.metrics_address(), "/metrics").body;
  const size_t at = scrape.find("\n" + series + " ");
  return at == std::string::npos ? 0 : std::atof(scrape.c_str() + at + 2 + series.size());
}

// Three replicas on one shared store behind one target: a model uploaded to one is served by
// all; one file in parts (--parallel) over them is the bytes one server makes, each replica
// coding some of its chunks; a replica killed mid-run has its parts sent to the others; with
// every replica gone the call fails and names the part, and nothing is committed.
TEST_F(ServerTest, OneFileInPartsOverThreeReplicasOnASharedStore) {
  const std::string config = dir_.path() + "/shared.yaml";
  std::ofstream(config) << "shared_model_dir: true\nmodel_rescan_seconds: 0\n";
  std::vector<std::unique_ptr<Boad>> replicas;
  std::string target = "ipv4:";
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<Boad>(
        BOAD, dir_.path() + "/shared",
        std::vector<std::string>{"--config", config, "--jobs-dir", dir_.path() + "/jobs" + std::to_string(i), "--threads",
                                 "1", "--metrics-listen", "127.0.0.1:0"}));
    ASSERT_FALSE(replicas.back()->address().empty()) << "replica " << i << " did not start on the shared store";
    target += (i ? "," : "") + replicas.back()->address();
  }
  {
    auto first = replicas[0]->Connect();
    ASSERT_TRUE(first && first->UploadModel(model_path_, "m", 0).ok());
  }
  Result<std::unique_ptr<RemoteClient>> all = RemoteClient::Connect(target);
  ASSERT_TRUE(all.ok()) << all.status().message();
  const std::vector<uint8_t> in = testing::FloatTable(600000, 8);  // 2.4 MB
  constexpr uint32_t kChunk = 8192;
  const std::vector<uint8_t> want = Local(in, kChunk);
  rpc::ParallelOptions p;
  p.streams = 3;
  p.part_chunks = 8;
  CodecOptions o;
  o.chunk_length = kChunk;
  const auto compress = [&](const std::function<void()>& after_first_part, std::vector<uint8_t>* out) {
    MemorySource src(in);
    MemorySink sink;
    bool first = true;
    Status s = rpc::ParallelCompress(all->get(), "m", o, p, &src, &sink, nullptr, [&](uint64_t, uint64_t) {
      if (first && after_first_part) after_first_part();
      first = false;
    });
    *out = std::move(sink.data);
    return s;
  };
  std::vector<uint8_t> packed;
  ASSERT_TRUE(compress(nullptr, &packed).ok());
  EXPECT_EQ(packed, want) << "the parts make the stream one server makes";
  for (size_t i = 0; i < replicas.size(); ++i) {
    EXPECT_GT(Scraped(*replicas[i], R"(boad_chunks_total{device="cpu",kind="encode",model="m"})"), 0) << "replica " << i;
  }
  MemorySource packed_src(packed);
  MemorySink back;
  CodecStats stats;
  ASSERT_TRUE(rpc::ParallelDecompress(all->get(), "", p, &packed_src, &back, &stats, nullptr).ok());
  EXPECT_EQ(back.data, in);
  EXPECT_EQ(stats.chunks, (in.size() + kChunk - 1) / kChunk);
  for (size_t i = 0; i < replicas.size(); ++i) {
    EXPECT_GT(Scraped(*replicas[i], R"(boad_chunks_total{device="cpu",kind="decode",model="m"})"), 0) << "replica " << i;
  }
  // A damaged chunk is found by the whole file's checks, whichever replica decodes it.
  std::vector<uint8_t> damaged = packed;
  damaged[damaged.size() / 2] ^= 0x10;
  MemorySource damaged_src(damaged);
  MemorySink ignored;
  EXPECT_EQ(rpc::ParallelDecompress(all->get(), "", p, &damaged_src, &ignored, nullptr, nullptr).code(),
            StatusCode::kDataLoss);

  // A replica killed while parts are out: they are sent again to the others.
  std::vector<uint8_t> again;
  ASSERT_TRUE(compress([&] { replicas[2]->Signal(SIGKILL); }, &again).ok());
  EXPECT_EQ(again, want);
  // Every replica gone: the part that cannot be sent is named, and the output is not committed.
  const std::string out_path = dir_.path() + "/never.boa";
  Result<std::unique_ptr<AtomicOutputFile>> file = AtomicOutputFile::Create(out_path, false, {});
  ASSERT_TRUE(file.ok());
  MemorySource src(in);
  Status s = rpc::ParallelCompress(all->get(), "m", o, p, &src, file->get(), nullptr, [&](uint64_t, uint64_t) {
    replicas[0]->Signal(SIGKILL);
    replicas[1]->Signal(SIGKILL);
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  EXPECT_NE(s.message().find("part "), std::string::npos) << s.message();
  file->reset();
  EXPECT_FALSE(std::filesystem::exists(out_path));
}

TEST_F(ServerTest, MetricsCountWhatWasSentAndPromtoolAcceptsThem) {
  auto b = Start({"--metrics-listen", "127.0.0.1:0"});
  ASSERT_FALSE(b->metrics_address().empty()) << "no metrics line";
  auto c = b->Connect();
  ASSERT_TRUE(c);
  const std::vector<uint8_t> in = testing::FloatTable(100000, 3);
  std::vector<uint8_t> packed, back;
  ASSERT_TRUE(RemoteCompress(*c, in, &packed).ok());
  ASSERT_TRUE(RemoteDecompress(*c, packed, &back).ok());
  ASSERT_EQ(back, in);
  const testing::HttpReply r = testing::HttpGet(b->metrics_address(), "/metrics");
  ASSERT_EQ(r.status, 200);
  for (const std::string& line :
       {std::string(R"(boad_raw_bytes_total{model="m",op="Compress"} 100000)"),
        R"(boad_compressed_bytes_total{model="m",op="Compress"} )" + std::to_string(packed.size()),
        std::string(R"(boad_requests_total{code="OK",model="m",op="Decompress"} 1)"),
        std::string(R"(boad_chunks_total{device="cpu",kind="encode",model="m"} 25)"),
        std::string(R"(boad_models_loaded{device="cpu"} 1)"),
        std::string(R"(grpc_server_handled_total{grpc_code="OK",grpc_method="Compress",grpc_service="boa.v1.Boa",)"
                    R"(grpc_type="bidi_stream"} 1)"),
        std::string(R"(grpc_server_started_total{grpc_method="Decompress",grpc_service="boa.v1.Boa",)"
                    R"(grpc_type="bidi_stream"} 1)")}) {
    EXPECT_NE(r.body.find("\n" + line + "\n"), std::string::npos) << line << "\n" << r.body;
  }
  const std::string path = dir_.path() + "/scrape.txt";
  std::ofstream(path) << r.body;
  EXPECT_EQ(std::system(("promtool check metrics < '" + path + "'").c_str()), 0) << r.body;
  // Every metric the shipped rules, alerts and dashboard use is one boad exports.
  for (const char* shipped : {"/deploy/prometheus/boad_rules.yml", "/deploy/grafana/boad-dashboard.json"}) {
    SCOPED_TRACE(shipped);
    std::ifstream rules_file(std::string(BOA_SOURCE_DIR) + shipped);
    const std::string rules((std::istreambuf_iterator<char>(rules_file)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(rules.empty());
    ExpectExported(rules, r.body);
  }
}

// Every metric name in `rules` (not a recorded name, not a file name) is in `scrape`.
void ExpectExported(const std::string& rules, const std::string& scrape) {
  const std::regex name(R"((boad|grpc_server|process)_[a-z_]+)");
  int checked = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), name); it != std::sregex_iterator(); ++it) {
    const size_t at = static_cast<size_t>(it->position()), end = at + static_cast<size_t>(it->length());
    if ((at > 0 && rules[at - 1] == ':') || (end < rules.size() && (rules[end] == ':' || rules[end] == '.'))) {
      continue;  // a recorded name, or a file name
    }
    if (at > 0 && (std::isalnum(static_cast<unsigned char>(rules[at - 1])) || rules[at - 1] == '_')) continue;
    ++checked;
    EXPECT_NE(scrape.find("\n" + it->str()), std::string::npos) << it->str() << " is named but not exported";
  }
  EXPECT_GT(checked, 10);
}

TEST_F(ServerTest, ServesHealthAndReflection) {
  auto boad = Start();
  auto channel = grpc::CreateChannel(boad->address(), grpc::InsecureChannelCredentials());
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  for (const char* service : {"", "boa.v1.Boa"}) {
    grpc::ClientContext ctx;
    hreq.set_service(service);
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)->Check(&ctx, hreq, &hresp).ok());
    EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  grpc::ClientContext ctx;
  auto stream = grpc::reflection::v1alpha::ServerReflection::NewStub(channel)->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("*");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& svc : resp.list_services_response().service()) names.push_back(svc.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "boa.v1.Boa"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, OutputDoesNotDependOnConcurrentRequests) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  const std::vector<uint8_t> target = testing::FloatTable(40000, 7);
  std::vector<uint8_t> alone;
  ASSERT_TRUE(RemoteCompress(*c, target, &alone).ok());
  ASSERT_EQ(alone, Local(target));

  // The same file while 8 other clients compress other files, several times over.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> others;
  for (int k = 0; k < 8; ++k) {
    others.emplace_back([&, k] {
      auto oc = boad->Connect();
      std::vector<uint8_t> mine = testing::FloatTable(15000 + 3000 * k, 100 + k), packed, back;
      while (!stop) {
        if (!RemoteCompress(*oc, mine, &packed, 2048 + 512 * k).ok() || !RemoteDecompress(*oc, packed, &back).ok() ||
            back != mine) {
          ++failures;
        }
      }
    });
  }
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint8_t> busy, back;
    ASSERT_TRUE(RemoteCompress(*c, target, &busy).ok());
    EXPECT_EQ(busy, alone) << "repetition " << rep;
    ASSERT_TRUE(RemoteDecompress(*c, busy, &back).ok());
    EXPECT_EQ(back, target);
  }
  stop = true;
  for (auto& t : others) t.join();
  EXPECT_EQ(failures, 0);
}

TEST_F(ServerTest, SixteenClientsAtOnce) {
  auto boad = Start();
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int k = 0; k < 16; ++k) {
    clients.emplace_back([&, k] {
      auto c = boad->Connect();
      std::vector<uint8_t> data = testing::FloatTable(8000 + 1000 * k, k), packed, back;
      if (RemoteCompress(*c, data, &packed, 1024).ok() && packed == Local(data, 1024) &&
          RemoteDecompress(*c, packed, &back).ok() && back == data) {
        ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 16);
}

TEST_F(ServerTest, EachStatusCodeOnPurpose) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  std::vector<uint8_t> data = testing::FloatTable(20000, 3), packed, out;
  EXPECT_EQ(RemoteCompress(*c, data, &out, 4096, "nosuchmodel").code(), StatusCode::kNotFound);
  EXPECT_EQ(RemoteCompress(*c, data, &out, 1u << 25).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c->GetModel("bad name!").status().code(), StatusCode::kInvalidArgument);

  // A stream made with a model the server does not have.
  LoadedModel other = testing::MakeModel(16, 1, 99);
  std::vector<uint8_t> foreign;
  ASSERT_TRUE(testing::CompressBytes(other, data, &foreign).ok());
  Status s = RemoteDecompress(*c, foreign, &out);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_NE(s.message().find(other.IdHex()), std::string::npos) << "names the stream's model id";

  // Corrupt and truncated streams.
  ASSERT_TRUE(RemoteCompress(*c, data, &packed).ok());
  std::vector<uint8_t> bad = packed;
  bad[bad.size() / 2] ^= 0x10;
  EXPECT_EQ(RemoteDecompress(*c, bad, &out).code(), StatusCode::kDataLoss);
  bad.assign(packed.begin(), packed.end() - 10);
  EXPECT_EQ(RemoteDecompress(*c, bad, &out).code(), StatusCode::kDataLoss);
  bad.assign(packed.begin(), packed.begin() + 30);
  EXPECT_EQ(RemoteDecompress(*c, bad, &out).code(), StatusCode::kDataLoss);

  // A deadline that cannot be met.
  c->set_deadline(0.2);
  std::vector<uint8_t> big = testing::RandomBytes(3 << 20, 1);
  EXPECT_EQ(RemoteCompress(*c, big, &out, 65536).code(), StatusCode::kDeadlineExceeded);
  c->set_deadline(0);
  EXPECT_TRUE(WaitIdle(*c)) << "... which freed its lanes";
}

// Every request stream follows one rule: options first, then data messages only. A message
// with nothing set is refused by Compress as by Eval.
TEST_F(ServerTest, AMessageWithoutDataIsRefusedByEveryStream) {
  auto boad = Start();
  auto channel = grpc::CreateChannel(boad->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Boa::NewStub(channel);
  v1::CompressRequest options, data, empty;
  options.mutable_options()->set_model("m");
  data.set_data("some bytes");
  {
    grpc::ClientContext ctx;
    auto stream = stub->Compress(&ctx);
    ASSERT_TRUE(stream->Write(options));
    stream->Write(data);
    stream->Write(empty);
    stream->WritesDone();
    v1::CompressResponse r;
    while (stream->Read(&r)) {
    }
    grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("carries no data"), std::string::npos) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    v1::EvalSummary summary;
    auto stream = stub->Eval(&ctx, &summary);
    ASSERT_TRUE(stream->Write(options));
    stream->Write(data);
    stream->Write(empty);
    stream->WritesDone();
    grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("carries no data"), std::string::npos) << st.error_message();
  }
}

// Gives `good` bytes, then fails like a disk error.
class FailingSource final : public ByteSource {
 public:
  explicit FailingSource(size_t good) : good_(good) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    if (given_ >= good_) return Status::IoError("input.bin: read failed (simulated)");
    size_t k = std::min(n, good_ - given_);
    std::memset(buf, 7, k);
    given_ += k;
    return k;
  }
  const std::string& name() const override { return name_; }

 private:
  size_t good_, given_ = 0;
  std::string name_ = "input.bin";
};

TEST_F(ServerTest, AnInputThatFailsMidStreamEndsTheCall) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  FailingSource src(3 << 20);
  MemorySink sink;
  auto t0 = Clock::now();
  Status s = c->Compress("m", CodecOptions(), &src, &sink, nullptr, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.message();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30)) << "no hang waiting for the rest";
  EXPECT_TRUE(WaitIdle(*c)) << "the call's lanes are freed";
}

TEST_F(ServerTest, QueueLimitAnswersResourceExhausted) {
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "queue_limit: 1\nthreads: 1\n";
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  std::thread busy([&] {
    auto bc = boad->Connect();
    std::vector<uint8_t> big = testing::RandomBytes(2 << 20, 2), out;
    EXPECT_TRUE(RemoteCompress(*bc, big, &out, 65536).ok());
  });
  EXPECT_TRUE(WaitForInfo(*c, [](const v1::ServerInfoResponse& i) { return i.open_requests() > 0; }));
  std::vector<uint8_t> out;
  Status s = RemoteCompress(*c, testing::RandomBytes(100, 1), &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  busy.join();
  EXPECT_TRUE(RemoteCompress(*c, testing::RandomBytes(100, 1), &out).ok()) << "room again";
}

TEST_F(ServerTest, KeepsServingAfterAClientDiesMidStream) {
  auto boad = Start();
  const std::string big = dir_.path() + "/big.bin";
  ASSERT_TRUE(WriteFileAtomic(big, testing::RandomBytes(4 << 20, 3), true).ok());
  std::string cmd = std::string(BOA_CLIENT) + " --server " + boad->address() + " compress -q -f -m m " + big +
                    " & pid=$!; sleep 1; kill -9 $pid; wait $pid 2>/dev/null; true";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  EXPECT_TRUE(WaitIdle(*c)) << "the dead client's lanes are free";
  std::vector<uint8_t> data = testing::FloatTable(10000, 4), packed, back;
  ASSERT_TRUE(RemoteCompress(*c, data, &packed).ok());
  ASSERT_TRUE(RemoteDecompress(*c, packed, &back).ok());
  EXPECT_EQ(back, data);
}

TEST_F(ServerTest, SigtermDrainsRunningRequests) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  std::vector<uint8_t> data = testing::FloatTable(400000, 5);
  Status inflight;
  std::vector<uint8_t> packed;
  std::thread t([&] { inflight = RemoteCompress(*c, data, &packed, 65536); });
  EXPECT_TRUE(WaitBusy(*c));
  EXPECT_EQ(boad->Terminate(), 0);
  t.join();
  EXPECT_TRUE(inflight.ok()) << inflight.message();
  EXPECT_EQ(packed, Local(data, 65536)) << "the request in flight finished normally";
}

TEST_F(ServerTest, RequestsStillRunningAtTheDrainDeadlineGetUnavailable) {
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "drain_seconds: 0.5\nthreads: 1\n";
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  std::vector<uint8_t> big = testing::RandomBytes(6 << 20, 4), packed;
  Status inflight;
  std::thread t([&] { inflight = RemoteCompress(*c, big, &packed, 65536); });
  EXPECT_TRUE(WaitBusy(*c));
  auto t0 = Clock::now();
  EXPECT_EQ(boad->Terminate(), 0);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5)) << "boad exits soon after the drain deadline";
  t.join();
  EXPECT_EQ(inflight.code(), StatusCode::kUnavailable) << inflight.message();
  // And nothing is served any more. (A connection to a port nobody listens on can still
  // succeed, rarely: the kernel may pick that very port as its source and connect it to
  // itself; no RPC is answered there.)
  Result<std::unique_ptr<RemoteClient>> gone = RemoteClient::Connect(boad->address(), 1);
  if (gone.ok()) {
    (*gone)->set_deadline(1);
    EXPECT_FALSE((*gone)->Health().ok());
  }
}

TEST_F(ServerTest, SighupAppliesLimitsRescansTheStoreAndKeepsTheRest) {
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "queue_limit: 64\nlog_level: warn\n";
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  HeldCompress held(boad->address());
  ASSERT_TRUE(held.Start(testing::FloatTable(10000, 5)));
  EXPECT_TRUE(WaitForInfo(*c, [](const v1::ServerInfoResponse& i) { return i.open_requests() > 0; }));

  // A configuration that does not load changes nothing.
  std::ofstream(config) << "queue_limit: [\n";
  boad->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::vector<uint8_t> out;
  EXPECT_TRUE(RemoteCompress(*c, testing::RandomBytes(100, 1), &out).ok());

  // Another replica (or an operator) puts a model in the shared store; the limit drops to
  // one open request; the lane count can only change at a restart.
  {
    server::ModelStore::Options o;
    o.dir = dir_.path() + "/store";
    auto other = server::ModelStore::Open(o);
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->Add("late", 0, SerializeModel(model_.weights, WeightType::kF16, "late")).ok());
  }
  std::ofstream(config) << "queue_limit: 1\nlog_level: warn\nlanes: 8\n";
  boad->Signal(SIGHUP);
  bool found = false;
  for (int i = 0; i < 100 && !found; ++i) {
    found = c->GetModel("late").ok();
    if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(found) << "the rescan did not find the new model";
  Status busy = RemoteCompress(*c, testing::RandomBytes(100, 1), &out);
  EXPECT_EQ(busy.code(), StatusCode::kResourceExhausted) << busy.message();
  Result<v1::ServerInfoResponse> info = c->Info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->max_lanes(), 256u);
  EXPECT_EQ(*c->Health(), "SERVING");

  std::vector<uint8_t> packed;
  EXPECT_TRUE(held.Finish(&packed).ok());
  // A memory budget lowered below the resident models unloads the idle ones at once.
  ASSERT_TRUE(c->LoadModel("late").ok());
  ASSERT_GT(c->Info()->resident_bytes(), 0u);
  std::ofstream(config) << "queue_limit: 1\nlog_level: warn\nmemory_budget: 1M\n";
  boad->Signal(SIGHUP);
  EXPECT_TRUE(WaitForInfo(*c, [](const v1::ServerInfoResponse& i) {
    return i.memory_budget_bytes() == (1u << 20) && i.resident_bytes() == 0;
  })) << "the new budget did not apply";
  EXPECT_EQ(boad->Terminate(), 0);
}

TEST_F(ServerTest, HealthExitCodesAreGrpcHealthProbes) {
  auto boad = Start();
  const std::string client = std::string(BOA_CLIENT) + " --server ";
  auto code = [](const std::string& cmd) {
    const int rc = std::system((cmd + " > /dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  EXPECT_EQ(code(client + boad->address() + " health"), 0);
  EXPECT_EQ(code(client + boad->address() + " health --service ''"), 0);  // the whole server
  EXPECT_EQ(code(client + "127.0.0.1:1 health --timeout 2"), 2);           // nobody there
  EXPECT_EQ(code(client + boad->address() + " health --service no.such.Service"), 3);
  EXPECT_EQ(code(client + boad->address() + " health --bogus"), 1);        // usage
}

// docs/server.md, "Shutdown": during the drain the port stays open; health says NOT_SERVING,
// new requests get UNAVAILABLE, running ones finish.
TEST_F(ServerTest, DuringTheDrainClientsSeeNotServingAndUnavailable) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  const std::vector<uint8_t> bytes = testing::FloatTable(10000, 5);
  HeldCompress held(boad->address());
  ASSERT_TRUE(held.Start(bytes));
  EXPECT_TRUE(WaitForInfo(*c, [](const v1::ServerInfoResponse& i) { return i.open_requests() > 0; }));
  boad->Signal(SIGTERM);
  EXPECT_TRUE(WaitDraining(*c));
  auto fresh = boad->Connect();
  ASSERT_TRUE(fresh) << "the port must stay open during the drain";
  for (RemoteClient* client : {c.get(), fresh.get()}) {  // this connection, and a new one
    Result<std::string> health = client->Health();
    ASSERT_TRUE(health.ok()) << health.status().message();
    EXPECT_EQ(*health, "NOT_SERVING");
    EXPECT_EQ(*client->Health("boad.Liveness"), "SERVING") << "a draining boad is alive";
    std::vector<uint8_t> out;
    Status s = RemoteCompress(*client, testing::RandomBytes(100, 1), &out);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
    EXPECT_NE(s.message().find("shutting down"), std::string::npos) << s.message();
    EXPECT_EQ(client->UploadModel(model_path_, "late", 0).status().code(), StatusCode::kUnavailable);
  }
  // grpc_health_probe's "not serving" for container health checks.
  const int health = std::system((std::string(BOA_CLIENT) + " --server " + boad->address() + " health -q").c_str());
  EXPECT_TRUE(WIFEXITED(health) && WEXITSTATUS(health) == 4) << health;
  // The held request finishes normally, then boad exits.
  std::vector<uint8_t> packed;
  grpc::Status st = held.Finish(&packed);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(packed, Local(bytes, 65536));
  EXPECT_EQ(boad->Wait(), 0);
}

TEST_F(ServerTest, ASecondSignalEndsTheDrainAtOnce) {
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "drain_seconds: 60\nthreads: 1\n";
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  std::vector<uint8_t> big = testing::RandomBytes(8 << 20, 4), packed;
  Status inflight;
  std::thread t([&] { inflight = RemoteCompress(*c, big, &packed, 65536); });
  EXPECT_TRUE(WaitBusy(*c));
  boad->Signal(SIGTERM);
  EXPECT_TRUE(WaitDraining(*c));
  auto t0 = Clock::now();
  boad->Signal(SIGTERM);
  EXPECT_EQ(boad->Wait(), 0) << "an orderly exit, not death by the signal";
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  t.join();
  EXPECT_EQ(inflight.code(), StatusCode::kUnavailable) << inflight.message();
}

TEST_F(ServerTest, ASecondBoadCannotShareTheFirstOnesPort) {
  auto first = Start();
  const std::string err = dir_.path() + "/err.txt";
  const std::string cmd = std::string(BOAD) + " --listen " + first->address() + " --model-dir " + dir_.path() +
                          "/other 2>" + err + " >/dev/null";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::ifstream f(err);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("cannot listen on " + first->address() + ": Address already in use"), std::string::npos) << text;
  auto c = first->Connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ListModels()->size(), 1u) << "every connection reaches the first boad's store";
  // Nor can one on another port use its model store.
  const std::string same_store = std::string(BOAD) + " --listen 127.0.0.1:0 --model-dir " + dir_.path() +
                                 "/store 2>" + err + " >/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(same_store.c_str())), 1);
  std::ifstream g(err);
  const std::string why((std::istreambuf_iterator<char>(g)), std::istreambuf_iterator<char>());
  EXPECT_NE(why.find("model_dir " + dir_.path() + "/store is in use by another boad (pid " + std::to_string(first->pid()) + ")"),
            std::string::npos) << why;
}

// stdout carries one line, the address actually bound; logs go to stderr.
TEST(BoadProcess, LogsGoToStderrAndTheBoundPortIsReported) {
  testing::TempDir dir("boad_logs");
  const std::string d = dir.path();
  const std::string cmd = "cd " + d + " && { " + BOAD + " --listen 127.0.0.1:0 --model-dir store >out.txt 2>err.txt & pid=$!; " +
                          "for i in $(seq 100); do grep -q listening out.txt && break; sleep 0.1; done; kill -TERM $pid; wait $pid; }";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto text = [&](const std::string& name) {
    std::ifstream f(d + "/" + name);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  const std::string out = text("out.txt"), err = text("err.txt");
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  ASSERT_EQ(out.rfind("boad listening on 127.0.0.1:", 0), 0u) << out;
  const std::string address = out.substr(18, out.size() - 19);
  EXPECT_NE(address, "127.0.0.1:0");
  EXPECT_NE(err.find("serving on " + address), std::string::npos) << err;
  EXPECT_NE(err.find("draining"), std::string::npos) << err;
  EXPECT_NE(err.find("boad stopped"), std::string::npos) << err;
}

// A well-formed model whose lanes need more memory than there is: the request that loads it
// fails with RESOURCE_EXHAUSTED, boad goes on serving the others.
TEST_F(ServerTest, AModelThatDoesNotFitFailsItsRequestNotTheServer) {
  ModelConfig wide = ModelConfig::Default(16, 64);  // 8 MiB of scan state per lane
  wide.d_state = 256;
  wide.expand = 8;
  const std::string wide_path = dir_.path() + "/wide.boam";
  ASSERT_TRUE(WriteFileAtomic(wide_path, SerializeModel(InitRandomModel(wide, 1), WeightType::kF16, "test"), true).ok());
  const std::string config = dir_.path() + "/boad.yaml";
  for (const char* setup : {"budget", "ulimit"}) {
    SCOPED_TRACE(setup);
    // The budget refuses it before anything is allocated; under a small address space with a
    // large budget, the allocation itself fails.
    const bool budget = std::string(setup) == "budget";
    // 1024 lanes of 8 MiB: far above both the budget and the address space.
    std::ofstream(config) << (budget ? "memory_budget: 256M\n" : "memory_budget: 64G\n") << "lanes: 1024\njobs_dir: "
                          << dir_.path() << "/jobs\n";
    Boad boad(BOAD, dir_.path() + "/store-" + setup, {"--config", config}, budget ? 0 : 3000ull << 20);
    auto c = boad.Connect();
    ASSERT_TRUE(c) << "boad did not start";
    ASSERT_TRUE(c->UploadModel(model_path_, "m", 0).ok());
    ASSERT_TRUE(c->UploadModel(wide_path, "wide", 0).ok());
    std::vector<uint8_t> out;
    Status s = RemoteCompress(*c, testing::RandomBytes(200, 1), &out, 4096, "wide");
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
    EXPECT_NE(s.message().find(budget ? "memory_budget" : "out of memory"), std::string::npos) << s.message();
    EXPECT_EQ(c->LoadModel("wide").status().code(), StatusCode::kResourceExhausted);
    std::vector<uint8_t> data = testing::FloatTable(20000, 2), back;
    ASSERT_TRUE(RemoteCompress(*c, data, &out).ok()) << "boad still serves";
    ASSERT_TRUE(RemoteDecompress(*c, out, &back).ok());
    EXPECT_EQ(back, data);
    Result<v1::ServerInfoResponse> info = c->Info();
    ASSERT_TRUE(info.ok());
    EXPECT_LT(info->resident_bytes(), 64u << 20) << "only the small model is resident";
    EXPECT_EQ(boad.Terminate(), 0);
  }
}

// The compressed input of a decompression is sent to boad long before it is decoded, so its
// progress counts the decoded bytes: it must not show 100 % before anything came back.
TEST_F(ServerTest, DecompressProgressFollowsTheDecodedBytes) {
  auto boad = Start({"--lanes", "2", "--threads", "1"});  // two chunks at a time: a slow decode
  const std::vector<uint8_t> data = testing::SampleFromModel(model_, 240000, 4);
  const std::string d = dir_.path();
  ASSERT_TRUE(WriteFileAtomic(d + "/s.boa", Local(data, 4096), true).ok());
  const std::string cmd = "cd " + d + " && " + BOA_CLIENT + " --server " + boad->address() +
                          " --progress decompress s.boa -o s.out 2>err.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(ReadFile(d + "/s.out", 1 << 20).value(), data);
  std::ifstream f(d + "/err.txt");
  const std::string err((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<double> shown;
  for (size_t p = err.find("s.boa: "); p != std::string::npos; p = err.find("s.boa: ", p + 1)) {
    if (err.find('%', p) < err.find('\r', p)) shown.push_back(std::atof(err.c_str() + p + 7));
  }
  ASSERT_FALSE(shown.empty()) << err;
  EXPECT_LT(shown.front(), 90.0) << "the first progress line of a decode that takes a while";
  EXPECT_TRUE(std::is_sorted(shown.begin(), shown.end()));
}

TEST_F(ServerTest, ModelStoreFaultsReachTheClientClearly) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  // Two names for one file: both are loaded once one is used, and each is listed.
  ASSERT_TRUE(c->UploadModel(model_path_, "alias", 0).ok());
  std::vector<uint8_t> out;
  ASSERT_TRUE(RemoteCompress(*c, testing::FloatTable(5000, 1), &out, 4096, "alias").ok());
  std::vector<std::string> loaded;
  const v1::ServerInfoResponse status = c->Info().value();
  for (const auto& m : status.loaded_models()) loaded.push_back(m.name() + ":" + std::to_string(m.version()));
  std::sort(loaded.begin(), loaded.end());
  EXPECT_EQ(loaded, (std::vector<std::string>{"alias:1", "m:1"}));
  // Per device: where each model is, and each device's lanes and memory.
  for (const auto& m : status.loaded_models()) EXPECT_EQ(std::vector<std::string>(m.devices().begin(), m.devices().end()), std::vector<std::string>{"cpu"});
  ASSERT_EQ(status.device_info_size(), 1);
  const v1::DeviceInfo& cpu = status.device_info(0);
  EXPECT_EQ(cpu.name(), "cpu");
  EXPECT_EQ(cpu.description(), status.devices(0));
  EXPECT_EQ(cpu.description().rfind("cpu (", 0), 0u) << cpu.description();
  EXPECT_EQ(cpu.models_loaded(), 1u) << "two names, one resident model";
  EXPECT_EQ(cpu.lanes(), status.max_lanes());
  EXPECT_EQ(cpu.resident_bytes(), status.resident_bytes());
  EXPECT_EQ(cpu.memory_budget_bytes(), status.memory_budget_bytes());
  EXPECT_GE(cpu.threads(), 1u);
  // An upload that is not a model is the caller's mistake.
  const std::string junk = dir_.path() + "/junk.boam";
  ASSERT_TRUE(WriteFileAtomic(junk, testing::RandomBytes(5000, 1), true).ok());
  EXPECT_EQ(c->UploadModel(junk, "junk", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c->UploadModel(model_path_, model_.IdHex(), 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c->UploadModel(model_path_, "m", 1000000000).status().code(), StatusCode::kInvalidArgument);
  // A stored file damaged on disk is never handed out.
  const std::string solo = dir_.path() + "/solo.boam";
  ASSERT_TRUE(WriteFileAtomic(solo, SerializeModel(testing::MakeModel(16, 1, 77).weights, WeightType::kF32, ""), true).ok());
  ASSERT_TRUE(c->UploadModel(solo, "solo", 0).ok());
  const std::string stored = dir_.path() + "/store/solo/1/model.boam";
  std::vector<uint8_t> bytes = ReadFile(stored, 1 << 20).value();
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(stored, bytes, true).ok());
  MemorySink sink;
  EXPECT_EQ(c->DownloadModel("solo", &sink).code(), StatusCode::kDataLoss);
  const std::string cmd = std::string(BOA_CLIENT) + " --server " + boad->address() + " models download solo -o " +
                          dir_.path() + "/copy.boam 2>" + dir_.path() + "/err.txt";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/copy.boam"));
  // After a restart the damaged entry is reported, not silently dropped.
  EXPECT_EQ(boad->Terminate(), 0);
  auto again = Start();
  auto c2 = again->Connect();
  ASSERT_TRUE(c2);
  Result<v1::ServerInfoResponse> info = c2->Info();
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->problems_size(), 1);
  EXPECT_NE(info->problems(0).find("/store/solo/1"), std::string::npos) << info->problems(0);
}

TEST_F(ServerTest, ClientCommandsAgainstTheServer) {
  auto boad = Start();
  const std::string client = std::string(BOA_CLIENT) + " --server " + boad->address();
  const std::string d = dir_.path();
  ASSERT_TRUE(WriteFileAtomic(d + "/data.bin", testing::FloatTable(30000, 6), true).ok());
  auto sh = [&](const std::string& cmd) { return std::system(("cd " + d + " && " + cmd + " >out.txt 2>err.txt").c_str()); };
  auto text = [&](const std::string& name) {
    std::ifstream f(d + "/" + name);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  ASSERT_EQ(sh(client + " compress data.bin -m m"), 0) << text("err.txt");
  // Through boad too, an output that is the input is refused before anything is written.
  const std::vector<uint8_t> original = ReadFile(d + "/data.bin", 1 << 30).value();
  EXPECT_EQ(sh(client + " compress data.bin -m m -o " + d + "/./data.bin -f --rm"), 256);
  EXPECT_NE(text("err.txt").find("is the input file"), std::string::npos) << text("err.txt");
  EXPECT_EQ(ReadFile(d + "/data.bin", 1 << 30).value(), original);
  ASSERT_EQ(sh(client + " --local compress data.bin -m m.boam -o local.boa"), 0) << text("err.txt");
  EXPECT_EQ(ReadFile(d + "/data.bin.boa", 1 << 30).value(), ReadFile(d + "/local.boa", 1 << 30).value());
  ASSERT_EQ(sh("mv data.bin orig.bin && " + client + " decompress data.bin.boa && cmp data.bin orig.bin"), 0) << text("err.txt");
  EXPECT_EQ(sh(client + " verify data.bin.boa"), 0) << text("err.txt");
  // zstd's mode flags: -d, -t, -l, and no subcommand compresses.
  EXPECT_EQ(sh(client + " -d data.bin.boa -o again.bin && cmp again.bin orig.bin"), 0) << text("err.txt");
  EXPECT_EQ(sh(client + " -t data.bin.boa"), 0) << text("err.txt");
  EXPECT_EQ(sh(client + " -l data.bin.boa"), 0) << text("err.txt");
  EXPECT_NE(text("out.txt").find("format version"), std::string::npos);
  EXPECT_EQ(sh(client + " orig.bin -m m -o z.boa && cmp z.boa local.boa"), 0) << text("err.txt");
  // In parts, several requests at once: the same bytes both ways.
  EXPECT_EQ(sh(client + " compress orig.bin -m m --chunk-size 4K --parallel 3 -o p.boa && " + client +
               " --local compress orig.bin -m m.boam --chunk-size 4K -o l.boa && cmp p.boa l.boa && " + client +
               " decompress p.boa --parallel 2 -o p.bin && cmp p.bin orig.bin"),
            0)
      << text("err.txt");
  EXPECT_EQ(sh(client + " --local compress orig.bin -m m.boam --parallel 2 -o x.boa"), 256);
  EXPECT_NE(text("err.txt").find("--parallel spreads a file over boad's replicas"), std::string::npos) << text("err.txt");
  ASSERT_EQ(sh(client + " eval orig.bin -m m"), 0) << text("err.txt");
  const std::string remote_eval = text("out.txt");
  ASSERT_EQ(sh(client + " --local eval orig.bin -m m.boam"), 0) << text("err.txt");
  EXPECT_EQ(remote_eval, text("out.txt")) << "eval on the server gives the in-process numbers";
  EXPECT_NE(remote_eval.find("bits per byte"), std::string::npos);
  // run (a given model: uploaded to the store on first use) and bench go through boad too.
  std::ofstream(d + "/tiny.yaml") << "name: tiny\nfile_path: orig.bin\nmodel_path: m.boam\nprogress: false\n"
                                     "compression: {chunks_count: 3}\n";
  ASSERT_EQ(sh(client + " run --config tiny.yaml --verify"), 0) << text("err.txt");
  EXPECT_NE(text("out.txt").find("verify: "), std::string::npos) << text("out.txt");
  ASSERT_EQ(sh(client + " --local compress orig.bin -m m.boam --chunks 3 -o three.boa"), 0) << text("err.txt");
  EXPECT_EQ(ReadFile(d + "/tiny.boa", 1 << 30).value(), ReadFile(d + "/three.boa", 1 << 30).value());
  ASSERT_EQ(sh(client + " bench orig.bin -m m"), 0) << text("err.txt");
  EXPECT_NE(text("out.txt").find("boa (m on boad)"), std::string::npos) << text("out.txt");
  ASSERT_EQ(sh(client + " bench orig.bin -m m.boam"), 0) << text("err.txt");
  EXPECT_NE(text("out.txt").find("boa (m.boam)"), std::string::npos) << "a model file: in this process";
  // run with a model the server lacks: uploaded, and said so.
  ASSERT_TRUE(WriteFileAtomic(d + "/new.boam", SerializeModel(testing::MakeModel(16, 1, 31).weights, WeightType::kF32, ""),
                              true).ok());
  std::ofstream(d + "/fresh.yaml") << "name: fresh\nfile_path: orig.bin\nmodel_path: new.boam\nprogress: false\n";
  ASSERT_EQ(sh(client + " run --config fresh.yaml"), 0) << text("err.txt");
  EXPECT_NE(text("err.txt").find("uploaded it as fresh:1"), std::string::npos) << text("err.txt");
  EXPECT_EQ(sh(client + " models list"), 0);
  EXPECT_NE(text("out.txt").find(model_.IdHex().substr(0, 12)), std::string::npos) << text("out.txt");
  EXPECT_EQ(sh(client + " models download m -o copy.boam && cmp copy.boam m.boam"), 0) << text("err.txt");
  EXPECT_EQ(sh(client + " status"), 0);
  EXPECT_NE(text("out.txt").find("SERVING"), std::string::npos);
  // One clear line for each failure.
  EXPECT_EQ(sh(client + " compress orig.bin -m nosuch -f"), 256);
  EXPECT_NE(text("err.txt").find("unknown model 'nosuch'"), std::string::npos) << text("err.txt");
  ASSERT_TRUE(WriteFileAtomic(d + "/big.bin", testing::RandomBytes(2 << 20, 5), true).ok());
  EXPECT_EQ(sh(client + " --timeout 0.2 compress big.bin -m m"), 256);
  EXPECT_NE(text("err.txt").find("deadline exceeded"), std::string::npos) << text("err.txt");
  EXPECT_FALSE(std::filesystem::exists(d + "/big.bin.boa")) << "no partial output";
  EXPECT_EQ(sh(std::string(BOA_CLIENT) + " --server 127.0.0.1:1 status"), 256);
  EXPECT_NE(text("err.txt").find("cannot reach boad at 127.0.0.1:1"), std::string::npos) << text("err.txt");
  EXPECT_EQ(sh(client + " models rm m:1"), 0) << text("err.txt");
  EXPECT_EQ(sh(client + " verify data.bin.boa"), 256);
  EXPECT_NE(text("err.txt").find("which this server does not have"), std::string::npos) << text("err.txt");
}

// Counts and hashes what it is given, keeping nothing.
class HashingSink final : public ByteSink {
 public:
  Status Write(const uint8_t* p, size_t n) override {
    hash.Update(p, n);
    bytes += n;
    return Status::Ok();
  }
  Xxh3Hasher hash;
  uint64_t bytes = 0;
};

// Resident memory of a process from /proc, in bytes: "VmRSS" now, "VmHWM" the peak.
uint64_t Rss(pid_t pid, const std::string& field) { return testing::ProcStatus(pid, field) * 1024; }

TEST_F(ServerTest, LargeStreamsPassWithBoundedServerMemory) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  ASSERT_TRUE(c->LoadModel("m").ok());
  const uint64_t idle = Rss(boad->pid(), "VmRSS");  // libraries, threads, the resident model
  // 256 MiB through Decompress. The file is written directly as stored chunks: coding that
  // much with a model would take minutes, and the stream path is what is tested here.
  const uint32_t chunk = 1u << 20;
  const int chunks = 256;
  const std::string path = dir_.path() + "/big.boa";
  Xxh3Hasher content;
  {
    auto file = AtomicOutputFile::Create(path, true);
    ASSERT_TRUE(file.ok());
    ContainerWriter w(file->get(), MakeHeader(model_, chunk));
    ASSERT_TRUE(w.WriteHeader().ok());
    for (int i = 0; i < chunks; ++i) {
      std::vector<uint8_t> data = testing::RandomBytes(chunk, 1000 + i);
      content.Update(data.data(), data.size());
      ASSERT_TRUE(w.WriteChunk(ChunkMethod::kStored, chunk, data.data(), data.size()).ok());
    }
    ASSERT_TRUE(w.Finish(content.Digest()).ok());
    ASSERT_TRUE((*file)->Commit("").ok());
  }
  auto src = FileSource::Open(path);
  ASSERT_TRUE(src.ok());
  HashingSink out;
  Status s = c->Decompress("", src->get(), &out, nullptr, nullptr);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out.bytes, uint64_t{chunk} * chunks);
  EXPECT_EQ(out.hash.Digest(), content.Digest());
  // And 16 MiB through Compress with the model.
  std::vector<uint8_t> data = testing::FloatTable(16u << 20, 9);
  std::vector<uint8_t> packed, back;
  ASSERT_TRUE(RemoteCompress(*c, data, &packed, 65536).ok());
  ASSERT_TRUE(RemoteDecompress(*c, packed, &back).ok());
  EXPECT_TRUE(back == data);
  const uint64_t peak = Rss(boad->pid(), "VmHWM");
  std::printf("[ memory ] boad RSS %.1f MiB idle, peak %.1f MiB after 256 MiB + 2 x 16 MiB streamed\n",
              idle / 1048576.0, peak / 1048576.0);
  ASSERT_GT(idle, 0u);
  EXPECT_LT(peak - idle, 96u << 20) << "the server must not hold whole streams";
}

#ifdef BOA_HAVE_TRAIN
TEST_F(ServerTest, TrainingJobsRegisterTheirModelAndOutliveTheirClient) {
  const std::string data_dir = dir_.path() + "/data";
  std::filesystem::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  auto boad = Start({"--train-data-dir", data_dir});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  v1::TrainRequest req;
  req.set_name("trained");
  req.add_files("jets.bin");
  req.set_d_model(16);
  req.set_n_layers(1);
  req.set_seq_len(128);
  req.set_batch_size(4);
  req.set_epochs(2);
  req.set_lr(5e-3);
  std::vector<v1::TrainEvent> events;
  Status s = c->Train(req, [&](const v1::TrainEvent& e) { events.push_back(e); });
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_GE(events.size(), 3u);
  EXPECT_TRUE(events.front().has_job());
  EXPECT_TRUE(events[1].has_progress());
  const v1::JobInfo& done = events.back().job();
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  EXPECT_GT(done.val_bpb(), 0);
  EXPECT_EQ(done.model().name(), "trained");
  // The model is in the store and codes.
  std::vector<uint8_t> data = testing::FloatTable(20000, 9), packed, back;
  ASSERT_TRUE(RemoteCompress(*c, data, &packed, 4096, "trained").ok());
  ASSERT_TRUE(RemoteDecompress(*c, packed, &back).ok());
  EXPECT_EQ(back, data);

  // Paths outside the data directory are refused.
  std::filesystem::create_symlink("/etc/passwd", data_dir + "/escape");
  for (const char* bad : {"../m.boam", "/etc/passwd", "escape", "missing.bin"}) {
    v1::TrainRequest r = req;
    r.clear_files();
    r.add_files(bad);
    EXPECT_EQ(c->Train(r, [](const v1::TrainEvent&) {}).code(), StatusCode::kInvalidArgument) << bad;
  }

  // A client that stops listening leaves its job running; CancelJob stops it.
  v1::TrainRequest longer = req;
  longer.set_epochs(1000);
  c->set_deadline(1.0);
  std::string id;
  EXPECT_EQ(c->Train(longer, [&](const v1::TrainEvent& e) { if (e.has_job()) id = e.job().id(); }).code(),
            StatusCode::kDeadlineExceeded);
  c->set_deadline(0);
  ASSERT_FALSE(id.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(c->GetJob(id)->state(), v1::JOB_RUNNING);
  ASSERT_TRUE(c->CancelJob(id).ok());
  auto t0 = Clock::now();
  while (c->GetJob(id)->state() == v1::JOB_RUNNING && Clock::now() - t0 < std::chrono::seconds(20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(c->GetJob(id)->state(), v1::JOB_CANCELLED);
  EXPECT_EQ(c->ListJobs()->size(), 2u);
}

// A job is sized before it is queued; one that runs out of memory anyway fails, alone.
TEST_F(ServerTest, ATrainingJobCannotTakeTheServerDown) {
  const std::string data_dir = dir_.path() + "/data";
  std::filesystem::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  const std::string config = dir_.path() + "/boad.yaml";
  v1::TrainRequest huge;
  huge.set_name("huge");
  huge.add_files("jets.bin");
  huge.set_d_model(4096);
  huge.set_n_layers(64);
  huge.set_seq_len(128);
  {
    auto boad = Start({"--train-data-dir", data_dir});
    auto c = boad->Connect();
    ASSERT_TRUE(c);
    Status s = c->Train(huge, [](const v1::TrainEvent&) {});
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
    EXPECT_NE(s.message().find("train_memory_budget"), std::string::npos) << s.message();
    EXPECT_TRUE(c->ListJobs()->empty()) << "refused before it was queued";
    v1::TrainRequest nan = huge;
    nan.set_d_model(16);
    nan.set_n_layers(1);
    nan.set_max_seconds(std::nan(""));
    EXPECT_EQ(c->Train(nan, [](const v1::TrainEvent&) {}).code(), StatusCode::kInvalidArgument);
  }
  // With a budget larger than the memory there is, the job starts and fails on its own.
  std::ofstream(config) << "train_data_dir: " << data_dir << "\ntrain_memory_budget: 64G\njobs_dir: " << dir_.path()
                         << "/jobs\n";
  Boad boad(BOAD, dir_.path() + "/store", {"--config", config}, 3000ull << 20);
  auto c = boad.Connect();
  ASSERT_TRUE(c) << "boad did not start";
  ASSERT_TRUE(c->UploadModel(model_path_, "m", 0).ok());
  v1::TrainRequest big = huge;
  big.set_d_model(2048);  // ~480 M parameters: 1.9 GB for each copy of the weights
  big.set_n_layers(8);
  v1::JobInfo last;
  Status s = c->Train(big, [&](const v1::TrainEvent& e) { if (e.has_job()) last = e.job(); });
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(last.state(), v1::JOB_FAILED);
  EXPECT_NE(last.message().find("out of memory"), std::string::npos) << last.message();
  std::vector<uint8_t> data = testing::FloatTable(10000, 3), out, back;
  ASSERT_TRUE(RemoteCompress(*c, data, &out).ok()) << "boad still serves";
  ASSERT_TRUE(RemoteDecompress(*c, out, &back).ok());
  EXPECT_EQ(back, data);
  EXPECT_EQ(boad.Terminate(), 0);
}

TEST_F(ServerTest, SigtermCheckpointsARunningTrainingJob) {
  const std::string data_dir = dir_.path() + "/data", jobs_dir = dir_.path() + "/jobs";
  std::filesystem::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "train_data_dir: " << data_dir << "\njobs_dir: " << jobs_dir << "\n";
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  v1::TrainRequest req;
  req.set_name("long");
  req.add_files("jets.bin");
  req.set_d_model(16);
  req.set_n_layers(1);
  req.set_seq_len(128);
  req.set_epochs(1000);
  std::string id;
  c->set_deadline(1.5);  // listen for a moment, then let the job run on its own
  EXPECT_EQ(c->Train(req, [&](const v1::TrainEvent& e) { if (e.has_job()) id = e.job().id(); }).code(),
            StatusCode::kDeadlineExceeded);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(boad->Terminate(), 0);
  const std::string ckpt = jobs_dir + "/" + id + "/ckpt";
  ASSERT_TRUE(std::filesystem::exists(ckpt + "/CURRENT")) << "the job checkpointed";
  const std::vector<uint8_t> current = ReadFile(ckpt + "/CURRENT", 64).value();
  EXPECT_TRUE(std::filesystem::exists(ckpt + "/" + std::string(current.begin(), current.end() - 1) + "/model.pt"));
}
// Jobs outlive boad: one stopped by a shutdown, or running when boad was killed, is listed
// after the restart as interrupted and continues from its checkpoint when resumed.
TEST_F(ServerTest, InterruptedJobsSurviveARestartAndResume) {
  const std::string data_dir = dir_.path() + "/data", jobs_dir = dir_.path() + "/jobs";
  std::filesystem::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "train_data_dir: " << data_dir << "\njobs_dir: " << jobs_dir << "\n";
  v1::TrainRequest req;
  req.set_name("resumable");
  req.add_files("jets.bin");
  req.set_d_model(16);
  req.set_n_layers(1);
  req.set_seq_len(128);
  req.set_epochs(100000);
  req.set_max_seconds(8);
  // Starts the job and lets it run until it has made progress.
  auto start_job = [&](RemoteClient& c) {
    std::string id;
    int lines = 0;
    c.set_deadline(2.5);
    c.Train(req, [&](const v1::TrainEvent& e) {
      if (e.has_job()) id = e.job().id();
      lines += e.has_progress();
    }).ok();
    c.set_deadline(0);
    EXPECT_GT(lines, 0);
    return id;
  };
  std::string stopped, killed;
  {
    auto boad = Start({"--config", config});
    auto c = boad->Connect();
    ASSERT_TRUE(c);
    stopped = start_job(*c);
    ASSERT_FALSE(stopped.empty());
    EXPECT_EQ(boad->Terminate(), 0);
  }
  uint64_t steps_before = 0;
  {
    auto boad = Start({"--config", config});
    auto c = boad->Connect();
    ASSERT_TRUE(c);
    Result<v1::JobInfo> j = c->GetJob(stopped);
    ASSERT_TRUE(j.ok()) << "the job is still known after the restart";
    EXPECT_EQ(j->state(), v1::JOB_INTERRUPTED) << j->message();
    EXPECT_NE(j->message().find("boa-client jobs resume " + stopped), std::string::npos) << j->message();
    steps_before = j->steps();
    EXPECT_GT(steps_before, 0u);
    killed = start_job(*c);  // this one is running when boad dies
    boad->Signal(SIGKILL);
    boad->Wait();
  }
  auto boad = Start({"--config", config});
  auto c = boad->Connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->GetJob(killed)->state(), v1::JOB_INTERRUPTED) << c->GetJob(killed)->message();
  EXPECT_EQ(c->ListJobs()->size(), 2u);
  v1::JobInfo last;
  bool resumed_line = false;
  Status s = c->ResumeJob(stopped, [&](const v1::TrainEvent& e) {
    if (e.has_job()) last = e.job();
    if (e.has_progress() && e.progress().line().find("step") != std::string::npos) resumed_line = true;
  });
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(last.state(), v1::JOB_SUCCEEDED) << last.message();
  EXPECT_GT(last.steps(), steps_before) << "it went on from where it stopped";
  EXPECT_GE(last.seconds(), 7.0) << "its time budget counts the earlier run";
  EXPECT_EQ(last.model().name(), "resumable");
  EXPECT_TRUE(resumed_line);
  EXPECT_EQ(c->ResumeJob(stopped, [](const v1::TrainEvent&) {}).code(), StatusCode::kFailedPrecondition)
      << "a job that succeeded is done";
  EXPECT_EQ(c->ResumeJob("job-999-000000", [](const v1::TrainEvent&) {}).code(), StatusCode::kNotFound);
  // The client command follows a resumed job to its end.
  ASSERT_TRUE(c->CancelJob(killed).ok());
  const std::string cmd = std::string(BOA_CLIENT) + " --server " + boad->address() + " -q jobs resume " + killed;
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(c->GetJob(killed)->state(), v1::JOB_SUCCEEDED);
}
#endif

TEST_F(ServerTest, TrainingIsOffWithoutADataDirectory) {
  auto boad = Start();
  auto c = boad->Connect();
  ASSERT_TRUE(c) << "boad at " << boad->address() << " cannot be reached";
  v1::TrainRequest req;
  req.set_name("x");
  req.add_files("data.bin");
  EXPECT_EQ(c->Train(req, [](const v1::TrainEvent&) {}).code(), StatusCode::kFailedPrecondition);
}

TEST(BoadConfig, BadConfigurationExitsTwoWithTheKey) {
  testing::TempDir dir("boad_config");
  const std::string config = dir.path() + "/boad.yaml";
  auto run = [&](const std::string& yaml, std::string* err) {
    std::ofstream(config) << yaml;
    std::string cmd = std::string(BOAD) + " --check-config --config " + config + " 2>" + dir.path() + "/err.txt >/dev/null";
    int rc = std::system(cmd.c_str());
    std::ifstream f(dir.path() + "/err.txt");
    *err = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return WEXITSTATUS(rc);
  };
  std::string err;
  EXPECT_EQ(run("listen: 127.0.0.1:7000\nlanes: 64\nmemory_budget: 2G\n", &err), 0) << err;
  EXPECT_EQ(run("lanes: many\n", &err), 2);
  EXPECT_NE(err.find("'lanes' must be an integer"), std::string::npos) << err;
  EXPECT_EQ(run("laness: 4\n", &err), 2);
  EXPECT_NE(err.find("unknown key 'laness'"), std::string::npos) << err;
  EXPECT_EQ(run("memory_budget: 3Q\n", &err), 2);
  EXPECT_NE(err.find("memory_budget"), std::string::npos) << err;
  EXPECT_EQ(run("memory_budget: -4G\n", &err), 2);
  EXPECT_NE(err.find("'-4G' is not a size"), std::string::npos) << err;
  EXPECT_EQ(run("queue_limit: 0\n", &err), 2);
  EXPECT_NE(err.find("queue_limit"), std::string::npos) << err;
  for (const char* bad : {"127.0.0.1:99999", "127.0.0.1:", ":50051", "::1:50051", "[::1:50051", "host name:1", "127.0.0.1:-1"}) {
    EXPECT_EQ(run(std::string("listen: '") + bad + "'\n", &err), 2) << bad;
    EXPECT_NE(err.find("listen"), std::string::npos) << err;
  }
  for (const char* good : {"[::1]:0", "localhost:50051"}) {
    EXPECT_EQ(run(std::string("listen: '") + good + "'\n", &err), 0) << good << ": " << err;
  }
  // Every interface is a valid address, refused without tokens (docs/security.md).
  EXPECT_EQ(run("listen: '0.0.0.0:65535'\n", &err), 2);
  EXPECT_NE(err.find("without tokens"), std::string::npos) << err;
  // Devices: checked for form here (--check-config does not need the GPU), named by path.
  EXPECT_EQ(run("devices: [cuda:0, {name: cuda:1, lanes: 2048, memory_budget: 20G}, cpu]\n", &err), 0) << err;
  const std::pair<const char*, const char*> bad_devices[] = {
      {"devices: cpu\n", "'devices' must be a list of devices"},
      {"devices: []\n", "devices: must name at least one device"},
      {"devices: [cpu, cuda:0, cpu]\n", "devices[2]: cpu is listed twice"},
      {"devices: [gpu0]\n", "devices[0]: 'gpu0' is not a device (expected cpu or cuda:N"},
      {"devices: [cpu, {name: cuda:1, lanes: 0}]\n", "devices[1].lanes: must be at least 1"},
      {"devices: [{name: cuda:1, lane: 4}]\n", "devices[0].lane: unknown key (known: name, lanes, threads, memory_budget)"},
      {"devices: [{lanes: 4}]\n", "devices[0]: needs a name"},
      {"devices: [{name: cpu, threads: many}]\n", "devices[0].threads: must be an integer"},
      {"devices: [{name: cpu, memory_budget: 3Q}]\n", "devices[0].memory_budget: "},
      {"devices: [{name: cpu, memory_budget: 1K}]\n", "devices[0].memory_budget: must be at least 1M"}};
  for (const auto& [yaml, expected] : bad_devices) {
    EXPECT_EQ(run(yaml, &err), 2) << yaml;
    EXPECT_NE(err.find(expected), std::string::npos) << yaml << err;
  }
}

// A device the machine does not have stops boad at start, before it listens, naming the entry.
TEST(BoadConfig, ADeviceThisMachineLacksStopsBoad) {
  testing::TempDir dir("boad_devices");
  const std::string cmd = std::string(BOAD) + " --listen 127.0.0.1:0 --model-dir " + dir.path() + "/models --jobs-dir " +
                          dir.path() + "/jobs --devices cpu,cuda:99 2>" + dir.path() + "/err.txt >" + dir.path() + "/out.txt";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  std::ifstream f(dir.path() + "/err.txt");
  const std::string err((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(err.find("devices[1]: cuda:99: "), std::string::npos) << err;
  std::ifstream out(dir.path() + "/out.txt");
  const std::string listening((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(listening.find("boad listening"), std::string::npos) << listening;
}

}  // namespace
}  // namespace boa
