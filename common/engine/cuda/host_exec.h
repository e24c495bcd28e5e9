// The host executor of the CUDA backend's kernels (kernel_bodies.h, forward_pass.h): runs a
// launch block by block and, within a block, phase by phase over all its threads — what the
// device's __syncthreads() between phases guarantees — with "device memory" in host memory.
// CI checks the CUDA code paths with it (tests/cuda_kernels_test.cc); it is far too slow to
// compress with.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "common/engine/cuda/kernel_bodies.h"

namespace boa::engine::cuda {

class HostExec {
 public:
  template <class Kernel>
  void Launch(const Kernel& k, LaunchShape shape) {
    ++launches_;
    const int threads = shape.block.x * shape.block.y;
    std::vector<typename Kernel::Thread> regs(static_cast<size_t>(threads));
    auto shared = std::make_unique<typename Kernel::Shared>();
    const int phases = k.Phases();
    for (int by = 0; by < shape.grid.y; ++by) {
      for (int bx = 0; bx < shape.grid.x; ++bx) {
        for (int p = 0; p < phases; ++p) {
          for (int ty = 0; ty < shape.block.y; ++ty) {
            for (int tx = 0; tx < shape.block.x; ++tx)
              k.Phase(p, Idx{bx, by}, Idx{tx, ty}, *shared, regs[static_cast<size_t>(ty * shape.block.x + tx)]);
          }
        }
      }
    }
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  void CopyToHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  long launches() const { return launches_; }

 private:
  long launches_ = 0;
};

}  // namespace boa::engine::cuda
