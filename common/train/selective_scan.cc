// Selective-scan kernels (forward with state checkpoints, backward by segment recomputation).
#include "common/train/selective_scan.h"
#include "common/train/scan_kernels.h"

#include <ATen/Parallel.h>

#include <type_traits>

#include <cmath>
#include <vector>

namespace boa::train {

namespace {

using torch::Tensor;

// Work is split into units of (batch row, block of 8 channels); float blocks of 8 run the
// AVX2 kernels where the CPU has them, everything else runs the scalar per-channel code.
constexpr int64_t kBlock = 8;

// The scan's inputs as typed pointers and sizes, for the scalar per-channel code.
template <typename T>
struct Inputs {
  Inputs(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm, int64_t segment)
      : pu(u.data_ptr<T>()), pd(delta.data_ptr<T>()), pA(A.data_ptr<T>()), pB(Bm.data_ptr<T>()),
        pC(Cm.data_ptr<T>()), L(u.size(1)), E(u.size(2)), S(A.size(1)), segment(segment),
        nseg((L + segment - 1) / segment) {}
  const T *pu, *pd, *pA, *pB, *pC;
  int64_t L, E, S, segment, nseg;
};

template <typename T>
void ForwardChannel(const Inputs<T>& in, int64_t b, int64_t d, T* py, T* pk, std::vector<T>& h) {
  const int64_t L = in.L, E = in.E, S = in.S, segment = in.segment, nseg = in.nseg;
  const T *pu = in.pu, *pd = in.pd, *pA = in.pA, *pB = in.pB, *pC = in.pC;
  std::fill(h.begin(), h.end(), T(0));
  for (int64_t t = 0; t < L; ++t) {
    if (t % segment == 0) std::copy(h.begin(), h.end(), pk + ((b * E + d) * nseg + t / segment) * S);
    const int64_t i = (b * L + t) * E + d;
    const T dt = pd[i], x = pu[i];
    const T* bt = pB + (b * L + t) * S;
    const T* ct = pC + (b * L + t) * S;
    T acc = 0;
    for (int64_t n = 0; n < S; ++n) {
      h[n] = std::exp(dt * pA[d * S + n]) * h[n] + dt * bt[n] * x;
      acc += h[n] * ct[n];
    }
    py[i] = acc;
  }
}

template <typename T>
void BackwardChannel(const Inputs<T>& in, const T* pk, const T* pdy, int64_t b, int64_t d, T* pdu, T* pdd, T* pdA,
                     T* pdB, T* pdC, std::vector<T>& g, std::vector<T>& hs, std::vector<T>& decay) {
  const int64_t L = in.L, E = in.E, S = in.S, segment = in.segment, nseg = in.nseg;
  const T *pu = in.pu, *pd = in.pd, *pA = in.pA, *pB = in.pB, *pC = in.pC;
  std::fill(g.begin(), g.end(), T(0));
  T* dA = pdA + (b * E + d) * S;
  for (int64_t s = nseg - 1; s >= 0; --s) {
    const int64_t t0 = s * segment, t1 = std::min(L, t0 + segment);
    // Recompute the states of this segment: hs[k] = h_{t0 + k - 1}.
    std::copy(pk + ((b * E + d) * nseg + s) * S, pk + ((b * E + d) * nseg + s + 1) * S, hs.begin());
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = (b * L + t) * E + d, k = t - t0;
      const T dt = pd[i], x = pu[i];
      const T* bt = pB + (b * L + t) * S;
      for (int64_t n = 0; n < S; ++n) {
        T a = std::exp(dt * pA[d * S + n]);
        decay[k * S + n] = a;
        hs[(k + 1) * S + n] = a * hs[k * S + n] + dt * bt[n] * x;
      }
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const int64_t i = (b * L + t) * E + d, k = t - t0;
      const T dt = pd[i], x = pu[i], gy = pdy[i];
      const T* bt = pB + (b * L + t) * S;
      const T* ct = pC + (b * L + t) * S;
      T* dBt = pdB + (b * L + t) * S;
      T* dCt = pdC + (b * L + t) * S;
      T ddt = 0, dx = 0;
      for (int64_t n = 0; n < S; ++n) {
        const T h = hs[(k + 1) * S + n], hprev = hs[k * S + n], a = decay[k * S + n];
        const T gt = g[n] + gy * ct[n];  // dLoss/dh_t
        dCt[n] += gy * h;
        ddt += gt * (hprev * a * pA[d * S + n] + bt[n] * x);
        dA[n] += gt * hprev * a * dt;
        dBt[n] += gt * dt * x;
        dx += gt * dt * bt[n];
        g[n] = gt * a;  // carried to h_{t-1}
      }
      pdd[i] = ddt;
      pdu[i] = dx;
    }
  }
}

template <typename T>
bool UseAvx2(int64_t E, int64_t d0) {
  return std::is_same<T, float>::value && d0 + kBlock <= E && kernels::Avx2Available();
}

kernels::ScanArgs Args(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                       int64_t segment) {
  const int64_t L = u.size(1);
  return {u.data_ptr<float>(), delta.data_ptr<float>(), A.data_ptr<float>(), Bm.data_ptr<float>(),
          Cm.data_ptr<float>(), u.size(0), L, u.size(2), A.size(1), segment, (L + segment - 1) / segment};
}

template <typename T>
void ForwardKernel(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                   const Tensor& Cm, int64_t segment, Tensor& y, Tensor& checkpoints) {
  const int64_t B = u.size(0), E = u.size(2), S = A.size(1), blocks = (E + kBlock - 1) / kBlock;
  const Inputs<T> in(u, delta, A, Bm, Cm, segment);
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> h(S);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t b = unit / blocks, d0 = unit % blocks * kBlock;
      if constexpr (std::is_same<T, float>::value) {
        if (UseAvx2<T>(E, d0)) {
          kernels::ForwardBlock8(Args(u, delta, A, Bm, Cm, segment), b, d0, y.data_ptr<float>(),
                                 checkpoints.data_ptr<float>());
          continue;
        }
      }
      for (int64_t d = d0; d < std::min(E, d0 + kBlock); ++d)
        ForwardChannel<T>(in, b, d, y.data_ptr<T>(), checkpoints.data_ptr<T>(), h);
    }
  });
}

template <typename T>
void BackwardKernel(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor& checkpoints, int64_t segment, const Tensor& dy,
                    Tensor& du, Tensor& ddelta, Tensor& dA_parts, Tensor& dB_parts, Tensor& dC_parts) {
  const int64_t B = u.size(0), L = u.size(1), E = u.size(2), S = A.size(1), blocks = (E + kBlock - 1) / kBlock;
  const Inputs<T> in(u, delta, A, Bm, Cm, segment);
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    // dB, dC sum over channels: each thread accumulates into its own slice.
    const int tid = at::get_thread_num();
    T* pdB = dB_parts.data_ptr<T>() + tid * B * L * S;
    T* pdC = dC_parts.data_ptr<T>() + tid * B * L * S;
    std::vector<T> g(S), hs((segment + 1) * S), decay(segment * S);
    std::vector<float> scratch;
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t b = unit / blocks, d0 = unit % blocks * kBlock;
      if constexpr (std::is_same<T, float>::value) {
        if (UseAvx2<T>(E, d0)) {
          scratch.resize((2 * segment + 1) * S * kBlock);
          kernels::BackwardBlock8(Args(u, delta, A, Bm, Cm, segment), b, d0, checkpoints.data_ptr<float>(),
                                  dy.data_ptr<float>(), du.data_ptr<float>(), ddelta.data_ptr<float>(),
                                  dA_parts.data_ptr<float>(), pdB, pdC, scratch.data());
          continue;
        }
      }
      for (int64_t d = d0; d < std::min(E, d0 + kBlock); ++d)
        BackwardChannel<T>(in, checkpoints.data_ptr<T>(), dy.data_ptr<T>(), b, d, du.data_ptr<T>(),
                           ddelta.data_ptr<T>(), dA_parts.data_ptr<T>(), pdB, pdC, g, hs, decay);
    }
  });
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor u, Tensor delta, Tensor A,
                        Tensor Bm, Tensor Cm, int64_t segment) {
    u = u.contiguous();
    delta = delta.contiguous();
    A = A.contiguous();
    Bm = Bm.contiguous();
    Cm = Cm.contiguous();
    Tensor checkpoints;
    Tensor y = ScanForward(u, delta, A, Bm, Cm, segment, &checkpoints);
    ctx->save_for_backward({u, delta, A, Bm, Cm, checkpoints});
    ctx->saved_data["segment"] = segment;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    std::vector<Tensor> g = ScanBackward(saved[0], saved[1], saved[2], saved[3], saved[4], saved[5],
                                         ctx->saved_data["segment"].toInt(), grads[0].contiguous());
    return {g[0], g[1], g[2], g[3], g[4], Tensor()};
  }
};

}  // namespace

Tensor ScanForward(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                   int64_t segment, Tensor* checkpoints) {
  const int64_t B = u.size(0), L = u.size(1), E = u.size(2), S = A.size(1);
  const int64_t nseg = (L + segment - 1) / segment;
  Tensor y = torch::empty_like(u);
  *checkpoints = torch::empty({B, E, std::max<int64_t>(nseg, 1), S}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward", [&] {
    ForwardKernel<scalar_t>(u, delta, A, Bm, Cm, segment, y, *checkpoints);
  });
  return y;
}

std::vector<Tensor> ScanBackward(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                 const Tensor& Cm, const Tensor& checkpoints, int64_t segment, const Tensor& dy) {
  const int64_t B = u.size(0), L = u.size(1), E = u.size(2), S = A.size(1);
  const int64_t threads = at::get_num_threads();
  Tensor du = torch::empty_like(u), ddelta = torch::empty_like(delta);
  Tensor dA_parts = torch::zeros({B, E, S}, u.options());
  Tensor dB_parts = torch::zeros({threads, B, L, S}, u.options());
  Tensor dC_parts = torch::zeros({threads, B, L, S}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward", [&] {
    BackwardKernel<scalar_t>(u, delta, A, Bm, Cm, checkpoints, segment, dy, du, ddelta, dA_parts, dB_parts,
                             dC_parts);
  });
  // One thread's partials need no sum.
  return {du, ddelta, dA_parts.sum(0), threads == 1 ? dB_parts[0] : dB_parts.sum(0),
          threads == 1 ? dC_parts[0] : dC_parts.sum(0)};
}

Tensor SelectiveScan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                     const Tensor& Cm, int64_t segment) {
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes(), "u and delta must be [B, L, E]");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(2), "A must be [E, S]");
  TORCH_CHECK(Bm.dim() == 3 && Bm.size(0) == u.size(0) && Bm.size(1) == u.size(1) && Bm.size(2) == A.size(1),
              "Bm must be [B, L, S]");
  TORCH_CHECK(Cm.sizes() == Bm.sizes(), "Cm must be [B, L, S]");
  TORCH_CHECK(segment >= 1, "segment must be >= 1");
  // Under bf16 autocast the inputs may arrive in bfloat16: the scan runs in float.
  auto wide = [](const Tensor& t) { return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat32); };
  return SelectiveScanFunction::apply(wide(u), wide(delta), wide(A), wide(Bm), wide(Cm), segment);
}

Tensor SelectiveScanReference(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                              const Tensor& Cm) {
  const int64_t B = u.size(0), L = u.size(1), E = u.size(2), S = A.size(1);
  Tensor h = torch::zeros({B, E, S}, u.options());
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    Tensor dt = delta.select(1, t).unsqueeze(-1);  // [B, E, 1]
    Tensor x = u.select(1, t).unsqueeze(-1);
    h = torch::exp(dt * A) * h + dt * Bm.select(1, t).unsqueeze(1) * x;
    ys.push_back((h * Cm.select(1, t).unsqueeze(1)).sum(-1));
  }
  return torch::stack(ys, 1);
}

}  // namespace boa::train
