// The YAML readers on any bytes: boad.yaml, the token file and an experiment file.
#include <cstddef>
#include <cstdint>

#include "client/experiment.h"
#include "server/access.h"
#include "server/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boa::fuzz::InputFile file(data, size, ".yaml");
  boa::server::ServerConfig config;
  (void)config.LoadFile(file.path());
  (void)boa::server::TokenTable::Load(file.path());
  (void)boa::client::LoadExperiment(file.path());
  return 0;
}
