// boa-client end to end: zstd conventions (suffixes, -o/-c/-f/--rm, stdin/stdout, keep the
// source and its mode/mtime), one clear line and exit 1 on failure, and no partial or
// temporary file left behind when anything goes wrong.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "testkit/test_util.h"

namespace boa {
namespace {

struct Outcome {
  int code;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Run("model init --d-model 16 --layers 1 --seed 1 -o m.boam -q").code, 0);
    ASSERT_EQ(Run("model init --d-model 16 --layers 1 --seed 2 -o other.boam -q").code, 0);
    Write("data.bin", testing::FloatTable(30000, 1));
  }
  Outcome Run(const std::string& args, const std::string& stdin_file = "") {
    std::string cmd = BOA_CLIENT + std::string(" --local ") + args;
    if (!stdin_file.empty()) cmd += " < " + stdin_file;
    return Shell(cmd);
  }
  Outcome Shell(const std::string& command) {
    std::string cmd = "cd '" + dir_ + "' && { " + command + "; } > .stdout 2> .stderr";
    int rc = std::system(cmd.c_str());
    Outcome o{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ReadText(".stdout"), ReadText(".stderr")};
    unlink((dir_ + "/.stdout").c_str());
    unlink((dir_ + "/.stderr").c_str());
    return o;
  }
  std::string ReadText(const std::string& name) {
    std::ifstream f(dir_ + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::vector<uint8_t> Read(const std::string& name) {
    std::string s = ReadText(name);
    return std::vector<uint8_t>(s.begin(), s.end());
  }
  void Write(const std::string& name, const std::vector<uint8_t>& data) {
    std::ofstream f(dir_ + "/" + name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  bool Exists(const std::string& name) { return access((dir_ + "/" + name).c_str(), F_OK) == 0; }
  // Names in the directory other than the given ones (e.g. leftover temporary files).
  std::vector<std::string> Others(std::initializer_list<std::string> known) {
    std::vector<std::string> out;
    DIR* d = opendir(dir_.c_str());
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == ".." || std::find(known.begin(), known.end(), n) != known.end()) continue;
      out.push_back(n);
    }
    closedir(d);
    return out;
  }
  static int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }
  testing::TempDir tmp_{"boa_cli_test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(CliTest, CompressDecompressKeepsSourceModeAndTime) {
  ASSERT_EQ(chmod((dir_ + "/data.bin").c_str(), 0640), 0);
  struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ + "/data.bin").c_str(), times, 0), 0);
  Outcome c = Run("compress data.bin -m m.boam");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(Exists("data.bin")) << "the source is kept";
  ASSERT_TRUE(Exists("data.bin.boa"));
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/data.bin.boa").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  Outcome d = Run("decompress data.bin.boa -m m.boam -o back.bin");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(Read("back.bin"), Read("data.bin"));
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "data.bin.boa", "back.bin"}).empty());
}

// `model sample` writes data the model codes best: every chunk of it is model-coded.
TEST_F(CliTest, ModelSampleWritesDataEveryChunkOfWhichIsModelCoded) {
  Outcome o = Run("model sample m.boam --bytes 96K --seed 5 -o s.bin");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("98304 bytes sampled from m.boam (seed 5)"), std::string::npos) << o.out;
  EXPECT_EQ(Read("s.bin").size(), 96u << 10);
  ASSERT_EQ(Run("compress s.bin -m m.boam --chunk-size 32K -q").code, 0);
  o = Run("info s.bin.boa");
  EXPECT_NE(o.out.find("3 (3 model-coded, 0 lzma2, 0 stored)"), std::string::npos) << o.out;
  EXPECT_EQ(Run("model sample m.boam --bytes 96K --seed 5 -o s.bin").code, 1) << "no overwrite without -f";
  o = Run("model sample m.boam --bytes lots -o t.bin");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("--bytes"), std::string::npos) << o.err;
  EXPECT_FALSE(Exists("t.bin"));
}

TEST_F(CliTest, DecompressStripsSuffixAndRefusesToOverwrite) {
  ASSERT_EQ(Run("compress data.bin -m m.boam").code, 0);
  Outcome d = Run("decompress data.bin.boa -m m.boam");
  EXPECT_EQ(d.code, 1);
  EXPECT_NE(d.err.find("already exists"), std::string::npos) << d.err;
  EXPECT_EQ(Lines(d.err), 1) << d.err;
  ASSERT_EQ(Run("decompress -f data.bin.boa -m m.boam").code, 0);
  Outcome bad = Run("decompress data.bin -m m.boam");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("suffix"), std::string::npos) << bad.err;
}

TEST_F(CliTest, StdinToStdout) {
  Outcome c = Run("compress -m m.boam -q -c", "data.bin");
  ASSERT_EQ(c.code, 0) << c.err;
  Write("piped.boa", std::vector<uint8_t>(c.out.begin(), c.out.end()));
  Outcome d = Run("decompress -m m.boam -q -c -", "piped.boa");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, ReadText("data.bin"));
  // A pipe (unknown length) is accepted too.
  const std::string client = std::string(BOA_CLIENT) + " --local";
  Outcome p = Shell("cat data.bin | " + client + " compress -m m.boam -q - | cat > viapipe.boa; cat viapipe.boa | " +
                    client + " decompress -m m.boam -q -c > viapipe.out; cmp viapipe.out data.bin && echo same");
  EXPECT_EQ(p.out, "same\n") << p.err;
}

TEST_F(CliTest, RefusesCompressedDataToATerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "script(1) not installed";
  Outcome o = Shell("script -qec '" + std::string(BOA_CLIENT) + " --local compress -m m.boam -c data.bin' /dev/null");
  EXPECT_NE(o.out.find("refusing to write compressed data to a terminal"), std::string::npos) << o.out << o.err;
}

TEST_F(CliTest, RefusesToWaitForDataTypedOnATerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "script(1) not installed";
  for (const char* command : {"compress -m m.boam -c", "decompress -m m.boam -c -", "verify -m m.boam"}) {
    Outcome o = Shell("timeout 10 script -qec '" + std::string(BOA_CLIENT) + " --local " + command + "' /dev/null");
    EXPECT_NE(o.out.find("standard input is a terminal"), std::string::npos) << command << ": " << o.out << o.err;
  }
}

// Options may come before the command (git style), and zstd's form still works; a file
// named like a command is reached after `--`.
TEST_F(CliTest, OptionsBeforeTheCommandAndFilesNamedLikeCommands) {
  Outcome c = Shell(std::string(BOA_CLIENT) + " --local -T 1 -q compress data.bin -m m.boam");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(Exists("data.bin.boa"));
  Outcome d = Shell(std::string(BOA_CLIENT) + " --local -d -T 1 -m m.boam data.bin.boa -o back.bin");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(Read("back.bin"), Read("data.bin"));
  Write("compress", testing::FloatTable(2000, 5));
  Outcome f = Shell(std::string(BOA_CLIENT) + " --local -m m.boam -q -- compress");
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_TRUE(Exists("compress.boa"));
  Outcome g = Shell(std::string(BOA_CLIENT) + " --local --chunk-size 4K -m m.boam -q ./compress -o viadot.boa");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_TRUE(Exists("viadot.boa"));
}

TEST_F(CliTest, WrongModelFailsCleanlyNamingBothIds) {
  ASSERT_EQ(Run("compress data.bin -m m.boam").code, 0);
  ASSERT_EQ(Run("model show m.boam").code, 0);
  std::string id1 = Run("model show m.boam").out, id2 = Run("model show other.boam").out;
  id1 = id1.substr(id1.find("model id") + 17, 64);
  id2 = id2.substr(id2.find("model id") + 17, 64);
  Outcome d = Run("decompress data.bin.boa -m other.boam -o out.bin");
  EXPECT_EQ(d.code, 1);
  EXPECT_EQ(Lines(d.err), 1) << d.err;
  EXPECT_NE(d.err.find("data.bin.boa"), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(id1), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(id2), std::string::npos) << d.err;
  EXPECT_FALSE(Exists("out.bin"));
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "data.bin.boa"}).empty());
}

TEST_F(CliTest, CorruptInputLeavesNoOutput) {
  ASSERT_EQ(Run("compress data.bin -m m.boam").code, 0);
  std::vector<uint8_t> b = Read("data.bin.boa");
  b[b.size() / 2] ^= 0x10;
  Write("bad.boa", b);
  Outcome d = Run("decompress bad.boa -m m.boam");
  EXPECT_EQ(d.code, 1);
  EXPECT_EQ(Lines(d.err), 1) << d.err;
  EXPECT_NE(d.err.find("bad.boa"), std::string::npos) << d.err;
  EXPECT_FALSE(Exists("bad"));
  Outcome v = Run("verify bad.boa -m m.boam");
  EXPECT_EQ(v.code, 1);
  Write("short.boa", std::vector<uint8_t>(b.begin(), b.begin() + 100));
  EXPECT_EQ(Run("decompress short.boa -m m.boam").code, 1);
  EXPECT_FALSE(Exists("short"));
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "data.bin.boa", "bad.boa", "short.boa"}).empty());
}

// Text the model was not trained for, compressed to a file: the output is the whole-input
// LZMA2 alternative, never larger than `xz -9` of the whole file but for the container's
// framing; with chunks the user sized, the model's own stream is kept (and is larger, its
// LZMA2 chunks cannot reach across chunks). No temporary file is left either way.
TEST_F(CliTest, AFileIsNeverMuchLargerThanXzOfTheWholeFile) {
  Write("events.txt", testing::EventText(400000, 5));
  Outcome c = Run("-v compress events.txt -m m.boam");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.err.find("whole-input LZMA2 kept"), std::string::npos) << c.err;
  Outcome xz = Shell("xz -9 -c events.txt | wc -c");
  ASSERT_EQ(xz.code, 0);
  const size_t boa = Read("events.txt.boa").size(), xz9 = std::stoul(xz.out);
  EXPECT_LE(boa, xz9 + 96) << "xz -9: " << xz9;  // framing (docs/format.md)
  Outcome info = Run("info events.txt.boa");
  EXPECT_NE(info.out.find("chunks           1 (0 model-coded, 1 lzma2, 0 stored)"), std::string::npos) << info.out;
  ASSERT_EQ(Run("decompress events.txt.boa -o back.txt -m m.boam -q").code, 0);
  EXPECT_EQ(Read("back.txt"), Read("events.txt"));
  Outcome sized = Run("-v compress events.txt -m m.boam --chunk-size 65536 -o sized.boa");
  ASSERT_EQ(sized.code, 0) << sized.err;
  EXPECT_EQ(sized.err.find("whole-input"), std::string::npos) << sized.err;
  EXPECT_GT(Read("sized.boa").size(), boa);
  ASSERT_EQ(Run("compress events.txt -m m.boam -c > piped.boa").code, 0);
  EXPECT_EQ(Read("piped.boa"), Read("sized.boa")) << "standard output gets the model's stream";
  ASSERT_EQ(Shell("cp events.txt gone.txt").code, 0);
  ASSERT_EQ(Run("compress --rm gone.txt -m m.boam -q").code, 0);
  EXPECT_FALSE(Exists("gone.txt"));
  EXPECT_EQ(Read("gone.txt.boa"), Read("events.txt.boa"));
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "events.txt", "events.txt.boa", "back.txt", "sized.boa",
                      "piped.boa", "gone.txt.boa"})
                  .empty());
}

TEST_F(CliTest, SeveralFilesOneFailing) {
  Write("b.bin", testing::FloatTable(1000, 2));
  Outcome c = Run("compress data.bin missing.bin b.bin -m m.boam");
  EXPECT_EQ(c.code, 1);
  EXPECT_NE(c.err.find("missing.bin"), std::string::npos) << c.err;
  EXPECT_TRUE(Exists("data.bin.boa"));
  EXPECT_TRUE(Exists("b.bin.boa"));
  EXPECT_EQ(Run("compress data.bin b.bin -m m.boam -o x.boa").code, 1) << "-o needs one input";
}

TEST_F(CliTest, RemoveSourceAfterSuccess) {
  ASSERT_EQ(Run("compress --rm data.bin -m m.boam -q").code, 0);
  EXPECT_FALSE(Exists("data.bin"));
  ASSERT_EQ(Run("decompress --rm data.bin.boa -m m.boam -q").code, 0);
  EXPECT_FALSE(Exists("data.bin.boa"));
  EXPECT_TRUE(Exists("data.bin"));
}

// The output is compared with the input as files (device and inode), not as names: under
// another spelling, a link or standard input, writing it would destroy the input, and --rm
// would then delete what was left.
TEST_F(CliTest, AnOutputThatIsTheInputIsRefusedBeforeAnythingIsWritten) {
  const std::vector<uint8_t> original = Read("data.bin");
  ASSERT_EQ(symlink("data.bin", (dir_ + "/link.bin").c_str()), 0);
  ASSERT_EQ(link((dir_ + "/data.bin").c_str(), (dir_ + "/hard.bin").c_str()), 0);
  for (const std::string& out : {std::string("./data.bin"), dir_ + "/data.bin", dir_ + "/../" + dir_.substr(5) + "/data.bin",
                                 std::string("link.bin"), std::string("hard.bin")}) {
    Outcome o = Run("compress data.bin -m m.boam -o " + out + " -f --rm");
    EXPECT_EQ(o.code, 1) << out;
    EXPECT_EQ(Lines(o.err), 1) << o.err;
    EXPECT_NE(o.err.find("is the input file"), std::string::npos) << o.err;
    ASSERT_EQ(Read("data.bin"), original) << out;
  }
  Outcome appended = Shell(std::string(BOA_CLIENT) + " --local compress data.bin -m m.boam -c >> data.bin");
  EXPECT_EQ(appended.code, 1);
  EXPECT_NE(appended.err.find("standard output is the input file"), std::string::npos) << appended.err;
  EXPECT_EQ(Read("data.bin"), original);
  Outcome piped = Run("compress -m m.boam -o data.bin -f", "data.bin");
  EXPECT_EQ(piped.code, 1);
  EXPECT_NE(piped.err.find("is the input file"), std::string::npos) << piped.err;
  EXPECT_EQ(Read("data.bin"), original);
  // Decompression the same way round.
  ASSERT_EQ(Run("compress data.bin -m m.boam -q").code, 0);
  const std::vector<uint8_t> packed = Read("data.bin.boa");
  Outcome d = Run("decompress data.bin.boa -m m.boam -o ./data.bin.boa -f --rm");
  EXPECT_EQ(d.code, 1);
  EXPECT_EQ(Read("data.bin.boa"), packed);
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "data.bin.boa", "link.bin", "hard.bin"}).empty());
}

TEST_F(CliTest, TrainingAndExperimentsNeverWriteOverTheirData) {
#ifndef BOA_HAVE_TRAIN
  GTEST_SKIP() << "built without training";
#endif
  const std::vector<uint8_t> original = Read("data.bin");
  Outcome t = Run("train data.bin -o ./data.bin -f --d-model 16 --seq-len 64");
  EXPECT_EQ(t.code, 1);
  EXPECT_NE(t.err.find("is the input file"), std::string::npos) << t.err;
  EXPECT_EQ(Read("data.bin"), original);
  // An experiment named so that its compressed output would be its own data file.
  Write("exp.boa", original);
  std::ofstream(dir_ + "/exp.yaml") << "name: exp\nfile_path: exp.boa\nmodel_path: m.boam\nprogress: false\n";
  Outcome r = Run("run --config exp.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is the input file"), std::string::npos) << r.err;
  EXPECT_EQ(Read("exp.boa"), original);
  ASSERT_EQ(Shell("cp '" + std::string(BOA_TEST_DATA) + "/tiny_ordereddict.pt' ck.pt").code, 0);
  const std::vector<uint8_t> checkpoint = Read("ck.pt");
  Outcome i = Run("model import ck.pt -o ck.pt -f");
  EXPECT_EQ(i.code, 1);
  EXPECT_NE(i.err.find("is the input file"), std::string::npos) << i.err;
  EXPECT_EQ(Read("ck.pt"), checkpoint);
}

TEST_F(CliTest, TrainTakesTheConfigAndTheCommandLineOverridesIt) {
#ifndef BOA_HAVE_TRAIN
  GTEST_SKIP() << "built without training";
#endif
  std::ofstream(dir_ + "/small.yaml") << "name: small\nfile_path: data.bin\nprogress: false\n"
                                         "dataloader: {seq_len: 64, batch_size: 2}\nmodel: {d_model: 16, num_layers: 2}\n"
                                         "training: {lr: 0.005, epochs: 1}\nsplits: [0.8, 0.1, 0.1]\n";
  Outcome t = Run("train --config small.yaml --d-model 8 --splits 0.5,0.25,0.25 data.bin --dtype f16 --precision bf16");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_FALSE(Exists("small_final_model_fp32.boam"));  // the file is named for the precision used
  Outcome m = Run("model show small_final_model_bf16.boam");
  EXPECT_NE(m.out.find("d_model 8, 2 layers"), std::string::npos) << m.out;  // width given, depth from the config
  EXPECT_NE(m.out.find("f16"), std::string::npos) << m.out;
  // Without a config or a width, a short budget picks the smaller model (train::DefaultModelFor).
  Outcome s = Run("train data.bin -o short.boam --max-seconds 2 --seq-len 64 --layers 1");
  ASSERT_EQ(s.code, 0) << s.err;
  Outcome sm = Run("model show short.boam");
  EXPECT_NE(sm.out.find("d_model 32, 1 layer,"), std::string::npos) << sm.out;
  Outcome bad = Run("train --config small.yaml --splits 0.5,x,0.5 -o never.boam");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(Lines(bad.err), 2) << bad.err;  // the error and the usage hint
  EXPECT_FALSE(Exists("never.boam"));
}

TEST_F(CliTest, VerifyInfoAndEval) {
  ASSERT_EQ(Run("compress data.bin -m m.boam --chunk-size 8K").code, 0);
  Outcome v = Run("verify data.bin.boa -m m.boam");
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("OK"), std::string::npos);
  Outcome i = Run("info data.bin.boa");
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("chunk length     8192"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("original size    30000"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("chunks           4"), std::string::npos) << i.out;
  Outcome e = Run("eval data.bin -m m.boam --chunks 3");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("bits per byte: "), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("29997 predicted"), std::string::npos) << e.out;
}

TEST_F(CliTest, RunAnExperimentEndToEnd) {
#ifndef BOA_HAVE_TRAIN
  GTEST_SKIP() << "built without training";
#endif
  std::ofstream(dir_ + "/tiny.yaml") << "name: tiny\nfile_path: data.bin\nprogress: false\ndevice: cpu\n"
                                        "precision: fp32\ndataloader: {seq_len: 64, batch_size: 4}\n"
                                        "model: {d_model: 16, num_layers: 1}\ntraining: {lr: 0.005, epochs: 1}\n"
                                        "compression: {chunks_count: 3, file_to_compress: ''}\nsplits: [0.8, 0.1, 0.1]\n";
  Outcome r = Run("run --config tiny.yaml --verify --show-timings");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("verify: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("compression"), std::string::npos) << r.out;
  EXPECT_TRUE(Exists("tiny_final_model_fp32.boam"));
  EXPECT_TRUE(Exists("tiny.boa"));
  EXPECT_EQ(Read("tiny.decompressed"), Read("data.bin"));
  EXPECT_NE(Run("info tiny.boa").out.find("chunks           3"), std::string::npos);
  // Later stages reuse the trained model.
  EXPECT_EQ(Run("run --config tiny.yaml --compress-only -q").code, 0);
  Outcome cuda = Run("run --config tiny.yaml --device cuda");
  if (cuda.code == 0) {
    EXPECT_NE(cuda.out.find("compressed"), std::string::npos) << cuda.out;  // a machine with a GPU
  } else {
    EXPECT_EQ(cuda.code, 1);
    EXPECT_NE(cuda.err.find("--device: "), std::string::npos) << cuda.err;
    EXPECT_NE(cuda.err.find("CUDA"), std::string::npos) << cuda.err;
  }
  Outcome fp8 = Run("run --config tiny.yaml --train-only --precision fp8");
  EXPECT_EQ(fp8.code, 1);
  EXPECT_NE(fp8.err.find("supported: fp32"), std::string::npos) << fp8.err;
}

// A model file means work in this process, whatever the command, with no server around.
TEST_F(CliTest, AModelFileWorksInProcessWithoutLocal) {
  const std::string client = "env -u BOA_SERVER " + std::string(BOA_CLIENT) + " --server 127.0.0.1:1";
  Outcome c = Shell(client + " compress data.bin -m ./m.boam -q");
  ASSERT_EQ(c.code, 0) << c.err;
  Outcome v = Shell(client + " verify data.bin.boa -m m.boam -q");
  EXPECT_EQ(v.code, 0) << v.err;
  Outcome e = Shell(client + " eval data.bin -m m.boam");
  EXPECT_EQ(e.code, 0) << e.err;
  Outcome b = Shell(client + " bench data.bin -m m.boam --chunk-size 8K");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("| boa (m.boam) |"), std::string::npos) << b.out;
  std::ofstream(dir_ + "/given.yaml") << "name: given\nfile_path: data.bin\nmodel_path: m.boam\nprogress: false\n"
                                         "compression: {chunks_count: 3}\n";
  Outcome r = Shell("env -u BOA_SERVER " + std::string(BOA_CLIENT) + " run --config given.yaml --verify");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("verify: "), std::string::npos) << r.out;
  // A name is a model on boad, which is not there.
  Outcome n = Shell(client + " compress data.bin -m jets -f");
  EXPECT_EQ(n.code, 1);
  EXPECT_NE(n.err.find("cannot reach boad at 127.0.0.1:1"), std::string::npos) << n.err;
}

TEST_F(CliTest, NewExperimentFromPipedAnswers) {
  // A bad name and a missing file are asked again; empty answers take the defaults.
  std::ofstream(dir_ + "/answers") << "bad name!\nexp1\nmissing.bin\ndata.bin\n\n\n\n4096\n\n64\n1\n1e-3\n"
                                      "\n0\n\n0.5,0.6,0.1\n0.8,0.1,0.1\n";
  Outcome o = Run("new-experiment", "answers");
  ASSERT_EQ(o.code, 0) << o.err;
  std::string yaml = ReadText("experiments/exp1/exp1.yaml");
  EXPECT_NE(yaml.find("seq_len: 4096"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("batch_size: 3"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lr: 0.001"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("epochs: 10"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find(dir_ + "/data.bin"), std::string::npos) << yaml;
  EXPECT_NE(o.err.find("no such file"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("sum to 1"), std::string::npos) << o.err;
  // The same name again is refused; input ending early writes nothing.
  std::ofstream(dir_ + "/short") << "exp2\n";
  EXPECT_EQ(Run("new-experiment", "short").code, 1);
  EXPECT_FALSE(Exists("experiments/exp2"));
}

TEST_F(CliTest, BenchTable) {
  Outcome o = Run("bench data.bin -m m.boam --chunk-size 8K");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("| xz -9e |"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("| boa (m.boam) |"), std::string::npos) << o.out;
  EXPECT_EQ(Run("bench missing.bin").code, 1);
}

TEST_F(CliTest, ModelImport) {
  const std::string data = BOA_TEST_DATA;
  Outcome o = Run("model import " + data + "/tiny_ordereddict.pt -o imported.boam");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("d_model 8, 1 layer"), std::string::npos) << o.out;
  EXPECT_EQ(Run("compress data.bin -m imported.boam -q").code, 0);
  EXPECT_EQ(Run("verify data.bin.boa -m imported.boam -q").code, 0);
  Outcome bad = Run("model import " + data + "/hostile.pt -o evil.boam");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(Lines(bad.err), 1) << bad.err;
  EXPECT_FALSE(Exists("evil.boam"));
}

TEST_F(CliTest, InterruptedRunLeavesNoPartialOutput) {
  // A slow compression (scalar kernels, a larger model) killed half-way.
  ASSERT_EQ(Run("model init --d-model 128 --layers 2 -o big.boam -q").code, 0);
  Write("large.bin", testing::FloatTable(400000, 3));
  Outcome o = Shell(std::string(BOA_CLIENT) + " --local --backend scalar compress large.bin -m big.boam -q & pid=$!; "
                    "sleep 1.5; kill -TERM $pid; wait $pid; echo rc=$?");
  EXPECT_NE(o.out.find("rc=143"), std::string::npos) << o.out << o.err;  // killed by SIGTERM
  EXPECT_FALSE(Exists("large.bin.boa"));
  EXPECT_TRUE(Others({"m.boam", "other.boam", "data.bin", "big.boam", "large.bin"}).empty())
      << "a temporary file was left behind";
}

// --device picks where the network runs; the stream is the same on every device, and a
// device the machine lacks is one clear line, with nothing written.
TEST_F(CliTest, TheDeviceFlag) {
  ASSERT_EQ(Run("compress data.bin -m m.boam -o cpu.boa --device cpu -q").code, 0);
  Outcome a = Run("compress data.bin -m m.boam -o auto.boa --device auto -q");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(Read("auto.boa"), Read("cpu.boa"));
  Outcome cuda = Run("compress data.bin -m m.boam -o cuda.boa --device cuda -q");
  if (cuda.code == 0) {  // a machine with a GPU
    EXPECT_EQ(Read("cuda.boa"), Read("cpu.boa"));
    ASSERT_EQ(Run("decompress cpu.boa -m m.boam -o back.bin --device cuda -q").code, 0);
    EXPECT_EQ(Read("back.bin"), Read("data.bin"));
  } else {
    EXPECT_EQ(cuda.code, 1);
    EXPECT_NE(cuda.err.find("--device: "), std::string::npos) << cuda.err;
    EXPECT_NE(cuda.err.find("CUDA"), std::string::npos) << cuda.err;
    EXPECT_EQ(std::count(cuda.err.begin(), cuda.err.end(), '\n'), 1) << cuda.err;
    EXPECT_FALSE(Exists("cuda.boa"));
  }
  Outcome bogus = Run("compress data.bin -m m.boam -o x.boa --device tpu");
  EXPECT_EQ(bogus.code, 1);
  EXPECT_NE(bogus.err.find("unknown device 'tpu' (expected cpu, cuda or auto)"), std::string::npos) << bogus.err;
  Outcome mixed = Run("--backend scalar compress data.bin -m m.boam -o x.boa --device cuda");
  EXPECT_EQ(mixed.code, 1);
}

TEST_F(CliTest, UsageErrorsExitOne) {
  EXPECT_EQ(Run("compress data.bin").code, 1);  // no model
  EXPECT_EQ(Run("frobnicate").code, 1);
  EXPECT_EQ(Run("compress data.bin -m m.boam --chunk-size 10Q").code, 1);
  Outcome negative = Run("compress data.bin -m m.boam --chunk-size -5");
  EXPECT_EQ(negative.code, 1);
  EXPECT_NE(negative.err.find("'-5' is not a size"), std::string::npos) << negative.err;
  EXPECT_EQ(Run("compress data.bin -m m.boam --chunk-size 64K --chunks 3").code, 1);
  Outcome o = Run("compress data.bin -m nosuch.boam");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("nosuch.boam"), std::string::npos);
  EXPECT_EQ(Run("compress data.bin -m m.boam -T 100000").code, 1);
  EXPECT_EQ(Run("--help").code, 0);
}

}  // namespace
}  // namespace boa
