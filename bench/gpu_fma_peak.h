// The CUDA device's measured float32 FMA peak, the yardstick of boa-gpu-bench's table.
#pragma once

#include <string>

namespace boa::bench {

struct GpuPeak {
  std::string device;       // "NVIDIA H200, 132 SMs"
  double gflops = 0;        // 2 flops per fma, best of several launches
};

// Runs independent __fmaf_rn chains on every SM for about `seconds`; an empty device name
// and 0 where there is no CUDA device.
GpuPeak MeasureGpuFmaPeak(double seconds);

}  // namespace boa::bench
