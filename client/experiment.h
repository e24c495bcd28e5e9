// Experiment configurations in the original tool's YAML schema (experiments/NAME/NAME.yaml):
// name, file_path, progress, device, precision, model_path, dataloader.seq_len/batch_size,
// model.d_model/num_layers, training.lr/epochs, compression.chunks_count/file_to_compress,
// splits — plus boa's own keys. Unknown keys are reported; wrong types are errors naming
// the key's path.
#pragma once

#include <string>
#include <vector>

#include "common/train/trainer.h"
#include "common/util/status.h"

namespace boa::client {

struct ExperimentConfig {
  std::string path;  // the YAML file
  std::string dir;   // its directory: relative paths in the file are relative to it
  std::string name;
  std::string file_path;
  bool progress = true;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string model_path;  // optional: a trained model to use instead of training
  int64_t seq_len = 32768;
  int64_t batch_size = 3;
  uint32_t d_model = 256;
  uint32_t num_layers = 2;
  double lr = 5e-4;
  int epochs = 10;
  uint64_t chunks_count = 0;  // 0: boa's default chunk length
  uint32_t chunk_size = 0;    // boa: bytes per chunk instead of a count
  std::string file_to_compress;
  std::vector<double> splits = {0.8, 0.1, 0.1};
  // boa additions
  uint64_t seed = 1;
  double max_seconds = 0;
  uint64_t max_bytes = 0;
  double weight_decay = 0.01;
  int threads = 0;
  int patience = 0;
  std::vector<std::string> warnings;  // unknown keys

  std::string Resolve(const std::string& p) const;  // relative to dir
  std::string ModelOutput() const;  // <dir>/<name>_final_model_<precision>.boam
};

// NAME resolves to experiments/NAME/NAME.yaml; anything with a '/' or ending in .yaml/.yml
// is a path.
std::string ExperimentPath(const std::string& name_or_path);
Result<ExperimentConfig> LoadExperiment(const std::string& name_or_path);
// The training an experiment describes: its data file, model, schedule, splits, limits and
// precision, written to ModelOutput() (the one mapping from configs to the trainer's options).
train::TrainOptions TrainingOf(const ExperimentConfig& c);
// Writes a config in the same schema (used by new-experiment).
Status SaveExperiment(const ExperimentConfig& c, const std::string& path);

}  // namespace boa::client
