// A contention probe for timing on shared machines: a fixed piece of the engine's own
// element-wise work (selective-scan steps on data that stays in L1), so its time varies only
// with how busy the core is. A co-tenant on the same physical core slows such mixed vector
// code by 1.2-2x while the FMA peak loop barely moves; timing the probe next to each sample
// tells the engine's samples on a quiet core from those on a busy one.
#pragma once

#include <vector>

#include "common/engine/kernels.h"

namespace boa::bench {

class ContentionProbe {
 public:
  // `backend` must be available (kAuto or kScalar always are).
  explicit ContentionProbe(engine::Backend backend);
  // Seconds of one run of the fixed work (about 0.1 ms on a quiet AVX2 core), its data
  // first brought into L1 so that what ran before does not count.
  double Seconds();

 private:
  void Run(int steps);
  const engine::KernelSet* kernels_;
  std::vector<float> delta_, u_, z_, bc_, a_, d_skip_, h_, y_;
};

}  // namespace boa::bench
