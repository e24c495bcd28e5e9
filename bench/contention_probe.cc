// The contention probe: selective-scan steps of a d_model 64 layer (128 channels x 16
// states, 16 KiB of state and decay) repeated on the same inputs.
#include "bench/contention_probe.h"

#include <chrono>

namespace boa::bench {

namespace {
constexpr int kChannels = 128, kStates = 16, kSteps = 160;
// A * log2(e) of state n, A = -(n + 1) (Mamba's initial decays); the last state's is the minimum.
constexpr float Decay(int n) { return -1.4427f * static_cast<float>(n + 1); }
}

ContentionProbe::ContentionProbe(engine::Backend backend)
    : kernels_(engine::SelectKernels(backend)),
      delta_(kChannels, 0.05f),
      u_(kChannels, 0.3f),
      z_(kChannels, 0.7f),
      bc_(2 * kStates, 0.2f),
      a_(engine::StateSize(kChannels, kStates)),
      d_skip_(kChannels, 1.0f),
      h_(a_.size(), 0.0f),
      y_(kChannels) {
  for (size_t i = 0; i < a_.size(); ++i) a_[i] = Decay(static_cast<int>(i % kStates));
}

void ContentionProbe::Run(int steps) {
  for (int i = 0; i < steps; ++i)
    kernels_->scan(delta_.data(), u_.data(), z_.data(), bc_.data(), bc_.data() + kStates, a_.data(),
                   Decay(kStates - 1), d_skip_.data(), kChannels, kStates, h_.data(), y_.data());
}

double ContentionProbe::Seconds() {
  Run(1);  // brings the data back into L1 after whatever ran before
  auto t0 = std::chrono::steady_clock::now();
  Run(kSteps);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace boa::bench
