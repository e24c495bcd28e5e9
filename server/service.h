// The boa.v1.Boa gRPC service: codec streams through the model store's schedulers, model
// management and server information. Status codes become gRPC codes through rpc/wire.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "boa/v1/boa.grpc.pb.h"
#include "server/access.h"
#include "server/config.h"
#include "server/jobs.h"
#include "server/metrics.h"
#include "server/model_store.h"
#include "server/stream_watchdog.h"

namespace boa::server {

class BoaService final : public boa::v1::Boa::Service {
 public:
  // `metrics` may be null (no metrics kept). Every RPC asks `access` first.
  BoaService(const ServerConfig& config, ModelStore* store, JobManager* jobs, Metrics* metrics, AccessControl* access)
      : config_(config),
        store_(store),
        jobs_(jobs),
        metrics_(metrics),
        access_(access),
        watchdog_(config.stream_idle_seconds),
        queue_limit_(config.queue_limit),
        train_memory_budget_(config.train_memory_budget) {}

  // SIGTERM: new requests get UNAVAILABLE; running ones may finish until `deadline`, then
  // they fail with UNAVAILABLE as well.
  void StartDraining(std::chrono::steady_clock::time_point deadline);
  bool draining() const { return draining_.load(); }
  // UNAVAILABLE while draining, counted as a rejection (calls that start work: uploads,
  // loads, deletes, training; the codec calls go through their admission); else OK.
  grpc::Status RefuseWhileDraining();
  // Draining, and its deadline has passed.
  bool drain_expired() const;
  // Codec requests being served (the drain waits for them).
  int open_requests() const { return open_codec_requests_.load(); }
  // Lanes, queue, memory and jobs now: what `status` and the metrics show.
  ServerState State() const;
  // SIGHUP: a new queue_limit applies to requests that arrive from now on.
  void SetQueueLimit(int limit) { queue_limit_ = limit; }
  void SetTrainMemoryBudget(uint64_t bytes) { train_memory_budget_ = bytes; }

  grpc::Status Compress(grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<v1::CompressResponse, v1::CompressRequest>* stream) override;
  grpc::Status Decompress(grpc::ServerContext* ctx,
                          grpc::ServerReaderWriter<v1::DecompressResponse, v1::DecompressRequest>* stream) override;
  grpc::Status Verify(grpc::ServerContext* ctx, grpc::ServerReader<v1::DecompressRequest>* reader,
                      v1::CodecSummary* summary) override;
  grpc::Status Eval(grpc::ServerContext* ctx, grpc::ServerReader<v1::CompressRequest>* reader,
                    v1::EvalSummary* summary) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* req, v1::ListModelsResponse* resp) override;
  grpc::Status GetModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) override;
  grpc::Status UploadModel(grpc::ServerContext* ctx, grpc::ServerReader<v1::UploadModelRequest>* reader,
                           v1::ModelInfo* resp) override;
  grpc::Status DownloadModel(grpc::ServerContext* ctx, const v1::ModelRef* req,
                             grpc::ServerWriter<v1::DownloadModelResponse>* writer) override;
  grpc::Status DeleteModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) override;
  grpc::Status LoadModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) override;
  grpc::Status UnloadModel(grpc::ServerContext* ctx, const v1::ModelRef* req, v1::ModelInfo* resp) override;
  grpc::Status ServerInfo(grpc::ServerContext* ctx, const v1::ServerInfoRequest* req, v1::ServerInfoResponse* resp) override;
  grpc::Status Train(grpc::ServerContext* ctx, const v1::TrainRequest* req, grpc::ServerWriter<v1::TrainEvent>* writer) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::JobRef* req, v1::JobInfo* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req, v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::JobRef* req, v1::JobInfo* resp) override;
  grpc::Status ResumeJob(grpc::ServerContext* ctx, const v1::JobRef* req, grpc::ServerWriter<v1::TrainEvent>* writer) override;

 private:
  class Admission;
  class RequestLog;
  class TransferSlot;
  // A slot among max_model_transfers (kept in *slot, also when refused).
  Status TakeTransferSlot(std::optional<TransferSlot>* slot);
  Status CheckCancelled(grpc::ServerContext* ctx) const;
  // The caller, if it may call `method` (which needs `role`); a refusal is logged with the
  // caller and the peer, and counted.
  Result<Caller> Allow(grpc::ServerContext* ctx, Role role, const char* method);
  // What every codec stream does first: its caller must have `read` and be under its limit of
  // open streams; its first message must come within the idle limit and be what the RPC needs
  // (`read_first` false: `bad_first`); only then is it admitted among the open requests, so a
  // stream that sends nothing holds no queue slot. The status says why it was refused.
  Status BeginCodec(grpc::ServerContext* ctx, const char* op, RequestLog* log, const StreamWatch& watch,
                    const std::function<bool()>& read_first, const std::string& bad_first,
                    std::optional<Admission>* admission);
  // Why a stream ended early: the watchdog's timeout, else `s`.
  Status IdleOr(const StreamWatch& watch, Status s);
  // Streams a job's progress to the caller until it ends or the caller goes (the job does not).
  grpc::Status FollowJob(grpc::ServerContext* ctx, const std::string& id, grpc::ServerWriter<v1::TrainEvent>* writer);
  // Compress after its options message: the container streams back as chunks finish.
  Status CompressStream(grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<v1::CompressResponse, v1::CompressRequest>* stream, StreamWatch* watch,
                        RequestLog* log, const v1::CompressOptions& options);
  // The request's training options under this server's limits (server/train_request.h).
  Result<train::TrainOptions> TrainOptionsFor(const v1::TrainRequest& req) const;
  // Decompress and Verify after the stream's first message; only Decompress (`allow_part`)
  // takes options.part. The work is bounded before it is done: max_output_bytes and
  // max_expansion apply to each chunk's claimed length as its record arrives.
  Status DecodeStream(grpc::ServerContext* ctx, RequestLog* log, v1::DecompressRequest first,
                      const std::function<bool(v1::DecompressRequest*)>& read,
                      const std::function<bool(const uint8_t*, size_t)>& write, bool allow_part,
                      v1::CodecSummary* summary);

  const ServerConfig config_;
  ModelStore* store_;
  JobManager* jobs_;
  Metrics* const metrics_;
  AccessControl* const access_;
  StreamWatchdog watchdog_;
  std::atomic<int> queue_limit_;
  std::atomic<uint64_t> train_memory_budget_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drain_deadline_ns_{0};
  std::atomic<int> open_codec_requests_{0};
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<int> open_transfers_{0};
  std::mutex callers_mu_;
  std::map<std::string, int> open_by_caller_;  // codec streams open per Caller::key; Guarded by callers_mu_
};

}  // namespace boa::server
