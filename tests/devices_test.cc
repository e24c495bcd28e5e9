// boad's devices: boad.yaml's `devices` entries become the model store's devices with the
// right defaults, and a CUDA device the machine lacks is refused with its entry named.
#include "server/devices.h"

#include <gtest/gtest.h>

#include "common/engine/cuda/cuda_backend.h"

namespace boa::server {
namespace {

TEST(Devices, TheCpuDeviceTakesTheTopLevelSettings) {
  ServerConfig cfg;
  cfg.lanes = 96;
  cfg.threads = 3;
  cfg.memory_budget = 512ull << 20;
  Result<std::vector<StoreDevice>> d = OpenDevices(cfg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->size(), 1u);
  const StoreDevice& cpu = (*d)[0];
  EXPECT_EQ(cpu.name, "cpu");
  EXPECT_EQ(cpu.description.rfind("cpu (", 0), 0u) << cpu.description;
  EXPECT_NE(cpu.backend, engine::Backend::kCuda);
  EXPECT_EQ(cpu.memory_budget, 512ull << 20);
  EXPECT_EQ(cpu.scheduler.threads, 3);
  EXPECT_EQ(cpu.scheduler.lanes_per_thread, 32);
  EXPECT_EQ(cpu.scheduler.rows_per_step, 0) << "the CPU's own step size";
  ASSERT_TRUE(cpu.scheduler.device_lanes);
  EXPECT_EQ(cpu.scheduler.device_lanes->total(), 96u);
  EXPECT_EQ(DeviceFollowingMemoryBudget(cfg), 0);

  // An entry's own settings win, and its budget no longer follows memory_budget.
  cfg.devices = {DeviceConfig{"cpu", 8, 2, 64ull << 20}};
  d = OpenDevices(cfg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)[0].memory_budget, 64ull << 20);
  EXPECT_EQ((*d)[0].scheduler.threads, 2);
  EXPECT_EQ((*d)[0].scheduler.lanes_per_thread, 4);
  EXPECT_EQ((*d)[0].scheduler.device_lanes->total(), 8u);
  EXPECT_EQ(DeviceFollowingMemoryBudget(cfg), -1);
}

TEST(Devices, ACudaDeviceIsTheEnginesBatchingOrRefusedNamingItsEntry) {
  ServerConfig cfg;
  cfg.devices = {DeviceConfig{"cpu"}, DeviceConfig{"cuda:0"}};
  Result<std::vector<StoreDevice>> d = OpenDevices(cfg);
  if (!engine::cuda::DeviceName(0).ok()) {
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(d.status().message().rfind("devices[1]: cuda:0: ", 0), 0u) << d.status().message();
    GTEST_SKIP() << "no CUDA device here: " << engine::cuda::DeviceName(0).status().message()
                 << " (the refusal was checked)";
  }
  ASSERT_TRUE(d.ok()) << d.status().message();
  const StoreDevice& gpu = (*d)[1];
  const engine::Engine::Batching feed = engine::Engine::BatchingFor(engine::Backend::kCuda);
  EXPECT_EQ(gpu.backend, engine::Backend::kCuda);
  EXPECT_EQ(gpu.cuda_device, 0);
  EXPECT_EQ(gpu.description, "cuda:0 (" + engine::cuda::DeviceName(0).value() + ")");
  EXPECT_EQ(gpu.scheduler.threads, feed.threads);
  EXPECT_EQ(gpu.scheduler.lanes_per_thread, feed.step_lanes);
  EXPECT_EQ(gpu.scheduler.rows_per_step, feed.chunk_rows);
  EXPECT_EQ(gpu.memory_budget, engine::cuda::DeviceMemoryBytes(0).value() / 10 * 9);
}

TEST(Devices, ADeviceThisMachineLacksIsRefused) {
  ServerConfig cfg;
  cfg.devices = {DeviceConfig{"cuda:999"}};
  Result<std::vector<StoreDevice>> d = OpenDevices(cfg);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message().rfind("devices[0]: cuda:999: ", 0), 0u) << d.status().message();
}

TEST(Devices, NamesAreCpuOrCudaN) {
  EXPECT_EQ(DeviceConfig::CudaOrdinal("cpu", "k").value(), -1);
  EXPECT_EQ(DeviceConfig::CudaOrdinal("cuda:12", "k").value(), 12);
  for (const char* bad : {"gpu", "cuda", "cuda:", "cuda:-1", "cuda:1x", "CPU", "cuda:0 ", "cuda:00", "cuda:01"}) {
    Result<int> r = DeviceConfig::CudaOrdinal(bad, "devices[2]");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("devices[2]: '"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ((DeviceConfig{"cuda:1", 2048, 0, 0}).ToString(), "{name: cuda:1, lanes: 2048}");
  EXPECT_EQ((DeviceConfig{"cpu"}).ToString(), "cpu");
}

}  // namespace
}  // namespace boa::server
