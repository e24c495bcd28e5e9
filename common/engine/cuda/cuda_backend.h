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

// Whether this build includes the CUDA backend.
bool Built();
// The name of CUDA device `device` ("NVIDIA H200"), or why it cannot run the engine: no
// CUDA in this build, no driver, no such device (FAILED_PRECONDITION).
Result<std::string> DeviceName(int device);
// The engine of these weights on `device`, its weights resident there.
Result<std::shared_ptr<const Engine>> BuildEngine(const ModelWeights& weights, int device);

}  // namespace boa::engine::cuda
