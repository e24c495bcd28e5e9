// The CUDA backend's entry points in a build without CUDA (see cuda_backend.h).
#include "common/engine/cuda/cuda_backend.h"

namespace boa::engine::cuda {

namespace {
Status NotBuilt() {
  return Status::FailedPrecondition(
      "this build of boa has no CUDA backend (configure with -DBOA_CUDA=ON where nvcc is installed)");
}
}  // namespace

bool Built() { return false; }
Result<std::string> DeviceName(int) { return NotBuilt(); }
Result<uint64_t> DeviceMemoryBytes(int) { return NotBuilt(); }
Status StartProfile(Session*) { return NotBuilt(); }
Result<SessionProfile> ReadProfile(const Session&) { return NotBuilt(); }
Result<std::shared_ptr<const Engine>> BuildEngine(const ModelWeights&, int) { return NotBuilt(); }

}  // namespace boa::engine::cuda
