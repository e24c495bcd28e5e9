// Resolution of boad.yaml's `devices` (see devices.h).
#include "server/devices.h"

#include <algorithm>

#include "common/codec/codec.h"
#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/kernels.h"

namespace boa::server {

Result<std::vector<StoreDevice>> OpenDevices(const ServerConfig& config) {
  std::vector<StoreDevice> out;
  for (size_t i = 0; i < config.devices.size(); ++i) {
    const DeviceConfig& c = config.devices[i];
    const std::string key = "devices[" + std::to_string(i) + "]";
    BOA_ASSIGN_OR_RETURN(const int ordinal, DeviceConfig::CudaOrdinal(c.name, key));
    StoreDevice d;
    d.name = c.name;
    int lanes = c.lanes, threads = c.threads;
    if (ordinal < 0) {
      d.backend = engine::Backend::kAuto;
      d.description = std::string("cpu (") + engine::SelectKernels(engine::Backend::kAuto)->name + ")";
      if (lanes == 0) lanes = config.lanes;
      if (threads == 0) threads = config.threads > 0 ? config.threads : DefaultThreadCount();
      d.memory_budget = c.memory_budget > 0 ? c.memory_budget : config.memory_budget;
    } else {
      d.backend = engine::Backend::kCuda;
      d.cuda_device = ordinal;
      Result<std::string> gpu = engine::cuda::DeviceName(ordinal);
      if (!gpu.ok()) return Status::FailedPrecondition(key + ": " + c.name + ": " + gpu.status().message());
      d.description = c.name + " (" + *gpu + ")";
      const engine::Engine::Batching feed = engine::Engine::BatchingFor(engine::Backend::kCuda);
      if (threads == 0) threads = feed.threads;
      if (lanes == 0) lanes = threads * feed.step_lanes;
      d.scheduler.rows_per_step = feed.chunk_rows;
      if (c.memory_budget > 0) {
        d.memory_budget = c.memory_budget;
      } else {
        BOA_ASSIGN_OR_RETURN(const uint64_t total, engine::cuda::DeviceMemoryBytes(ordinal));
        d.memory_budget = total / 10 * 9;
      }
    }
    d.scheduler.threads = threads;
    d.scheduler.lanes_per_thread = std::max(1, lanes / threads);
    d.scheduler.device_lanes = std::make_shared<LaneBudget>(static_cast<uint32_t>(lanes));
    out.push_back(std::move(d));
  }
  return out;
}

int DeviceFollowingMemoryBudget(const ServerConfig& config) {
  for (size_t i = 0; i < config.devices.size(); ++i) {
    if (config.devices[i].name == "cpu") return config.devices[i].memory_budget == 0 ? static_cast<int>(i) : -1;
  }
  return -1;
}

}  // namespace boa::server
