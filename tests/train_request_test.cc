// Checking a Train request without a live boad: files only inside train_data_dir (no "..",
// no absolute paths, no links out, no directories), defaults equal to the trainer's (as
// `boa-client train` uses them), every field mapped, and refusals with the right code.
#include "server/train_request.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "testkit/test_util.h"

namespace boa::server {
namespace {

namespace fs = std::filesystem;

class TrainRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.path() + "/data";
    fs::create_directories(data_ + "/sub");
    std::ofstream(data_ + "/a.bin") << std::string(100000, 'a');
    std::ofstream(data_ + "/sub/b.bin") << "b";
    std::ofstream(dir_.path() + "/secret.bin") << "s";
    fs::create_symlink(dir_.path() + "/secret.bin", data_ + "/out.bin");
    fs::create_symlink(data_ + "/a.bin", data_ + "/in.bin");
    limits_.data_dir = data_;
    limits_.memory_budget = 8ull << 30;
  }
  v1::TrainRequest Request() const {
    v1::TrainRequest r;
    r.set_name("jets");
    r.add_files("a.bin");
    return r;
  }
  testing::TempDir dir_{"train_request"};
  std::string data_;
  TrainLimits limits_;
};

TEST_F(TrainRequestTest, FilesMustLieInsideTheDataDirectory) {
  EXPECT_EQ(*ResolveTrainingFile(data_, "a.bin"), fs::canonical(data_ + "/a.bin").string());
  EXPECT_TRUE(ResolveTrainingFile(data_, "sub/b.bin").ok());
  EXPECT_TRUE(ResolveTrainingFile(data_, "in.bin").ok()) << "a link that stays inside";
  for (const std::string bad : {"", "../secret.bin", "sub/../../secret.bin", "/etc/passwd", "out.bin", "sub", "none.bin"}) {
    Result<std::string> r = ResolveTrainingFile(data_, bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
    if (!bad.empty()) EXPECT_NE(r.status().message().find("'" + bad + "'"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(ResolveTrainingFile(dir_.path() + "/missing", "a.bin").status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TrainRequestTest, EmptyFieldsTakeTheTrainersDefaults) {
  Result<train::TrainOptions> o = TrainOptionsFromRequest(Request(), limits_);
  ASSERT_TRUE(o.ok()) << o.status().message();
  const train::TrainOptions defaults;
  EXPECT_EQ(o->model.d_model, defaults.model.d_model);
  EXPECT_EQ(o->model.n_layers, defaults.model.n_layers);
  EXPECT_EQ(o->seq_len, defaults.seq_len);
  EXPECT_EQ(o->batch_size, defaults.batch_size);
  EXPECT_EQ(o->lr, defaults.lr);
  EXPECT_EQ(o->epochs, defaults.epochs);
  EXPECT_EQ(o->splits, defaults.splits);
  EXPECT_EQ(o->output_type, WeightType::kF32);
  EXPECT_EQ(o->match_model, "auto");
  ASSERT_EQ(o->files.size(), 1u);
  EXPECT_EQ(o->files[0], fs::canonical(data_ + "/a.bin").string());
}

TEST_F(TrainRequestTest, EveryFieldIsMapped) {
  v1::TrainRequest r = Request();
  r.set_d_model(16);
  r.set_n_layers(3);
  r.set_seq_len(128);
  r.set_batch_size(2);
  r.set_lr(0.01);
  r.set_epochs(4);
  r.set_max_seconds(30);
  r.set_max_bytes(5000);
  r.add_splits(0.7);
  r.add_splits(0.2);
  r.add_splits(0.1);
  r.set_seed(9);
  r.set_precision("bf16");
  r.set_dtype("f16");
  r.set_patience(2);
  r.set_match_model("off");
  limits_.threads = 3;
  Result<train::TrainOptions> o = TrainOptionsFromRequest(r, limits_);
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->model.d_model, 16u);
  EXPECT_EQ(o->model.n_layers, 3u);
  EXPECT_EQ(o->seq_len, 128);
  EXPECT_EQ(o->batch_size, 2);
  EXPECT_EQ(o->lr, 0.01);
  EXPECT_EQ(o->epochs, 4);
  EXPECT_EQ(o->max_seconds, 30);
  EXPECT_EQ(o->max_bytes, 5000u);
  EXPECT_EQ(o->splits, (std::vector<double>{0.7, 0.2, 0.1}));
  EXPECT_EQ(o->seed, 9u);
  EXPECT_EQ(o->precision, "bf16");
  EXPECT_EQ(o->output_type, WeightType::kF16);
  EXPECT_EQ(o->patience, 2);
  EXPECT_EQ(o->match_model, "off");
  EXPECT_EQ(o->threads, 3);
}

TEST_F(TrainRequestTest, AShortBudgetWithoutAShapeTrainsTheSmallerModel) {
  const auto shape = [&](double seconds, uint32_t d_model, uint32_t layers) {
    v1::TrainRequest r = Request();
    r.set_max_seconds(seconds);
    r.set_d_model(d_model);
    r.set_n_layers(layers);
    Result<train::TrainOptions> o = TrainOptionsFromRequest(r, limits_);
    EXPECT_TRUE(o.ok()) << o.status().message();
    return o.ok() ? std::make_pair(o->model.d_model, o->model.n_layers) : std::make_pair(0u, 0u);
  };
  const double small = train::kSmallModelBudgetSeconds;
  EXPECT_EQ(shape(0, 0, 0), std::make_pair(64u, 2u)) << "no budget";
  EXPECT_EQ(shape(small, 0, 0), std::make_pair(64u, 2u));
  EXPECT_EQ(shape(small - 1, 0, 0), std::make_pair(32u, 2u));
  EXPECT_EQ(shape(60, 0, 0), std::make_pair(32u, 2u));
  EXPECT_EQ(shape(60, 48, 0), std::make_pair(48u, 2u)) << "a given width is kept";
  EXPECT_EQ(shape(60, 0, 3), std::make_pair(32u, 3u)) << "a given depth is kept, the width from the budget";
}

TEST_F(TrainRequestTest, RefusalsHaveTheRightCode) {
  EXPECT_EQ(TrainOptionsFromRequest(Request(), TrainLimits{}).status().code(), StatusCode::kFailedPrecondition)
      << "training is off without a data directory";
  v1::TrainRequest r = Request();
  r.set_name("../x");
  EXPECT_EQ(TrainOptionsFromRequest(r, limits_).status().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.clear_files();
  EXPECT_EQ(TrainOptionsFromRequest(r, limits_).status().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.set_dtype("f8");
  EXPECT_EQ(TrainOptionsFromRequest(r, limits_).status().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.set_match_model("sometimes");
  EXPECT_EQ(TrainOptionsFromRequest(r, limits_).status().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.set_lr(std::nan(""));
  EXPECT_EQ(TrainOptionsFromRequest(r, limits_).status().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.set_d_model(2048);
  limits_.memory_budget = 64ull << 20;
  Result<train::TrainOptions> big = TrainOptionsFromRequest(r, limits_);
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("train_memory_budget"), std::string::npos) << big.status().message();
}

}  // namespace
}  // namespace boa::server
