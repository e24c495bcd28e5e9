// The engine interface's shared parts: backend selection, session creation, the stages of a
// forward pass.
#include "common/engine/engine.h"

#include "common/engine/cpu_engine.h"
#include "common/engine/cuda/cuda_backend.h"

namespace boa::engine {

Result<std::shared_ptr<const Engine>> Engine::Create(const ModelWeights& w, Backend backend, int cuda_device) {
  if (backend == Backend::kCuda) return cuda::BuildEngine(w, cuda_device);
  return CatchOutOfMemory("for the model's engine (" + std::to_string(MemoryBytesFor(w.config) >> 20) +
                              " MiB of packed weights)",
                          [&] { return CpuEngine::Build(w, backend); });
}

Result<Backend> ResolveDevice(const std::string& device, Backend cpu_kernels) {
  if (device == "cpu") return cpu_kernels;
  if (device == "auto") return cuda::DeviceName(0).ok() ? Backend::kCuda : cpu_kernels;
  if (device == "cuda") {
    if (cpu_kernels != Backend::kAuto) {
      return Status::InvalidArgument(std::string("kernel backend '") + BackendName(cpu_kernels) +
                                     "' is a CPU kernel set: it does not go with device cuda");
    }
    Result<std::string> gpu = cuda::DeviceName(0);
    if (!gpu.ok()) return gpu.status();
    return Backend::kCuda;
  }
  return Status::InvalidArgument("unknown device '" + device + "' (expected cpu, cuda or auto)");
}

bool BackendAvailable(Backend backend) {
  return backend == Backend::kCuda ? cuda::DeviceName(0).ok() : SelectKernels(backend) != nullptr;
}

uint64_t Engine::MemoryBytesFor(const ModelConfig& config) { return CpuEngine::MemoryBytesFor(config); }

Engine::Batching Engine::BatchingFor(Backend backend) {
  return backend == Backend::kCuda ? cuda::kBatching : Batching{512, 64, 64, 0};
}

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
