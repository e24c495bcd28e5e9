// Torch-free float kernels of the training selective scan for a block of 8 channels of one
// batch row, vectorised with AVX2 (the training counterpart of the engine's scan; training
// needs accuracy, not bit-exactness). selective_scan.cc dispatches to them.
#pragma once

#include <cstdint>

namespace boa::train::kernels {

struct ScanArgs {
  const float* u;      // [B, L, E]
  const float* delta;  // [B, L, E]
  const float* A;      // [E, S]
  const float* Bm;     // [B, L, S]
  const float* Cm;     // [B, L, S]
  int64_t B, L, E, S, segment, nseg;
};

bool Avx2Available();

// Forward for channels d0..d0+7 of batch row b: writes y and the state checkpoints
// ([B, E, nseg, S], the state before each segment).
void ForwardBlock8(const ScanArgs& a, int64_t b, int64_t d0, float* y, float* checkpoints);

// Backward for the same block. dA is [B, E, S] (per-row partials), dB/dC are this thread's
// [B, L, S] accumulators. `scratch` holds (2 * segment + 1) * S * 8 floats.
void BackwardBlock8(const ScanArgs& a, int64_t b, int64_t d0, const float* checkpoints, const float* dy,
                    float* du, float* ddelta, float* dA, float* dB, float* dC, float* scratch);

}  // namespace boa::train::kernels
