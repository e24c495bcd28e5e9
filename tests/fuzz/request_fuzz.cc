// boad's request handling in process: a real BoaService (store, scheduler, access control,
// limits) behind gRPC's in-process channel, fed the call the input describes. The first byte
// picks the RPC; then come its messages, each a 2-byte length and the protobuf bytes of the
// RPC's request type (bytes that do not parse are sent as a data message). Every call must
// end with a status, never a crash or a hang.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "boa/v1/boa.grpc.pb.h"
#include "server/access.h"
#include "server/jobs.h"
#include "server/model_store.h"
#include "server/service.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace boa;

struct Server {
  std::string dir;
  std::unique_ptr<server::ModelStore> store;
  std::unique_ptr<server::JobManager> jobs;
  std::unique_ptr<server::AccessControl> access;
  std::unique_ptr<server::BoaService> service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<v1::Boa::Stub> stub;
};

Server& TheServer() {
  static Server* s = [] {
    auto* s = new Server;
    char tmpl[] = "/tmp/boa-request-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) abort();
    s->dir = tmpl;
    std::filesystem::create_directories(s->dir + "/data");
    FILE* f = std::fopen((s->dir + "/data/a.bin").c_str(), "wb");
    std::fputs("some training bytes", f);
    std::fclose(f);
    server::ModelStore::Options o;
    o.dir = s->dir + "/models";
    o.devices[0].memory_budget = 256u << 20;
    o.devices[0].scheduler.threads = 1;
    o.devices[0].scheduler.lanes_per_thread = 4;
    o.devices[0].scheduler.device_lanes = std::make_shared<server::LaneBudget>(8);
    s->store = std::move(server::ModelStore::Open(o)).value();
    const std::vector<uint8_t> model =
        SerializeModel(InitRandomModel(ModelConfig::Default(8, 1), 1), WeightType::kF32, "fuzz");
    if (!s->store->Add("m", 0, model).ok()) abort();
    s->jobs = std::make_unique<server::JobManager>(s->store.get(), s->dir + "/jobs");
    s->access = std::move(server::AccessControl::Open("")).value();
    server::ServerConfig cfg;
    cfg.model_dir = o.dir;
    cfg.train_data_dir = s->dir + "/data";
    cfg.max_output_bytes = 1u << 20;
    cfg.max_expansion = 64;
    cfg.stream_idle_seconds = 0;
    s->service = std::make_unique<server::BoaService>(cfg, s->store.get(), s->jobs.get(), nullptr, s->access.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(s->service.get());
    s->grpc_server = builder.BuildAndStart();
    s->stub = v1::Boa::NewStub(s->grpc_server->InProcessChannel(grpc::ChannelArguments()));
    return s;
  }();
  return *s;
}

// The input's messages after the first byte.
std::vector<std::string> Messages(const uint8_t* p, size_t n) {
  std::vector<std::string> out;
  while (n >= 2) {
    const size_t len = std::min<size_t>(n - 2, static_cast<size_t>(p[0]) | static_cast<size_t>(p[1]) << 8);
    out.emplace_back(reinterpret_cast<const char*>(p + 2), len);
    p += 2 + len;
    n -= 2 + len;
  }
  return out;
}

template <class Request>
Request Parse(const std::string& bytes) {
  Request r;
  if (!r.ParseFromString(bytes)) {
    r.Clear();
    r.set_data(bytes);
  }
  return r;
}

void Deadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
}

template <class Response, class Stream>
void Drain(Stream* s) {
  Response r;
  while (s->Read(&r)) {
  }
  (void)s->Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Server& s = TheServer();
  const std::vector<std::string> msgs = Messages(data + 1, size - 1);
  grpc::ClientContext ctx;
  Deadline(&ctx);
  switch (data[0] % 7) {
    case 0: {
      auto rw = s.stub->Compress(&ctx);
      for (const auto& m : msgs) rw->Write(Parse<v1::CompressRequest>(m));
      rw->WritesDone();
      Drain<v1::CompressResponse>(rw.get());
      break;
    }
    case 1: {
      auto rw = s.stub->Decompress(&ctx);
      for (const auto& m : msgs) rw->Write(Parse<v1::DecompressRequest>(m));
      rw->WritesDone();
      Drain<v1::DecompressResponse>(rw.get());
      break;
    }
    case 2: {
      v1::CodecSummary summary;
      auto w = s.stub->Verify(&ctx, &summary);
      for (const auto& m : msgs) w->Write(Parse<v1::DecompressRequest>(m));
      w->WritesDone();
      (void)w->Finish();
      break;
    }
    case 3: {
      v1::EvalSummary summary;
      auto w = s.stub->Eval(&ctx, &summary);
      for (const auto& m : msgs) w->Write(Parse<v1::CompressRequest>(m));
      w->WritesDone();
      (void)w->Finish();
      break;
    }
    case 4: {
      v1::ModelInfo info;
      auto w = s.stub->UploadModel(&ctx, &info);
      for (const auto& m : msgs) w->Write(Parse<v1::UploadModelRequest>(m));
      w->WritesDone();
      (void)w->Finish();
      break;
    }
    case 5: {
      v1::ModelRef ref;
      v1::ModelInfo info;
      if (!msgs.empty() && ref.ParseFromString(msgs[0])) (void)s.stub->GetModel(&ctx, ref, &info);
      break;
    }
    case 6: {
      v1::TrainRequest req;
      if (!msgs.empty() && req.ParseFromString(msgs[0])) {
        auto r = s.stub->Train(&ctx, req);
        Drain<v1::TrainEvent>(r.get());
      }
      break;
    }
  }
  return 0;
}
