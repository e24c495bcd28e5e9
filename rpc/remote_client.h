// The client of boad (gRPC, proto/boa/v1/boa.proto) used by boa-client, the tests and
// boad-bench: the codec streams, model management and server status. Errors come back as Status with one clear line: an
// unreachable server names the address and suggests `boad` or `--local`.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "boa/v1/boa.pb.h"
#include "common/codec/codec.h"
#include "common/util/io.h"
#include "common/util/status.h"
#include "rpc/tls.h"

namespace boa::rpc {

// The server address: --server, else $BOA_SERVER, else localhost:50051.
std::string ServerAddress(const std::string& flag);

class RemoteClient;

// How boa-client reaches boad: its flags, with the environment behind them.
struct ServerEndpoint {
  std::string server;      // --server; empty: $BOA_SERVER, else localhost:50051
  std::string token_file;  // --token-file (the token on its first line); empty: $BOA_TOKEN, else none
  TlsOptions tls;          // --tls-ca, --tls-cert, --tls-key, --tls-server-name; $BOA_TLS_* behind them
  // The token the flags and environment give ("" for none); a token file that cannot be
  // read, or is empty, is an error naming it.
  Result<std::string> Token() const;
  Result<std::unique_ptr<RemoteClient>> Connect(double connect_seconds = 5) const;
};

class RemoteClient {
 public:
  using ProgressFn = std::function<void(uint64_t in_bytes, uint64_t out_bytes)>;
  // Connects (waiting up to `connect_seconds`) so that an absent server is one clear error.
  // `address` is any gRPC target; several addresses (replicas) share the requests round robin.
  // `token`: sent with every call (authorization: Bearer TOKEN) to a boad that requires one.
  // With `tls.enabled` the channel is TLS (mutual with a client certificate); a handshake
  // that fails is diagnosed in the error (rpc/tls.h).
  static Result<std::unique_ptr<RemoteClient>> Connect(const std::string& address, double connect_seconds = 5,
                                                       const std::string& token = "", const TlsOptions& tls = {});
  ~RemoteClient();

  // `deadline_seconds` <= 0: no deadline.
  void set_deadline(double seconds) { deadline_seconds_ = seconds; }
  // Codec requests as online data taking (scheduled before bulk work) or bulk (default).
  void set_online_priority(bool online) { online_ = online; }

  Status Compress(const std::string& model, const CodecOptions& options, ByteSource* in, ByteSink* out,
                  CodecStats* stats, const ProgressFn& progress);
  // `model` may be empty: the server takes the model recorded in the stream. `part`: the
  // stream is one part of a larger file (DecompressOptions.part; rpc/parallel.h).
  Status Decompress(const std::string& model, ByteSource* in, ByteSink* out, CodecStats* stats,
                    const ProgressFn& progress, bool part = false);
  Status Verify(const std::string& model, ByteSource* in, CodecStats* stats);
  Result<EvalResult> Eval(const std::string& model, const CodecOptions& options, ByteSource* in);

  Result<std::vector<v1::ModelInfo>> ListModels();
  Result<v1::ModelInfo> GetModel(const std::string& ref);
  Result<v1::ModelInfo> UploadModel(const std::string& path, const std::string& name, uint32_t version);
  // Checks what arrives against the model id (its SHA-256) before it succeeds: DATA_LOSS
  // otherwise, so the caller never commits a damaged file.
  Status DownloadModel(const std::string& ref, ByteSink* out);
  Result<v1::ModelInfo> DeleteModel(const std::string& ref);
  Result<v1::ModelInfo> LoadModel(const std::string& ref);
  Result<v1::ModelInfo> UnloadModel(const std::string& ref);
  Result<v1::ServerInfoResponse> Info();
  // Starts a training job and calls `on_event` for each event until the job ends.
  Status Train(const v1::TrainRequest& request, const std::function<void(const v1::TrainEvent&)>& on_event);
  Result<v1::JobInfo> GetJob(const std::string& id);
  Result<std::vector<v1::JobInfo>> ListJobs();
  Result<v1::JobInfo> CancelJob(const std::string& id);
  // Continues an interrupted, cancelled or failed job; its events as Train's.
  Status ResumeJob(const std::string& id, const std::function<void(const v1::TrainEvent&)>& on_event);
  // "SERVING" or "NOT_SERVING".
  // The serving status (SERVING, NOT_SERVING, ...) of `service` ("": the whole server).
  Result<std::string> Health(const std::string& service = "boa.v1.Boa");

  const std::string& address() const { return address_; }

 private:
  struct Impl;
  RemoteClient(std::string address, std::unique_ptr<Impl> impl);
  std::string address_;
  std::unique_ptr<Impl> impl_;
  double deadline_seconds_ = 0;
  bool online_ = false;
};

}  // namespace boa::rpc
