// Measures this machine's float32 fused-multiply-add peak (GFLOP/s), the yardstick every
// engine figure in boa-bench is reported against.
#pragma once

namespace boa::bench {

// Runs independent FMA chains for about `seconds` on the calling thread; returns GFLOP/s
// (2 flops per lane per fma). Uses AVX2 when the CPU has it, else scalar fma.
double MeasureFmaPeakOneThread(double seconds);

// The same on `threads` threads at once; returns their summed GFLOP/s.
double MeasureFmaPeak(int threads, double seconds);

}  // namespace boa::bench
