// boad on a shared network (docs/security.md), against a real boad: tokens and roles gate
// every RPC, a network address needs tokens or --insecure, and the known holes stay closed:
// idle streams hold no admission slot or thread, uploads are checked at their first bytes
// and never buffered whole, and a few .boa bytes that claim gigabytes are refused before work.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include <google/protobuf/descriptor.h>

#include "boa/v1/boa.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "common/format/container.h"
#include "common/util/hash.h"
#include "rpc/remote_client.h"
#include "server/access.h"
#include "testkit/boad_process.h"
#include "testkit/http_get.h"
#include "testkit/test_pki.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Boad;
using testing::MetricSeries;
using testing::ProcStatus;
using testing::RunCommand;
using testing::WaitUntil;

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::MakeModel(16, 1, 5, 4.0f);
    model_file_ = SerializeModel(model_.weights, WeightType::kF32, "test");
    model_path_ = dir_.path() + "/m.boam";
    ASSERT_TRUE(WriteFileAtomic(model_path_, model_file_, true).ok());
  }
  // A token file granting each name its roles; the tokens by name.
  std::map<std::string, std::string> WriteTokens(const std::map<std::string, std::string>& roles) {
    std::map<std::string, std::string> tokens;
    std::string yaml = "tokens:\n";
    for (const auto& [name, r] : roles) {
      Result<server::NewToken> t = server::GenerateToken();
      EXPECT_TRUE(t.ok());
      tokens[name] = t->token;
      yaml += "  - name: " + name + "\n    sha256: " + t->sha256 + "\n    roles: [" + r + "]\n";
    }
    std::ofstream(token_file()) << yaml;
    return tokens;
  }
  std::string token_file() const { return dir_.path() + "/tokens.yaml"; }
  std::string config(const std::string& yaml) {
    const std::string path = dir_.path() + "/boad.yaml";
    std::ofstream(path) << yaml;
    return path;
  }
  std::unique_ptr<rpc::RemoteClient> Connect(const Boad& b, const std::string& token = "") {
    auto c = rpc::RemoteClient::Connect(b.address(), 10, token);
    return c.ok() ? std::move(c).value() : nullptr;
  }
  std::string store() const { return dir_.path() + "/store"; }

  testing::TempDir dir_{"security_test"};
  LoadedModel model_;
  std::vector<uint8_t> model_file_;
  std::string model_path_;
};

// A call of every boa.v1.Boa method with an empty request, on a raw stub with `token`:
// the status of each, by method name.
std::map<std::string, grpc::StatusCode> CallEveryMethod(const std::string& address, const std::string& token) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Boa::NewStub(channel);
  std::map<std::string, grpc::StatusCode> codes;
  const auto ctx = [&](grpc::ClientContext* c) {
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  };
  const auto unary = [&](const std::string& name, auto call) {
    grpc::ClientContext c;
    ctx(&c);
    codes[name] = call(&c).error_code();
  };
  v1::ModelRef ref;
  ref.set_model("m");
  v1::JobRef job;
  job.set_id("j-none");
  v1::ModelInfo info;
  v1::JobInfo jinfo;
  unary("ListModels", [&](grpc::ClientContext* c) {
    v1::ListModelsResponse r;
    return stub->ListModels(c, v1::ListModelsRequest(), &r);
  });
  unary("GetModel", [&](grpc::ClientContext* c) { return stub->GetModel(c, ref, &info); });
  unary("DeleteModel", [&](grpc::ClientContext* c) { return stub->DeleteModel(c, ref, &info); });
  unary("LoadModel", [&](grpc::ClientContext* c) { return stub->LoadModel(c, ref, &info); });
  unary("UnloadModel", [&](grpc::ClientContext* c) { return stub->UnloadModel(c, ref, &info); });
  unary("ServerInfo", [&](grpc::ClientContext* c) {
    v1::ServerInfoResponse r;
    return stub->ServerInfo(c, v1::ServerInfoRequest(), &r);
  });
  unary("GetJob", [&](grpc::ClientContext* c) { return stub->GetJob(c, job, &jinfo); });
  unary("ListJobs", [&](grpc::ClientContext* c) {
    v1::ListJobsResponse r;
    return stub->ListJobs(c, v1::ListJobsRequest(), &r);
  });
  unary("CancelJob", [&](grpc::ClientContext* c) { return stub->CancelJob(c, job, &jinfo); });
  unary("DownloadModel", [&](grpc::ClientContext* c) {
    auto r = stub->DownloadModel(c, ref);
    v1::DownloadModelResponse m;
    while (r->Read(&m)) {
    }
    return r->Finish();
  });
  unary("Train", [&](grpc::ClientContext* c) {
    auto r = stub->Train(c, v1::TrainRequest());
    v1::TrainEvent e;
    while (r->Read(&e)) {
    }
    return r->Finish();
  });
  unary("ResumeJob", [&](grpc::ClientContext* c) {
    auto r = stub->ResumeJob(c, job);
    v1::TrainEvent e;
    while (r->Read(&e)) {
    }
    return r->Finish();
  });
  unary("UploadModel", [&](grpc::ClientContext* c) {
    v1::ModelInfo i;
    auto w = stub->UploadModel(c, &i);
    w->WritesDone();
    return w->Finish();
  });
  unary("Verify", [&](grpc::ClientContext* c) {
    v1::CodecSummary s;
    auto w = stub->Verify(c, &s);
    w->WritesDone();
    return w->Finish();
  });
  unary("Eval", [&](grpc::ClientContext* c) {
    v1::EvalSummary s;
    auto w = stub->Eval(c, &s);
    w->WritesDone();
    return w->Finish();
  });
  unary("Compress", [&](grpc::ClientContext* c) {
    auto rw = stub->Compress(c);
    rw->WritesDone();
    v1::CompressResponse r;
    while (rw->Read(&r)) {
    }
    return rw->Finish();
  });
  unary("Decompress", [&](grpc::ClientContext* c) {
    auto rw = stub->Decompress(c);
    rw->WritesDone();
    v1::DecompressResponse r;
    while (rw->Read(&r)) {
    }
    return rw->Finish();
  });
  return codes;
}

TEST_F(SecurityTest, TokensAndRolesGateEveryMethod) {
  auto tokens = WriteTokens({{"reader", "read"}, {"writer", "read, write"}, {"ops", "admin"}});
  Boad b(BOAD, store(), {"--token-file", token_file(), "--metrics-listen", "127.0.0.1:0"});
  ASSERT_FALSE(b.address().empty());
  // Every method of the service is in the table, and each refuses a call without a token
  // before it does anything.
  const std::map<std::string, grpc::StatusCode> anonymous = CallEveryMethod(b.address(), "");
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(v1::Boa::service_full_name());
  ASSERT_NE(service, nullptr);
  std::set<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.insert(service->method(i)->name());
  std::set<std::string> called;
  for (const auto& [name, code] : anonymous) {
    called.insert(name);
    EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << name;
  }
  EXPECT_EQ(called, methods) << "a method of boa.v1.Boa is missing from CallEveryMethod";
  // An unknown token is no better.
  for (const auto& [name, code] : CallEveryMethod(b.address(), "boa_not-a-token")) {
    EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << name;
  }
  // A reader may read, not change the store or train.
  const std::set<std::string> write_or_train = {"UploadModel", "DeleteModel", "LoadModel", "UnloadModel",
                                                "Train",       "GetJob",      "ListJobs",  "CancelJob", "ResumeJob"};
  for (const auto& [name, code] : CallEveryMethod(b.address(), tokens["reader"])) {
    if (write_or_train.count(name)) {
      EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED) << name;
    } else {
      EXPECT_NE(code, grpc::StatusCode::PERMISSION_DENIED) << name;
      EXPECT_NE(code, grpc::StatusCode::UNAUTHENTICATED) << name;
    }
  }
  // The writer uploads; the reader compresses with it; admin may do anything.
  auto writer = Connect(b, tokens["writer"]);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->UploadModel(model_path_, "jets", 0).ok());
  auto reader = Connect(b, tokens["reader"]);
  Result<std::vector<v1::ModelInfo>> list = reader->ListModels();
  ASSERT_TRUE(list.ok()) << list.status().message();
  ASSERT_EQ(list->size(), 1u);
  Result<v1::ModelInfo> denied = reader->DeleteModel("jets");
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("needs the role write; reader has read"), std::string::npos)
      << denied.status().message();
  for (const auto& [name, code] : CallEveryMethod(b.address(), tokens["ops"])) {
    EXPECT_NE(code, grpc::StatusCode::PERMISSION_DENIED) << name;
    EXPECT_NE(code, grpc::StatusCode::UNAUTHENTICATED) << name;
  }
  // Refusals are counted by reason.
  EXPECT_GE(MetricSeries(b, "boad_rejected_requests_total{reason=\"unauthenticated\"}"), 2 * methods.size());
  EXPECT_GE(MetricSeries(b, "boad_rejected_requests_total{reason=\"permission_denied\"}"), 10);
}

// The reported attack: from another host, with no credentials, `models rm prod` and an
// upload of jets:2 that every `-m jets` would then resolve to.
TEST_F(SecurityTest, AnUnauthenticatedClientCannotReplaceOrDeleteModels) {
  auto tokens = WriteTokens({{"operator", "read, write"}});
  Boad b(BOAD, store(), {"--token-file", token_file()});
  auto op = Connect(b, tokens["operator"]);
  ASSERT_TRUE(op);
  ASSERT_TRUE(op->UploadModel(model_path_, "prod", 0).ok());
  ASSERT_TRUE(op->UploadModel(model_path_, "jets", 1).ok());
  auto attacker = Connect(b);
  ASSERT_TRUE(attacker);
  EXPECT_EQ(attacker->DeleteModel("prod").status().code(), StatusCode::kUnauthenticated);
  LoadedModel other = testing::MakeModel(16, 1, 99, 4.0f);
  const std::string evil = dir_.path() + "/evil.boam";
  ASSERT_TRUE(WriteFileAtomic(evil, SerializeModel(other.weights, WeightType::kF32, "evil"), true).ok());
  Result<v1::ModelInfo> up = attacker->UploadModel(evil, "jets", 2);
  EXPECT_EQ(up.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(up.status().message().find("requires a token"), std::string::npos) << up.status().message();
  Result<v1::ModelInfo> jets = op->GetModel("jets");
  ASSERT_TRUE(jets.ok());
  EXPECT_EQ(jets->version(), 1u);
  EXPECT_EQ(jets->id(), model_.IdHex());
  EXPECT_TRUE(op->GetModel("prod").ok());
}

TEST_F(SecurityTest, SighupReadsTheTokenFileAgain) {
  auto first = WriteTokens({{"a", "read"}});
  Boad b(BOAD, store(), {"--token-file", token_file(), "--metrics-listen", "127.0.0.1:0"});
  auto a = Connect(b, first["a"]);
  ASSERT_TRUE(a->ListModels().ok());
  auto second = WriteTokens({{"b", "read"}});  // a's token is gone, b's is new
  b.Signal(SIGHUP);
  auto bc = Connect(b, second["b"]);
  const auto t0 = Clock::now();
  while (!bc->ListModels().ok() && Clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(bc->ListModels().ok());
  EXPECT_EQ(a->ListModels().status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(MetricSeries(b, "boad_config_reloads_total{result=\"ok\"}"), 1);
  // A broken file keeps the running table; so does one that is not even a list.
  for (const char* broken : {"tokens: [{name: x}]\n", "tokens:\n  ? [a, b]\n  : c\n", "{[1]: 2}\n"}) {
    const double errors = MetricSeries(b, "boad_config_reloads_total{result=\"error\"}");
    std::ofstream(token_file()) << broken;
    b.Signal(SIGHUP);
    EXPECT_TRUE(WaitUntil([&] { return MetricSeries(b, "boad_config_reloads_total{result=\"error\"}") == errors + 1; })) << broken;
    EXPECT_TRUE(bc->ListModels().ok()) << broken;
  }
}

TEST_F(SecurityTest, ANetworkAddressNeedsTokensOrInsecure) {
  std::string out;
  EXPECT_EQ(RunCommand(std::string(BOAD) + " --listen 0.0.0.0:0 --model-dir " + store(), &out), 2) << out;
  EXPECT_NE(out.find("refusing to serve 0.0.0.0:0 without tokens"), std::string::npos) << out;
  // With tokens it serves; with --insecure too, loudly.
  WriteTokens({{"a", "read"}});
  Boad with_tokens(BOAD, store(), {"--listen", "0.0.0.0:0", "--token-file", token_file()});
  EXPECT_FALSE(with_tokens.address().empty());
  Boad insecure(BOAD, store() + "2", {"--listen", "0.0.0.0:0", "--insecure"});
  EXPECT_FALSE(insecure.address().empty());
  // A token file with a mistake names the key.
  std::ofstream(token_file()) << "tokens:\n  - name: a\n    sha256: " << std::string(64, 'a') << "\n    roles: [reed]\n";
  out.clear();
  EXPECT_EQ(RunCommand(std::string(BOAD) + " --token-file " + token_file() + " --model-dir " + store() + "3", &out), 2);
  EXPECT_NE(out.find("tokens[0].roles[0]: 'reed' is not a role"), std::string::npos) << out;
}

TEST_F(SecurityTest, BoadTokenAndTheClientFlags) {
  std::string out;
  const std::string printed = dir_.path() + "/printed", entry_file = dir_.path() + "/entry";
  ASSERT_EQ(RunCommand(std::string(BOAD) + " token --name daq --roles read,write > " + printed + " 2> " + entry_file, &out), 0)
      << out;
  std::string token, entry;
  std::getline(std::ifstream(printed), token);
  ASSERT_EQ(token.rfind("boa_", 0), 0u) << token;
  std::ifstream e(entry_file);
  entry.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  EXPECT_NE(entry.find("sha256: " + server::TokenDigest(token)), std::string::npos) << entry;
  EXPECT_NE(entry.find("roles: [read, write]"), std::string::npos) << entry;
  EXPECT_EQ(entry.find(token), std::string::npos) << "the entry must not hold the token";
  std::ofstream(token_file()) << "tokens:\n  - name: daq\n    sha256: " << server::TokenDigest(token)
                              << "\n    roles: [read, write]\n";
  Boad b(BOAD, store(), {"--token-file", token_file()});
  const std::string client = std::string(BOA_CLIENT) + " --server " + b.address();
  out.clear();
  EXPECT_NE(RunCommand(client + " models list", &out), 0);
  EXPECT_NE(out.find("requires a token"), std::string::npos) << out;
  const std::string file = dir_.path() + "/daq.token";
  std::ofstream(file) << token << "\n";
  out.clear();
  EXPECT_EQ(RunCommand(client + " --token-file " + file + " models upload " + model_path_ + " --name jets", &out), 0) << out;
  out.clear();
  EXPECT_EQ(RunCommand("BOA_TOKEN=" + token + " " + client + " models list", &out), 0) << out;
  EXPECT_NE(out.find("jets"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(RunCommand(client + " --token-file " + dir_.path() + "/missing.token models list", &out), 0);
  EXPECT_NE(out.find("missing.token"), std::string::npos) << out;
}

// 64 streams that never send a message held every admission slot for good; now a stream
// is admitted when its options arrive, and one that stalls is closed after
// stream_idle_seconds.
TEST_F(SecurityTest, SilentStreamsHoldNoSlotAndAreClosed) {
  Boad b(BOAD, store(), {"--config", config("queue_limit: 4\nstream_idle_seconds: 1\n"), "--metrics-listen", "127.0.0.1:0"});
  auto c = Connect(b);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->UploadModel(model_path_, "m", 0).ok());
  auto channel = grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Boa::NewStub(channel);
  struct Silent {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::CompressRequest, v1::CompressResponse>> stream;
  };
  const auto open = [&] {
    auto q = std::make_unique<Silent>();
    q->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));  // a regression fails, not hangs
    q->stream = stub->Compress(&q->ctx);
    return q;
  };
  std::vector<std::unique_ptr<Silent>> silent;
  for (int i = 0; i < 16; ++i) silent.push_back(open());
  // One that sent its options and then stalls holds a slot, until the idle limit.
  auto stalled = open();
  v1::CompressRequest opt;
  opt.mutable_options()->set_model("m");
  ASSERT_TRUE(stalled->stream->Write(opt));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // A real client is served meanwhile.
  const std::vector<uint8_t> in = testing::FloatTable(20000, 1);
  MemorySource src(in);
  MemorySink sink;
  CodecOptions o;
  o.chunk_length = 4096;
  Status s = c->Compress("m", o, &src, &sink, nullptr, nullptr);
  EXPECT_TRUE(s.ok()) << s.message();
  // Every silent stream is closed by the server within a few idle limits.
  const auto t0 = Clock::now();
  for (auto& q : silent) {
    v1::CompressResponse r;
    while (q->stream->Read(&r)) {
    }
    const grpc::Status st = q->stream->Finish();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << "the server never closed it";
  }
  v1::CompressResponse r;
  while (stalled->stream->Read(&r)) {
  }
  EXPECT_FALSE(stalled->stream->Finish().ok());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  const auto t1 = Clock::now();
  Result<v1::ServerInfoResponse> info = c->Info();
  while (info.ok() && info->open_requests() != 0 && Clock::now() - t1 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    info = c->Info();
  }
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->open_requests(), 0u);
  // Counted as each handler ends, which may be just after its client saw the status.
  EXPECT_TRUE(WaitUntil([&] { return MetricSeries(b, "boad_rejected_requests_total{reason=\"idle\"}") >= 17; }, 5))
      << MetricSeries(b, "boad_rejected_requests_total{reason=\"idle\"}");
}

// Silent streams count against their caller from the start: one caller cannot hold every
// thread with them, and others are served meanwhile.
TEST_F(SecurityTest, ACallersSilentStreamsCountAgainstItsLimit) {
  auto tokens = WriteTokens({{"greedy", "read"}, {"other", "read"}});
  Boad b(BOAD, store(), {"--token-file", token_file(), "--config", config("max_requests_per_caller: 4\n")});
  auto op = Connect(b, tokens["other"]);
  auto stub = v1::Boa::NewStub(grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials()));
  struct Silent {
    grpc::ClientContext ctx;
    v1::CodecSummary summary;
    std::unique_ptr<grpc::ClientWriter<v1::DecompressRequest>> w;
  };
  std::vector<std::unique_ptr<Silent>> silent;
  for (int i = 0; i < 4; ++i) {
    silent.push_back(std::make_unique<Silent>());
    silent.back()->ctx.AddMetadata("authorization", "Bearer " + tokens["greedy"]);
    silent.back()->w = stub->Verify(&silent.back()->ctx, &silent.back()->summary);
  }
  ASSERT_TRUE(WaitUntil([&] { return op->Info().ok(); }));
  // The fifth is refused at once; another caller is not. A started call reaches boad
  // asynchronously (and a silent one shows in no count), so a fifth that came before all
  // four were counted, and was served, is tried again.
  grpc::Status st;
  WaitUntil([&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tokens["greedy"]);
    v1::CodecSummary summary;
    auto fifth = stub->Verify(&ctx, &summary);
    fifth->WritesDone();
    st = fifth->Finish();
    return st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("greedy has 4 requests open (max_requests_per_caller)"), std::string::npos)
      << st.error_message();
  ASSERT_TRUE(Connect(b, tokens["greedy"])) ;
  EXPECT_TRUE(op->ListModels().ok());
  for (auto& q : silent) q->ctx.TryCancel();
}

// 1000 idle uploads made 1000 server threads; now uploads beyond max_model_transfers are refused at
// once and the rest time out, so boad's threads stay few.
TEST_F(SecurityTest, IdleUploadsDoNotEachTakeAThread) {
  Boad b(BOAD, store(), {"--config", config("max_model_transfers: 2\nstream_idle_seconds: 2\n")});
  auto channel = grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Boa::NewStub(channel);
  const uint64_t threads_before = ProcStatus(b.pid(), "Threads");
  struct Idle {
    grpc::ClientContext ctx;
    v1::ModelInfo info;
    std::unique_ptr<grpc::ClientWriter<v1::UploadModelRequest>> w;
  };
  std::vector<std::unique_ptr<Idle>> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<Idle>());
    idle.back()->w = stub->UploadModel(&idle.back()->ctx, &idle.back()->info);
  }
  // While they are open: the refused ones' threads go back; two wait for their idle limit.
  uint64_t threads_during = 0;
  EXPECT_TRUE(WaitUntil([&] { return (threads_during = ProcStatus(b.pid(), "Threads")) < threads_before + 20; }, 1.5))
      << "before " << threads_before << ", during " << threads_during;
  int exhausted = 0;
  for (auto& u : idle) exhausted += u->w->Finish().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  EXPECT_GE(exhausted, 190);
}

// The transport's limits: a message too large, a connection that never says anything, one
// that sits idle.
TEST_F(SecurityTest, TransportLimitsCloseWhatOverstays) {
  Boad b(BOAD, store(),
         {"--config", config("max_message_bytes: 1100K\nhandshake_timeout_seconds: 0.5\nconnection_idle_seconds: 1\n")});
  ASSERT_FALSE(b.address().empty());
  ASSERT_TRUE(Connect(b)->UploadModel(model_path_, "m", 0).ok());
  auto channel = grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Boa::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::EvalSummary summary;
    auto w = stub->Eval(&ctx, &summary);
    v1::CompressRequest opt, big;
    opt.mutable_options()->set_model("m");
    big.set_data(std::string(2 << 20, 'x'));
    w->Write(opt);
    w->Write(big);
    w->WritesDone();
    const grpc::Status st = w->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  }
  // A TCP connection that sends nothing is closed after the handshake timeout.
  {
    const std::string port = b.address().substr(b.address().rfind(':') + 1);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto t0 = Clock::now();
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    EXPECT_EQ(n, 0) << "the server did not close the connection";
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(4));
    close(fd);
  }
  // An idle connection is let go (GOAWAY): the channel leaves READY.
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5)));
  EXPECT_TRUE(WaitUntil([&] { return channel->GetState(false) != GRPC_CHANNEL_READY; }, 5));
}

#ifdef BOA_HAVE_TRAIN
TEST_F(SecurityTest, TrainingJobsAreLimitedPerCaller) {
  const std::string data_dir = dir_.path() + "/data";
  std::filesystem::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  auto tokens = WriteTokens({{"alice", "train"}, {"bob", "train"}});
  Boad b(BOAD, store(),
         {"--token-file", token_file(), "--train-data-dir", data_dir, "--config", config("max_jobs_per_caller: 1\n")});
  auto stub = v1::Boa::NewStub(grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials()));
  v1::TrainRequest req;
  req.set_name("slow");
  req.add_files("jets.bin");
  req.set_d_model(16);
  req.set_n_layers(1);
  req.set_seq_len(64);
  req.set_max_seconds(60);
  // Alice's first job runs (its stream is left open, unread); her second is refused, Bob's is not.
  grpc::ClientContext first_ctx;
  first_ctx.AddMetadata("authorization", "Bearer " + tokens["alice"]);
  auto first = stub->Train(&first_ctx, req);
  v1::TrainEvent e;
  ASSERT_TRUE(first->Read(&e));
  const std::string job = e.job().id();
  auto alice = Connect(b, tokens["alice"]), bob = Connect(b, tokens["bob"]);
  req.set_max_seconds(0.5);
  Status again = alice->Train(req, [](const v1::TrainEvent&) {});
  EXPECT_EQ(again.code(), StatusCode::kResourceExhausted) << again.message();
  EXPECT_NE(again.message().find("alice has 1 training jobs queued or running (max_jobs_per_caller)"), std::string::npos)
      << again.message();
  EXPECT_TRUE(bob->Train(req, [](const v1::TrainEvent&) {}).ok());
  ASSERT_TRUE(alice->CancelJob(job).ok());
  EXPECT_TRUE(WaitUntil([&] { return alice->GetJob(job).ok() && alice->GetJob(job)->state() != v1::JOB_RUNNING &&
                                     alice->GetJob(job)->state() != v1::JOB_QUEUED; }, 30));
  EXPECT_TRUE(alice->Train(req, [](const v1::TrainEvent&) {}).ok());
  first_ctx.TryCancel();
}
#endif

// The health port beside TLS answers probes in plaintext and nothing else; reflection (whose
// streams wait without a token check) is not served where callers must authenticate.
TEST_F(SecurityTest, WithCredentialsOnlyHealthIsOpen) {
  WriteTokens({{"a", "read"}});
  Boad b(BOAD, store(), {"--token-file", token_file()});
  auto channel = grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel)->ServerReflectionInfo(&ctx);
  reflection->WritesDone();
  EXPECT_EQ(reflection->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  auto c = Connect(b);
  Result<std::string> health = c->Health();
  ASSERT_TRUE(health.ok()) << health.status().message();
  EXPECT_EQ(*health, "SERVING");
}

// A 1 GiB garbage upload was buffered whole (1.3 GB RSS) before its magic was looked at.
TEST_F(SecurityTest, AGarbageUploadIsRefusedAtItsFirstBytes) {
  Boad b(BOAD, store());
  const uint64_t hwm_before = ProcStatus(b.pid(), "VmHWM");  // kB
  auto stub = v1::Boa::NewStub(grpc::CreateChannel(b.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::ModelInfo info;
  auto w = stub->UploadModel(&ctx, &info);
  v1::UploadModelRequest opt;
  opt.mutable_options()->set_name("junk");
  ASSERT_TRUE(w->Write(opt));
  v1::UploadModelRequest data;
  data.set_data(std::string(1 << 20, 'x'));
  int sent = 0;
  while (sent < 256 && w->Write(data)) ++sent;  // the server ends the call at the first message
  w->WritesDone();
  grpc::Status s = w->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("bad magic"), std::string::npos) << s.error_message();
  EXPECT_LT(sent, 200);
  const uint64_t hwm_after = ProcStatus(b.pid(), "VmHWM");
  EXPECT_LT(hwm_after, hwm_before + 64 * 1024) << "peak RSS grew from " << hwm_before << " kB to " << hwm_after << " kB";
  // Nothing of it is left in the store.
  for (const auto& e : std::filesystem::directory_iterator(store())) {
    EXPECT_NE(e.path().filename().string().rfind(".incoming-", 0), 0u) << e.path();
  }
}

TEST_F(SecurityTest, AnUploadLongerThanItsHeaderOrTheLimitIsRefused) {
  Boad b(BOAD, store(), {"--config", config("max_model_bytes: 4K\n")});
  auto c = Connect(b);
  Result<v1::ModelInfo> up = c->UploadModel(model_path_, "m", 0);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.status().code(), StatusCode::kResourceExhausted) << up.status().message();
  EXPECT_NE(up.status().message().find("max_model_bytes"), std::string::npos) << up.status().message();
  // A valid file with bytes appended: refused when they come, nothing published.
  Boad b2(BOAD, store() + "2");
  std::vector<uint8_t> longer = model_file_;
  longer.resize(longer.size() + 100, 0);
  const std::string path = dir_.path() + "/longer.boam";
  ASSERT_TRUE(WriteFileAtomic(path, longer, true).ok());
  auto c2 = Connect(b2);
  up = c2->UploadModel(path, "m", 0);
  EXPECT_FALSE(up.ok());
  EXPECT_NE(up.status().message().find("longer than its header promises"), std::string::npos) << up.status().message();
  EXPECT_TRUE(c2->ListModels()->empty());
  EXPECT_TRUE(c2->UploadModel(model_path_, "m", 0).ok());
}

// 368 bytes — a header declaring 16 MiB chunks and a hundred 3-byte records — kept the
// server decoding for 12 s; now a request may claim no more than max_expansion times what
// it sent, and the claim is judged before a chunk is decoded.
TEST_F(SecurityTest, AFewBytesThatClaimGigabytesAreRefusedBeforeWork) {
  Boad b(BOAD, store(), {"--metrics-listen", "127.0.0.1:0"});
  auto c = Connect(b);
  ASSERT_TRUE(c->UploadModel(model_path_, "m", 0).ok());
  ContainerHeader h;
  h.chunk_length = format::kMaxChunkLength;
  h.model_id = model_.id;
  std::vector<uint8_t> bomb = EncodeHeader(h);
  for (int i = 0; i < 100; ++i) bomb.insert(bomb.end(), {0x01, 0x01, 0x00});  // model chunk, 1 payload byte
  ASSERT_EQ(bomb.size(), 368u);
  for (bool verify : {true, false}) {
    const auto t0 = Clock::now();
    MemorySource src(bomb);
    MemorySink sink;
    Status s = verify ? c->Verify("", &src, nullptr) : c->Decompress("", &src, &sink, nullptr, nullptr);
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
    EXPECT_NE(s.message().find("max_expansion"), std::string::npos) << s.message();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
    EXPECT_TRUE(sink.data.empty());
  }
  Result<v1::ServerInfoResponse> info = c->Info();
  EXPECT_EQ(info->lanes_in_use(), 0u);
  // An ordinary stream still decodes.
  const std::vector<uint8_t> in = testing::FloatTable(50000, 2);
  MemorySource src(in);
  MemorySink packed;
  CodecOptions o;
  o.chunk_length = 8192;
  ASSERT_TRUE(c->Compress("m", o, &src, &packed, nullptr, nullptr).ok());
  MemorySource psrc(packed.data);
  EXPECT_TRUE(c->Verify("", &psrc, nullptr).ok());
}

TEST_F(SecurityTest, TheDecompressedOutputBudgetIsPerRequest) {
  Boad b(BOAD, store(), {"--config", config("max_output_bytes: 1M\n")});
  auto c = Connect(b);
  ASSERT_TRUE(c->UploadModel(model_path_, "m", 0).ok());
  const std::vector<uint8_t> in = testing::RandomBytes(2 << 20, 4);  // stored chunks: as long coded as not
  MemorySink packed;
  CodecOptions o;
  o.chunk_length = 1 << 16;
  MemorySource rsrc(in);
  ASSERT_TRUE(c->Compress("m", o, &rsrc, &packed, nullptr, nullptr).ok());
  MemorySource psrc(packed.data);
  MemorySink out;
  Status s = c->Decompress("", &psrc, &out, nullptr, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_NE(s.message().find("max_output_bytes"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace boa

namespace boa {
namespace {

class TlsTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    pki_ = std::make_unique<testing::TestPki>(dir_.path());
    server_ = pki_->Issue("server", "boad", {"DNS:localhost", "IP:127.0.0.1"});
    client_ = pki_->Issue("client", "daq01", {"DNS:daq01.example.org"});
  }
  std::string TlsConfig(const std::string& extra = "") {
    return config("tls_cert: " + server_.cert + "\ntls_key: " + server_.key + "\ntls_reload_seconds: 1\n" + extra);
  }
  rpc::TlsOptions Tls(const testing::TestPki::Files* client = nullptr) const {
    rpc::TlsOptions t;
    t.enabled = true;
    t.ca = pki_->ca().cert;
    if (client) {
      t.cert = client->cert;
      t.key = client->key;
    }
    return t;
  }
  Result<std::unique_ptr<rpc::RemoteClient>> ConnectTls(const Boad& b, const rpc::TlsOptions& t, const std::string& token = "") {
    return rpc::RemoteClient::Connect(b.address(), 5, token, t);
  }
  std::unique_ptr<testing::TestPki> pki_;
  testing::TestPki::Files server_, client_;
};

TEST_F(TlsTest, ServesTlsWithAPlaintextHealthPort) {
  Boad b(BOAD, store(), {"--config", TlsConfig(), "--health-listen", "127.0.0.1:0"});
  ASSERT_FALSE(b.address().empty());
  ASSERT_FALSE(b.health_address().empty());
  auto c = ConnectTls(b, Tls());
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_TRUE((*c)->UploadModel(model_path_, "m", 0).ok());
  const std::vector<uint8_t> in = testing::FloatTable(30000, 7);
  MemorySource src(in);
  MemorySink packed;
  CodecOptions o;
  o.chunk_length = 4096;
  ASSERT_TRUE((*c)->Compress("m", o, &src, &packed, nullptr, nullptr).ok());
  MemorySource psrc(packed.data);
  MemorySink back;
  ASSERT_TRUE((*c)->Decompress("", &psrc, &back, nullptr, nullptr).ok());
  EXPECT_EQ(back.data, in);
  // The health port: probes in plaintext; nothing else.
  auto h = rpc::RemoteClient::Connect(b.health_address(), 5);
  ASSERT_TRUE(h.ok());
  Result<std::string> health = (*h)->Health();
  ASSERT_TRUE(health.ok()) << health.status().message();
  EXPECT_EQ(*health, "SERVING");
  Result<std::vector<v1::ModelInfo>> list = (*h)->ListModels();
  EXPECT_EQ(list.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(list.status().message().find("serves only health checks"), std::string::npos) << list.status().message();
  // A plaintext client on the TLS port, and a TLS client on the plaintext one, are told.
  EXPECT_FALSE(rpc::RemoteClient::Connect(b.address(), 2).ok());
  rpc::TlsOptions t = Tls();
  Result<std::unique_ptr<rpc::RemoteClient>> wrong = rpc::RemoteClient::Connect(b.health_address(), 5, "", t);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("does not answer TLS there"), std::string::npos) << wrong.status().message();
}

TEST_F(TlsTest, EachTlsFailureIsNamed) {
  Boad b(BOAD, store(), {"--config", TlsConfig()});
  ASSERT_FALSE(b.address().empty());
  // A CA that did not sign boad's certificate.
  const testing::TestPki::Files stranger = pki_->IssueByOtherCa("stranger", "x", {"DNS:localhost"});
  rpc::TlsOptions t = Tls();
  t.ca = stranger.cert;  // a certificate, not the CA of boad's
  Result<std::unique_ptr<rpc::RemoteClient>> c = ConnectTls(b, t);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is not signed by a CA in --tls-ca"), std::string::npos) << c.status().message();
  // Another name than the certificate's.
  t = Tls();
  t.server_name = "boad.example.org";
  c = ConnectTls(b, t);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is for localhost, 127.0.0.1, not boad.example.org"), std::string::npos)
      << c.status().message();
  // Rotation without a restart: boad serves the files as they are now — an expired
  // certificate is named as such, a renewed one works again.
  const testing::TestPki::Files expired = pki_->Issue("expired", "boad", {"DNS:localhost", "IP:127.0.0.1"}, -1);
  const testing::TestPki::Files renewed = pki_->Issue("renewed", "boad", {"DNS:localhost", "IP:127.0.0.1"});
  std::filesystem::copy_file(expired.key, server_.key, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(expired.cert, server_.cert, std::filesystem::copy_options::overwrite_existing);
  std::string message;
  EXPECT_TRUE(WaitUntil([&] {
    Result<std::unique_ptr<rpc::RemoteClient>> r = ConnectTls(b, Tls());
    message = r.ok() ? "" : r.status().message();
    return message.find("boad's certificate expired on") != std::string::npos;
  })) << message;
  std::filesystem::copy_file(renewed.key, server_.key, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(renewed.cert, server_.cert, std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(WaitUntil([&] { return ConnectTls(b, Tls()).ok(); }));
  // boad itself refuses to start with an expired certificate, naming the key.
  std::string out;
  const std::string bad = config("tls_cert: " + expired.cert + "\ntls_key: " + expired.key + "\n");
  EXPECT_EQ(RunCommand(std::string(BOAD) + " --config " + bad + " --model-dir " + store() + "2", &out), 2);
  EXPECT_NE(out.find("tls_cert " + expired.cert + ": the certificate expired on"), std::string::npos) << out;
  const std::string mismatched = config("tls_cert: " + renewed.cert + "\ntls_key: " + client_.key + "\n");
  out.clear();
  EXPECT_EQ(RunCommand(std::string(BOAD) + " --config " + mismatched + " --model-dir " + store() + "3", &out), 2);
  EXPECT_NE(out.find("not the key of the certificate"), std::string::npos) << out;
}

TEST_F(TlsTest, MutualTlsNamesTheCallerByItsCertificate) {
  // Roles for certificates in the token file; a network address is allowed with client certificates alone.
  std::ofstream(token_file()) << "certificates:\n  - identity: daq01\n    roles: [read]\n";
  Boad b(BOAD, store(),
         {"--config", TlsConfig("tls_client_ca: " + pki_->ca().cert + "\n"), "--token-file", token_file(), "--listen",
          "127.0.0.1:0"});
  ASSERT_FALSE(b.address().empty());
  Result<std::unique_ptr<rpc::RemoteClient>> none = ConnectTls(b, Tls());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("boad requires a client certificate"), std::string::npos)
      << none.status().message();
  const testing::TestPki::Files stranger = pki_->IssueByOtherCa("stranger", "daq01", {"DNS:daq01"});
  Result<std::unique_ptr<rpc::RemoteClient>> foreign = ConnectTls(b, Tls(&stranger));
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("boad refused the client certificate"), std::string::npos)
      << foreign.status().message();
  Result<std::unique_ptr<rpc::RemoteClient>> daq = ConnectTls(b, Tls(&client_));
  ASSERT_TRUE(daq.ok()) << daq.status().message();
  EXPECT_TRUE((*daq)->ListModels().ok());
  Result<v1::ModelInfo> up = (*daq)->UploadModel(model_path_, "m", 0);
  EXPECT_EQ(up.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(up.status().message().find("daq01 has read"), std::string::npos) << up.status().message();
  // A certificate the file does not name has no roles.
  const testing::TestPki::Files other = pki_->Issue("other", "daq02", {"DNS:daq02"});
  Result<std::unique_ptr<rpc::RemoteClient>> daq2 = ConnectTls(b, Tls(&other));
  ASSERT_TRUE(daq2.ok());
  EXPECT_EQ((*daq2)->ListModels().status().code(), StatusCode::kPermissionDenied);
  // Client certificates alone let boad serve every interface.
  Boad open(BOAD, store() + "2", {"--config", TlsConfig("tls_client_ca: " + pki_->ca().cert + "\n"), "--listen", "0.0.0.0:0"});
  EXPECT_FALSE(open.address().empty());
}

TEST_F(TlsTest, TheClientFlagsAndEnvironment) {
  Boad b(BOAD, store(), {"--config", TlsConfig()});
  const std::string client = std::string(BOA_CLIENT) + " --server " + b.address();
  std::string out;
  EXPECT_EQ(RunCommand(client + " --tls-ca " + pki_->ca().cert + " models list", &out), 0) << out;
  out.clear();
  EXPECT_EQ(RunCommand("BOA_TLS_CA=" + pki_->ca().cert + " " + client + " models list", &out), 0) << out;
  out.clear();
  EXPECT_NE(RunCommand(client + " --tls-ca " + pki_->ca().cert + " --tls-server-name nowhere models list", &out), 0);
  EXPECT_NE(out.find("not nowhere"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(RunCommand(client + " --tls-ca " + pki_->ca().cert + " --tls-cert " + client_.cert + " models list", &out), 0);
  EXPECT_NE(out.find("--tls-cert and --tls-key go together"), std::string::npos) << out;
}

}  // namespace
}  // namespace boa
