// The model-file reader on any bytes: the head check that uploads use and the full parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boa::Result<boa::ModelHead> head = boa::ReadModelHead(data, size);
  boa::Result<boa::LoadedModel> m = boa::ParseModelFile(std::vector<uint8_t>(data, data + size));
  // A file the parser takes has the size its head promises.
  if (m.ok() && head.ok() && head->need == 0 && head->file_bytes != size) std::abort();
  return 0;
}
