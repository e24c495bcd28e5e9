// The training loop: random windows from the training split, AdamW with warm-up and cosine
// decay, gradient clipping, validation each epoch, test at the end, model file out.
#include "common/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "common/train/boa_net.h"
#include "common/util/io.h"

namespace boa::train {

Status ValidateSplits(const std::vector<double>& s) {
  if (s.size() != 3) return Status::InvalidArgument("splits: expected 3 fractions [train, val, test]");
  double sum = 0;
  for (double v : s) {
    if (!(v >= 0 && v <= 1)) return Status::InvalidArgument("splits: each fraction must be within 0..1");
    sum += v;
  }
  if (std::fabs(sum - 1.0) > 1e-6) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "splits: fractions sum to %.9g, expected 1", sum);
    return Status::InvalidArgument(buf);
  }
  if (s[0] <= 0) return Status::InvalidArgument("splits: the training fraction must be > 0");
  return Status::Ok();
}

namespace {

Status ValidateOptions(const TrainOptions& o) {
  BOA_RETURN_IF_ERROR(o.model.Validate());
  BOA_RETURN_IF_ERROR(ValidateSplits(o.splits));
  if (o.files.empty()) return Status::InvalidArgument("no training data given");
  if (o.seq_len < 2) return Status::InvalidArgument("seq_len must be >= 2");
  if (o.batch_size < 1) return Status::InvalidArgument("batch_size must be >= 1");
  if (!(o.lr > 0)) return Status::InvalidArgument("lr must be > 0");
  if (o.epochs < 1) return Status::InvalidArgument("epochs must be >= 1");
  if (o.eval_chunk < 2) return Status::InvalidArgument("eval chunk must be >= 2");
  if (o.precision != "fp32") {
    return Status::InvalidArgument("precision '" + o.precision +
                                   "' is not supported by this CPU build of LibTorch for training "
                                   "(supported: fp32)");
  }
  return Status::Ok();
}

std::string FormatDuration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

}  // namespace

Status Train(const TrainOptions& o, TrainReport* report) {
  BOA_RETURN_IF_ERROR(ValidateOptions(o));
  std::vector<uint8_t> data;
  for (const std::string& f : o.files) {
    BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> part, ReadFile(f, 64ull << 30));
    data.insert(data.end(), part.begin(), part.end());
  }
  const size_t n = data.size();
  const size_t train_end = static_cast<size_t>(n * o.splits[0]);
  const size_t val_end = std::min(n, train_end + static_cast<size_t>(n * o.splits[1]));
  if (train_end < static_cast<size_t>(o.seq_len) + 1) {
    return Status::InvalidArgument("the training split has " + std::to_string(train_end) +
                                   " bytes; seq_len " + std::to_string(o.seq_len) + " needs at least " +
                                   std::to_string(o.seq_len + 1) + " (lower seq_len or give more data)");
  }
  std::vector<uint8_t> val(data.begin() + train_end, data.begin() + val_end);
  std::vector<uint8_t> test(data.begin() + val_end, data.end());

  if (o.threads > 0) torch::set_num_threads(o.threads);
  else torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(o.seed);
  BoaNet net(o.model);
  BOA_RETURN_IF_ERROR(LoadWeights(net, InitRandomModel(o.model, o.seed)));
  torch::optim::AdamW optimizer(net->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  const int64_t windows = std::max<int64_t>(1, static_cast<int64_t>(train_end) / o.seq_len);
  const int64_t steps_per_epoch = (windows + o.batch_size - 1) / o.batch_size;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = std::max<int64_t>(1, static_cast<int64_t>(o.warmup_fraction * total_steps));
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> offset(0, static_cast<int64_t>(train_end) - o.seq_len - 1);
  torch::Tensor train_bytes = torch::from_blob(data.data(), {static_cast<int64_t>(train_end)}, torch::kUInt8);

  TrainReport r;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  double recent = 0;
  int recent_n = 0;
  bool out_of_time = false;
  for (int epoch = 0; epoch < o.epochs && !out_of_time; ++epoch) {
    net->train();
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t step = epoch * steps_per_epoch + s;
      double lr = o.lr;
      if (step < warmup) {
        lr = o.lr * (step + 1) / warmup;
      } else {
        double progress = static_cast<double>(step - warmup) / std::max<int64_t>(1, total_steps - warmup);
        lr = o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * progress)));
      }
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      std::vector<torch::Tensor> rows;
      for (int64_t b = 0; b < o.batch_size; ++b) rows.push_back(train_bytes.narrow(0, offset(rng), o.seq_len + 1));
      torch::Tensor batch = torch::stack(rows).to(torch::kInt64);
      torch::Tensor logits = net->forward(batch.narrow(1, 0, o.seq_len));
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 256}),
                                                                batch.narrow(1, 1, o.seq_len).reshape({-1}));
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(net->parameters(), o.grad_clip);
      optimizer.step();
      const double bpb = loss.item<double>() / std::log(2.0);
      if (!std::isfinite(bpb)) return Status::Internal("training diverged (loss is not finite); lower the learning rate");
      r.loss_curve.emplace_back(step + 1, bpb);
      r.steps = step + 1;
      r.bytes_seen += static_cast<uint64_t>(o.batch_size * o.seq_len);
      recent += bpb;
      ++recent_n;
      const double t = elapsed();
      if (o.progress && (s % 5 == 0 || s + 1 == steps_per_epoch)) {
        double avg = recent / recent_n;
        double rate = r.bytes_seen / std::max(t, 1e-9);
        double eta = t / r.steps * (total_steps - r.steps);
        if (o.max_seconds > 0) eta = std::min(eta, std::max(0.0, o.max_seconds - t));
        char line[256];
        std::snprintf(line, sizeof line, "epoch %d/%d  step %lld/%lld  loss %.4f bits/byte  ratio ~%.2f  %.1f KB/s  ETA %s",
                      epoch + 1, o.epochs, static_cast<long long>(s + 1), static_cast<long long>(steps_per_epoch), avg,
                      8 / std::max(avg, 1e-9), rate / 1e3, FormatDuration(eta).c_str());
        o.progress(line, false);
        recent = 0;
        recent_n = 0;
      }
      if (o.max_seconds > 0 && t >= o.max_seconds) {
        out_of_time = true;
        break;
      }
    }
    net->eval();
    if (!val.empty()) {
      r.val_bpb = CrossEntropyBitsPerByte(net, val, o.eval_chunk);
      if (o.progress) {
        char line[160];
        std::snprintf(line, sizeof line, "epoch %d: validation %.4f bits/byte (ratio ~%.2f)", epoch + 1, r.val_bpb,
                      8 / std::max(r.val_bpb, 1e-9));
        o.progress(line, true);
      }
    }
  }
  size_t tail = std::min<size_t>(r.loss_curve.size(), 20);
  for (size_t i = r.loss_curve.size() - tail; i < r.loss_curve.size(); ++i) r.final_loss_bpb += r.loss_curve[i].second / tail;
  if (!test.empty()) r.test_bpb = CrossEntropyBitsPerByte(net, test, o.eval_chunk);
  r.seconds = elapsed();
  ModelWeights w = ExportWeights(net);
  std::string meta = "created_by=boa-client train\nseed=" + std::to_string(o.seed) +
                     "\nsteps=" + std::to_string(r.steps) + "\nbytes_seen=" + std::to_string(r.bytes_seen) +
                     "\nval_bpb=" + std::to_string(r.val_bpb) + "\ntest_bpb=" + std::to_string(r.test_bpb) + "\n";
  if (!o.output.empty()) BOA_RETURN_IF_ERROR(WriteFileAtomic(o.output, SerializeModel(w, WeightType::kF32, meta), true));
  if (report) *report = std::move(r);
  return Status::Ok();
}

}  // namespace boa::train
