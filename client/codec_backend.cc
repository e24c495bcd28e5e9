// The two codec backends of boa-client.
#include "client/codec_backend.h"

#include <cstdlib>

namespace boa::client {

namespace {

class Local final : public CodecBackend {
 public:
  explicit Local(LoadedModel m) : model_(std::move(m)) {}
  Status Compress(ByteSource* in, ByteSink* out, const CodecOptions& o, CodecStats* stats) override {
    return boa::Compress(model_, in, out, o, stats);
  }
  Status Decompress(ByteSource* in, ByteSink* out, const CodecOptions& o, CodecStats* stats) override {
    return boa::Decompress(model_, in, out, o, stats);
  }
  Status Verify(ByteSource* in, const CodecOptions& o, CodecStats* stats) override {
    CountingSink sink;
    return boa::Decompress(model_, in, &sink, o, stats);
  }
  Result<EvalResult> Eval(ByteSource* in, const CodecOptions& o) override { return Evaluate(model_, in, o); }
  uint64_t model_bytes() const override { return model_.file_bytes; }
  bool in_process() const override { return true; }

 private:
  LoadedModel model_;
};

class Remote final : public CodecBackend {
 public:
  Remote(std::unique_ptr<rpc::RemoteClient> c, std::string model, uint64_t bytes, int parallel)
      : client_(std::move(c)), model_(std::move(model)), bytes_(bytes) {
    parallel_.streams = parallel;
  }
  Status Compress(ByteSource* in, ByteSink* out, const CodecOptions& o, CodecStats* stats) override {
    if (parallel_.streams > 1) return rpc::ParallelCompress(client_.get(), model_, o, parallel_, in, out, stats, o.progress);
    return client_->Compress(model_, o, in, out, stats, o.progress);
  }
  Status Decompress(ByteSource* in, ByteSink* out, const CodecOptions& o, CodecStats* stats) override {
    if (parallel_.streams > 1) return rpc::ParallelDecompress(client_.get(), model_, parallel_, in, out, stats, o.progress);
    return client_->Decompress(model_, in, out, stats, o.progress);
  }
  Status Verify(ByteSource* in, const CodecOptions&, CodecStats* stats) override {
    return client_->Verify(model_, in, stats);
  }
  Result<EvalResult> Eval(ByteSource* in, const CodecOptions& o) override { return client_->Eval(model_, o, in); }
  uint64_t model_bytes() const override { return bytes_; }
  bool in_process() const override { return false; }

 private:
  std::unique_ptr<rpc::RemoteClient> client_;
  std::string model_;
  uint64_t bytes_;
  rpc::ParallelOptions parallel_;
};

}  // namespace

std::unique_ptr<CodecBackend> LocalBackend(LoadedModel model) { return std::make_unique<Local>(std::move(model)); }

std::unique_ptr<CodecBackend> RemoteBackend(std::unique_ptr<rpc::RemoteClient> client, std::string model,
                                            uint64_t model_bytes, int parallel) {
  return std::make_unique<Remote>(std::move(client), std::move(model), model_bytes, parallel);
}

bool BackendChoice::ServerNamed() const {
  const char* env = std::getenv("BOA_SERVER");
  return !server.empty() || (env && *env);
}

bool IsModelFile(const std::string& model) {
  return model.find('/') != std::string::npos || HasModelFileSuffix(model);
}

Result<std::unique_ptr<CodecBackend>> OpenBackend(const BackendChoice& choice, const std::string& model) {
  if (choice.local || IsModelFile(model)) {
    if (model.empty()) return Status::InvalidArgument("no model given (use -m MODEL)");
    if (choice.parallel > 1) {
      return Status::InvalidArgument("--parallel spreads a file over boad's replicas; in this process use -T for threads");
    }
    BOA_ASSIGN_OR_RETURN(LoadedModel m, LoadModelFile(model));
    return LocalBackend(std::move(m));
  }
  BOA_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RemoteClient> c, choice.Endpoint().Connect());
  c->set_deadline(choice.timeout);
  uint64_t bytes = 0;
  if (!model.empty()) {
    BOA_ASSIGN_OR_RETURN(v1::ModelInfo info, c->GetModel(model));
    bytes = info.file_bytes();
  }
  return RemoteBackend(std::move(c), model, bytes, choice.parallel);
}

Result<v1::ModelInfo> EnsureOnServer(rpc::RemoteClient& client, const std::string& path, const LoadedModel& model,
                                     const std::string& name, bool* uploaded) {
  *uploaded = false;
  Result<v1::ModelInfo> found = client.GetModel(model.IdHex());
  if (found.ok() || found.status().code() != StatusCode::kNotFound) return found;
  *uploaded = true;
  return client.UploadModel(path, name, 0);
}

}  // namespace boa::client
