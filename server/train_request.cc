// Checking a Train request (see train_request.h).
#include "server/train_request.h"

#include <algorithm>
#include <climits>
#include <filesystem>

#include "server/model_store.h"

namespace boa::server {

namespace fs = std::filesystem;

Result<std::string> ResolveTrainingFile(const std::string& data_dir, const std::string& path) {
  const auto outside = [&] {
    return Status::InvalidArgument("Train: '" + path + "' is not a file inside the server's train_data_dir");
  };
  std::error_code ec;
  const fs::path root = fs::canonical(data_dir, ec);
  if (ec) return Status::FailedPrecondition("train_data_dir " + data_dir + " does not exist");
  const fs::path rel(path);
  if (path.empty() || rel.is_absolute()) return outside();
  for (const auto& part : rel) {
    if (part == "..") return outside();
  }
  const fs::path full = fs::canonical(root / rel, ec);
  // canonical() resolves links: the file must still be inside the data directory.
  if (ec || std::mismatch(root.begin(), root.end(), full.begin(), full.end()).first != root.end() ||
      !fs::is_regular_file(full, ec)) {
    return outside();
  }
  return full.string();
}

Result<train::TrainOptions> TrainOptionsFromRequest(const v1::TrainRequest& req, const TrainLimits& limits) {
#ifndef BOA_WITH_TRAIN
  (void)req;
  (void)limits;
  return Status::FailedPrecondition("this boad was built without LibTorch: it cannot train");
#else
  if (limits.data_dir.empty()) {
    return Status::FailedPrecondition("training over gRPC is off on this server (set train_data_dir in boad.yaml)");
  }
  BOA_RETURN_IF_ERROR(ModelStore::CheckName(req.name()));
  if (req.files().empty()) return Status::InvalidArgument("Train: no files (paths relative to the server's train_data_dir)");
  train::TrainOptions o;
  for (const std::string& f : req.files()) {
    BOA_ASSIGN_OR_RETURN(std::string full, ResolveTrainingFile(limits.data_dir, f));
    o.files.push_back(std::move(full));
  }
  const ModelConfig shape = train::DefaultModelFor(req.max_seconds());
  o.model = ModelConfig::Default(req.d_model() ? req.d_model() : shape.d_model,
                                 req.n_layers() ? req.n_layers() : shape.n_layers);
  BOA_RETURN_IF_ERROR(o.model.Validate().WithContext("Train"));
  if (req.seq_len()) o.seq_len = static_cast<int64_t>(std::min<uint64_t>(req.seq_len(), INT64_MAX));
  if (req.batch_size()) o.batch_size = static_cast<int64_t>(std::min<uint64_t>(req.batch_size(), INT64_MAX));
  if (req.lr() != 0) o.lr = req.lr();
  if (req.epochs()) o.epochs = static_cast<int>(std::min<uint32_t>(req.epochs(), 100000));
  o.max_seconds = req.max_seconds();
  o.max_bytes = req.max_bytes();
  if (!req.splits().empty()) o.splits.assign(req.splits().begin(), req.splits().end());
  if (req.seed()) o.seed = req.seed();
  if (!req.precision().empty()) o.precision = req.precision();
  if (!req.dtype().empty()) {
    Result<WeightType> type = ParseWeightType(req.dtype());
    if (!type.ok()) return type.status().WithContext("Train: dtype");
    o.output_type = *type;
  }
  o.patience = static_cast<int>(req.patience());
  if (!req.match_model().empty()) o.match_model = req.match_model();
  o.threads = limits.threads;
  // Validates every option (the trainer's own rules) and sizes the job before it is queued:
  // a job must not take the daemon's memory.
  Result<uint64_t> need = train::EstimateTrainingBytes(o);
  if (!need.ok()) return need.status().WithContext("Train");
  if (*need > limits.memory_budget) {
    return Status::ResourceExhausted("Train: this job needs about " + std::to_string(*need >> 20) + " MiB (d_model " +
                                     std::to_string(o.model.d_model) + " x " + std::to_string(o.model.n_layers) +
                                     " layers, batch_size " + std::to_string(o.batch_size) + " x seq_len " +
                                     std::to_string(o.seq_len) + "), more than train_memory_budget (" +
                                     std::to_string(limits.memory_budget >> 20) + " MiB)");
  }
  return o;
#endif
}

}  // namespace boa::server
