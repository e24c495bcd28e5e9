// The CUDA backend of the engine interface (engine.h): the kernels of kernel_bodies.h
// launched on a stream per session, the weights (model_image.h) and every lane's recurrent
// state resident on the device. Built with -fmad=false and without fast math (CMake), so each
// kernel performs exactly the operations its body spells out (docs/determinism.md).
#include <cuda_runtime.h>

#include <cstdio>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/cuda/forward_pass.h"
#include "common/engine/cuda/model_image.h"

namespace boa::engine::cuda {

namespace {

// Runs a kernel's phases with a barrier between them (see kernel_bodies.h).
template <class Kernel>
__global__ void RunPhases(Kernel k) {
  __shared__ typename Kernel::Shared shared;
  typename Kernel::Thread regs;
  const Idx block{static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y)};
  const Idx thread{static_cast<int>(threadIdx.x), static_cast<int>(threadIdx.y)};
  const int phases = k.Phases();
  for (int p = 0; p < phases; ++p) {
    if (p > 0) __syncthreads();
    k.Phase(p, block, thread, shared, regs);
  }
}

std::string CudaText(cudaError_t e, const char* what) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

// A failure of the device in the middle of a forward pass has no status to return through
// the Session interface (engine.h); it is thrown, and out of memory is std::bad_alloc as on
// the CPU.
void Check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  if (e == cudaErrorMemoryAllocation) throw std::bad_alloc();
  throw std::runtime_error("CUDA " + CudaText(e, what));
}

// Two events around a piece of a stream's work, for SessionProfile.
class EventPair {
 public:
  EventPair() {
    Check(cudaEventCreate(&start_), "creating an event");
    Check(cudaEventCreate(&stop_), "creating an event");
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  ~EventPair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Runs `work` between the events on `stream` and returns its device time.
  template <class Work>
  double Time(cudaStream_t stream, Work work) {
    Check(cudaEventRecord(start_, stream), "recording an event");
    work();
    Check(cudaEventRecord(stop_, stream), "recording an event");
    Check(cudaEventSynchronize(stop_), "waiting for an event");
    float ms = 0;
    Check(cudaEventElapsedTime(&ms, start_, stop_), "timing an event");
    return ms / 1e3;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

class CudaExec {
 public:
  explicit CudaExec(cudaStream_t stream) : stream_(stream) {}
  template <class Kernel>
  void Launch(const Kernel& k, LaunchShape shape) {
    auto launch = [&] {
      RunPhases<Kernel><<<dim3(static_cast<unsigned>(shape.grid.x), static_cast<unsigned>(shape.grid.y)),
                          dim3(static_cast<unsigned>(shape.block.x), static_cast<unsigned>(shape.block.y)), 0,
                          stream_>>>(k);
      Check(cudaGetLastError(), "kernel launch");
    };
    Run(launch, &profile_.kernel_seconds, &profile_.launches);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) {
    auto copy = [&] { Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to the device"); };
    Run(copy, &profile_.copy_seconds, &profile_.copies);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) {
    auto copy = [&] { Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to the host"); };
    Run(copy, &profile_.copy_seconds, &profile_.copies);
    Check(cudaStreamSynchronize(stream_), "forward pass");
  }
  void StartProfile() {
    if (!events_) events_ = std::make_unique<EventPair>();
    profile_ = SessionProfile{};
  }
  const SessionProfile& profile() const { return profile_; }

 private:
  // Does `work` on the stream; while profiling, timed and counted into *seconds, *count.
  template <class Work>
  void Run(Work work, double* seconds, long* count) {
    if (!events_) return work();
    *seconds += events_->Time(stream_, work);
    ++*count;
  }

  cudaStream_t stream_;
  std::unique_ptr<EventPair> events_;  // null: not profiling
  SessionProfile profile_;
};

// Device memory, freed with its owner.
class DeviceBlock {
 public:
  DeviceBlock() = default;
  explicit DeviceBlock(size_t bytes) {
    Check(cudaMalloc(&p_, bytes > 0 ? bytes : 1), "device allocation");
  }
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  ~DeviceBlock() {
    if (p_) cudaFree(p_);
  }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

// A stream, destroyed with its owner once its work is done.
class Stream {
 public:
  explicit Stream(int device) {
    Check(cudaSetDevice(device), "selecting the device");
    Check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "creating a stream");
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    cudaStreamSynchronize(s_);
    cudaStreamDestroy(s_);
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class CudaEngine final : public Engine {
 public:
  CudaEngine(const ModelImage& image, int device, std::string device_name)
      : Engine(image.config()), device_(device), device_name_(std::move(device_name)), bytes_(image.Bytes()) {
    Check(cudaSetDevice(device_), "selecting the device");
    weights_ = std::make_unique<DeviceBlock>(bytes_);
    Check(cudaMemcpy(weights_->get(), image.floats().data(), bytes_, cudaMemcpyHostToDevice), "copying the weights");
    model_ = image.Bind(static_cast<float*>(weights_->get()));
    Stream stream(device_);
    CudaExec exec(stream.get());
    MakeFirstLayerTable(exec, model_);
    Check(cudaStreamSynchronize(stream.get()), "making the first layer's table");
  }
  std::string name() const override { return "cuda:" + std::to_string(device_) + " (" + device_name_ + ")"; }
  uint64_t MemoryBytes() const override { return bytes_; }
  // 64 chunks of 1 KiB per call in chunk mode, 1024 lanes in step mode, four threads: enough
  // rows to fill the device while the CPU range-codes (to be tuned on a GPU).
  Batching batching() const override { return kBatching; }
  int device() const { return device_; }
  const DeviceModel& model() const { return model_; }

 private:
  std::unique_ptr<Session> NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const override;
  const int device_;
  const std::string device_name_;
  const size_t bytes_;
  std::unique_ptr<DeviceBlock> weights_;
  DeviceModel model_;
};

class CudaSession final : public Session {
 public:
  CudaSession(std::shared_ptr<const CudaEngine> engine, int lanes, int max_rows)
      : Session(lanes, max_rows),
        engine_(std::move(engine)),
        stream_(engine_->device()),
        exec_(stream_.get()),
        bytes_(SessionLayout(engine_->model(), lanes, max_rows).total_bytes),
        block_(bytes_),
        core_(&exec_, &engine_->model(), lanes, max_rows, block_.get()) {
    core_.ResetAll();
  }
  uint64_t AllocatedBytes() const override { return bytes_; }
  void ResetLane(int lane) override { core_.ResetLane(lane); }
  void StartProfile() {
    Check(cudaSetDevice(engine_->device()), "selecting the device");
    exec_.StartProfile();
  }
  const SessionProfile& profile() const { return exec_.profile(); }
  const float* logits() override {
    Check(cudaSetDevice(engine_->device()), "selecting the device");
    return core_.Logits();
  }

 private:
  size_t RunNetwork(const LaneInput* inputs, int n_inputs) override {
    Check(cudaSetDevice(engine_->device()), "selecting the device");
    return core_.RunNetwork(inputs, n_inputs);
  }
  void Quantize(size_t rows, uint32_t* tables) override { core_.Quantize(rows, tables); }

  const std::shared_ptr<const CudaEngine> engine_;
  Stream stream_;
  CudaExec exec_;
  const size_t bytes_;
  DeviceBlock block_;  // the session's buffers (SessionLayout)
  SessionCore<CudaExec> core_;
};

std::unique_ptr<Session> CudaEngine::NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const {
  return std::make_unique<CudaSession>(std::static_pointer_cast<const CudaEngine>(std::move(self)), lanes, max_rows);
}

}  // namespace

bool Built() { return true; }

Result<std::string> DeviceName(int device) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return Status::FailedPrecondition("no CUDA device: " + CudaText(e, "cudaGetDeviceCount"));
  if (device < 0 || device >= count) {
    return Status::FailedPrecondition("no CUDA device cuda:" + std::to_string(device) + " (this machine has " +
                                      std::to_string(count) + ")");
  }
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) return Status::FailedPrecondition(CudaText(e, "cudaGetDeviceProperties"));
  return std::string(prop.name);
}

Status StartProfile(Session* session) {
  auto* s = dynamic_cast<CudaSession*>(session);
  if (s == nullptr) return Status::FailedPrecondition("not a CUDA session: nothing to profile");
  try {
    s->StartProfile();
  } catch (const std::exception& e) {
    return Status::Internal(e.what());
  }
  return Status::Ok();
}

Result<SessionProfile> ReadProfile(const Session& session) {
  const auto* s = dynamic_cast<const CudaSession*>(&session);
  if (s == nullptr) return Status::FailedPrecondition("not a CUDA session: no profile");
  return s->profile();
}

Result<uint64_t> DeviceMemoryBytes(int device) {
  BOA_RETURN_IF_ERROR(DeviceName(device).status());
  cudaDeviceProp prop;
  cudaError_t e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) return Status::FailedPrecondition(CudaText(e, "cudaGetDeviceProperties"));
  return static_cast<uint64_t>(prop.totalGlobalMem);
}

Result<std::shared_ptr<const Engine>> BuildEngine(const ModelWeights& weights, int device) {
  BOA_ASSIGN_OR_RETURN(std::string name, DeviceName(device));
  BOA_ASSIGN_OR_RETURN(ModelImage image, ModelImage::Build(weights));
  try {
    return std::shared_ptr<const Engine>(std::make_shared<CudaEngine>(image, device, name));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("cuda:" + std::to_string(device) + ": out of device memory for the model's " +
                                     std::to_string(image.Bytes() >> 20) + " MiB of weights");
  } catch (const std::runtime_error& e) {
    return Status::Internal(std::string("cuda:") + std::to_string(device) + ": " + e.what());
  }
}

}  // namespace boa::engine::cuda
