// The CUDA backend against the scalar reference, bit for bit. Without a GPU (CI) the CUDA
// kernels, launches and session logic run on the host executor (host_exec.h); where this build
// has CUDA and the machine a device, the same comparisons run on the GPU, and otherwise those
// tests are skipped saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/engine/cuda/cuda_backend.h"
#include "common/engine/cuda/host_engine.h"
#include "common/engine/cuda/host_exec.h"
#include "common/engine/engine.h"
#include "common/engine/kernels.h"
#include "testkit/test_util.h"

namespace boa::engine {
namespace {

struct Outputs {
  std::vector<uint32_t> tables;
  std::vector<float> logits;
};

// A fixed random sequence of Forward calls on a session of `lanes` lanes: lanes join late,
// skip calls, leave, are reset, appear in any order, fed one byte (step mode) or several
// (chunk mode); every call's tables and logits are recorded.
Outputs RunScript(const std::shared_ptr<const Engine>& e, int lanes, int calls, int max_per_lane, uint64_t seed) {
  const int max_rows = lanes * max_per_lane;
  auto session = Session::New(e, lanes, max_rows);
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(max_rows));
  std::vector<uint32_t> tables(static_cast<size_t>(max_rows) * kFreqTableStride);
  std::vector<int> order(static_cast<size_t>(lanes));
  for (int i = 0; i < lanes; ++i) order[static_cast<size_t>(i)] = i;
  Outputs out;
  for (int call = 0; call < calls; ++call) {
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<LaneInput> inputs;
    size_t rows = 0;
    for (int lane : order) {
      const bool joined = static_cast<int64_t>(lane) * calls < static_cast<int64_t>(call + 1) * lanes;
      if (!joined || rng() % 4 == 0) continue;  // lanes join over the calls, and skip some
      if (rng() % 9 == 0) session->ResetLane(lane);
      const int count = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_per_lane)) : 1;
      for (int t = 0; t < count; ++t) bytes[rows + static_cast<size_t>(t)] = static_cast<uint8_t>(rng() % 7 == 0 ? rng() : 48 + rng() % 10);
      inputs.push_back(LaneInput{lane, &bytes[rows], count});
      rows += static_cast<size_t>(count);
    }
    session->Forward(inputs.data(), static_cast<int>(inputs.size()), tables.data());
    out.tables.insert(out.tables.end(), tables.begin(), tables.begin() + static_cast<std::ptrdiff_t>(rows * kFreqTableStride));
    const float* l = session->logits();
    out.logits.insert(out.logits.end(), l, l + rows * 256);
  }
  return out;
}

void ExpectSame(const Outputs& a, const Outputs& b, const std::string& what) {
  ASSERT_EQ(a.tables.size(), b.tables.size()) << what;
  ASSERT_EQ(a.logits.size(), b.logits.size()) << what;
  for (size_t i = 0; i < a.logits.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a.logits[i], 4);
    std::memcpy(&y, &b.logits[i], 4);
    ASSERT_EQ(x, y) << what << ": logit " << i % 256 << " of row " << i / 256;
  }
  for (size_t i = 0; i < a.tables.size(); ++i)
    ASSERT_EQ(a.tables[i], b.tables[i]) << what << ": table entry " << i % kFreqTableStride << " of row " << i / kFreqTableStride;
}

struct Shape {
  uint32_t d_model, layers, d_conv, d_state;
};

ModelWeights ShapeModel(const Shape& s, uint64_t seed) {
  ModelConfig c = ModelConfig::Default(s.d_model, s.layers);
  c.d_conv = s.d_conv;
  c.d_state = s.d_state;
  return InitRandomModel(c, seed);
}

std::string Name(const Shape& s) {
  return "d_model " + std::to_string(s.d_model) + " x " + std::to_string(s.layers) + ", d_conv " +
         std::to_string(s.d_conv) + ", d_state " + std::to_string(s.d_state);
}

// The shapes the device check uses too: the product's, the widest, and odd sizes that leave
// partial tiles, a d_conv of 1 (no window), and more states than a warp has lanes.
const Shape kShapes[] = {{64, 2, 4, 16}, {256, 1, 4, 16}, {7, 2, 3, 5}, {20, 1, 2, 3}, {33, 2, 4, 40}, {5, 1, 1, 2}};

TEST(CudaKernelsOnHost, EngineMatchesScalarForEveryShape) {
  for (const Shape& s : kShapes) {
    ModelWeights w = ShapeModel(s, s.d_model);
    auto cpu = Engine::Create(w, Backend::kScalar).value();
    auto emulated = cuda::BuildHostEngine(w).value();
    const int calls = s.d_model >= 256 ? 4 : 10;
    ExpectSame(RunScript(cpu, 5, calls, 6, s.d_model), RunScript(emulated, 5, calls, 6, s.d_model), Name(s));
  }
}

TEST(CudaKernelsOnHost, ManyLanesJoinAndLeave) {
  ModelWeights w = ShapeModel({16, 2, 4, 8}, 3);
  auto cpu = Engine::Create(w, Backend::kAuto).value();
  auto emulated = cuda::BuildHostEngine(w).value();
  ExpectSame(RunScript(cpu, 70, 30, 3, 11), RunScript(emulated, 70, 30, 3, 11), "70 lanes");
}

// Quantizer rows the network rarely gives: ties for the maximum, NaN, infinities, a single
// finite logit, all equal, logits far apart.
TEST(CudaKernelsOnHost, QuantizerMatchesScalarOnEdgeLogits) {
  std::mt19937_64 rng(5);
  std::vector<std::vector<float>> rows;
  auto random_row = [&](float scale) {
    std::vector<float> l(256);
    for (float& v : l) v = std::normal_distribution<float>(0.0f, scale)(rng);
    return l;
  };
  for (float scale : {0.0f, 1e-3f, 1.0f, 10.0f, 100.0f, 1e6f}) rows.push_back(random_row(scale));
  std::vector<float> tie = random_row(1.0f);
  tie[3] = tie[200] = tie[255] = 50.0f;
  rows.push_back(tie);
  std::vector<float> nan = random_row(1.0f);
  nan[0] = nan[77] = NAN;
  rows.push_back(nan);
  rows.push_back(std::vector<float>(256, NAN));
  rows.push_back(std::vector<float>(256, -INFINITY));
  std::vector<float> pinf = random_row(1.0f);
  pinf[9] = INFINITY;
  rows.push_back(pinf);
  std::vector<float> single(256, -INFINITY);
  single[131] = 2.5f;
  rows.push_back(single);
  std::vector<float> last = random_row(1.0f);
  last[255] = 1e30f;
  rows.push_back(last);

  std::vector<float> logits;
  for (const auto& r : rows) logits.insert(logits.end(), r.begin(), r.end());
  const int n = static_cast<int>(rows.size());
  std::vector<uint32_t> got(static_cast<size_t>(n) * kFreqTableStride, 0xdeadbeef), want(got.size());
  cuda::HostExec exec;
  exec.Launch(cuda::QuantizeKernel{logits.data(), got.data()}, cuda::QuantizeKernel::Shape(n));
  for (int r = 0; r < n; ++r) ScalarKernels().quantize(&logits[static_cast<size_t>(r) * 256], &want[static_cast<size_t>(r) * kFreqTableStride]);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(want[i], got[i]) << "row " << i / kFreqTableStride << " entry " << i % kFreqTableStride;
}

// The tiled product on sizes that leave partial tiles in every direction, each epilogue.
TEST(CudaKernelsOnHost, LinearTilesMatchScalar) {
  std::mt19937_64 rng(8);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    return v;
  };
  for (int in : {1, 31, 32, 33, 70}) {
    for (int out : {1, 32, 45}) {
      for (int rows : {1, 33, 64}) {
        for (Epilogue e : {Epilogue::kStore, Epilogue::kAdd, Epilogue::kRelu, Epilogue::kGelu, Epilogue::kSoftplus}) {
          std::vector<float> W = random(static_cast<size_t>(out) * in), bias = random(static_cast<size_t>(out));
          std::vector<float> X = random(static_cast<size_t>(rows) * in), Y0 = random(static_cast<size_t>(rows) * out);
          PackedLinear packed;
          packed.Pack(W.data(), bias.data(), out, in);
          std::vector<float> want = Y0;
          ScalarKernels().linear(packed, X.data(), static_cast<size_t>(in), static_cast<size_t>(rows), want.data(),
                                 static_cast<size_t>(out), e);
          const int ldw = cuda::CeilDiv(out, cuda::LinearKernel::kCols) * cuda::LinearKernel::kCols;
          std::vector<float> wt(static_cast<size_t>(in) * ldw, 0.0f), bt(static_cast<size_t>(ldw), 0.0f);
          for (int n = 0; n < out; ++n) {
            for (int k = 0; k < in; ++k) wt[static_cast<size_t>(k) * ldw + n] = W[static_cast<size_t>(n) * in + k];
            bt[static_cast<size_t>(n)] = bias[static_cast<size_t>(n)];
          }
          std::vector<float> got = Y0;
          cuda::HostExec exec;
          cuda::LinearWeights lw{wt.data(), bt.data(), in, out, ldw};
          exec.Launch(cuda::LinearKernel{lw, X.data(), static_cast<size_t>(in), rows, got.data(), static_cast<size_t>(out), e},
                      cuda::LinearKernel::Shape(rows, out));
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4))
              << "in " << in << " out " << out << " rows " << rows << " epilogue " << static_cast<int>(e);
        }
      }
    }
  }
}

// Where this build or machine has no CUDA device, asking for one is one clear error.
TEST(CudaBackend, WithoutADeviceCreateSaysWhy) {
  if (cuda::DeviceName(0).ok()) GTEST_SKIP() << "this machine has a CUDA device";
  ModelWeights w = ShapeModel({8, 1, 4, 4}, 1);
  Result<std::shared_ptr<const Engine>> e = Engine::Create(w, Backend::kCuda);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("CUDA"), std::string::npos) << e.status().message();
}

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::string> name = cuda::DeviceName(0);
    if (!name.ok()) GTEST_SKIP() << "no GPU test: " << name.status().message();
  }
};

TEST_F(CudaDevice, EngineMatchesScalarForEveryShape) {
  for (const Shape& s : kShapes) {
    ModelWeights w = ShapeModel(s, s.d_model);
    auto cpu = Engine::Create(w, Backend::kScalar).value();
    auto gpu = Engine::Create(w, Backend::kCuda).value();
    ExpectSame(RunScript(cpu, 5, 12, 6, s.d_model), RunScript(gpu, 5, 12, 6, s.d_model), Name(s) + " on " + gpu->name());
  }
}

TEST_F(CudaDevice, OneToManyLanes) {
  ModelWeights w = ShapeModel({64, 2, 4, 16}, 4);
  auto cpu = Engine::Create(w, Backend::kAuto).value();
  auto gpu = Engine::Create(w, Backend::kCuda).value();
  for (int lanes : {1, 2, 64, 1024, 4096}) {
    const int calls = lanes >= 1024 ? 3 : 12;
    ExpectSame(RunScript(cpu, lanes, calls, 2, 9), RunScript(gpu, lanes, calls, 2, 9), std::to_string(lanes) + " lanes");
  }
}

}  // namespace
}  // namespace boa::engine
