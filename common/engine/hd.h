// Marks the engine's arithmetic that is compiled for both the host and a CUDA device, so
// that the CPU kernels and the CUDA kernels (common/engine/cuda/) run one definition of
// every operation (docs/determinism.md, "One definition, several backends").
#pragma once

#if defined(__CUDACC__)
#define BOA_HD __host__ __device__
#else
#define BOA_HD
#endif

// A namespace-scope constant table read by BOA_HD code at run-time indices: device code
// cannot read a host variable, so nvcc's device pass sees a __device__ copy of the same
// initialiser (one definition in the source, one copy per side).
#if defined(__CUDA_ARCH__)
#define BOA_HD_TABLE __device__ constexpr
#else
#define BOA_HD_TABLE constexpr
#endif
