// Data-parallel training steps on one machine. The batch is split across replicas of the
// network, one per thread, each running single-threaded LibTorch operations; their gradients
// are summed into the primary replica in a fixed order, so a step is reproducible for a given
// thread count. On BOA-sized models LibTorch's own intra-op threading leaves cores idle
// between many small operations; whole replicas keep every core busy (docs/performance.md).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "common/train/boa_net.h"

namespace boa::train {

class ReplicatedNet {
 public:
  // Uses min(threads, batch_size) replicas. With a single replica, LibTorch's intra-op
  // threads use all `threads` cores instead.
  ReplicatedNet(const ModelConfig& config, int threads, int64_t batch_size);
  ~ReplicatedNet();
  ReplicatedNet(const ReplicatedNet&) = delete;
  ReplicatedNet& operator=(const ReplicatedNet&) = delete;

  // The replica the optimizer updates, checkpoints save and evaluation uses.
  BoaNet& primary() { return nets_[0]; }
  int replicas() const { return static_cast<int>(nets_.size()); }

  // Next-byte cross-entropy on windows [B, L + 1] (int64): replica r takes a contiguous
  // slice of the rows. Leaves the gradient of the batch-mean loss in primary()'s parameters
  // (previous gradients are discarded) and returns that loss in nats. bf16 runs the forward
  // pass under LibTorch's CPU autocast.
  double ForwardBackward(const torch::Tensor& windows, bool bf16);

  // Copies primary()'s parameters to the other replicas: after each optimizer step and after
  // loading weights into primary().
  void Sync();

  // Runs `fn` with LibTorch's intra-op threads set to all cores (evaluation between steps).
  template <typename Fn>
  auto WithAllThreads(Fn fn) {
    struct Restore {
      ReplicatedNet* self;
      ~Restore() { self->SetStepThreads(); }
    } restore{this};
    torch::set_num_threads(threads_);
    return fn();
  }

 private:
  void SetStepThreads();
  int threads_;
  int threads_before_;  // LibTorch's intra-op threads when constructed, restored after
  std::vector<BoaNet> nets_;
  std::vector<std::vector<torch::Tensor>> params_;
};

}  // namespace boa::train
