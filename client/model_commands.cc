// `model init|import|show|sample`: model files on this machine (the store on boad is `models`).
#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "common/engine/sample.h"
#include "common/model/checkpoint.h"
#include "common/model/model.h"
#include "common/util/byte_size.h"
#include "common/util/io.h"

namespace boa::client {
namespace {

void PrintWritten(const std::string& path, const ModelConfig& c, WeightType type, const std::vector<uint8_t>& bytes) {
  std::printf("%s: d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u, %" PRIu64
              " parameters, %s, %zu bytes\n",
              path.c_str(), c.d_model, c.n_layers, c.n_layers == 1 ? "" : "s", c.d_state, c.d_conv, c.expand, c.dt_rank,
              c.ParameterCount(), WeightTypeName(type), bytes.size());
  Sha256Digest id = Sha256(bytes.data(), bytes.size());
  std::printf("model id %s\n", HexString(id.data(), id.size()).c_str());
}

class ModelInitCommand final : public Command {
 public:
  ModelInitCommand() : Command("init", "Write a deterministic randomly initialised model") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("--d-model", d_model_, "Model width (default 256)");
    cmd->add_option("--layers", layers_, "Number of Mamba blocks (default 1)");
    cmd->add_option("--seed", seed_, "Random seed (default 1)");
    cmd->add_option("--dtype", dtype_, "Stored weight type: f32 or f16 (default f32)");
    cmd->add_option("-o,--output", output_, "Output model file")->required();
    cmd->add_flag("-f,--force", force_, "Overwrite an existing file");
  }

  Status Run(const GlobalOptions& g) override {
    const ModelConfig c = ModelConfig::Default(d_model_, layers_);
    BOA_RETURN_IF_ERROR(c.Validate());
    BOA_ASSIGN_OR_RETURN(WeightType type, ParseDtype(dtype_));
    const std::string meta = "created_by=boa-client model init\nseed=" + std::to_string(seed_) + "\n";
    const std::vector<uint8_t> bytes = SerializeModel(InitRandomModel(c, seed_), type, meta);
    BOA_RETURN_IF_ERROR(WriteFileAtomic(output_, bytes, force_));
    if (!g.quiet) PrintWritten(output_, c, type, bytes);
    return Status::Ok();
  }

 private:
  uint32_t d_model_ = 256;
  uint32_t layers_ = 1;
  uint64_t seed_ = 1;
  std::string dtype_ = "f32";
  std::string output_;
  bool force_ = false;
};

class ModelImportCommand final : public Command {
 public:
  ModelImportCommand()
      : Command("import", "Convert a PyTorch checkpoint (torch.save(model.state_dict())) to a model file") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("checkpoint", input_, "The .pt file")->required();
    cmd->add_option("-o,--output", output_, "Model file to write")->required();
    cmd->add_option("--dtype", dtype_, "Stored weight type: f32 or f16 (default f32)");
    cmd->add_flag("-f,--force", force_, "Overwrite an existing file");
  }

  Status Run(const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(WeightType type, ParseDtype(dtype_));
    BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> file, ReadFile(input_, 16ull << 30));
    Result<ModelWeights> w = ImportTorchCheckpoint(file);
    if (!w.ok()) return w.status().WithContext(input_);
    const std::vector<uint8_t> bytes =
        SerializeModel(*w, type, "created_by=boa-client model import\nsource=" + input_ + "\n");
    BOA_ASSIGN_OR_RETURN(FileIdentity source, IdentifyPath(input_));
    BOA_RETURN_IF_ERROR(WriteFileAtomic(output_, bytes, force_, {source}));
    if (!g.quiet) PrintWritten(output_, w->config, type, bytes);
    return Status::Ok();
  }

 private:
  std::string input_, output_, dtype_ = "f32";
  bool force_ = false;
};

class ModelShowCommand final : public Command {
 public:
  ModelShowCommand() : Command("show", "Show a model file's architecture and id") {}

  void Define(CLI::App* cmd) override { cmd->add_option("file", path_, "Model file")->required(); }

  Status Run(const GlobalOptions&) override {
    BOA_ASSIGN_OR_RETURN(LoadedModel m, LoadModelFile(path_));
    const ModelConfig& c = m.weights.config;
    std::printf("%s\n", path_.c_str());
    std::printf("  model id         %s\n", m.IdHex().c_str());
    std::printf("  architecture     d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u\n", c.d_model,
                c.n_layers, c.n_layers == 1 ? "" : "s", c.d_state, c.d_conv, c.expand, c.dt_rank);
    std::printf("  parameters       %" PRIu64 " (%" PRIu64 " multiply-adds per byte)\n", c.ParameterCount(),
                c.MacsPerByte());
    std::printf("  weights          %s, file %" PRIu64 " bytes\n", WeightTypeName(m.stored_type), m.file_bytes);
    std::printf("  match model      %s\n", c.match_model ? "on (mixed into the network's tables)" : "off (the network alone)");
    std::printf("  derived fields   %s\n",
                c.derived_fields ? "on (energies from px py pz in listings, column sums in float32 records)" : "off");
    if (!m.metadata.empty()) {
      std::printf("  metadata\n");
      size_t start = 0;
      while (start < m.metadata.size()) {
        size_t nl = m.metadata.find('\n', start);
        if (nl == std::string::npos) nl = m.metadata.size();
        std::printf("    %s\n", m.metadata.substr(start, nl - start).c_str());
        start = nl + 1;
      }
    }
    return Status::Ok();
  }

 private:
  std::string path_;
};

// Data a model codes best, so that every path coding it must use the model (the hybrid keeps
// LZMA2 for anything an untrained model codes worse): checks of the coding paths, such as
// scripts/gpu/boad_check.sh, with a model made by `model init`.
class ModelSampleCommand final : public Command {
 public:
  ModelSampleCommand() : Command("sample", "Write bytes sampled from a model's own predictions (data it codes best)") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("model", path_, "Model file")->required();
    cmd->add_option("--bytes", bytes_, "How many, e.g. 1M (default 1M)");
    cmd->add_option("--seed", seed_, "Random seed (default 1)");
    cmd->add_option("-o,--output", output_, "Output file")->required();
    cmd->add_flag("-f,--force", force_, "Overwrite an existing file");
  }

  Status Run(const GlobalOptions& g) override {
    Result<uint64_t> n = ParseByteSize(bytes_);
    if (!n.ok()) return n.status().WithContext("--bytes");
    if (*n > (1ull << 30)) return Status::InvalidArgument("--bytes: at most 1G");
    BOA_ASSIGN_OR_RETURN(LoadedModel m, LoadModelFile(path_));
    BOA_ASSIGN_OR_RETURN(std::shared_ptr<const engine::Engine> e, engine::Engine::Create(m.weights, engine::Backend::kAuto));
    // 64 sequences side by side: one Forward call feeds them all.
    const std::vector<uint8_t> data = engine::SampleBytes(e, *n, seed_, 64);
    BOA_RETURN_IF_ERROR(WriteFileAtomic(output_, data, force_));
    if (!g.quiet) std::printf("%s: %zu bytes sampled from %s (seed %" PRIu64 ")\n", output_.c_str(), data.size(), path_.c_str(), seed_);
    return Status::Ok();
  }

 private:
  std::string path_, output_, bytes_ = "1M";
  uint64_t seed_ = 1;
  bool force_ = false;
};

}  // namespace

void AddModelCommands(CommandTable* table) {
  CLI::App* model = table->Group("model", "Model files");
  table->Add(std::make_unique<ModelInitCommand>(), model);
  table->Add(std::make_unique<ModelImportCommand>(), model);
  table->Add(std::make_unique<ModelShowCommand>(), model);
  table->Add(std::make_unique<ModelSampleCommand>(), model);
}

}  // namespace boa::client
