// `boa-client bench FILE [-m MODEL]`: boa next to the usual compressors on one file — the
// original tool's --comparison-baseline-only, extended with more baselines and speeds.
#pragma once

#include <string>

#include "client/codec_backend.h"

namespace boa::client {

struct BenchOptions {
  std::string file;
  std::string model;  // optional: a model file (in this process), or a model on boad (OpenBackend)
  BackendChoice backend;
  uint32_t chunk_length = 0;
  int threads = 0;
};

int RunBench(const BenchOptions& options);

}  // namespace boa::client
