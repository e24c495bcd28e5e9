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

struct TrainOptions {
  std::vector<std::string> files;          // training data (concatenated)
  ModelConfig model = ModelConfig::Default(256, 1);
  uint64_t seed = 1;
  int64_t seq_len = 4096;                  // bytes per training window
  int64_t batch_size = 4;                  // windows per step
  double lr = 5e-4;
  double weight_decay = 0.01;
  double warmup_fraction = 0.05;           // of all steps, then cosine decay to 10 % of lr
  double grad_clip = 1.0;
  int epochs = 1;                          // an epoch is as many windows as the training split holds
  double max_seconds = 0;                  // wall-time budget (0: none)
  std::vector<double> splits = {0.8, 0.1, 0.1};  // train / validation / test, contiguous
  int threads = 0;                         // 0: all cores
  int64_t eval_chunk = 65536;              // validation/test evaluated in chunks, as coded
  std::string output;                      // model file to write
  std::string precision = "fp32";
  // Called every few steps and at each validation: a one-line status for progress output.
  std::function<void(const std::string& line, bool final_line)> progress;
};

struct TrainReport {
  uint64_t steps = 0;
  uint64_t bytes_seen = 0;
  double seconds = 0;
  double final_loss_bpb = 0;  // training loss (bits per byte) over the last steps
  double val_bpb = 0;
  double test_bpb = 0;
  std::vector<std::pair<uint64_t, double>> loss_curve;  // (step, training bits per byte)
};

Status ValidateSplits(const std::vector<double>& splits);
Status Train(const TrainOptions& options, TrainReport* report);

}  // namespace boa::train
