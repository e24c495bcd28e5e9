// Experiment configs: the original schema loads, relative paths resolve against the file,
// unknown keys are reported, wrong types and bad splits are errors naming the key's path;
// TrainingOf carries every setting to the trainer.
#include "client/experiment.h"

#include "testkit/test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace boa::client {
namespace {

namespace testing = boa::testing;

class ExperimentTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_{"boa_experiment_test"};
  const std::string dir_ = tmp_.path();
  std::string Write(const std::string& text) {
    std::string p = dir_ + "/exp.yaml";
    std::ofstream(p) << text;
    return p;
  }
  std::string Error(const std::string& text) {
    auto r = LoadExperiment(Write(text));
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? "" : r.status().message();
  }
};

constexpr const char* kOriginal = R"(name: example_experiment
file_path: data/dataset.bin
progress: true
device: cuda
precision: fp16
dataloader:
  seq_len: 32768
  batch_size: 3
model:
  d_model: 256
  num_layers: 8
training:
  lr: 5e-4
  epochs: 50
compression:
  chunks_count: 1000
  file_to_compress: ''
splits: [0.8, 0.1, 0.1]
)";

TEST_F(ExperimentTest, TrainingOfMapsEverySetting) {
  std::string text = kOriginal;
  const std::string epochs = "  epochs: 50\n";
  text.replace(text.find(epochs), epochs.size(),
               epochs + "  seed: 7\n  max_seconds: 30\n  max_bytes: 1000\n  threads: 2\n  patience: 3\n");
  auto r = LoadExperiment(Write(text));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const train::TrainOptions t = TrainingOf(*r);
  EXPECT_EQ(t.files, std::vector<std::string>{dir_ + "/data/dataset.bin"});
  EXPECT_EQ(t.model.d_model, 256u);
  EXPECT_EQ(t.model.n_layers, 8u);
  EXPECT_EQ(t.seq_len, 32768);
  EXPECT_EQ(t.batch_size, 3);
  EXPECT_DOUBLE_EQ(t.lr, 5e-4);
  EXPECT_EQ(t.epochs, 50);
  EXPECT_EQ(t.splits, (std::vector<double>{0.8, 0.1, 0.1}));
  EXPECT_EQ(t.precision, "fp16");
  EXPECT_EQ(t.seed, 7u);
  EXPECT_DOUBLE_EQ(t.max_seconds, 30);
  EXPECT_EQ(t.max_bytes, 1000u);
  EXPECT_EQ(t.threads, 2);
  EXPECT_EQ(t.patience, 3);
  EXPECT_DOUBLE_EQ(t.weight_decay, 0.01);
  EXPECT_EQ(t.output, dir_ + "/example_experiment_final_model_fp16.boam");
}

TEST_F(ExperimentTest, TheOriginalSchemaLoads) {
  auto r = LoadExperiment(Write(kOriginal));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->name, "example_experiment");
  EXPECT_EQ(r->Resolve(r->file_path), dir_ + "/data/dataset.bin");
  EXPECT_EQ(r->device, "cuda");
  EXPECT_EQ(r->seq_len, 32768);
  EXPECT_EQ(r->batch_size, 3);
  EXPECT_EQ(r->d_model, 256u);
  EXPECT_EQ(r->num_layers, 8u);
  EXPECT_DOUBLE_EQ(r->lr, 5e-4);
  EXPECT_EQ(r->epochs, 50);
  EXPECT_EQ(r->chunks_count, 1000u);
  EXPECT_EQ(r->ModelOutput(), dir_ + "/example_experiment_final_model_fp16.boam");
  EXPECT_TRUE(r->warnings.empty());
}

TEST_F(ExperimentTest, SplitsAsTheInteractiveCreatorWroteThem) {
  std::string text = kOriginal;
  text.replace(text.find("[0.8, 0.1, 0.1]"), 15, "\"0.7,0.2,0.1\"");
  auto r = LoadExperiment(Write(text));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->splits[1], 0.2);
}

TEST_F(ExperimentTest, UnknownKeysAreReportedWithTheirPath) {
  auto r = LoadExperiment(Write(std::string(kOriginal) + "colour: blue\n"));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("'colour'"), std::string::npos);
  std::string text = kOriginal;
  text.replace(text.find("  epochs: 50"), 12, "  epochs: 50\n  lr_decay: 3");
  r = LoadExperiment(Write(text));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("'training.lr_decay'"), std::string::npos) << r->warnings[0];
}

TEST_F(ExperimentTest, WrongTypesNameTheKeyPath) {
  std::string text = kOriginal;
  text.replace(text.find("lr: 5e-4"), 8, "lr: fast");
  std::string e = Error(text);
  EXPECT_NE(e.find("training.lr: expected a number, got 'fast'"), std::string::npos) << e;
  text = kOriginal;
  text.replace(text.find("seq_len: 32768"), 14, "seq_len: [1, 2]");
  e = Error(text);
  EXPECT_NE(e.find("dataloader.seq_len"), std::string::npos) << e;
  text = kOriginal;
  text.replace(text.find("model:\n  d_model"), 6, "model: 3\nx:");
  EXPECT_FALSE(LoadExperiment(Write(text)).ok());
}

TEST_F(ExperimentTest, SplitsMustSumToOne) {
  std::string text = kOriginal;
  text.replace(text.find("[0.8, 0.1, 0.1]"), 15, "[0.8, 0.1, 0.2]");
  std::string e = Error(text);
  EXPECT_NE(e.find("splits: fractions sum to 1.1"), std::string::npos) << e;
  text.replace(text.find("[0.8, 0.1, 0.2]"), 15, "[0.5, 0.5]");
  EXPECT_NE(Error(text).find("3 fractions"), std::string::npos);
}

TEST_F(ExperimentTest, MissingNameAndBadDevice) {
  std::string text = kOriginal;
  text.replace(0, 24, "");
  EXPECT_NE(Error(text).find("name"), std::string::npos);
  text = kOriginal;
  text.replace(text.find("device: cuda"), 12, "device: tpu");
  EXPECT_NE(Error(text).find("device"), std::string::npos);
}

TEST_F(ExperimentTest, NamesResolveUnderExperiments) {
  EXPECT_EQ(ExperimentPath("jets"), "experiments/jets/jets.yaml");
  EXPECT_EQ(ExperimentPath("my/exp.yaml"), "my/exp.yaml");
  EXPECT_EQ(ExperimentPath("exp.yml"), "exp.yml");
  auto r = LoadExperiment("no_such_experiment_here");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("experiments/no_such_experiment_here/no_such_experiment_here.yaml"), std::string::npos);
}

TEST_F(ExperimentTest, SaveAndLoadRoundTrip) {
  ExperimentConfig c;
  c.name = "saved";
  c.file_path = "x.bin";
  c.d_model = 64;
  c.splits = {0.6, 0.2, 0.2};
  ASSERT_TRUE(SaveExperiment(c, dir_ + "/saved.yaml").ok());
  auto r = LoadExperiment(dir_ + "/saved.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->d_model, 64u);
  EXPECT_DOUBLE_EQ(r->splits[0], 0.6);
  EXPECT_TRUE(r->warnings.empty());
}

}  // namespace
}  // namespace boa::client
