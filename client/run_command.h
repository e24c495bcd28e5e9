// `boa-client run --config NAME`: the original tool's pipeline (read -> train or load ->
// compress -> decompress -> verify) driven by an experiment config, with a timings table.
#pragma once

#include <functional>
#include <string>

#include "client/codec_backend.h"
#include "client/experiment.h"

namespace boa::client {

struct RunOptions {
  std::string config;
  bool train_only = false, compress_only = false, decompress_only = false;
  bool verify = false, show_timings = false, resume = false;
  std::string model_path;  // overrides the config's model_path
  std::string device;      // overrides the config's device
  std::string precision;   // overrides the config's precision
  bool quiet = false;
  int threads = 0;
  // Everything runs in this process unless a server is named (backend.ServerNamed()) and
  // not backend.local: then compression and decompression run on boad (training still runs
  // here; the model is uploaded to the server's store under the experiment's name if it is
  // not there, with a line saying so).
  BackendChoice backend;
  // Training progress lines (see TrainOptions::progress); empty: none.
  std::function<void(const std::string&, bool)> progress;
};

int RunExperiment(const RunOptions& options);


}  // namespace boa::client
