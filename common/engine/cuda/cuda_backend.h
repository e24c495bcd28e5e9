// The CUDA backend's entry points (the engine itself is cuda_engine.cu): whether this build
// has it, which devices can run it, and an Engine on one of them. A build without CUDA
// (CMake BOA_CUDA off, or no nvcc) answers every call with the reason.
#pragma once

#include <memory>
#include <string>

#include "common/engine/engine.h"
#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::engine::cuda {

// How the codec and boad feed a CUDA engine (Engine::batching): tens of thousands of rows
// from many lanes per call, from a few threads that keep the device busy between calls.
constexpr Engine::Batching kBatching{65536, 64, 1024, 4};

// Whether this build includes the CUDA backend.
bool Built();
// The name of CUDA device `device` ("NVIDIA H200"), or why it cannot run the engine: no
// CUDA in this build, no driver, no such device (FAILED_PRECONDITION).
Result<std::string> DeviceName(int device);
// The device's memory in bytes, as CUDA reports it (FAILED_PRECONDITION as DeviceName).
Result<uint64_t> DeviceMemoryBytes(int device);
// The engine of these weights on `device`, its weights resident there.
Result<std::shared_ptr<const Engine>> BuildEngine(const ModelWeights& weights, int device);
// Where a CUDA session's time went since StartProfile (boa-gpu-bench's split of a forward
// pass): the kernels' and the copies' own durations on the device, from CUDA events around
// each, and how many there were. The rest of a call's wall time is the host's: launching,
// waiting, filling inputs.
struct SessionProfile {
  double kernel_seconds = 0, copy_seconds = 0;
  long launches = 0, copies = 0;
};
// Times every launch and copy of `session` (a CUDA session) from now on, each waited for:
// the host no longer runs ahead of the device, so time a run without it first.
// FAILED_PRECONDITION for another backend's session.
Status StartProfile(Session* session);
Result<SessionProfile> ReadProfile(const Session& session);

// Device memory of one session of a model of `config` (its one allocation: lane state,
// activations, frequency tables and inputs), known before anything is allocated.
uint64_t SessionBytes(const ModelConfig& config, int lanes, int max_rows);

}  // namespace boa::engine::cuda
