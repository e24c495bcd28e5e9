// The PyTorch checkpoint importer (zip + pickle) on any bytes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/model/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boa::Result<boa::ModelWeights> w = boa::ImportTorchCheckpoint(std::vector<uint8_t>(data, data + size));
  (void)w;
  return 0;
}
