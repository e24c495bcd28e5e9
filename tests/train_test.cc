// Training: the selective-scan kernel's gradients against naive autograd, the module's
// parameter names and shapes, weight round trips, parity of LibTorch's cross-entropy with
// the engine's, and a short training run that learns.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/train/boa_net.h"
#include "common/train/selective_scan.h"
#include "common/train/trainer.h"
#include "common/util/io.h"
#include "testkit/test_util.h"
#include "tests/train_test_util.h"

namespace boa::train {
namespace {

TEST(SelectiveScan, GradientsMatchNaiveAutogradInDouble) {
  torch::manual_seed(3);
  for (int64_t segment : {1, 3, 64}) {
    auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
    const int64_t B = 2, L = 7, E = 3, S = 4;
    torch::Tensor u = torch::randn({B, L, E}, opts);
    torch::Tensor delta = (torch::rand({B, L, E}, torch::kFloat64) * 0.5 + 0.01).requires_grad_(true);
    torch::Tensor A = (-torch::rand({E, S}, torch::kFloat64) * 2 - 0.1).requires_grad_(true);
    torch::Tensor Bm = torch::randn({B, L, S}, opts), Cm = torch::randn({B, L, S}, opts);
    torch::Tensor w = torch::randn({B, L, E}, torch::kFloat64);
    torch::Tensor y1 = SelectiveScan(u, delta, A, Bm, Cm, segment);
    auto g1 = torch::autograd::grad({(y1 * w).sum()}, {u, delta, A, Bm, Cm});
    torch::Tensor y2 = SelectiveScanReference(u, delta, A, Bm, Cm);
    auto g2 = torch::autograd::grad({(y2 * w).sum()}, {u, delta, A, Bm, Cm});
    EXPECT_LE(MaxRelErr(y1, y2), 1e-12) << "segment " << segment;
    const char* names[] = {"u", "delta", "A", "B", "C"};
    for (int i = 0; i < 5; ++i) EXPECT_LE(MaxRelErr(g1[i], g2[i]), 1e-6) << names[i] << " segment " << segment;
  }
}

TEST(SelectiveScan, FloatKernelsMatchTheDoubleReference) {
  // Float runs the vectorised kernels for full blocks of 8 channels and the scalar code for
  // the rest (E = 11: one block and a tail of 3).
  torch::manual_seed(4);
  for (int64_t E : {8, 11, 16}) {
    const int64_t B = 3, L = 150, S = 16;
    torch::Tensor u = torch::randn({B, L, E}, torch::kFloat64);
    torch::Tensor delta = torch::rand({B, L, E}, torch::kFloat64) * 0.3 + 0.01;
    torch::Tensor A = -torch::rand({E, S}, torch::kFloat64) * 4 - 0.1;
    torch::Tensor Bm = torch::randn({B, L, S}, torch::kFloat64), Cm = torch::randn({B, L, S}, torch::kFloat64);
    torch::Tensor w = torch::randn({B, L, E}, torch::kFloat64);
    std::vector<torch::Tensor> d = {u, delta, A, Bm, Cm}, f;
    for (auto& t : d) t.requires_grad_(true);
    for (auto& t : d) f.push_back(t.detach().to(torch::kFloat32).requires_grad_(true));
    torch::Tensor yd = SelectiveScan(d[0], d[1], d[2], d[3], d[4], 64);
    auto gd = torch::autograd::grad({(yd * w).sum()}, d);
    torch::Tensor yf = SelectiveScan(f[0], f[1], f[2], f[3], f[4], 64);
    auto gf = torch::autograd::grad({(yf * w.to(torch::kFloat32)).sum()}, f);
    EXPECT_LE(MaxRelErr(yf.to(torch::kFloat64), yd), 1e-5) << "E " << E;
    for (int i = 0; i < 5; ++i) EXPECT_LE(MaxRelErr(gf[i].to(torch::kFloat64), gd[i]), 1e-4) << "input " << i << " E " << E;
  }
}

TEST(BoaNet, ParameterNamesAndShapesAreThePublicOnes) {
  ModelConfig c = ModelConfig::Default(32, 2);
  BoaNet net(c);
  auto params = net->named_parameters(true);
  std::vector<Tensor> want = ExpectedTensorShapes(c);
  ASSERT_EQ(params.size(), want.size());
  for (const Tensor& t : want) {
    torch::Tensor* p = params.find(t.name);
    ASSERT_NE(p, nullptr) << t.name;
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    EXPECT_EQ(p->sizes(), torch::IntArrayRef(shape)) << t.name;
  }
}

TEST(BoaNet, WeightsRoundTrip) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(16, 1), 4);
  BoaNet net(w.config);
  ASSERT_TRUE(LoadWeights(net, w).ok());
  ModelWeights back = ExportWeights(net);
  for (size_t i = 0; i < w.tensors.size(); ++i) EXPECT_EQ(back.tensors[i].data, w.tensors[i].data) << w.tensors[i].name;
}

TEST(BoaNet, CrossEntropyMatchesTheEngine) {
  LoadedModel m = testing::MakeModel(32, 2, 7, 5.0f);
  std::vector<uint8_t> data = testing::SampleFromModel(m, 6000, 2);
  BoaNet net(m.weights.config);
  ASSERT_TRUE(LoadWeights(net, m.weights).ok());
  net->eval();
  double torch_bpb = CrossEntropyBitsPerByte(net, data, 2000);
  CodecOptions o;
  o.chunk_length = 2000;
  MemorySource src(data);
  auto engine = Evaluate(m, &src, o);
  ASSERT_TRUE(engine.ok());
  double engine_bpb = engine->bits_per_byte();
  std::printf("[ parity ] LibTorch %.8f, engine %.8f bits/byte\n", torch_bpb, engine_bpb);
  EXPECT_NEAR(torch_bpb, engine_bpb, 1e-4 * engine_bpb);
}

TEST(Trainer, SplitsMustSumToOne) {
  EXPECT_TRUE(ValidateSplits({0.8, 0.1, 0.1}).ok());
  EXPECT_TRUE(ValidateSplits({1.0, 0.0, 0.0}).ok());
  Status s = ValidateSplits({0.8, 0.1, 0.2});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sum to 1.1"), std::string::npos) << s.message();
  EXPECT_FALSE(ValidateSplits({0.8, 0.2}).ok());
  EXPECT_FALSE(ValidateSplits({-0.1, 0.6, 0.5}).ok());
}

TEST(Trainer, LearnsAndWritesAModelTheCodecUses) {
  testing::TempDir tmp("boa_train_test");
  const std::string dir = tmp.path();
  std::string data_path = std::string(dir) + "/data.bin", model_path = std::string(dir) + "/m.boam";
  std::vector<uint8_t> data = testing::FloatTable(60000, 3);
  ASSERT_TRUE(WriteFileAtomic(data_path, data, true).ok());
  TrainOptions o;
  o.files = {data_path};
  o.model = ModelConfig::Default(16, 1);
  o.seq_len = 256;
  o.batch_size = 8;
  o.lr = 5e-3;
  o.epochs = 2;
  o.eval_chunk = 4096;
  o.output = model_path;
  TrainReport r;
  Status s = Train(o, &r);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_GT(r.loss_curve.size(), 10u);
  EXPECT_LT(r.final_loss_bpb, r.loss_curve.front().second - 1.0) << "the loss should fall by over a bit per byte";
  EXPECT_GT(r.val_bpb, 0);
  EXPECT_LT(r.test_bpb, 7.0);
  auto m = LoadModelFile(model_path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<uint8_t> test(data.begin() + 54000, data.end()), packed, back;
  CodecOptions co;
  co.chunk_length = 4096;
  ASSERT_TRUE(testing::CompressBytes(*m, test, &packed, co).ok());
  ASSERT_TRUE(testing::DecompressBytes(*m, packed, &back, co).ok());
  EXPECT_EQ(back, test);
  EXPECT_LT(packed.size(), test.size() * 0.9) << "the trained model compresses its kind of data";
}

class TrainerFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/data.bin", testing::FloatTable(40000, 5), true).ok());
  }
  TrainOptions Options(const std::string& out) {
    TrainOptions o;
    o.files = {dir_ + "/data.bin"};
    o.model = ModelConfig::Default(16, 1);
    o.seq_len = 128;
    o.batch_size = 4;
    o.lr = 5e-3;
    o.epochs = 3;
    o.eval_chunk = 4096;
    o.threads = 2;
    o.output = dir_ + "/" + out;
    return o;
  }
  std::vector<uint8_t> Bytes(const std::string& name) { return ReadFile(dir_ + "/" + name, 1 << 30).value(); }
  bool Exists(const std::string& name) { return std::filesystem::exists(dir_ + "/" + name); }
  testing::TempDir tmp_{"boa_trainer_test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(TrainerFiles, SeededRunsAreReproducibleAndResumeContinuesExactly) {
  TrainReport a, b, c1, c2;
  ASSERT_TRUE(Train(Options("a.boam"), &a).ok());
  ASSERT_TRUE(Train(Options("b.boam"), &b).ok());
  EXPECT_EQ(Bytes("a.boam"), Bytes("b.boam")) << "same seed, same machine: same model";
  // Interrupted after one epoch, then resumed: the same model as an uninterrupted run.
  TrainOptions o = Options("c.boam");
  o.run_epochs = 1;
  ASSERT_TRUE(Train(o, &c1).ok());
  EXPECT_EQ(c1.epochs_done, 1);
  o.run_epochs = 0;
  o.resume = true;
  ASSERT_TRUE(Train(o, &c2).ok());
  EXPECT_TRUE(c2.resumed);
  EXPECT_EQ(c2.steps, a.steps);
  EXPECT_EQ(c2.loss_curve.size(), a.loss_curve.size());
  EXPECT_EQ(Bytes("c.boam"), Bytes("a.boam"));
  // Report and loss curve are written next to the model.
  std::vector<uint8_t> json = Bytes("a.boam.report.json"), csv = Bytes("a.boam.loss.csv");
  std::string j(json.begin(), json.end()), cs(csv.begin(), csv.end());
  EXPECT_NE(j.find("\"test_bpb\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"bytes_seen\": " + std::to_string(a.bytes_seen)), std::string::npos) << j;
  EXPECT_EQ(std::count(cs.begin(), cs.end(), '\n'), static_cast<long>(a.loss_curve.size() + 1));
}

// What a run killed while checkpointing leaves: the next generation half written, CURRENT's
// temporary. Resume takes the last complete checkpoint, removes the rest, and is still exact.
TEST_F(TrainerFiles, AKillWhileCheckpointingLeavesTheLastCompleteCheckpoint) {
  TrainReport a, first, resumed;
  ASSERT_TRUE(Train(Options("a.boam"), &a).ok());
  TrainOptions o = Options("k.boam");
  o.run_epochs = 1;
  ASSERT_TRUE(Train(o, &first).ok());
  const std::string ckpt = dir_ + "/k.boam.ckpt";
  EXPECT_EQ(Bytes("k.boam.ckpt/CURRENT"), std::vector<uint8_t>({'g', 'e', 'n', '-', '0', '0', '0', '0', '0', '1', '\n'}));
  std::filesystem::create_directories(ckpt + "/gen-000002");
  ASSERT_TRUE(WriteFileAtomic(ckpt + "/gen-000002/model.pt", {1, 2, 3}, true).ok());
  ASSERT_TRUE(WriteFileAtomic(ckpt + "/.CURRENT.tmp-abcdef", {'g'}, true).ok());
  o.run_epochs = 0;
  o.resume = true;
  ASSERT_TRUE(Train(o, &resumed).ok());
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(Bytes("k.boam"), Bytes("a.boam"));
  EXPECT_FALSE(Exists("k.boam.ckpt/.CURRENT.tmp-abcdef"));
  EXPECT_FALSE(Exists("k.boam.ckpt/gen-000001")) << "superseded generations are removed";
  // A new run over that directory numbers after it: CURRENT never names what it overwrites.
  const auto current = [&] {
    const std::vector<uint8_t> c = Bytes("k.boam.ckpt/CURRENT");
    return std::stoi(std::string(c.begin() + 4, c.end()));
  };
  const int before = current();
  o.resume = false;
  o.run_epochs = 1;
  ASSERT_TRUE(Train(o, &first).ok());
  EXPECT_EQ(current(), before + 1);
  o.resume = true;
  o.run_epochs = 0;
  // A CURRENT that names no complete checkpoint is reported, not trained over.
  ASSERT_TRUE(WriteFileAtomic(ckpt + "/CURRENT", {'g', 'e', 'n', '-', '9', '9', '9', '9', '9', '9', '\n'}, true).ok());
  Status s = Train(o, &resumed);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.message();
  EXPECT_NE(s.message().find("CURRENT: names gen-999999"), std::string::npos) << s.message();
}

TEST_F(TrainerFiles, ReportedSecondsAreWallTimeAcrossEpochCheckpoints) {
  // Every epoch writes a checkpoint; the clock (report, rate, --max-seconds) must not count
  // the time before a checkpoint twice.
  TrainOptions o = Options("t.boam");
  o.epochs = 4;
  TrainReport r;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Train(o, &r).ok());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.epochs_done, 4);
  EXPECT_LE(r.seconds, wall);  // four epochs counted twice or more would exceed it
  EXPECT_GT(r.seconds, 0.0);
}

TEST_F(TrainerFiles, AStopRequestCheckpointsInsideTheEpochAndResumeIsExact) {
  TrainReport a, stopped, resumed;
  ASSERT_TRUE(Train(Options("a.boam"), &a).ok());
  TrainOptions o = Options("s.boam");
  int polls = 0;
  o.should_stop = [&] { return ++polls > 3; };  // three steps, then stop mid-epoch
  Status s = Train(o, &stopped);
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.message();
  EXPECT_FALSE(Exists("s.boam")) << "no model file from a stopped run";
  o.should_stop = nullptr;
  o.resume = true;
  ASSERT_TRUE(Train(o, &resumed).ok());
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.steps, a.steps);
  EXPECT_EQ(Bytes("s.boam"), Bytes("a.boam")) << "stopped at step 3 and resumed: the uninterrupted model";
}

TEST_F(TrainerFiles, EarlyStoppingKeepsTheBestEpochAndF16Output) {
  // The validation region is random bytes: the better the model fits the float table, the
  // worse it predicts them, so validation stops improving.
  std::vector<uint8_t> data = testing::FloatTable(32000, 5), noise = testing::RandomBytes(4000, 9);
  data.insert(data.end(), noise.begin(), noise.end());
  std::vector<uint8_t> tail = testing::FloatTable(4000, 6);
  data.insert(data.end(), tail.begin(), tail.end());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/data.bin", data, true).ok());
  TrainOptions o = Options("e.boam");
  o.epochs = 8;
  o.patience = 1;
  o.output_type = WeightType::kF16;
  TrainReport r;
  ASSERT_TRUE(Train(o, &r).ok());
  std::printf("[ early stop ] epochs %d, best %d, stopped %d\n", r.epochs_done, r.best_epoch, r.early_stopped);
  EXPECT_TRUE(r.early_stopped);
  EXPECT_EQ(r.epochs_done, r.best_epoch + 1);
  auto m = LoadModelFile(o.output);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->stored_type, WeightType::kF16);
}

TEST_F(TrainerFiles, Bf16TrainsAndByteBudgetStops) {
  TrainOptions o = Options("bf.boam");
  o.precision = "bf16";
  o.epochs = 2;
  o.max_bytes = 20 * 128 * 4;  // 20 steps
  TrainReport r;
  Status s = Train(o, &r);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(r.steps, 20u);
  EXPECT_LT(r.loss_curve.back().second, r.loss_curve.front().second - 0.5) << "bf16 training learns";
  EXPECT_TRUE(LoadModelFile(o.output).ok());
}

TEST(Trainer, RefusesUnsupportedPrecisionClearly) {
  TrainOptions o;
  o.files = {"/nonexistent"};
  o.precision = "fp8";
  Status s = Train(o, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("supported: fp32"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace boa::train
