// Where boa-client's codec work runs: in this process with a model file (--local), or on
// boad with a model from its store. Both write the same .boa bytes (the determinism
// contract), so every command can take either.
#pragma once

#include <memory>
#include <string>

#include "rpc/parallel.h"
#include "rpc/remote_client.h"
#include "common/codec/codec.h"
#include "common/model/model.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa::client {

class CodecBackend {
 public:
  virtual ~CodecBackend() = default;
  virtual Status Compress(ByteSource* in, ByteSink* out, const CodecOptions& options, CodecStats* stats) = 0;
  virtual Status Decompress(ByteSource* in, ByteSink* out, const CodecOptions& options, CodecStats* stats) = 0;
  virtual Status Verify(ByteSource* in, const CodecOptions& options, CodecStats* stats) = 0;
  virtual Result<EvalResult> Eval(ByteSource* in, const CodecOptions& options) = 0;
  // Size of the model file, for ratios that count the model.
  virtual uint64_t model_bytes() const = 0;
  // Whether the work runs in this process (else on boad).
  virtual bool in_process() const = 0;
};

std::unique_ptr<CodecBackend> LocalBackend(LoadedModel model);
// `model`: a reference in the server's store (may be empty for decompress/verify).
// `parallel` > 1: compress and decompress send each file as that many requests at once
// (rpc/parallel.h), spread over the server's replicas.
std::unique_ptr<CodecBackend> RemoteBackend(std::unique_ptr<rpc::RemoteClient> client, std::string model,
                                            uint64_t model_bytes = 0, int parallel = 1);

struct BackendChoice {
  bool local = false;      // --local
  std::string server;      // --server (empty: $BOA_SERVER or localhost:50051)
  std::string token_file;  // --token-file (empty: $BOA_TOKEN)
  rpc::TlsOptions tls;     // --tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name
  double timeout = 0;      // --timeout, server requests only
  int parallel = 1;        // --parallel: requests per file at once (compress, decompress; server only)
  // Whether a server was named (--server or $BOA_SERVER), for commands that run in this
  // process unless told otherwise (run).
  bool ServerNamed() const;
  rpc::ServerEndpoint Endpoint() const { return {server, token_file, tls}; }
};

// A `-m` value that names a model file rather than a model on boad: a path (it contains a
// '/') or a name ending in .boam (the store refuses such names, so this is never ambiguous).
bool IsModelFile(const std::string& model);

// In this process when --local is given or `model` is a model file (which it must then
// be); else on boad with `model` a reference in its store (empty allowed: decompress and
// verify take the stream's model).
Result<std::unique_ptr<CodecBackend>> OpenBackend(const BackendChoice& choice, const std::string& model);

// Makes a local model file available on the server: finds it by id, or uploads it as
// `name` (next version; *uploaded is then set). Returns the model as the server has it.
Result<v1::ModelInfo> EnsureOnServer(rpc::RemoteClient& client, const std::string& path, const LoadedModel& model,
                                     const std::string& name, bool* uploaded);

}  // namespace boa::client
