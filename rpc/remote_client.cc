// The client of boad (see remote_client.h). Codec calls stream in both directions at once: a thread sends
// the input in messages of at most 1 MiB while this thread writes what comes back, so memory
// stays bounded for inputs of any size.
#include "rpc/remote_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "boa/v1/boa.grpc.pb.h"
#include "common/util/hash.h"
#include "common/util/io.h"
#include "rpc/wire.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace boa::rpc {

namespace {

// Sends `in` as data messages after `first` on a separate thread; WritesDone at the end. If
// reading the input fails the call is cancelled at once, so the server stops waiting for
// more and the caller's reads end.
template <class Request, class Stream>
class Sender {
 public:
  Sender(grpc::ClientContext* ctx, Stream* stream, ByteSource* in, Request first) {
    thread_ = std::thread([this, ctx, stream, in, first = std::move(first)] {
      if (!stream->Write(first)) return;
      std::vector<uint8_t> buf(kMessageBytes);
      for (;;) {
        Result<size_t> n = in->Read(buf.data(), buf.size());
        if (!n.ok()) {
          status_ = n.status();
          ctx->TryCancel();
          return;
        }
        if (*n == 0) break;
        sent_ += *n;
        Request r;
        r.set_data(buf.data(), *n);
        if (!stream->Write(r)) return;  // the server ended the call: its status says why
      }
      stream->WritesDone();
    });
  }
  // Joins the thread; the input's own read error, if any.
  Status Join() {
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  ~Sender() { Join().ok(); }
  uint64_t sent() const { return sent_; }

 private:
  std::thread thread_;
  Status status_;
  std::atomic<uint64_t> sent_{0};
};

}  // namespace

std::string ServerAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("BOA_SERVER");
  if (env && *env) return env;
  return "localhost:50051";
}

struct RemoteClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Boa::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

RemoteClient::RemoteClient(std::string address, std::unique_ptr<Impl> impl)
    : address_(std::move(address)), impl_(std::move(impl)) {}
RemoteClient::~RemoteClient() = default;

namespace {

// Adds the caller's token to every call's metadata. (Call credentials would not be sent
// over a channel without TLS.)
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerTokenFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel, which owns the factory
};

}  // namespace

Result<std::string> ServerEndpoint::Token() const {
  if (token_file.empty()) {
    const char* env = std::getenv("BOA_TOKEN");
    return std::string(env ? env : "");
  }
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFile(token_file, 4096));
  std::string token(bytes.begin(), bytes.end());
  token = token.substr(0, token.find('\n'));
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) return Status::InvalidArgument("token file " + token_file + " is empty (expected the token on its first line)");
  return token;
}

Result<std::unique_ptr<RemoteClient>> ServerEndpoint::Connect(double connect_seconds) const {
  BOA_ASSIGN_OR_RETURN(std::string token, Token());
  return RemoteClient::Connect(ServerAddress(server), connect_seconds, token, tls.WithEnvironment());
}

namespace {

// The channel's credentials: plaintext, or TLS with the PEM files of `tls`.
Result<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsOptions& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  if (tls.cert.empty() != tls.key.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key go together (the client's certificate and its key)");
  }
  if (!tls.cert.empty()) BOA_RETURN_IF_ERROR(CheckCertificateFiles({tls.cert, tls.key, "", "--tls-cert", "--tls-key", ""}));
  const auto pem = [](const std::string& path, const char* flag) -> Result<std::string> {
    if (path.empty()) return std::string();
    Result<std::vector<uint8_t>> bytes = ReadFile(path, 1 << 20);
    if (!bytes.ok()) return bytes.status().WithContext(flag);
    return std::string(bytes->begin(), bytes->end());
  };
  grpc::SslCredentialsOptions o;
  BOA_ASSIGN_OR_RETURN(o.pem_root_certs, pem(tls.ca, "--tls-ca"));
  BOA_ASSIGN_OR_RETURN(o.pem_cert_chain, pem(tls.cert, "--tls-cert"));
  BOA_ASSIGN_OR_RETURN(o.pem_private_key, pem(tls.key, "--tls-key"));
  return grpc::SslCredentials(o);
}

}  // namespace

Result<std::unique_ptr<RemoteClient>> RemoteClient::Connect(const std::string& address, double connect_seconds,
                                                            const std::string& token, const TlsOptions& tls) {
  auto impl = std::make_unique<Impl>();
  // Any gRPC target works (host:port, dns:///name:port, ipv4:a:p,b:p, unix:path); requests
  // are spread round robin over every address the target resolves to.
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  BOA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials, ChannelCredentials(tls));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!token.empty()) interceptors.push_back(std::make_unique<BearerTokenFactory>(token));
  impl->channel = grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args, std::move(interceptors));
  auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(connect_seconds * 1000));
  // A refused connection fails at once (TRANSIENT_FAILURE) instead of retrying until the
  // deadline.
  for (;;) {
    grpc_connectivity_state state = impl->channel->GetState(true);
    if (state == GRPC_CHANNEL_READY) break;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN ||
        !impl->channel->WaitForStateChange(state, deadline)) {
      if (tls.enabled) BOA_RETURN_IF_ERROR(DiagnoseTls(address, tls));
      return Status::Unavailable("cannot reach boad at " + address + " (start it with `boad`, or use --local)");
    }
  }
  impl->stub = v1::Boa::NewStub(impl->channel);
  impl->health = grpc::health::v1::Health::NewStub(impl->channel);
  return std::unique_ptr<RemoteClient>(new RemoteClient(address, std::move(impl)));
}

namespace {
void SetDeadline(grpc::ClientContext* ctx, double seconds) {
  if (seconds > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  }
}

template <class Req, class Resp>
using UnaryMethod = grpc::Status (v1::Boa::Stub::*)(grpc::ClientContext*, const Req&, Resp*);

// One unary call with the client's deadline and error mapping.
template <class Req, class Resp>
Result<Resp> CallUnary(v1::Boa::Stub* stub, UnaryMethod<Req, Resp> method, const Req& req, double deadline,
                       const std::string& address) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline);
  Resp resp;
  BOA_RETURN_IF_ERROR(FromGrpcStatus((stub->*method)(&ctx, req, &resp), address));
  return resp;
}

v1::ModelRef Ref(const std::string& model) {
  v1::ModelRef r;
  r.set_model(model);
  return r;
}

v1::JobRef Job(const std::string& id) {
  v1::JobRef r;
  r.set_id(id);
  return r;
}
}  // namespace

namespace {

// Streams `in` out and the response's data into `out` at the same time; the call's summary
// arrives last.
template <class Request, class Response, class Stream>
Status RunCodecStream(grpc::ClientContext* ctx, Stream* stream, Request first, ByteSource* in, ByteSink* out,
                      const RemoteClient::ProgressFn& progress, v1::CodecSummary* summary, const std::string& address) {
  Sender<Request, Stream> sender(ctx, stream, in, std::move(first));
  Response resp;
  uint64_t received = 0;
  Status sink_status;
  while (stream->Read(&resp)) {
    if (resp.has_summary()) {
      *summary = resp.summary();
      continue;
    }
    sink_status = out->Write(reinterpret_cast<const uint8_t*>(resp.data().data()), resp.data().size());
    if (!sink_status.ok()) {
      ctx->TryCancel();
      break;
    }
    received += resp.data().size();
    if (progress) progress(sender.sent(), received);
  }
  Status read = sender.Join();
  if (!read.ok()) {
    ctx->TryCancel();
    stream->Finish().ok();
    return read;
  }
  grpc::Status st = stream->Finish();
  BOA_RETURN_IF_ERROR(sink_status);
  return FromGrpcStatus(st, address);
}

// The first message of Compress and Eval: the model, the chunking and the priority.
v1::CompressRequest CompressOptionsMessage(const std::string& model, const CodecOptions& options, ByteSource* in,
                                           bool online) {
  v1::CompressRequest first;
  v1::CompressOptions* o = first.mutable_options();
  o->set_model(model);
  o->set_chunk_size(options.chunk_length);
  o->set_chunk_count(options.chunk_count);
  if (in->SizeHint() >= 0) o->set_size_hint(static_cast<uint64_t>(in->SizeHint()));
  o->set_priority(PriorityOf(online));
  return first;
}

}  // namespace

Status RemoteClient::Compress(const std::string& model, const CodecOptions& options, ByteSource* in, ByteSink* out,
                              CodecStats* stats, const ProgressFn& progress) {
  if (model.empty()) return Status::InvalidArgument("no model given (use -m NAME[:VERSION] or a model id)");
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  auto stream = impl_->stub->Compress(&ctx);
  v1::CompressRequest first = CompressOptionsMessage(model, options, in, online_);
  v1::CodecSummary summary;
  BOA_RETURN_IF_ERROR((RunCodecStream<v1::CompressRequest, v1::CompressResponse>(
      &ctx, stream.get(), std::move(first), in, out, progress, &summary, address_)));
  if (stats) *stats = StatsFromSummary(summary);
  return Status::Ok();
}

Status RemoteClient::Decompress(const std::string& model, ByteSource* in, ByteSink* out, CodecStats* stats,
                                const ProgressFn& progress, bool part) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  auto stream = impl_->stub->Decompress(&ctx);
  v1::DecompressRequest first;
  first.mutable_options()->set_model(model);
  first.mutable_options()->set_priority(PriorityOf(online_));
  first.mutable_options()->set_part(part);
  v1::CodecSummary summary;
  BOA_RETURN_IF_ERROR((RunCodecStream<v1::DecompressRequest, v1::DecompressResponse>(
      &ctx, stream.get(), std::move(first), in, out, progress, &summary, address_)));
  if (stats) *stats = StatsFromSummary(summary);
  return Status::Ok();
}

namespace {

// A client-streaming call: sends `first` and then `in`, and returns the call's status.
template <class Request, class Stream>
Status SendAll(grpc::ClientContext* ctx, Stream* stream, Request first, ByteSource* in, const std::string& address) {
  Status read;
  {
    Sender<Request, Stream> sender(ctx, stream, in, std::move(first));
    read = sender.Join();
  }
  if (!read.ok()) {
    ctx->TryCancel();
    stream->Finish().ok();
    return read;
  }
  return FromGrpcStatus(stream->Finish(), address);
}

}  // namespace

Status RemoteClient::Verify(const std::string& model, ByteSource* in, CodecStats* stats) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  v1::CodecSummary summary;
  auto stream = impl_->stub->Verify(&ctx, &summary);
  v1::DecompressRequest first;
  first.mutable_options()->set_model(model);
  first.mutable_options()->set_priority(PriorityOf(online_));
  BOA_RETURN_IF_ERROR(SendAll(&ctx, stream.get(), std::move(first), in, address_));
  if (stats) *stats = StatsFromSummary(summary);
  return Status::Ok();
}

Result<EvalResult> RemoteClient::Eval(const std::string& model, const CodecOptions& options, ByteSource* in) {
  if (model.empty()) return Status::InvalidArgument("no model given (use -m NAME[:VERSION] or a model id)");
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  v1::EvalSummary summary;
  auto stream = impl_->stub->Eval(&ctx, &summary);
  v1::CompressRequest first = CompressOptionsMessage(model, options, in, online_);
  BOA_RETURN_IF_ERROR(SendAll(&ctx, stream.get(), std::move(first), in, address_));
  EvalResult r;
  r.bytes = summary.bytes();
  r.chunks = summary.chunks();
  r.predicted = summary.predicted();
  r.cross_entropy_bits = summary.cross_entropy_bits();
  r.ideal_code_bits = summary.ideal_code_bits();
  r.network_code_bits = summary.network_code_bits();
  r.match_code_bits = summary.match_code_bits();
  r.match_model = summary.match_model();
  r.derived_code_bits = summary.derived_code_bits();
  r.derived_fields = summary.derived_fields();
  return r;
}

Result<std::vector<v1::ModelInfo>> RemoteClient::ListModels() {
  BOA_ASSIGN_OR_RETURN(v1::ListModelsResponse r, CallUnary(impl_->stub.get(), &v1::Boa::Stub::ListModels,
                                                           v1::ListModelsRequest(), deadline_seconds_, address_));
  return std::vector<v1::ModelInfo>(r.models().begin(), r.models().end());
}

Result<v1::ModelInfo> RemoteClient::GetModel(const std::string& ref) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::GetModel, Ref(ref), deadline_seconds_, address_);
}
Result<v1::ModelInfo> RemoteClient::DeleteModel(const std::string& ref) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::DeleteModel, Ref(ref), deadline_seconds_, address_);
}
Result<v1::ModelInfo> RemoteClient::LoadModel(const std::string& ref) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::LoadModel, Ref(ref), deadline_seconds_, address_);
}
Result<v1::ModelInfo> RemoteClient::UnloadModel(const std::string& ref) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::UnloadModel, Ref(ref), deadline_seconds_, address_);
}

Result<v1::ModelInfo> RemoteClient::UploadModel(const std::string& path, const std::string& name, uint32_t version) {
  BOA_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> file, FileSource::Open(path));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  v1::ModelInfo info;
  auto stream = impl_->stub->UploadModel(&ctx, &info);
  v1::UploadModelRequest first;
  first.mutable_options()->set_name(name);
  first.mutable_options()->set_version(version);
  BOA_RETURN_IF_ERROR(SendAll(&ctx, stream.get(), std::move(first), file.get(), address_));
  return info;
}

Status RemoteClient::DownloadModel(const std::string& ref, ByteSink* out) {
  // By id, so the bytes can be checked against it: the id is the file's SHA-256.
  BOA_ASSIGN_OR_RETURN(v1::ModelInfo info, GetModel(ref));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  v1::ModelRef req;
  req.set_model(info.id());
  auto stream = impl_->stub->DownloadModel(&ctx, req);
  v1::DownloadModelResponse resp;
  Status sink_status;
  Sha256Hasher sha;
  while (sink_status.ok() && stream->Read(&resp)) {
    const auto* p = reinterpret_cast<const uint8_t*>(resp.data().data());
    sha.Update(p, resp.data().size());
    sink_status = out->Write(p, resp.data().size());
  }
  if (!sink_status.ok()) ctx.TryCancel();
  grpc::Status st = stream->Finish();
  BOA_RETURN_IF_ERROR(sink_status);
  BOA_RETURN_IF_ERROR(FromGrpcStatus(st, address_));
  const Sha256Digest got = sha.Digest();
  if (HexString(got.data(), got.size()) != info.id()) {
    return Status::DataLoss("the model received from " + address_ + " is not model " + info.id() + " (SHA-256 mismatch)");
  }
  return Status::Ok();
}

Result<v1::ServerInfoResponse> RemoteClient::Info() {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::ServerInfo, v1::ServerInfoRequest(), deadline_seconds_, address_);
}

namespace {

// Hands every event of a job's stream (Train, ResumeJob) to `on_event`.
template <class Reader>
Status ReadJobEvents(Reader reader, const std::function<void(const v1::TrainEvent&)>& on_event,
                     const std::string& address) {
  v1::TrainEvent e;
  while (reader->Read(&e)) on_event(e);
  return FromGrpcStatus(reader->Finish(), address);
}

}  // namespace

Status RemoteClient::Train(const v1::TrainRequest& request, const std::function<void(const v1::TrainEvent&)>& on_event) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  return ReadJobEvents(impl_->stub->Train(&ctx, request), on_event, address_);
}

Status RemoteClient::ResumeJob(const std::string& id, const std::function<void(const v1::TrainEvent&)>& on_event) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_);
  return ReadJobEvents(impl_->stub->ResumeJob(&ctx, Job(id)), on_event, address_);
}

Result<v1::JobInfo> RemoteClient::GetJob(const std::string& id) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::GetJob, Job(id), deadline_seconds_, address_);
}

Result<v1::JobInfo> RemoteClient::CancelJob(const std::string& id) {
  return CallUnary(impl_->stub.get(), &v1::Boa::Stub::CancelJob, Job(id), deadline_seconds_, address_);
}

Result<std::vector<v1::JobInfo>> RemoteClient::ListJobs() {
  BOA_ASSIGN_OR_RETURN(v1::ListJobsResponse r, CallUnary(impl_->stub.get(), &v1::Boa::Stub::ListJobs,
                                                         v1::ListJobsRequest(), deadline_seconds_, address_));
  return std::vector<v1::JobInfo>(r.jobs().begin(), r.jobs().end());
}

Result<std::string> RemoteClient::Health(const std::string& service) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline_seconds_ > 0 ? deadline_seconds_ : 10);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  BOA_RETURN_IF_ERROR(FromGrpcStatus(impl_->health->Check(&ctx, req, &resp), address_));
  return std::string(grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()));
}

}  // namespace boa::rpc
