// The kernel budget table of boa-bench: every kernel of one forward pass timed alone on a
// model's shapes, next to the whole pass — where a coded byte's time goes, and the ceiling
// that the kernels' own speed sets on the engine.
#pragma once

#include <cstdint>

#include "common/engine/kernels.h"

namespace boa::bench {

// Prints the "Kernel budget" section for the benchmark models (d_model 256 x 1 layer and
// 64 x 2 layers; random weights, one thread, 512 rows per call as in chunk mode). Each time
// is the best of `rounds` samples, the samples of all items interleaved. `peak1` is the
// one-thread FMA peak in GFLOP/s.
void PrintKernelBudget(engine::Backend backend, int rounds, double peak1);

}  // namespace boa::bench
