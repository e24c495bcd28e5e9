// The gRPC handlers. Codec streams use two threads per call: the handler thread reads the
// client's messages and submits chunks to the model's scheduler (blocking when the request's
// window is full: back-pressure), a writer thread takes results in order and streams them
// back, so multi-GB inputs pass with bounded memory on both sides.
#include "server/service.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/codec/codec.h"
#include "common/codec/stream.h"
#include "common/format/container.h"
#include "common/util/hash.h"
#include "rpc/wire.h"
#include "server/train_request.h"

namespace boa::server {

namespace {

using Clock = std::chrono::steady_clock;
using rpc::kMessageBytes;

v1::ModelInfo ToInfo(const ModelEntry& e) {
  v1::ModelInfo m;
  m.set_name(e.name);
  m.set_version(e.version);
  m.set_id(e.id);
  m.set_d_model(e.config.d_model);
  m.set_n_layers(e.config.n_layers);
  m.set_d_state(e.config.d_state);
  m.set_d_conv(e.config.d_conv);
  m.set_expand(e.config.expand);
  m.set_dt_rank(e.config.dt_rank);
  m.set_dtype(e.dtype);
  m.set_parameters(e.config.ParameterCount());
  m.set_file_bytes(e.file_bytes);
  m.set_loaded(e.loaded);
  m.set_created_unix(e.created_unix);
  for (const std::string& d : e.devices) m.add_devices(d);
  return m;
}

Priority ToPriority(v1::Priority p) { return rpc::IsOnline(p) ? Priority::kOnline : Priority::kBulk; }

// A unary reply: the converted value, or the error as a gRPC status.
template <class T, class Msg, class Convert>
grpc::Status Reply(Result<T> r, Convert convert, Msg* resp) {
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  *resp = convert(*r);
  return grpc::Status::OK;
}

// Buffers output and sends it as messages of at most kMessageBytes.
template <class Response>
class StreamSink final : public ByteSink {
 public:
  explicit StreamSink(std::function<bool(const Response&)> write) : write_(std::move(write)) {}
  Status Write(const uint8_t* p, size_t n) override {
    buf_.insert(buf_.end(), p, p + n);
    while (buf_.size() >= kMessageBytes) BOA_RETURN_IF_ERROR(Send(kMessageBytes));
    return Status::Ok();
  }
  Status Flush() { return buf_.empty() ? Status::Ok() : Send(buf_.size()); }
  uint64_t sent() const { return sent_; }

 private:
  Status Send(size_t n) {
    Response r;
    r.set_data(buf_.data(), n);
    if (!write_(r)) return Status::Cancelled("the client went away");
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    sent_ += n;
    return Status::Ok();
  }
  std::function<bool(const Response&)> write_;
  std::vector<uint8_t> buf_;
  uint64_t sent_ = 0;
};

// Chunks submitted by the reading thread, consumed in order by the writing thread.
class SubmitCounter {
 public:
  void Add() {
    std::lock_guard<std::mutex> lk(mu_);
    ++submitted_;
    cv_.notify_all();
  }
  // `complete`: the input ended normally (else the request failed).
  void Close(bool complete) {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
    complete_ = complete;
    cv_.notify_all();
  }
  bool complete() {
    std::lock_guard<std::mutex> lk(mu_);
    return complete_;
  }
  // False once every submitted chunk has been taken and no more will come.
  bool WaitFor(uint64_t next) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return next < submitted_ || closed_; });
    return next < submitted_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t submitted_ = 0;
  bool closed_ = false;
  bool complete_ = false;
};

// A request stream's data messages as a ByteSource (after the first message).
template <class Request>
class RequestSource final : public ByteSource {
 public:
  RequestSource(std::function<bool(Request*)> read, std::string first)
      : read_(std::move(read)), cur_(std::move(first)) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    size_t got = 0;
    while (got < n) {
      if (pos_ == cur_.size()) {
        Request m;
        if (!read_(&m)) break;
        if (!m.has_data()) {
          return Status::InvalidArgument(m.has_options() ? "only the first message may carry options"
                                                         : "a message after the first carries no data");
        }
        cur_ = std::move(*m.mutable_data());
        pos_ = 0;
        continue;
      }
      size_t take = std::min(n - got, cur_.size() - pos_);
      std::memcpy(buf + got, cur_.data() + pos_, take);
      pos_ += take;
      got += take;
    }
    total_ += got;
    return got;
  }
  const std::string& name() const override { return name_; }
  int64_t SizeHint() const override { return size_hint_; }
  void set_size_hint(int64_t n) { size_hint_ = n; }
  uint64_t total() const { return total_; }

 private:
  std::function<bool(Request*)> read_;
  std::string cur_;
  size_t pos_ = 0;
  uint64_t total_ = 0;
  int64_t size_hint_ = -1;
  std::string name_ = "<request stream>";
};

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Status ShuttingDown() { return Status::Unavailable("the server is shutting down"); }

// Decoded bytes a request may claim beyond max_expansion times what it sent: one ordinary
// chunk's worth, so a stream's first chunk is not judged by its first bytes alone.
constexpr double kExpansionAllowance = 1 << 20;

constexpr const char* kNoStream = "empty request stream: expected a .boa stream";


// Runs `body`; running out of memory in it fails this request, not the server.
template <class F>
Status GuardMemory(F&& body) {
  return CatchOutOfMemory("on the server for this request", std::forward<F>(body));
}

}  // namespace

// The one summary line of a codec request, written when its handler ends on whatever path
// (refused, failed or done). The ratio is original / coded bytes.
class BoaService::RequestLog {
 public:
  RequestLog(BoaService* service, const char* op, bool compresses)
      : metrics_(service->metrics_), id_(service->next_request_id_++), op_(op), compresses_(compresses) {}
  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;
  ~RequestLog() {
    const uint64_t original = compresses_ ? in_ : out_, coded = compresses_ ? out_ : in_;
    const double seconds = Seconds(t0_);
    const char* code = rpc::GrpcCodeName(rpc::ToGrpcStatus(status_).error_code());
    spdlog::info("[req {}] {} caller={} model={} in={} out={} ratio={:.3f} {:.2f}s peak_lanes={} -> {}", id_, op_,
                 caller_.empty() ? "-" : caller_, model_.empty() ? "-" : model_, in_, out_,
                 coded ? double(original) / double(coded) : 0.0, seconds, peak_lanes_, code);
    if (metrics_) {
      RequestRecord r;
      r.op = op_;
      r.model = model_name_;
      r.code = code;
      r.raw_bytes = original;
      r.coded_bytes = coded;
      r.seconds = seconds;
      r.refused = refused_;
      metrics_->RequestFinished(r);
    }
  }
  void set_caller(const Caller& c) { caller_ = c.name; }
  void set_model(const ModelEntry& e) {
    model_ = e.Ref();
    model_name_ = e.name;
  }
  void set_bytes(uint64_t in, uint64_t out) {
    in_ = in;
    out_ = out;
  }
  void set_summary(const v1::CodecSummary& s) {
    if (!s.model_id().empty() && model_.empty()) model_ = s.model_id();
    set_bytes(s.input_bytes(), s.output_bytes());
    peak_lanes_ = s.peak_lanes();
  }
  // The handler's outcome: logged, and returned as its gRPC status.
  grpc::Status End(Status s) {
    status_ = std::move(s);
    return rpc::ToGrpcStatus(status_);
  }
  // Refused before any work (draining, queue full): counted, but not a request duration.
  grpc::Status Refuse(Status s) {
    refused_ = true;
    return End(std::move(s));
  }

 private:
  Metrics* const metrics_;
  const uint64_t id_;
  const char* const op_;
  const bool compresses_;
  const Clock::time_point t0_ = Clock::now();
  std::string caller_;
  std::string model_;       // as the log names it: NAME:VERSION, or the stream's model id
  std::string model_name_;  // as the metrics label it: the store name
  uint64_t in_ = 0, out_ = 0;
  uint32_t peak_lanes_ = 0;
  bool refused_ = false;
  Status status_;
};

// A codec stream's two counts for its lifetime: its caller's open streams from the moment
// it is allowed (max_requests_per_caller: silent streams count, so one caller cannot take
// every thread), and, once its first message has come, the server's open requests
// (queue_limit; refused while draining).
class BoaService::Admission {
 public:
  Admission(BoaService* s, const Caller& caller) : s_(s), caller_(caller.key) {
    int mine = 0;
    {
      std::lock_guard<std::mutex> l(s_->callers_mu_);
      mine = ++s_->open_by_caller_[caller_];
    }
    if (mine > s_->config_.max_requests_per_caller) {
      if (s_->metrics_) s_->metrics_->Rejected(Rejection::kCallerLimit);
      status_ = Status::ResourceExhausted(caller.name + " has " + std::to_string(s_->config_.max_requests_per_caller) +
                                          " requests open (max_requests_per_caller); retry when one ends");
    }
  }
  // The first message has come: counts the request among the server's open ones.
  Status Admit() {
    if (!status_.ok()) return status_;
    // Counted before the drain is checked, so the drain (which sets draining, then waits for
    // the count) can never miss a request that got in; one refused is uncounted at once.
    const int n = ++s_->open_codec_requests_;
    if (s_->draining()) {
      --s_->open_codec_requests_;
      if (s_->metrics_) s_->metrics_->Rejected(Rejection::kDraining);
      return status_ = ShuttingDown();
    }
    counted_ = true;
    const int limit = s_->queue_limit_.load();
    if (n > limit) {
      if (s_->metrics_) s_->metrics_->Rejected(Rejection::kQueueFull);
      status_ = Status::ResourceExhausted("the server is busy: " + std::to_string(limit) +
                                          " requests are open (queue_limit); retry later");
    }
    return status_;
  }
  ~Admission() {
    if (counted_) --s_->open_codec_requests_;
    std::lock_guard<std::mutex> l(s_->callers_mu_);
    if (--s_->open_by_caller_[caller_] <= 0) s_->open_by_caller_.erase(caller_);
  }
  const Status& status() const { return status_; }

 private:
  BoaService* s_;
  const std::string caller_;  // Caller::key
  Status status_;
  bool counted_ = false;
};

Result<Caller> BoaService::Allow(grpc::ServerContext* ctx, Role role, const char* method) {
  Result<Caller> c = access_->Authorize(*ctx, role, method);
  if (!c.ok()) {
    const bool unknown = c.status().code() == StatusCode::kUnauthenticated;
    if (metrics_) metrics_->Rejected(unknown ? Rejection::kUnauthenticated : Rejection::kPermissionDenied);
    spdlog::warn("{} refused from {}: {}", method, ctx->peer(), c.status().message());
  }
  return c;
}

Status BoaService::BeginCodec(grpc::ServerContext* ctx, const char* op, RequestLog* log, const StreamWatch& watch,
                              const std::function<bool()>& read_first, const std::string& bad_first,
                              std::optional<Admission>* admission) {
  Result<Caller> caller = Allow(ctx, Role::kRead, op);
  if (!caller.ok()) return caller.status();
  log->set_caller(*caller);
  admission->emplace(this, *caller);
  BOA_RETURN_IF_ERROR((*admission)->status());
  if (!read_first()) return IdleOr(watch, Status::InvalidArgument(bad_first));
  return (*admission)->Admit();
}

// One model upload or download for its lifetime (each holds a thread and the whole file in
// memory at some point): at most max_model_transfers at once.
class BoaService::TransferSlot {
 public:
  explicit TransferSlot(std::atomic<int>* n) : n_(n) { ++*n_; }
  ~TransferSlot() { --*n_; }
  int count() const { return n_->load(); }

 private:
  std::atomic<int>* n_;
};

Status BoaService::TakeTransferSlot(std::optional<TransferSlot>* slot) {
  slot->emplace(&open_transfers_);
  if ((*slot)->count() <= config_.max_model_transfers) return Status::Ok();
  if (metrics_) metrics_->Rejected(Rejection::kTransfersBusy);
  return Status::ResourceExhausted(std::to_string(config_.max_model_transfers) +
                                   " model uploads and downloads are running (max_model_transfers); retry later");
}

Status BoaService::IdleOr(const StreamWatch& watch, Status s) {
  if (!watch.timed_out()) return s;
  if (metrics_) metrics_->Rejected(Rejection::kIdle);
  return Status::DeadlineExceeded("the stream was idle for " + std::to_string(static_cast<int>(watchdog_.idle_seconds())) +
                                  " s (stream_idle_seconds): closed");
}

void BoaService::StartDraining(Clock::time_point deadline) {
  drain_deadline_ns_ = deadline.time_since_epoch().count();
  draining_ = true;
}

bool BoaService::drain_expired() const {
  return draining_ && Clock::now().time_since_epoch().count() > drain_deadline_ns_.load();
}

Status BoaService::CheckCancelled(grpc::ServerContext* ctx) const {
  if (drain_expired()) return Status::Unavailable("the server shut down before the request finished");
  if (ctx->IsCancelled()) {
    if (std::chrono::system_clock::now() >= ctx->deadline()) return Status::DeadlineExceeded("deadline exceeded");
    return Status::Cancelled("the client cancelled the request");
  }
  return Status::Ok();
}

grpc::Status BoaService::Compress(grpc::ServerContext* ctx,
                                  grpc::ServerReaderWriter<v1::CompressResponse, v1::CompressRequest>* stream) {
  RequestLog log(this, "Compress", true);
  StreamWatch watch(&watchdog_, ctx);
  v1::CompressRequest msg;
  std::optional<Admission> admission;
  Status begun = BeginCodec(
      ctx, "Compress", &log, watch, [&] { return watch.Read([&] { return stream->Read(&msg); }) && msg.has_options(); },
      "Compress: the first message must carry the options", &admission);
  if (!begun.ok()) return log.Refuse(begun);
  return log.End(IdleOr(watch, GuardMemory([&] { return CompressStream(ctx, stream, &watch, &log, msg.options()); })));
}

Status BoaService::CompressStream(grpc::ServerContext* ctx,
                                  grpc::ServerReaderWriter<v1::CompressResponse, v1::CompressRequest>* stream,
                                  StreamWatch* watch, RequestLog* log, const v1::CompressOptions& opt) {
  const auto t0 = Clock::now();
  BOA_ASSIGN_OR_RETURN(ModelLease lease, store_->Acquire(opt.model()));
  const ModelEntry& entry = lease.entry;
  log->set_model(entry);
  std::shared_ptr<ResidentModel> rm = lease.model;
  CodecOptions co;
  co.chunk_length = opt.chunk_size();
  co.chunk_count = opt.chunk_count();
  BOA_ASSIGN_OR_RETURN(const uint32_t chunk_length,
                       ChooseChunkLength(co, opt.size_hint() ? static_cast<int64_t>(opt.size_hint()) : -1));
  std::unique_ptr<SchedulerRequest> req =
      rm->scheduler->Open(ToPriority(opt.priority()), [this, ctx] { return CheckCancelled(ctx); });

  SubmitCounter counter;
  StreamSink<v1::CompressResponse> sink(
      [stream, watch](const v1::CompressResponse& r) { return watch->Write([&] { return stream->Write(r); }); });
  StreamWriter out(&sink, MakeHeader(rm->model, chunk_length));
  RequestSource<v1::CompressRequest> src(
      [stream, watch](v1::CompressRequest* m) { return watch->Read([&] { return stream->Read(m); }); }, "");
  ChunkCutter cutter(&src, chunk_length);
  // From here to the join nothing may throw: both sides turn running out of memory into a
  // status, so the writer thread is always joined.
  Status write_status;
  std::thread writer([&] {
    Status s = GuardMemory([&] {
      Status s = out.WriteHeader();
      for (uint64_t next = 0; s.ok() && counter.WaitFor(next); ++next) {
        ChunkResult r;
        s = req->Next(&r);
        if (s.ok()) s = out.Add(r.encoded);
        if (s.ok()) s = sink.Flush();
      }
      if (s.ok() && counter.complete()) s = out.Finish(cutter.content_checksum());
      if (s.ok()) s = sink.Flush();
      return s;
    });
    if (!s.ok()) req->Cancel(s);
    write_status = s;
  });
  // Reads the input and cuts it into chunks.
  Status read_status = GuardMemory([&]() -> Status {
    for (;;) {
      std::vector<uint8_t> chunk;
      BOA_ASSIGN_OR_RETURN(bool more, cutter.Next(&chunk));
      if (cutter.ended()) BOA_RETURN_IF_ERROR(CheckCancelled(ctx));  // the end, or a client that gave up
      if (!more) return Status::Ok();
      BOA_RETURN_IF_ERROR(req->SubmitEncode(std::move(chunk)));
      counter.Add();
    }
  });
  if (!read_status.ok()) req->Cancel(read_status);
  counter.Close(read_status.ok());
  writer.join();
  const uint64_t in_bytes = src.total();
  Status status = read_status.ok() ? write_status : read_status;
  v1::CodecSummary summary;
  summary.set_model_id(entry.id);
  summary.set_input_bytes(in_bytes);
  summary.set_output_bytes(sink.sent());
  summary.set_chunks(out.chunks());
  summary.set_stored_chunks(out.stored_chunks());
  summary.set_lzma2_chunks(out.lzma2_chunks());
  summary.set_chunk_size(chunk_length);
  summary.set_seconds(Seconds(t0));
  summary.set_peak_lanes(req->peak_lanes());
  log->set_summary(summary);
  BOA_RETURN_IF_ERROR(status);
  v1::CompressResponse end;
  *end.mutable_summary() = summary;
  watch->Write([&] { return stream->Write(end); });
  return Status::Ok();
}

// Shared by Decompress and Verify: reads the .boa stream, decodes its chunks through the
// scheduler of the model recorded in it, hands the bytes to `write` in order and checks the
// content checksum at the end.
Status BoaService::DecodeStream(grpc::ServerContext* ctx, RequestLog* log, v1::DecompressRequest first,
                                const std::function<bool(v1::DecompressRequest*)>& read,
                                const std::function<bool(const uint8_t*, size_t)>& write, bool allow_part,
                                v1::CodecSummary* summary) {
  const auto t0 = Clock::now();
  v1::DecompressOptions opt;
  std::string initial;
  if (first.has_options()) {
    opt = first.options();
    if (opt.part() && !allow_part) {
      return Status::InvalidArgument("options.part is for Decompress: a Verify checks a whole stream's content");
    }
  } else {
    initial = std::move(*first.mutable_data());
  }
  RequestSource<v1::DecompressRequest> src(read, std::move(initial));
  StreamReader reader(&src);
  ContainerHeader header;
  BOA_RETURN_IF_ERROR(reader.ReadHeader(&header));
  const std::string stream_id = HexString(header.model_id.data(), header.model_id.size());
  Result<ModelEntry> entry = store_->Resolve(stream_id);
  if (!entry.ok()) {
    return Status::FailedPrecondition("the stream was compressed with model " + stream_id +
                                      ", which this server does not have (upload it: boa-client models upload FILE --name NAME)");
  }
  if (!opt.model().empty()) {
    BOA_ASSIGN_OR_RETURN(ModelEntry asked, store_->Resolve(opt.model()));
    if (asked.id != stream_id) {
      return Status::FailedPrecondition("the stream was compressed with model " + stream_id + ", not with " +
                                        asked.Ref() + " (" + asked.id + ")");
    }
  }
  BOA_ASSIGN_OR_RETURN(ModelLease lease, store_->Acquire(opt.model().empty() ? stream_id : opt.model()));
  log->set_model(lease.entry);
  std::shared_ptr<ResidentModel> rm = lease.model;
  std::unique_ptr<SchedulerRequest> req =
      rm->scheduler->Open(ToPriority(opt.priority()), [this, ctx] { return CheckCancelled(ctx); });
  SubmitCounter counter;
  DecodedContent content;
  // From here to the join nothing may throw (see CompressStream).
  Status write_status;
  std::thread writer([&] {
    Status s = GuardMemory([&] {
      Status s;
      for (uint64_t next = 0; s.ok() && counter.WaitFor(next); ++next) {
        ChunkResult r;
        s = req->Next(&r);
        if (!s.ok()) break;
        content.Add(r.decoded);
        for (size_t pos = 0; s.ok() && pos < r.decoded.size(); pos += kMessageBytes) {
          if (!write(r.decoded.data() + pos, std::min(kMessageBytes, r.decoded.size() - pos))) {
            s = Status::Cancelled("the client went away");
          }
        }
      }
      return s;
    });
    if (!s.ok()) req->Cancel(s);
    write_status = s;
  });
  Status read_status = GuardMemory([&]() -> Status {
    uint64_t claimed = 0;  // decoded bytes the records so far promise
    for (;;) {
      ChunkRecord rec;
      BOA_ASSIGN_OR_RETURN(bool more, reader.Next(&rec));
      if (!more) return Status::Ok();
      // Judged before the chunk is decoded: a few bytes that claim gigabytes are refused, not
      // decoded (a chunk of zeros codes to a byte or two, so the format alone cannot tell).
      claimed += rec.original_length;
      const double allowed = config_.max_expansion * static_cast<double>(src.total()) + kExpansionAllowance;
      if (claimed > config_.max_output_bytes || static_cast<double>(claimed) > allowed) {
        if (metrics_) metrics_->Rejected(Rejection::kTooLarge);
        if (claimed > config_.max_output_bytes) {
          return Status::ResourceExhausted("the stream decodes to more than " + std::to_string(config_.max_output_bytes) +
                                           " bytes, this server's max_output_bytes per request (use --local)");
        }
        return Status::ResourceExhausted(
            "the stream's first " + std::to_string(src.total()) + " bytes claim " + std::to_string(claimed) +
            " decoded bytes, more than max_expansion (" + std::to_string(static_cast<uint64_t>(config_.max_expansion)) +
            "x) allows: refused before decoding (use --local for such a file)");
      }
      BOA_RETURN_IF_ERROR(req->SubmitDecode(std::move(rec)));
      counter.Add();
    }
  });
  if (!read_status.ok()) {
    Status c = CheckCancelled(ctx);  // a truncated stream from a client that gave up
    if (!c.ok()) read_status = c;
    req->Cancel(read_status);
  }
  counter.Close(read_status.ok());
  writer.join();
  BOA_RETURN_IF_ERROR(read_status);
  BOA_RETURN_IF_ERROR(write_status);
  if (!opt.part()) BOA_RETURN_IF_ERROR(reader.CheckContent(content.checksum()));
  summary->set_model_id(stream_id);
  summary->set_input_bytes(src.total());
  summary->set_output_bytes(content.bytes());
  summary->set_chunks(content.chunks());
  summary->set_chunk_size(header.chunk_length);
  summary->set_seconds(Seconds(t0));
  summary->set_peak_lanes(req->peak_lanes());
  return Status::Ok();
}

grpc::Status BoaService::Decompress(grpc::ServerContext* ctx,
                                    grpc::ServerReaderWriter<v1::DecompressResponse, v1::DecompressRequest>* stream) {
  RequestLog log(this, "Decompress", false);
  StreamWatch watch(&watchdog_, ctx);
  const auto read = [&](v1::DecompressRequest* m) { return watch.Read([&] { return stream->Read(m); }); };
  v1::DecompressRequest first;
  std::optional<Admission> admission;
  Status begun = BeginCodec(ctx, "Decompress", &log, watch, [&] { return read(&first); }, kNoStream, &admission);
  if (!begun.ok()) return log.Refuse(begun);
  v1::CodecSummary summary;
  Status s = GuardMemory([&] {
    return DecodeStream(
        ctx, &log, std::move(first), read,
        [&](const uint8_t* p, size_t n) {
          v1::DecompressResponse r;
          r.set_data(p, n);
          return watch.Write([&] { return stream->Write(r); });
        },
        true, &summary);
  });
  log.set_summary(summary);
  if (!s.ok()) return log.End(IdleOr(watch, s));
  v1::DecompressResponse end;
  *end.mutable_summary() = summary;
  watch.Write([&] { return stream->Write(end); });
  return log.End(Status::Ok());
}

grpc::Status BoaService::Verify(grpc::ServerContext* ctx, grpc::ServerReader<v1::DecompressRequest>* reader,
                                v1::CodecSummary* summary) {
  RequestLog log(this, "Verify", false);
  StreamWatch watch(&watchdog_, ctx);
  const auto read = [&](v1::DecompressRequest* m) { return watch.Read([&] { return reader->Read(m); }); };
  v1::DecompressRequest first;
  std::optional<Admission> admission;
  Status begun = BeginCodec(ctx, "Verify", &log, watch, [&] { return read(&first); }, kNoStream, &admission);
  if (!begun.ok()) return log.Refuse(begun);
  Status s = GuardMemory([&] {
    return DecodeStream(ctx, &log, std::move(first), read, [](const uint8_t*, size_t) { return true; }, false, summary);
  });
  log.set_summary(*summary);
  return log.End(IdleOr(watch, s));
}

grpc::Status BoaService::Eval(grpc::ServerContext* ctx, grpc::ServerReader<v1::CompressRequest>* reader,
                              v1::EvalSummary* summary) {
  RequestLog log(this, "Eval", true);
  StreamWatch watch(&watchdog_, ctx);
  v1::CompressRequest first;
  std::optional<Admission> admission;
  Status begun = BeginCodec(
      ctx, "Eval", &log, watch, [&] { return watch.Read([&] { return reader->Read(&first); }) && first.has_options(); },
      "Eval: the first message must carry the options", &admission);
  if (!begun.ok()) return log.Refuse(begun);
  const v1::CompressOptions opt = first.options();
  Result<ModelLease> lease = store_->Acquire(opt.model());
  if (!lease.ok()) return log.End(lease.status());
  log.set_model(lease->entry);
  CodecOptions co;
  co.chunk_length = opt.chunk_size();
  co.chunk_count = opt.chunk_count();
  co.threads = config_.threads;
  // A diagnostic: it runs the in-process evaluator, beside the scheduler's batches.
  RequestSource<v1::CompressRequest> src(
      [&](v1::CompressRequest* m) { return watch.Read([&] { return reader->Read(m); }); }, "");
  if (opt.size_hint()) src.set_size_hint(static_cast<int64_t>(opt.size_hint()));
  Result<EvalResult> r = Status::Internal("not evaluated");
  Status guarded = GuardMemory([&] {
    r = Evaluate(lease->model->engine, &src, co);
    return Status::Ok();
  });
  if (!guarded.ok()) r = guarded;
  Status s = r.ok() ? CheckCancelled(ctx) : r.status();
  log.set_bytes(src.total(), 0);
  if (!s.ok()) return log.End(IdleOr(watch, s));
  summary->set_model_id(lease->entry.id);
  summary->set_bytes(r->bytes);
  summary->set_chunks(r->chunks);
  summary->set_predicted(r->predicted);
  summary->set_cross_entropy_bits(r->cross_entropy_bits);
  summary->set_ideal_code_bits(r->ideal_code_bits);
  summary->set_network_code_bits(r->network_code_bits);
  summary->set_match_code_bits(r->match_code_bits);
  summary->set_match_model(r->match_model);
  summary->set_derived_code_bits(r->derived_code_bits);
  summary->set_derived_fields(r->derived_fields);
  return log.End(Status::Ok());
}

// A unary RPC's first line: the caller's refusal as the call's status.
#define BOA_ALLOW(ctx, role, method)                                      \
  do {                                                                    \
    Result<Caller> allowed_caller = Allow(ctx, role, method);             \
    if (!allowed_caller.ok()) return rpc::ToGrpcStatus(allowed_caller.status()); \
  } while (0)

grpc::Status BoaService::ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest*, v1::ListModelsResponse* resp) {
  BOA_ALLOW(ctx, Role::kRead, "ListModels");
  for (const ModelEntry& e : store_->List()) *resp->add_models() = ToInfo(e);
  return grpc::Status::OK;
}

grpc::Status BoaService::GetModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) {
  BOA_ALLOW(ctx, Role::kRead, "GetModel");
  return Reply(store_->Resolve(req->model()), ToInfo, resp);
}

grpc::Status BoaService::UploadModel(grpc::ServerContext* ctx, grpc::ServerReader<v1::UploadModelRequest>* reader,
                                     v1::ModelInfo* resp) {
  Result<Caller> caller = Allow(ctx, Role::kWrite, "UploadModel");
  if (!caller.ok()) return rpc::ToGrpcStatus(caller.status());
  if (grpc::Status refused = RefuseWhileDraining(); !refused.ok()) return refused;
  std::optional<TransferSlot> slot;
  if (Status busy = TakeTransferSlot(&slot); !busy.ok()) return rpc::ToGrpcStatus(busy);
  StreamWatch watch(&watchdog_, ctx);
  const auto read = [&](v1::UploadModelRequest* m) { return watch.Read([&] { return reader->Read(m); }); };
  const auto fail = [&](Status s) {
    s = IdleOr(watch, std::move(s)).WithContext("UploadModel");
    if (s.code() == StatusCode::kResourceExhausted && metrics_ && !watch.timed_out()) metrics_->Rejected(Rejection::kTooLarge);
    spdlog::warn("upload refused: caller={} peer={}: {}", caller->name, ctx->peer(), s.message());
    return rpc::ToGrpcStatus(s);
  };
  v1::UploadModelRequest msg;
  if (!read(&msg) || !msg.has_options()) {
    return fail(Status::InvalidArgument("the first message must carry the options (name)"));
  }
  const v1::UploadModelOptions opt = msg.options();
  // Validating the whole file at the end holds it in memory: no larger than the memory budget.
  Result<std::unique_ptr<ModelStore::Upload>> upload =
      store_->BeginUpload(opt.name(), opt.version(), std::min(config_.max_model_bytes, store_->memory_budget()));
  if (!upload.ok()) return fail(upload.status());
  while (read(&msg)) {
    if (!msg.has_data()) return fail(Status::InvalidArgument("only the first message may carry options"));
    Status w = (*upload)->Write(reinterpret_cast<const uint8_t*>(msg.data().data()), msg.data().size());
    if (!w.ok()) return fail(w);
  }
  if (ctx->IsCancelled()) return fail(Status::Cancelled("the client cancelled the upload"));
  Result<ModelEntry> e = store_->Commit(std::move(*upload));
  if (!e.ok()) return fail(e.status());
  spdlog::info("model {} uploaded by {}: id {}, {} bytes", e->Ref(), caller->name, e->id, e->file_bytes);
  *resp = ToInfo(*e);
  return grpc::Status::OK;
}

grpc::Status BoaService::DownloadModel(grpc::ServerContext* ctx, const v1::ModelRef* req,
                                       grpc::ServerWriter<v1::DownloadModelResponse>* writer) {
  BOA_ALLOW(ctx, Role::kRead, "DownloadModel");
  std::optional<TransferSlot> slot;
  if (Status busy = TakeTransferSlot(&slot); !busy.ok()) return rpc::ToGrpcStatus(busy);
  StreamWatch watch(&watchdog_, ctx);
  Result<std::vector<uint8_t>> file = store_->ReadFile(req->model());
  if (!file.ok()) return rpc::ToGrpcStatus(file.status());
  for (size_t pos = 0; pos < file->size(); pos += kMessageBytes) {
    v1::DownloadModelResponse r;
    r.set_data(file->data() + pos, std::min(kMessageBytes, file->size() - pos));
    if (!watch.Write([&] { return writer->Write(r); })) {
      return rpc::ToGrpcStatus(IdleOr(watch, Status::Cancelled("the client went away")));
    }
  }
  return grpc::Status::OK;
}

grpc::Status BoaService::DeleteModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) {
  Result<Caller> caller = Allow(ctx, Role::kWrite, "DeleteModel");
  if (!caller.ok()) return rpc::ToGrpcStatus(caller.status());
  if (grpc::Status refused = RefuseWhileDraining(); !refused.ok()) return refused;
  Result<ModelEntry> e = store_->Remove(req->model());
  if (!e.ok()) return rpc::ToGrpcStatus(e.status());
  spdlog::info("model {} deleted by {}", e->Ref(), caller->name);
  *resp = ToInfo(*e);
  return grpc::Status::OK;
}

grpc::Status BoaService::LoadModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) {
  BOA_ALLOW(ctx, Role::kWrite, "LoadModel");
  if (grpc::Status refused = RefuseWhileDraining(); !refused.ok()) return refused;
  return Reply(store_->Acquire(req->model()), [](const ModelLease& l) { return ToInfo(l.entry); }, resp);
}

grpc::Status BoaService::UnloadModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) {
  BOA_ALLOW(ctx, Role::kWrite, "UnloadModel");
  return Reply(store_->Unload(req->model()), ToInfo, resp);
}

grpc::Status BoaService::RefuseWhileDraining() {
  if (!draining()) return grpc::Status::OK;
  if (metrics_) metrics_->Rejected(Rejection::kDraining);
  return rpc::ToGrpcStatus(ShuttingDown());
}

ServerState BoaService::State() const {
  ServerState s;
  for (const auto& rm : store_->Resident()) s.queued_chunks += rm->scheduler->stats().queued_chunks;
  s.devices = store_->Usage();
  s.open_requests = std::max(0, open_codec_requests_.load());
  s.draining = draining();
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                         JobState::kCancelled, JobState::kInterrupted}) {
    s.jobs_by_state[JobStateName(state)] = 0;  // every state is a series, zero or not
  }
  for (const JobSnapshot& j : jobs_->List()) ++s.jobs_by_state[JobStateName(j.state)];
  return s;
}

grpc::Status BoaService::ServerInfo(grpc::ServerContext* ctx, const v1::ServerInfoRequest*, v1::ServerInfoResponse* resp) {
  BOA_ALLOW(ctx, Role::kRead, "ServerInfo");
  resp->set_version(BOA_VERSION);
  const ServerState state = State();
  uint32_t lanes = 0, lanes_busy = 0;
  uint64_t budget = 0, resident = 0;
  for (size_t i = 0; i < state.devices.size(); ++i) {
    const DeviceUsage& u = state.devices[i];
    resp->add_devices(u.description);
    v1::DeviceInfo* d = resp->add_device_info();
    d->set_name(u.name);
    d->set_description(u.description);
    d->set_threads(static_cast<uint32_t>(store_->devices()[i].scheduler.threads));
    d->set_lanes(u.lanes);
    d->set_lanes_in_use(u.lanes_busy);
    d->set_models_loaded(u.models);
    d->set_memory_budget_bytes(u.memory_budget);
    d->set_resident_bytes(u.resident_bytes);
    lanes += u.lanes, lanes_busy += u.lanes_busy, budget += u.memory_budget, resident += u.resident_bytes;
  }
  // Every name of a resident model (names that share an id share it).
  for (const ModelEntry& e : store_->List()) {
    if (e.loaded) *resp->add_loaded_models() = ToInfo(e);
  }
  resp->set_threads(static_cast<uint32_t>(store_->devices().front().scheduler.threads));
  resp->set_max_lanes(lanes);
  resp->set_lanes_in_use(lanes_busy);
  resp->set_queue_depth(state.queued_chunks);
  resp->set_open_requests(static_cast<uint32_t>(state.open_requests));
  resp->set_memory_budget_bytes(budget);
  resp->set_resident_bytes(resident);
  resp->set_draining(state.draining);
  for (const std::string& p : store_->problems()) resp->add_problems(p);
  for (const std::string& p : jobs_->problems()) resp->add_problems(p);
  return grpc::Status::OK;
}

namespace {

v1::JobInfo ToJobInfo(const JobSnapshot& j) {
  v1::JobInfo info;
  info.set_id(j.id);
  info.set_name(j.name);
  switch (j.state) {
    case JobState::kQueued: info.set_state(v1::JOB_QUEUED); break;
    case JobState::kRunning: info.set_state(v1::JOB_RUNNING); break;
    case JobState::kSucceeded: info.set_state(v1::JOB_SUCCEEDED); break;
    case JobState::kFailed: info.set_state(v1::JOB_FAILED); break;
    case JobState::kCancelled: info.set_state(v1::JOB_CANCELLED); break;
    case JobState::kInterrupted: info.set_state(v1::JOB_INTERRUPTED); break;
  }
  info.set_message(j.message);
  info.set_created_unix(j.created_unix);
  info.set_seconds(j.seconds);
  info.set_steps(j.report.steps);
  info.set_bytes_seen(j.report.bytes_seen);
  info.set_val_bpb(j.report.val_bpb);
  info.set_test_bpb(j.report.test_bpb);
  if (j.model) *info.mutable_model() = ToInfo(*j.model);
  return info;
}

}  // namespace

Result<train::TrainOptions> BoaService::TrainOptionsFor(const v1::TrainRequest& req) const {
  TrainLimits limits;
  limits.data_dir = config_.train_data_dir;
  limits.memory_budget = train_memory_budget_.load();
  limits.threads = config_.threads;
  return TrainOptionsFromRequest(req, limits);
}

grpc::Status BoaService::Train(grpc::ServerContext* ctx, const v1::TrainRequest* req,
                               grpc::ServerWriter<v1::TrainEvent>* writer) {
  Result<Caller> caller = Allow(ctx, Role::kTrain, "Train");
  if (!caller.ok()) return rpc::ToGrpcStatus(caller.status());
  if (grpc::Status refused = RefuseWhileDraining(); !refused.ok()) return refused;
  Result<train::TrainOptions> o = TrainOptionsFor(*req);
  if (!o.ok()) return rpc::ToGrpcStatus(o.status());
  Result<std::string> id = jobs_->Submit(*req, std::move(*o), caller->key, config_.max_jobs_per_caller);
  if (!id.ok()) return rpc::ToGrpcStatus(id.status());
  spdlog::info("[{}] Train caller={} model={} files={}", *id, caller->name, req->name(), req->files_size());
  return FollowJob(ctx, *id, writer);
}

grpc::Status BoaService::ResumeJob(grpc::ServerContext* ctx, const v1::JobRef* req,
                                   grpc::ServerWriter<v1::TrainEvent>* writer) {
  Result<Caller> caller = Allow(ctx, Role::kTrain, "ResumeJob");
  if (!caller.ok()) return rpc::ToGrpcStatus(caller.status());
  if (grpc::Status refused = RefuseWhileDraining(); !refused.ok()) return refused;
  Result<v1::TrainRequest> request = jobs_->Request(req->id());
  if (!request.ok()) return rpc::ToGrpcStatus(request.status());
  // Checked again: the configuration or the data may have changed since it was submitted.
  Result<train::TrainOptions> o = TrainOptionsFor(*request);
  if (!o.ok()) return rpc::ToGrpcStatus(o.status().WithContext("job " + req->id()));
  Result<JobSnapshot> j = jobs_->Resume(req->id(), std::move(*o), caller->key, config_.max_jobs_per_caller);
  if (!j.ok()) return rpc::ToGrpcStatus(j.status());
  spdlog::info("[{}] resumed by {}: model={}", req->id(), caller->name, request->name());
  return FollowJob(ctx, req->id(), writer);
}

grpc::Status BoaService::FollowJob(grpc::ServerContext* ctx, const std::string& id,
                                   grpc::ServerWriter<v1::TrainEvent>* writer) {
  // A follower that stops reading is let go (the job goes on without it).
  StreamWatch watch(&watchdog_, ctx);
  const auto write = [&](const v1::TrainEvent& e) { return watch.Write([&] { return writer->Write(e); }); };
  uint64_t seen = 0;
  bool first = true;
  for (;;) {
    std::vector<JobLine> lines;
    Result<JobSnapshot> j = jobs_->Wait(id, &seen, &lines, std::chrono::milliseconds(first ? 0 : 500));
    if (!j.ok()) return rpc::ToGrpcStatus(j.status());
    if (first) {
      v1::TrainEvent e;
      *e.mutable_job() = ToJobInfo(*j);
      if (!write(e)) return grpc::Status::OK;  // the job goes on without the client
      first = false;
    }
    for (const JobLine& line : lines) {
      v1::TrainEvent e;
      e.mutable_progress()->set_line(line.text);
      e.mutable_progress()->set_milestone(line.milestone);
      if (!write(e)) return grpc::Status::OK;
    }
    if (j->finished()) {
      v1::TrainEvent e;
      *e.mutable_job() = ToJobInfo(*j);
      write(e);
      spdlog::info("[{}] model={} -> {} ({})", id, j->name, JobStateName(j->state), j->message);
      return grpc::Status::OK;
    }
    if (ctx->IsCancelled()) return grpc::Status::OK;  // the job keeps running: GetJob/ListJobs
  }
}

grpc::Status BoaService::GetJob(grpc::ServerContext* ctx, const v1::JobRef* req, v1::JobInfo* resp) {
  BOA_ALLOW(ctx, Role::kTrain, "GetJob");
  return Reply(jobs_->Get(req->id()), ToJobInfo, resp);
}

grpc::Status BoaService::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest*, v1::ListJobsResponse* resp) {
  BOA_ALLOW(ctx, Role::kTrain, "ListJobs");
  for (const JobSnapshot& j : jobs_->List()) *resp->add_jobs() = ToJobInfo(j);
  return grpc::Status::OK;
}

grpc::Status BoaService::CancelJob(grpc::ServerContext* ctx, const v1::JobRef* req, v1::JobInfo* resp) {
  BOA_ALLOW(ctx, Role::kTrain, "CancelJob");
  return Reply(jobs_->Cancel(req->id()), ToJobInfo, resp);
}

}  // namespace boa::server
