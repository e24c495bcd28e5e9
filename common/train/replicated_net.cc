// ReplicatedNet: one thread per replica, gradients summed in replica order.
#include "common/train/replicated_net.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

namespace boa::train {

ReplicatedNet::ReplicatedNet(const ModelConfig& config, int threads, int64_t batch_size)
    : threads_(std::max(1, threads)), threads_before_(torch::get_num_threads()) {
  const int n = static_cast<int>(std::clamp<int64_t>(batch_size, 1, threads_));
  for (int r = 0; r < n; ++r) {
    nets_.emplace_back(config);
    params_.push_back(nets_.back()->parameters());
  }
  Sync();
  SetStepThreads();
}

ReplicatedNet::~ReplicatedNet() { torch::set_num_threads(threads_before_); }

void ReplicatedNet::SetStepThreads() { torch::set_num_threads(replicas() > 1 ? 1 : threads_); }

void ReplicatedNet::Sync() {
  torch::NoGradGuard no_grad;
  for (size_t r = 1; r < nets_.size(); ++r)
    for (size_t i = 0; i < params_[0].size(); ++i) params_[r][i].copy_(params_[0][i]);
}

void ReplicatedNet::OnReplicas(const std::function<void(int)>& fn) {
  const int n = replicas();
  std::vector<std::exception_ptr> errors(n);
  auto run = [&](int r) {
    try {
      // This thread's OpenMP setting, which OpenBLAS reads: one thread per replica.
      if (n > 1) torch::set_num_threads(1);
      fn(r);
    } catch (...) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
      errors[r] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  {
    // Joins the replicas already started if starting another one throws.
    struct JoinAll {
      std::vector<std::thread>& threads;
      ~JoinAll() {
        for (std::thread& t : threads) {
          if (t.joinable()) t.join();
        }
      }
    } join_all{pool};
    for (int r = 1; r < n; ++r) pool.emplace_back(run, r);
    run(0);
  }
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

double ReplicatedNet::ForwardBackward(const torch::Tensor& windows, bool bf16) {
  const int n = replicas();
  const int64_t rows = windows.size(0), len = windows.size(1) - 1;
  std::vector<double> losses(n, 0);
  OnReplicas([&](int r) {
    for (torch::Tensor& p : params_[r]) {
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
    const int64_t b0 = rows * r / n, b1 = rows * (r + 1) / n;
    if (b1 == b0) return;
    torch::Tensor x = windows.narrow(0, b0, b1 - b0);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(bf16);
    torch::Tensor logits = nets_[r]->forward(x.narrow(1, 0, len));
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 256}).to(torch::kFloat32),
                                                              x.narrow(1, 1, len).reshape({-1}));
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();  // cached bf16 weights are stale after this step
    // Each replica's share of the batch mean.
    loss = loss * (static_cast<double>(b1 - b0) / static_cast<double>(rows));
    loss.backward();
    losses[r] = loss.item<double>();
  });
  torch::NoGradGuard no_grad;
  for (int r = 1; r < n; ++r) {
    for (size_t i = 0; i < params_[0].size(); ++i) {
      const torch::Tensor& g = params_[r][i].grad();
      if (!g.defined()) continue;
      torch::Tensor& primary_grad = params_[0][i].mutable_grad();
      if (primary_grad.defined()) primary_grad.add_(g);
      else primary_grad = g.clone();
    }
  }
  double loss = 0;
  for (double l : losses) loss += l;
  return loss;
}

double ReplicatedNet::CrossEntropyBitsPerByte(const std::vector<uint8_t>& data, int64_t chunk_length) {
  // One replica runs on the calling thread with LibTorch's intra-op threads (SetStepThreads).
  std::vector<int64_t> starts;
  for (size_t s = 0; s < data.size(); s += chunk_length) starts.push_back(static_cast<int64_t>(s));
  auto length = [&](size_t i) { return std::min<int64_t>(chunk_length, static_cast<int64_t>(data.size()) - starts[i]); };
  std::vector<double> nats(starts.size(), 0);
  OnReplicas([&](int r) {
    for (size_t i = r; i < starts.size(); i += replicas())
      nats[i] = ChunkCrossEntropyNats(nets_[r], data.data() + starts[i], length(i));
  });
  double total = 0;
  int64_t predicted = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    total += nats[i];
    predicted += std::max<int64_t>(0, length(i) - 1);
  }
  return predicted ? total / predicted / std::log(2.0) : 0;
}

}  // namespace boa::train
