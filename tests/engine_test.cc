// The determinism contract of the engine: a lane's outputs depend only on its own bytes —
// not on batch size, lane position, the other lanes, chunk vs step mode, or the backend.
#include "common/engine/engine.h"

#include <gtest/gtest.h>

#include <tuple>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "testkit/test_util.h"

namespace boa::engine {
namespace {

using boa::testing::MakeModel;
using boa::testing::RandomBytes;

// Logits of every prediction for `bytes` fed one byte per step on lane `lane` of a batch of
// `batch` lanes, the other lanes fed unrelated bytes (they join late and leave early).
std::vector<float> StepLogits(const std::shared_ptr<const Engine>& e, const std::vector<uint8_t>& bytes,
                              int batch, int lane, uint64_t noise_seed) {
  auto s_owner = Session::New(e, batch, batch);
  Session& s = *s_owner;
  std::vector<uint8_t> noise = RandomBytes(bytes.size() * batch, noise_seed);
  std::vector<uint32_t> cum(static_cast<size_t>(batch) * 257);
  std::vector<float> out;
  for (size_t t = 0; t + 1 < bytes.size(); ++t) {
    std::vector<LaneInput> in;
    for (int l = 0; l < batch; ++l) {
      if (l == lane) {
        in.push_back({l, &bytes[t], 1});
      } else if ((l + t) % 7 != 0) {  // other lanes skip steps and restart now and then
        if ((l * 31 + t) % 13 == 0) s.ResetLane(l);
        in.push_back({l, &noise[t * batch + l], 1});
      }
    }
    // Put our lane at a varying position within the call.
    std::rotate(in.begin(), in.begin() + (t % in.size()), in.end());
    s.Forward(in.data(), static_cast<int>(in.size()), cum.data());
    size_t row = 0;
    while (in[row].lane != lane) ++row;
    out.insert(out.end(), s.logits() + row * 256, s.logits() + row * 256 + 256);
  }
  return out;
}

// Logits for `bytes` in chunk mode, `tile` bytes per Forward call, alongside another lane.
std::vector<float> ChunkLogits(const std::shared_ptr<const Engine>& e, const std::vector<uint8_t>& bytes, int tile) {
  auto s_owner = Session::New(e, 2, 2 * tile);
  Session& s = *s_owner;
  std::vector<uint8_t> other = RandomBytes(bytes.size(), 99);
  std::vector<uint32_t> cum(static_cast<size_t>(2 * tile) * 257);
  std::vector<float> out;
  for (size_t t = 0; t + 1 < bytes.size(); t += tile) {
    int n = static_cast<int>(std::min<size_t>(tile, bytes.size() - 1 - t));
    LaneInput in[2] = {{1, &other[t], n}, {0, &bytes[t], n}};
    s.Forward(in, 2, cum.data());
    out.insert(out.end(), s.logits() + static_cast<size_t>(n) * 256, s.logits() + static_cast<size_t>(2 * n) * 256);
  }
  return out;
}

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << what;
}

class EngineInvariance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!BackendAvailable(GetParam())) GTEST_SKIP() << BackendName(GetParam()) << " is not available here";
  }
};

TEST_P(EngineInvariance, BatchCompositionAndPositionDoNotMatter) {
  LoadedModel m = MakeModel(12, 2, 11, 4.0f);
  auto e = Engine::Create(m.weights, GetParam()).value();
  std::vector<uint8_t> chunk = RandomBytes(16, 5);
  std::vector<float> alone = StepLogits(e, chunk, 1, 0, 1);
  for (int batch : {2, 3, 5, 8, 16, 33, 64}) {
    for (int lane = 0; lane < batch; ++lane) {  // every lane position
      ExpectSameBits(alone, StepLogits(e, chunk, batch, lane, batch * 100 + lane),
                     "batch " + std::to_string(batch) + " lane " + std::to_string(lane));
    }
  }
}

TEST_P(EngineInvariance, ChunkModeEqualsStepMode) {
  LoadedModel m = MakeModel(32, 2, 12, 4.0f);
  auto e = Engine::Create(m.weights, GetParam()).value();
  std::vector<uint8_t> chunk = boa::testing::FloatTable(300, 3);
  std::vector<float> step = StepLogits(e, chunk, 4, 2, 7);
  for (int tile : {1, 2, 7, 64, 512}) ExpectSameBits(step, ChunkLogits(e, chunk, tile), "tile " + std::to_string(tile));
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineInvariance, ::testing::Values(Backend::kScalar, Backend::kAvx2, Backend::kCuda),
                         [](const auto& info) { return std::string(BackendName(info.param)); });

TEST(Engine, ScalarAndAvx2AgreeOnOddShapes) {
  if (!SelectKernels(Backend::kAvx2)) GTEST_SKIP() << "AVX2 backend not available";
  for (uint32_t d : {1u, 7u, 20u, 64u}) {
    ModelConfig c = ModelConfig::Default(d, 2);
    c.d_conv = d % 3 + 2;
    c.d_state = d % 5 + 3;
    ModelWeights w = InitRandomModel(c, d);
    auto a = Engine::Create(w, Backend::kScalar).value();
    auto b = Engine::Create(w, Backend::kAvx2).value();
    std::vector<uint8_t> bytes = RandomBytes(50, d);
    ExpectSameBits(ChunkLogits(a, bytes, 9), ChunkLogits(b, bytes, 9), "d_model " + std::to_string(d));
  }
}

TEST(Engine, ResetLaneStartsAFreshSequence) {
  LoadedModel m = MakeModel(16, 1, 3);
  auto e = Engine::Create(m.weights, Backend::kAuto).value();
  auto s_owner = Session::New(e, 1, 8);
  Session& s = *s_owner;
  std::vector<uint8_t> a = RandomBytes(8, 1);
  std::vector<uint32_t> c1(8 * 257), c2(8 * 257);
  LaneInput in{0, a.data(), 8};
  s.Forward(&in, 1, c1.data());
  s.Forward(&in, 1, c2.data());
  EXPECT_NE(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4)) << "state must carry over";
  s.ResetLane(0);
  s.Forward(&in, 1, c2.data());
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4));
}

TEST(Engine, FlushToZeroSetElsewhereChangesNoBits) {
  // A library in the same process may turn on flush-to-zero / denormals-are-zero. Here every
  // block's first LayerNorm outputs subnormals, which in_proj scales back to ~1e-3, so the
  // coded bits depend on that mode in layer 0 (a table made at load time) and in layer 1
  // (computed per byte): this fails unless both pin IEEE behaviour.
  LoadedModel m = MakeModel(16, 2, 5);
  for (Tensor& t : m.weights.tensors) {
    const bool ln1 = t.name.find(".ln1.") != std::string::npos;
    for (float& v : t.data) {
      if (ln1) v = t.name.find("weight") != std::string::npos ? 0x1p-130f : 0.0f;
      if (t.name.find("in_proj.weight") != std::string::npos) v *= 0x1p120f;
    }
  }
  std::vector<uint8_t> bytes = RandomBytes(64, 2);
  auto run = [&](Backend backend) {
    auto e = Engine::Create(m.weights, backend).value();
    auto s_owner = Session::New(e, 1, 64);
    Session& s = *s_owner;
    std::vector<uint32_t> cum(64 * 257);
    LaneInput in{0, bytes.data(), 64};
    s.Forward(&in, 1, cum.data());
    return cum;
  };
  for (Backend backend : {Backend::kScalar, Backend::kAuto}) {
    std::vector<uint32_t> ieee = run(backend);
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);  // FTZ | DAZ
    std::vector<uint32_t> ftz = run(backend);
    _mm_setcsr(saved);
    EXPECT_EQ(ieee, ftz) << BackendName(backend);
  }
}

TEST(Engine, PredictionsFollowTheReferenceNetwork) {
  // A direct double-precision evaluation of the network on a tiny model agrees closely
  // (the engine is float32; this checks the wiring, not the rounding).
  ModelConfig c = ModelConfig::Default(8, 1);
  ModelWeights w = InitRandomModel(c, 21);
  auto e = Engine::Create(w, Backend::kScalar).value();
  std::vector<uint8_t> bytes = {3, 200, 17, 17, 90, 4};
  std::vector<float> got = ChunkLogits(e, bytes, 16);
  auto T = [&](const std::string& n) { return w.Find(n)->data; };
  const int D = 8, E = 16, R = 1, S = 16, K = 4;
  std::vector<double> conv_hist(static_cast<size_t>(K - 1) * E, 0.0), h(static_cast<size_t>(E) * S, 0.0);
  auto ln = [&](std::vector<double> x, const std::vector<float>& g, const std::vector<float>& b) {
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= x.size();
    for (double v : x) var += (v - mean) * (v - mean);
    var /= x.size();
    for (size_t i = 0; i < x.size(); ++i) x[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
    return x;
  };
  auto silu = [](double v) { return v / (1 + std::exp(-v)); };
  for (size_t t = 0; t + 1 < bytes.size(); ++t) {
    std::vector<double> x(D);
    for (int i = 0; i < D; ++i) x[i] = T("embedding.weight")[bytes[t] * D + i];
    std::vector<double> u = ln(x, T("blocks.0.ln1.weight"), T("blocks.0.ln1.bias"));
    std::vector<double> xz(2 * E, 0.0);
    for (int n = 0; n < 2 * E; ++n)
      for (int k = 0; k < D; ++k) xz[n] += T("blocks.0.mamba.in_proj.weight")[n * D + k] * u[k];
    std::vector<double> cc(E);
    for (int ch = 0; ch < E; ++ch) {
      double acc = T("blocks.0.mamba.conv1d.bias")[ch];
      for (int j = 0; j < K - 1; ++j) acc += T("blocks.0.mamba.conv1d.weight")[ch * K + j] * conv_hist[j * E + ch];
      acc += T("blocks.0.mamba.conv1d.weight")[ch * K + K - 1] * xz[ch];
      cc[ch] = silu(acc);
      for (int j = 0; j < K - 2; ++j) conv_hist[j * E + ch] = conv_hist[(j + 1) * E + ch];
      conv_hist[(K - 2) * E + ch] = xz[ch];
    }
    std::vector<double> dbc(R + 2 * S, 0.0);
    for (int n = 0; n < R + 2 * S; ++n)
      for (int k = 0; k < E; ++k) dbc[n] += T("blocks.0.mamba.x_proj.weight")[n * E + k] * cc[k];
    std::vector<double> y(E);
    for (int ch = 0; ch < E; ++ch) {
      double dt = T("blocks.0.mamba.dt_proj.bias")[ch];
      for (int r = 0; r < R; ++r) dt += T("blocks.0.mamba.dt_proj.weight")[ch * R + r] * dbc[r];
      dt = std::log1p(std::exp(dt));
      double acc = T("blocks.0.mamba.D")[ch] * cc[ch];
      for (int n = 0; n < S; ++n) {
        double A = -std::exp(double(T("blocks.0.mamba.A_log")[ch * S + n]));
        h[ch * S + n] = std::exp(dt * A) * h[ch * S + n] + dt * dbc[R + n] * cc[ch];
        acc += h[ch * S + n] * dbc[R + S + n];
      }
      y[ch] = acc * silu(xz[E + ch]);
    }
    std::vector<double> mo(D, 0.0);
    for (int n = 0; n < D; ++n)
      for (int k = 0; k < E; ++k) mo[n] += T("blocks.0.mamba.out_proj.weight")[n * E + k] * y[k];
    std::vector<double> v = ln(mo, T("blocks.0.ln2.weight"), T("blocks.0.ln2.bias"));
    std::vector<double> f(4 * D);
    for (int n = 0; n < 4 * D; ++n) {
      double acc = T("blocks.0.ff.0.bias")[n];
      for (int k = 0; k < D; ++k) acc += T("blocks.0.ff.0.weight")[n * D + k] * v[k];
      f[n] = 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0)));
    }
    for (int n = 0; n < D; ++n) {
      double acc = T("blocks.0.ff.2.bias")[n];
      for (int k = 0; k < 4 * D; ++k) acc += T("blocks.0.ff.2.weight")[n * 4 * D + k] * f[k];
      x[n] += acc;
    }
    std::vector<double> hh(D);
    for (int n = 0; n < D; ++n) {
      double acc = T("head.0.bias")[n];
      for (int k = 0; k < D; ++k) acc += T("head.0.weight")[n * D + k] * x[k];
      hh[n] = std::max(acc, 0.0);
    }
    for (int n = 0; n < 256; ++n) {
      double acc = T("head.2.bias")[n];
      for (int k = 0; k < D; ++k) acc += T("head.2.weight")[n * D + k] * hh[k];
      EXPECT_NEAR(got[t * 256 + n], acc, 1e-4 * std::max(1.0, std::fabs(acc))) << "t " << t << " logit " << n;
    }
  }
}

// boad budgets a model's memory from these figures before it allocates anything, so they
// must be exactly what the engine and a session then hold.
TEST(Engine, MemoryIsKnownBeforeItIsAllocated) {
  for (auto [d, layers, state, expand] : {std::tuple{16, 1, 16, 2}, {24, 3, 5, 3}, {64, 2, 16, 2}, {40, 2, 33, 1}}) {
    ModelConfig c = ModelConfig::Default(d, layers);
    c.d_state = state;
    c.expand = expand;
    auto e = Engine::Create(InitRandomModel(c, 3), Backend::kAuto).value();
    EXPECT_EQ(Engine::MemoryBytesFor(c), e->MemoryBytes()) << d << "x" << layers;
    for (auto [lanes, rows] : {std::pair{1, 1}, {7, 512}, {64, 64}}) {
      auto s = Session::Create(e, lanes, rows);
      ASSERT_TRUE(s.ok());
      EXPECT_EQ(Session::MemoryBytes(c, lanes, rows), (*s)->AllocatedBytes()) << d << "x" << layers << " " << lanes;
    }
  }
}

}  // namespace
}  // namespace boa::engine
