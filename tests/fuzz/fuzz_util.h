// Shared by the fuzz targets (tests/fuzz/README.md): a fixed small model, and the input as a
// temporary file for readers that take a path.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/model/model.h"

namespace boa::fuzz {

// d_model 8, one layer, seed 1: decoding with it is cheap and the same on every run.
inline const LoadedModel& SmallModel() {
  static const LoadedModel* m = [] {
    Result<LoadedModel> parsed = ParseModelFile(SerializeModel(InitRandomModel(ModelConfig::Default(8, 1), 1), WeightType::kF32, "fuzz"));
    if (!parsed.ok()) std::abort();
    return new LoadedModel(std::move(parsed).value());
  }();
  return *m;
}

// The input written to a file (under /dev/shm when there is one), removed when it goes.
class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size, const char* suffix) {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(dir) + "/boa-fuzz-" + std::to_string(getpid()) + suffix;
    FILE* f = std::fopen(path_.c_str(), "wb");
    if (f == nullptr) std::abort();
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  ~InputFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace boa::fuzz
