// Training a BOA model on the user's data (LibTorch underneath; this header is torch-free so
// the CLI and tests can use it without torch's compile cost).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::train {

// Budgets (--max-seconds) shorter than this train DefaultModelFor's narrower shape.
constexpr double kSmallModelBudgetSeconds = 600;

// The model `train` trains for a wall-clock budget (0: none) where the caller names no
// shape: the best measured on the 2-core development machine (docs/training.md, "Recipe").
// On the CMS rows d_model 32, whose steps are 2.2x faster, ends 0.8 % smaller at 5 minutes;
// d_model 64 ends 0.7 % smaller at 10.
inline ModelConfig DefaultModelFor(double max_seconds) {
  if (max_seconds > 0 && max_seconds < kSmallModelBudgetSeconds) return ModelConfig::Default(32, 2);
  return ModelConfig::Default(64, 2);
}

struct TrainOptions {
  std::vector<std::string> files;          // training data (one file is memory-mapped; several are concatenated)
  // The default recipe: the best measured on 2 cores (docs/training.md, "Recipe").
  ModelConfig model = DefaultModelFor(0);
  uint64_t seed = 1;
  int64_t seq_len = 4096;                  // bytes per training window
  int64_t batch_size = 2;                  // windows per step
  double lr = 3e-3;
  double weight_decay = 0.01;
  double warmup_fraction = 0.05;           // of all steps, then cosine decay to 10 % of lr
  double grad_clip = 1.0;
  int epochs = 1;                          // an epoch is as many windows as the training split holds
  double max_seconds = 0;                  // wall-time budget (0: none)
  uint64_t max_bytes = 0;                  // training-byte budget (0: none)
  std::vector<double> splits = {0.8, 0.1, 0.1};  // train / validation / test, contiguous
  int threads = 0;                         // 0: all cores
  int64_t eval_chunk = 65536;              // validation/test evaluated in chunks, as coded
  std::string output;                      // model file to write
  WeightType output_type = WeightType::kF32;  // f16 halves the model file
  std::string precision = "fp32";          // fp32, or bf16 (autocast: matrix products in bf16)
  int patience = 0;                        // early stopping: epochs without validation gain (0: off)
  // Checkpoint after every epoch into this directory (empty: <output>.ckpt) and, with
  // `resume`, continue from the last one there.
  std::string checkpoint_dir;
  bool resume = false;
  int run_epochs = 0;                      // train at most this many epochs now (0: all), resume later
  // The match and derived-field models (common/codec/match_model.h, chunk_coder.h) in the
  // written model: "on", "off", or "auto": each on where it makes the held-out bytes'
  // (validation, else test) code smaller.
  std::string match_model = "auto";
  // Polled every step (may be empty): true stops training at once. The partial epoch is
  // checkpointed (so `resume` continues from the same step) and Train returns CANCELLED
  // without writing the model file; the report says how far it got.
  std::function<bool()> should_stop;
  // Called every few steps and at each validation: a one-line status for progress output.
  std::function<void(const std::string& line, bool final_line)> progress;
};

struct TrainReport {
  int epochs_done = 0;
  int best_epoch = 0;       // the epoch whose weights were written (best validation)
  bool early_stopped = false;
  bool resumed = false;
  uint64_t steps = 0;
  uint64_t bytes_seen = 0;
  double seconds = 0;
  double final_loss_bpb = 0;  // training loss (bits per byte) over the last steps
  double val_bpb = 0;
  double test_bpb = 0;
  bool match_model = false;        // whether the written model mixes the match model
  bool derived_fields = false;       // and the derived-field models
  double probe_network_bytes = 0;  // auto: the held-out bytes' ideal code, network alone
  double probe_match_bytes = 0;    // with the match model
  double probe_derived_bytes = 0;   // with the match and derived-field models
  std::vector<std::pair<uint64_t, double>> loss_curve;  // (step, training bits per byte)
};

// Makes glibc keep memory freed between training steps in the process instead of returning
// it to the kernel and faulting it in again every step (~15 % of a step on small models).
// Process-wide and permanent: for programs that own their process and train (boa-client,
// boa-bench), not for the daemon, whose other threads share the heap.
void TuneHeapForTraining();

// Times `steps` training steps (forward, backward, AdamW) on random bytes: training bytes
// per second for the benchmark. The first step is a warm-up and not counted.
Result<double> MeasureTrainingBytesPerSecond(const ModelConfig& config, int64_t seq_len, int64_t batch_size,
                                             int steps, int threads);

Status ValidateSplits(const std::vector<double>& splits);

// About how much memory Train will use at its peak, from the options and the sizes of the
// files (an upper estimate, measured in docs/training.md "Memory"): the process and LibTorch
// (256 MiB); weights, gradients and optimizer state of every replica; the activations kept
// for backward over batch_size x seq_len bytes, or those of evaluating a chunk of eval_chunk
// bytes per replica, whichever is larger; and the data held in memory.
Result<uint64_t> EstimateTrainingBytes(const TrainOptions& options);
// Trains and writes the model file, plus <output>.report.json (options, bytes seen,
// validation/test bits per byte, duration) and <output>.loss.csv (step, bits per byte).
// Running out of memory anywhere in it is RESOURCE_EXHAUSTED; any other failure of LibTorch
// is INTERNAL: Train never throws.
Status Train(const TrainOptions& options, TrainReport* report);

}  // namespace boa::train
