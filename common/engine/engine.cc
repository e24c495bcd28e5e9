// The engine interface's shared parts: backend selection, session creation, the stages of a
// forward pass.
#include "common/engine/engine.h"

#include "common/engine/cpu_engine.h"

namespace boa::engine {

Result<std::shared_ptr<const Engine>> Engine::Create(const ModelWeights& w, Backend backend) {
  return CatchOutOfMemory("for the model's engine (" + std::to_string(MemoryBytesFor(w.config) >> 20) +
                              " MiB of packed weights)",
                          [&] { return CpuEngine::Build(w, backend); });
}

uint64_t Engine::MemoryBytesFor(const ModelConfig& config) { return CpuEngine::MemoryBytesFor(config); }

std::unique_ptr<Session> Session::New(std::shared_ptr<const Engine> engine, int lanes, int max_rows) {
  const Engine* e = engine.get();
  return e->NewSession(std::move(engine), lanes, max_rows);
}

Result<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Engine> engine, int lanes, int max_rows) {
  const uint64_t bytes = MemoryBytes(engine->config(), lanes, max_rows);
  return CatchOutOfMemory("for " + std::to_string(lanes) + " lanes of the model (" + std::to_string(bytes >> 20) +
                              " MiB of lane state and activations)",
                          [&]() -> Result<std::unique_ptr<Session>> { return New(std::move(engine), lanes, max_rows); });
}

void Session::Forward(const LaneInput* inputs, int n_inputs, uint32_t* tables) {
  const size_t rows = RunNetwork(inputs, n_inputs);
  if (rows > 0) Quantize(rows, tables);
}

}  // namespace boa::engine
