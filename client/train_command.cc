// `train FILES -o MODEL` (LibTorch, in this process) or `train FILES --name NAME` (on boad,
// files inside its train_data_dir). With --config the experiment gives every setting and
// an option given on the command line overrides it.
#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "client/experiment.h"
#include "client/progress.h"
#include "client/server_commands.h"
#include "common/util/byte_size.h"
#include "common/util/io.h"

namespace boa::client {
namespace {

class TrainCommand final : public Command {
 public:
  TrainCommand() : Command("train", "Train a model on files (LibTorch, CPU), or on boad with --name") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("files", files_, "Training data (concatenated)");
    cmd->add_option("--config", config_, "Experiment config: NAME (experiments/NAME/NAME.yaml) or a path");
    cmd->add_option("-o,--output", output_, "Model file to write (with --config: <name>_final_model_<precision>.boam)");
    cmd->add_option("--name", name_, "Train on boad instead (files inside its train_data_dir) and register the model as NAME");
    cmd->add_flag("-f,--force", force_, "Overwrite an existing model file");
    d_model_ = cmd->add_option("--d-model", d_model_value_, "Model width (default 64, or 32 for a --max-seconds under 10 minutes)");
    layers_ = cmd->add_option("--layers", layers_value_, "Number of Mamba blocks (default 2)");
    Setting(cmd, "--seq-len", &train::TrainOptions::seq_len, "Bytes per training window (default 4096)");
    Setting(cmd, "--batch-size", &train::TrainOptions::batch_size, "Windows per step (default 2)");
    Setting(cmd, "--lr", &train::TrainOptions::lr, "Peak learning rate (default 3e-3)");
    Setting(cmd, "--epochs", &train::TrainOptions::epochs, "Passes over the training split (default 1)");
    Setting(cmd, "--max-seconds", &train::TrainOptions::max_seconds, "Stop after this much wall time");
    Setting(cmd, "--splits", &train::TrainOptions::splits, "Train,validation,test fractions (default 0.8,0.1,0.1)")
        ->delimiter(',')
        ->allow_extra_args(false);  // one value (split at commas); what follows is a file
    Setting(cmd, "--seed", &train::TrainOptions::seed, "Random seed (default 1)");
    precision_ = Setting(cmd, "--precision", &train::TrainOptions::precision, "fp32 or bf16 (autocast; the CPU build's training precisions)");
    cmd->add_option("--max-bytes", max_bytes_, "Stop after this many training bytes, e.g. 50M (0: no limit)");
    Setting(cmd, "-T,--threads", &train::TrainOptions::threads, "Threads (default: all cores)");
    Setting(cmd, "--patience", &train::TrainOptions::patience, "Stop after this many epochs without validation gain (0: off)");
    Setting(cmd, "--match-model", &train::TrainOptions::match_model,
            "auto, on or off: the match and derived-field models in the written model (auto: each where it codes held-out data smaller)")
        ->check(CLI::IsMember({"auto", "on", "off"}));
    Setting(cmd, "--checkpoint-dir", &train::TrainOptions::checkpoint_dir, "Where epoch checkpoints go (default <output>.ckpt)");
    cmd->add_flag("--resume", resume_, "Continue from the last epoch checkpoint (<output>.ckpt)");
    cmd->add_option("--dtype", dtype_, "Stored weight type of the model file: f32 or f16 (default f32)");
  }

  Status Run(const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(train::TrainOptions t, Options());
    if (!name_.empty()) return TrainOnServer(g, t);
    if (t.output.empty()) return Status::InvalidArgument("no output model given (use -o MODEL)");
    if (!force_ && !t.resume && PathExists(t.output)) {
      return Status::AlreadyExists(t.output + ": already exists (use -f to overwrite)");
    }
    return TrainHere(g, t);
  }

 private:
  // A trainer setting: the config's value (or the trainer's default) unless given here.
  template <typename T>
  CLI::Option* Setting(CLI::App* cmd, const std::string& flags, T train::TrainOptions::*field, const std::string& help) {
    CLI::Option* option = cmd->add_option(flags, given_.*field, help);
    overrides_.push_back([this, option, field](train::TrainOptions* t) {
      if (option->count() > 0) t->*field = given_.*field;
    });
    return option;
  }

  Result<train::TrainOptions> Options() const {
    train::TrainOptions t;
    if (!config_.empty()) {
      BOA_ASSIGN_OR_RETURN(ExperimentConfig c, LoadExperiment(config_));
      for (const std::string& w : c.warnings) PrintWarning(w);
      if (precision_->count() > 0) c.precision = given_.precision;  // it names the model file
      t = TrainingOf(c);
    }
    for (const auto& apply : overrides_) apply(&t);
    // A config names its shape; without one the budget picks it (DefaultModelFor).
    const ModelConfig shape = config_.empty() ? train::DefaultModelFor(t.max_seconds) : t.model;
    t.model = ModelConfig::Default(d_model_->count() > 0 ? d_model_value_ : shape.d_model,
                                   layers_->count() > 0 ? layers_value_ : shape.n_layers);
    if (!files_.empty()) t.files = files_;
    if (t.files.empty()) return Status::InvalidArgument("no training data (give files or --config NAME)");
    if (!output_.empty()) t.output = output_;
    t.resume = resume_;
    BOA_ASSIGN_OR_RETURN(t.output_type, ParseDtype(dtype_));
    if (!max_bytes_.empty()) {
      Result<uint64_t> bytes = ParseByteSize(max_bytes_);
      if (!bytes.ok()) return bytes.status().WithContext("--max-bytes");
      t.max_bytes = *bytes;
    }
    return t;
  }

  // The job runs on boad and goes on if this client stops; the model is registered in its
  // store as --name.
  Status TrainOnServer(const GlobalOptions& g, const train::TrainOptions& t) const {
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RemoteClient> r, g.Endpoint().Connect());
    r->set_deadline(g.timeout);
    v1::TrainRequest req;
    req.set_name(name_);
    for (const std::string& f : t.files) req.add_files(f);
    req.set_d_model(t.model.d_model);
    req.set_n_layers(t.model.n_layers);
    req.set_seq_len(static_cast<uint64_t>(t.seq_len));
    req.set_batch_size(static_cast<uint64_t>(t.batch_size));
    req.set_lr(t.lr);
    req.set_epochs(static_cast<uint32_t>(t.epochs));
    req.set_max_seconds(t.max_seconds);
    req.set_max_bytes(t.max_bytes);
    for (double v : t.splits) req.add_splits(v);
    req.set_seed(t.seed);
    req.set_precision(t.precision);
    req.set_dtype(WeightTypeName(t.output_type));
    req.set_patience(static_cast<uint32_t>(t.patience));
    req.set_match_model(t.match_model);
    return FollowJob(*r, [&](const JobEventFn& on_event) { return r->Train(req, on_event); }, g.ProgressLines(),
                     g.quiet);
  }

  Status TrainHere(const GlobalOptions& g, train::TrainOptions t) const {
#ifdef BOA_WITH_TRAIN
    t.progress = g.ProgressLines();
    if (g.verbose) {
      Result<uint64_t> need = train::EstimateTrainingBytes(t);
      if (need.ok()) std::fprintf(stderr, "memory: about %" PRIu64 " MiB at the peak\n", *need >> 20);
    }
    train::TuneHeapForTraining();
    train::TrainReport r;
    BOA_RETURN_IF_ERROR(train::Train(t, &r));
    if (!g.quiet) {
      std::printf("%s: %" PRIu64 " steps, %s of training data in %.1f s (%.1f KB/s)\n", t.output.c_str(), r.steps,
                  HumanBytes(static_cast<double>(r.bytes_seen)).c_str(), r.seconds, r.bytes_seen / r.seconds / 1e3);
      std::printf("bits per byte: train %.4f, validation %.4f (best, epoch %d), test %.4f (ratio ~%.2f)%s\n",
                  r.final_loss_bpb, r.val_bpb, r.best_epoch, r.test_bpb, r.test_bpb > 0 ? 8 / r.test_bpb : 0,
                  r.early_stopped ? ", stopped early" : "");
      if (r.probe_network_bytes > 0) {
        std::printf("match model: %s, derived fields: %s (held-out data codes to %.0f bytes with both, %.0f with the "
                    "match model, %.0f with neither)\n",
                    r.match_model ? "on" : "off", r.derived_fields ? "on" : "off", r.probe_derived_bytes, r.probe_match_bytes,
                    r.probe_network_bytes);
      }
      std::printf("report %s.report.json, loss curve %s.loss.csv\n", t.output.c_str(), t.output.c_str());
    }
    return Status::Ok();
#else
    (void)g;
    (void)t;
    return Status::FailedPrecondition(
        "this build of boa-client has no training support (LibTorch was not found): train on boad with --name");
#endif
  }

  std::vector<std::string> files_;
  std::string config_, output_, name_, dtype_ = "f32", max_bytes_;
  bool force_ = false, resume_ = false;
  CLI::Option* precision_ = nullptr;
  CLI::Option* d_model_ = nullptr;
  CLI::Option* layers_ = nullptr;
  uint32_t d_model_value_ = 256, layers_value_ = 1;
  train::TrainOptions given_;  // the values of the settings given on the command line
  std::vector<std::function<void(train::TrainOptions*)>> overrides_;
};

}  // namespace

void AddTrainCommand(CommandTable* table) { table->Add(std::make_unique<TrainCommand>()); }

}  // namespace boa::client
