// Data-parallel training steps on one machine. The batch is split across replicas of the
// network, one per thread, each running single-threaded LibTorch operations; their gradients
// are summed into the primary replica in a fixed order, so a step is reproducible for a given
// thread count. On BOA-sized models LibTorch's own intra-op threading leaves cores idle
// between many small operations; whole replicas keep every core busy (docs/performance.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
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

  // CrossEntropyBitsPerByte (boa_net.h) with the chunks shared out over the replicas, each on
  // its own thread; the chunks' sums are added in chunk order. Replicas must be in sync.
  double CrossEntropyBitsPerByte(const std::vector<uint8_t>& data, int64_t chunk_length);

  // Copies primary()'s parameters to the other replicas: after each optimizer step and after
  // loading weights into primary().
  void Sync();

 private:
  // Runs fn(r) for every replica r, replica 0 on the calling thread, the others on threads of
  // their own with single-threaded LibTorch operations; rethrows the first failure.
  void OnReplicas(const std::function<void(int)>& fn);
  void SetStepThreads();
  int threads_;
  int threads_before_;  // LibTorch's intra-op threads when constructed, restored after
  std::vector<BoaNet> nets_;
  std::vector<std::vector<torch::Tensor>> params_;
};

}  // namespace boa::train
