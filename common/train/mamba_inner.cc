// MambaInner: forward with saved intermediates, and the hand-written backward pass.
#include "common/train/mamba_inner.h"

#include <ATen/Parallel.h>

#include <type_traits>

#include "common/train/block_kernels.h"
#include "common/train/linear.h"
#include "common/train/scan_kernels.h"
#include "common/train/selective_scan.h"

namespace boa::train {

namespace {

using torch::Tensor;
namespace k = kernels;

constexpr int64_t kScanSegment = 64;

// Each wrapper runs the AVX2 float kernel where it applies, the portable template otherwise.
template <typename T>
bool Vectorised(int64_t E) {
  return std::is_same_v<T, float> && E % 8 == 0 && k::Avx2Available();
}

template <typename T>
void ConvFwd(const T* x, int64_t L, int64_t E, int64_t K, const T* w, const T* b, T* pre, T* c) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::ConvSiluForwardAvx2(x, L, E, K, w, b, pre, c);
  }
  k::ConvSiluForward<T>(x, L, E, K, w, b, pre, c);
}
template <typename T>
void ConvBwd(const T* x, const T* pre, T* dc, int64_t L, int64_t E, int64_t K, const T* w, T* dx, T* dw, T* db) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::ConvSiluBackwardAvx2(x, pre, dc, L, E, K, w, dx, dw, db);
  }
  k::ConvSiluBackward<T>(x, pre, dc, L, E, K, w, dx, dw, db);
}
template <typename T>
void SoftplusFwd(const T* raw, T* delta, int64_t n, int64_t E) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::SoftplusAvx2(raw, delta, n);
  }
  k::Softplus<T>(raw, delta, n);
}
template <typename T>
void SoftplusBwd(const T* raw, T* g, int64_t n, int64_t E) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::SoftplusBackwardAvx2(raw, g, n);
  }
  k::SoftplusBackward<T>(raw, g, n);
}
template <typename T>
void GateFwd(const T* xz, const T* c, const T* D, int64_t rows, int64_t E, T* y, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::GateForwardAvx2(xz, c, D, rows, E, y, out);
  }
  k::GateForward<T>(xz, c, D, rows, E, y, out);
}
template <typename T>
void GateBwd(const T* xz, const T* c, const T* D, const T* yp, const T* dout, int64_t rows, int64_t E, T* dxz,
             T* dyp, T* dc, T* dD) {
  if constexpr (std::is_same_v<T, float>) {
    if (Vectorised<T>(E)) return k::GateBackwardAvx2(xz, c, D, yp, dout, rows, E, dxz, dyp, dc, dD);
  }
  k::GateBackward<T>(xz, c, D, yp, dout, rows, E, dxz, dyp, dc, dD);
}

// Per sequence b: the convolution forward.
template <typename T>
void ConvForward(const Tensor& xz, const Tensor& w_tap_major, const Tensor& bias, Tensor& pre, Tensor& c) {
  const int64_t B = xz.size(0), L = xz.size(1), E = pre.size(2), K = w_tap_major.size(0);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* x = xz.data_ptr<T>() + b * L * 2 * E;
      T* p = pre.data_ptr<T>() + b * L * E;
      T* o = c.data_ptr<T>() + b * L * E;
      ConvFwd(x, L, E, K, w_tap_major.data_ptr<T>(), bias.data_ptr<T>(), p, o);
    }
  });
}

// Element-wise passes over `rows` rows, split across threads by rows.
template <typename Fn>
void ForRows(int64_t rows, Fn fn) {
  at::parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) { fn(r0, r1 - r0); });
}

class MambaInnerFunction : public torch::autograd::Function<MambaInnerFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor xz, Tensor conv_w, Tensor conv_b,
                        Tensor x_proj_w, Tensor dt_proj_w, Tensor dt_proj_b, Tensor A_log, Tensor D,
                        int64_t dt_rank) {
    xz = xz.contiguous();
    const int64_t B = xz.size(0), L = xz.size(1), E = xz.size(2) / 2, K = conv_w.size(2), R = dt_rank;
    const int64_t S = A_log.size(1), rows = B * L;
    Tensor w_tap = conv_w.reshape({E, K}).t().contiguous();
    Tensor pre = torch::empty({B, L, E}, xz.options()), c = torch::empty({B, L, E}, xz.options());
    Tensor dt_raw, delta = torch::empty({B, L, E}, xz.options()), out = torch::empty({B, L, E}, xz.options());
    Tensor dbc, Bm, Cm, A, y, checkpoints;
    AT_DISPATCH_FLOATING_TYPES(xz.scalar_type(), "mamba_inner_forward", [&] {
      using T = scalar_t;
      ConvForward<T>(xz, w_tap, conv_b.contiguous(), pre, c);
      dbc = ProductTransposed(c.view({rows, E}), x_proj_w, Tensor());            // [rows, R + 2S]
      dt_raw = ProductTransposed(dbc.narrow(1, 0, R), dt_proj_w, dt_proj_b);      // [rows, E]
      ForRows(rows, [&](int64_t r0, int64_t n) {
        const T* raw = dt_raw.data_ptr<T>() + r0 * E;
        T* dl = delta.data_ptr<T>() + r0 * E;
        SoftplusFwd(raw, dl, n * E, E);
      });
      Bm = dbc.narrow(1, R, S).reshape({B, L, S}).contiguous();
      Cm = dbc.narrow(1, R + S, S).reshape({B, L, S}).contiguous();
      A = -torch::exp(A_log);
      y = ScanForward(c, delta, A, Bm, Cm, kScanSegment, &checkpoints);
      const Tensor Dc = D.contiguous();
      ForRows(rows, [&](int64_t r0, int64_t n) {
        const T* x = xz.data_ptr<T>() + r0 * 2 * E;
        const T* cc = c.data_ptr<T>() + r0 * E;
        T* yy = y.data_ptr<T>() + r0 * E;
        T* o = out.data_ptr<T>() + r0 * E;
        GateFwd(x, cc, Dc.data_ptr<T>(), n, E, yy, o);
      });
    });
    // y now holds the pre-gate output y + c * D.
    ctx->save_for_backward({xz, w_tap, x_proj_w, dt_proj_w, A, D, pre, c, dbc, dt_raw, delta, Bm, Cm, y,
                            checkpoints});
    ctx->saved_data["dt_rank"] = dt_rank;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto s = ctx->get_saved_variables();
    const Tensor &xz = s[0], &w_tap = s[1], &x_proj_w = s[2], &dt_proj_w = s[3], &A = s[4], &D = s[5];
    const Tensor &pre = s[6], &c = s[7], &dbc = s[8], &dt_raw = s[9], &delta = s[10], &Bm = s[11],
                 &Cm = s[12], &yp = s[13], &checkpoints = s[14];
    const int64_t R = ctx->saved_data["dt_rank"].toInt();
    const Tensor dout = grads[0].contiguous();
    const int64_t B = xz.size(0), L = xz.size(1), E = xz.size(2) / 2, K = w_tap.size(0), rows = B * L;
    Tensor dxz = torch::empty_like(xz), dyp = torch::empty_like(c), dc = torch::empty_like(c);
    Tensor dD_parts, dw_parts, dbias_parts;
    const Tensor Dc = D.contiguous();
    std::vector<Tensor> g;
    Tensor ddt_raw;
    AT_DISPATCH_FLOATING_TYPES(xz.scalar_type(), "mamba_inner_backward", [&] {
      using T = scalar_t;
      // Gate: dz, the scan's output gradient, and the D skip. Per-sequence partial sums keep
      // dD independent of the thread count.
      dD_parts = torch::zeros({B, E}, xz.options());
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t r0 = b * L;
          const T* x = xz.data_ptr<T>() + r0 * 2 * E;
          const T* cc = c.data_ptr<T>() + r0 * E;
          const T* y = yp.data_ptr<T>() + r0 * E;
          const T* go = dout.data_ptr<T>() + r0 * E;
          T* gx = dxz.data_ptr<T>() + r0 * 2 * E;
          T* gy = dyp.data_ptr<T>() + r0 * E;
          T* gc = dc.data_ptr<T>() + r0 * E;
          T* gD = dD_parts.data_ptr<T>() + b * E;
          GateBwd(x, cc, Dc.data_ptr<T>(), y, go, L, E, gx, gy, gc, gD);
        }
      });
      g = ScanBackward(c, delta, A, Bm, Cm, checkpoints, kScanSegment, dyp);  // du ddelta dA dB dC
      dc.add_(g[0]);
      ddt_raw = g[1];
      ForRows(rows, [&](int64_t r0, int64_t n) {
        const T* raw = dt_raw.data_ptr<T>() + r0 * E;
        T* gd = ddt_raw.data_ptr<T>() + r0 * E;
        SoftplusBwd(raw, gd, n * E, E);
      });
    });
    const Tensor ddt2 = ddt_raw.view({rows, E});
    Tensor d_dbc = torch::cat(
        {ProductTransposed(ddt2, dt_proj_w.t().contiguous(), Tensor()), g[3].view({rows, -1}), g[4].view({rows, -1})}, 1);
    Tensor d_dt_proj_w = torch::mm(ddt2.t(), dbc.narrow(1, 0, R));
    Tensor d_dt_proj_b = ddt2.sum(0);
    const Tensor c2 = c.view({rows, E});
    Tensor d_x_proj_w = torch::mm(d_dbc.t(), c2);
    Tensor dc2 = dc.view({rows, E});
    AddProductTransposed(d_dbc, x_proj_w.t().contiguous(), dc2);
    Tensor d_A_log = g[2] * A;  // A = -exp(A_log)
    AT_DISPATCH_FLOATING_TYPES(xz.scalar_type(), "mamba_inner_conv_backward", [&] {
      using T = scalar_t;
      dw_parts = torch::zeros({B, K, E}, xz.options());
      dbias_parts = torch::zeros({B, E}, xz.options());
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const T* x = xz.data_ptr<T>() + b * L * 2 * E;
          const T* p = pre.data_ptr<T>() + b * L * E;
          T* gc = dc.data_ptr<T>() + b * L * E;
          T* gx = dxz.data_ptr<T>() + b * L * 2 * E;
          T* gw = dw_parts.data_ptr<T>() + b * K * E;
          T* gb = dbias_parts.data_ptr<T>() + b * E;
          ConvBwd(x, p, gc, L, E, K, w_tap.data_ptr<T>(), gx, gw, gb);
        }
      });
    });
    Tensor d_conv_w = dw_parts.sum(0).t().reshape({E, 1, K});
    return {dxz, d_conv_w, dbias_parts.sum(0), d_x_proj_w, d_dt_proj_w, d_dt_proj_b, d_A_log, dD_parts.sum(0),
            Tensor()};
  }
};

}  // namespace

Tensor MambaInner(const Tensor& xz, const MambaInnerWeights& w, int64_t dt_rank) {
  TORCH_CHECK(xz.dim() == 3 && xz.size(2) % 2 == 0, "xz must be [B, L, 2E]");
  return MambaInnerFunction::apply(xz, w.conv_w, w.conv_b, w.x_proj_w, w.dt_proj_w, w.dt_proj_b, w.A_log, w.D,
                                   dt_rank);
}

Tensor MambaInnerReference(const Tensor& xz, const MambaInnerWeights& w, int64_t dt_rank) {
  const int64_t L = xz.size(1), E = xz.size(2) / 2, K = w.conv_w.size(2), S = w.A_log.size(1);
  auto parts = xz.split(E, -1);
  // Causal depthwise convolution: pad both sides, keep the first L outputs.
  Tensor c = torch::conv1d(parts[0].transpose(1, 2), w.conv_w, w.conv_b, 1, K - 1, 1, E).narrow(2, 0, L).transpose(1, 2);
  c = torch::silu(c);
  auto dbc = torch::linear(c, w.x_proj_w).split_with_sizes({dt_rank, S, S}, -1);
  Tensor delta = torch::softplus(torch::linear(dbc[0], w.dt_proj_w, w.dt_proj_b));
  Tensor y = SelectiveScan(c, delta, -torch::exp(w.A_log), dbc[1], dbc[2]) + c * w.D;
  return y * torch::silu(parts[1]);
}

}  // namespace boa::train
