// Faults against a real boad (docs/security.md, "Fault matrix"): boad killed with SIGKILL in
// the middle of an upload, a compress request and a training job's checkpoints; a full disk
// under the client's output and under the model store (a small tmpfs in a private mount
// namespace, `unshare -r -m`); a client that stops reading its responses. After each: no
// half-written file is visible, nothing that was stored is lost, the client has one clear
// error, and boad serves on (or again, after a restart).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "boa/v1/boa.grpc.pb.h"
#include "common/util/io.h"
#include "rpc/remote_client.h"
#include "testkit/boad_process.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::Boad;
using testing::RunCommand;
using testing::WaitUntil;

// Names in `dir` that begin with `prefix` (every name when it is empty).
std::set<std::string> NamesIn(const std::string& dir, const std::string& prefix = "") {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) names.insert(name);
  }
  return names;
}

std::set<std::string> ModelNames(rpc::RemoteClient& c) {
  std::set<std::string> names;
  Result<std::vector<v1::ModelInfo>> models = c.ListModels();
  EXPECT_TRUE(models.ok()) << models.status().message();
  if (models.ok()) {
    for (const v1::ModelInfo& m : *models) names.insert(m.name() + ":" + std::to_string(m.version()));
  }
  return names;
}

// Whether this machine lets an unprivileged process mount a tmpfs of its own.
bool PrivateMountsWork() { return std::system("unshare -r -m true 2>/dev/null") == 0; }

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    small_ = SerializeModel(testing::MakeModel(16, 1, 5, 4.0f).weights, WeightType::kF32, "test");
    // Several of the client's 1 MiB upload messages.
    big_ = SerializeModel(testing::MakeModel(256, 2, 6).weights, WeightType::kF32, "test");
    ASSERT_GT(big_.size(), 3u << 20);
    ASSERT_TRUE(WriteFileAtomic(small_path(), small_, true).ok());
    ASSERT_TRUE(WriteFileAtomic(big_path(), big_, true).ok());
  }
  std::string store() const { return dir_.path() + "/store"; }
  std::string small_path() const { return dir_.path() + "/small.boam"; }
  std::string big_path() const { return dir_.path() + "/big.boam"; }
  std::string client() const { return std::string(BOA_CLIENT); }
  // A codec round trip through `c`: boad serves.
  void ExpectServes(rpc::RemoteClient& c, const std::string& model) {
    const std::vector<uint8_t> in = testing::FloatTable(50000, 2);
    MemorySource src(in);
    MemorySink packed;
    CodecOptions o;
    o.chunk_length = 8192;
    Status s = c.Compress(model, o, &src, &packed, nullptr, nullptr);
    ASSERT_TRUE(s.ok()) << s.message();
    MemorySource back_src(packed.data);
    MemorySink back;
    s = c.Decompress("", &back_src, &back, nullptr, nullptr);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back.data, in);
  }

  testing::TempDir dir_{"fault_test"};
  std::vector<uint8_t> small_, big_;
};

TEST_F(FaultTest, AKillMidUploadLeavesNoHalfModelAndLosesNone) {
  const std::string fifo = dir_.path() + "/upload.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string address;
  Status upload;
  {
    Boad b(BOAD, store());
    auto c = b.Connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->UploadModel(small_path(), "keep", 0).ok());
    address = b.address();
    // The upload reads the model through a pipe: two messages go, then it waits for more.
    std::thread uploader([&] { upload = c->UploadModel(fifo, "half", 0).status(); });
    const int fd = open(fifo.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, big_.data(), 2u << 20), static_cast<ssize_t>(2u << 20));
    EXPECT_TRUE(WaitUntil([&] { return !NamesIn(store(), ".incoming-").empty(); })) << "the upload never reached the store";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    b.Signal(SIGKILL);
    b.Wait();
    close(fd);
    uploader.join();
  }
  EXPECT_EQ(upload.code(), StatusCode::kUnavailable) << upload.message();
  EXPECT_NE(upload.message().find(address), std::string::npos) << upload.message();
  EXPECT_FALSE(NamesIn(store(), ".incoming-").empty()) << "the kill left the upload's temporary directory";
  EXPECT_FALSE(fs::exists(store() + "/half")) << "nothing of the upload is under its name";
  // After the restart: the stored model, no trace of the half one, and uploads work.
  Boad b(BOAD, store());
  auto c = b.Connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(ModelNames(*c), std::set<std::string>({"keep:1"}));
  EXPECT_TRUE(NamesIn(store(), ".incoming-").empty()) << "a store boad holds alone is cleaned at start";
  EXPECT_EQ(c->GetModel("half").status().code(), StatusCode::kNotFound);
  ExpectServes(*c, "keep");
  Result<v1::ModelInfo> again = c->UploadModel(big_path(), "half", 0);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->version(), 1u);
}

TEST_F(FaultTest, AKillMidCompressGivesOneClearErrorAndNoOutput) {
  const std::string in = dir_.path() + "/in.bin", out = dir_.path() + "/out";
  fs::create_directories(out);
  const std::vector<uint8_t> data = testing::RandomBytes(24u << 20, 7);
  ASSERT_TRUE(WriteFileAtomic(in, data, true).ok());
  auto b = std::make_unique<Boad>(BOAD, store());
  {
    auto c = b->Connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->UploadModel(small_path(), "m", 0).ok());
  }
  const std::string err = dir_.path() + "/client.err";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    execl(BOA_CLIENT, BOA_CLIENT, "--server", b->address().c_str(), "-q", "compress", "-m", "m", in.c_str(), "-o",
          (out + "/in.bin.boa").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Killed once the client is writing its output (its temporary file exists).
  EXPECT_TRUE(WaitUntil([&] { return !NamesIn(out).empty(); }, 30)) << "the client never began its output";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the client finished before boad was killed: make the input larger";
  b->Signal(SIGKILL);
  b->Wait();
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  std::ifstream f(err);
  const std::string message((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_NE(message.find(b->address()), std::string::npos) << "names the server: " << message;
  EXPECT_TRUE(NamesIn(out).empty()) << "no output and no temporary: " << *NamesIn(out).begin();
  EXPECT_EQ(ReadFile(in, 1u << 30).value(), data) << "the input is untouched";
  // Restarted, boad compresses the same file.
  b = std::make_unique<Boad>(BOAD, store());
  std::string output;
  EXPECT_EQ(RunCommand(client() + " --server " + b->address() + " -q compress -m m " + dir_.path() +
                           "/in.bin -o " + out + "/in.bin.boa && " + client() + " --server " + b->address() +
                           " -q decompress " + out + "/in.bin.boa -c | cmp - " + in,
                       &output),
            0)
      << output;
}

TEST_F(FaultTest, AFullDiskUnderTheClientsOutputLeavesNothing) {
  if (!PrivateMountsWork()) GTEST_SKIP() << "this machine refuses unshare -r -m (user and mount namespaces)";
  const std::string in = dir_.path() + "/in.bin", full = dir_.path() + "/full";
  fs::create_directories(full);
  const std::vector<uint8_t> data = testing::RandomBytes(3u << 20, 8);
  ASSERT_TRUE(WriteFileAtomic(in, data, true).ok());
  // A 256 KiB file system for the output; after the client, whatever is left on it is listed.
  const std::string cmd = "unshare -r -m sh -c 'mount -t tmpfs -o size=256k tmpfs " + full + " && " + client() +
                          " --local -q compress -m " + small_path() + " " + in + " -o " + full +
                          "/in.bin.boa; rc=$?; echo left: $(ls -A " + full + "); exit $rc'";
  std::string output;
  const int rc = RunCommand(cmd, &output);
  EXPECT_NE(rc, 0) << output;
  EXPECT_NE(output.find(full + "/in.bin.boa: write failed: No space left on device"), std::string::npos) << output;
  EXPECT_NE(output.find("\nleft:\n"), std::string::npos) << "nothing partial is left: " << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 2) << "one error line: " << output;
  EXPECT_EQ(ReadFile(in, 1u << 30).value(), data) << "the input is untouched";
}

TEST_F(FaultTest, AFullModelStoreRefusesTheUploadAndServesOn) {
  if (!PrivateMountsWork()) GTEST_SKIP() << "this machine refuses unshare -r -m (user and mount namespaces)";
  // boad with its store on a 1 MiB tmpfs of its own mount namespace.
  const std::string launcher = dir_.path() + "/boad-on-tmpfs";
  std::ofstream(launcher) << "#!/bin/sh\nexec unshare -r -m sh -c 'mount -t tmpfs -o size=1m tmpfs " << store()
                          << " && exec \"$0\" \"$@\"' " << BOAD << " \"$@\"\n";
  fs::permissions(launcher, fs::perms::owner_all);
  fs::create_directories(store());
  Boad b(launcher, store());
  auto c = b.Connect();
  ASSERT_TRUE(c) << "boad did not start on the tmpfs";
  const std::string seen = "/proc/" + std::to_string(b.pid()) + "/root" + store();  // boad's view of its store
  ASSERT_TRUE(c->UploadModel(small_path(), "small", 0).ok());
  Result<v1::ModelInfo> big = c->UploadModel(big_path(), "big", 0);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("No space left on device"), std::string::npos) << big.status().message();
  EXPECT_NE(big.status().message().find(store()), std::string::npos) << "names the directory: " << big.status().message();
  EXPECT_EQ(ModelNames(*c), std::set<std::string>({"small:1"}));
  EXPECT_EQ(NamesIn(seen), std::set<std::string>({".boad.lock", "small"})) << "nothing of the failed upload is left";
  ExpectServes(*c, "small");
  // The space the failed upload took is free again.
  Result<v1::ModelInfo> again = c->UploadModel(small_path(), "small", 0);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->version(), 2u);
  EXPECT_EQ(b.Terminate(), 0);
}

// A client that sends its input and never reads: once boad's writes to it stall for
// stream_idle_seconds, boad cancels the request, and its thread, lanes and memory go back
// while the client still holds the stream.
TEST_F(FaultTest, AClientThatStopsReadingIsCutOff) {
  std::ofstream(dir_.path() + "/boad.yaml") << "stream_idle_seconds: 1\n";
  Boad b(BOAD, store(), {"--config", dir_.path() + "/boad.yaml", "--metrics-listen", "127.0.0.1:0"});
  auto c = b.Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->UploadModel(small_path(), "m", 0).ok());
  // Without BDP probing the client's receive window stays at HTTP/2's initial 64 KiB, so
  // boad's writes stall after a chunk or two rather than after many megabytes.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = v1::Boa::NewStub(grpc::CreateCustomChannel(b.address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));  // a regression fails, not hangs
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    v1::CompressRequest opt;
    opt.mutable_options()->set_model("m");
    opt.mutable_options()->set_chunk_size(65536);
    if (!stream->Write(opt)) return;
    const std::vector<uint8_t> noise = testing::RandomBytes(1u << 20, 9);
    v1::CompressRequest data;
    data.set_data(noise.data(), noise.size());
    for (int i = 0; i < 16 && stream->Write(data); ++i) {
    }
    stream->WritesDone();
  });
  const auto open_requests = [&] {
    Result<v1::ServerInfoResponse> info = c->Info();
    return info.ok() ? static_cast<int>(info->open_requests()) : -1;
  };
  const auto t0 = Clock::now();
  EXPECT_TRUE(WaitUntil([&] { return open_requests() == 1; })) << "the request never started";
  EXPECT_TRUE(WaitUntil([&] { return open_requests() == 0; }, 20)) << "the stalled request still holds its place";
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(20));
  EXPECT_TRUE(WaitUntil([&] { return testing::MetricSeries(b, "boad_rejected_requests_total{reason=\"idle\"}") >= 1; }, 5))
      << "counted as timed out";
  // The stream closes first; its lanes go back at the end of the model step they are in.
  const auto lanes_in_use = [&] {
    Result<v1::ServerInfoResponse> info = c->Info();
    return info.ok() ? static_cast<int>(info->lanes_in_use()) : -1;
  };
  EXPECT_TRUE(WaitUntil([&] { return lanes_in_use() == 0; }, 5)) << "lanes still in use: " << lanes_in_use();
  ExpectServes(*c, "m");
  // The client still holds its stream; when it gives up, its calls end.
  ctx.TryCancel();
  writer.join();
  EXPECT_FALSE(stream->Finish().ok());
}

#ifdef BOA_HAVE_TRAIN
// boad killed again and again while a training job runs (a checkpoint each epoch, so some
// kills land inside one): every restart finds a complete checkpoint, and the job, resumed
// each time, ends with the same model as the same job never interrupted.
TEST_F(FaultTest, KillsDuringTrainingLeaveACompleteCheckpointAndTheSameModel) {
  const std::string data_dir = dir_.path() + "/data", jobs_dir = dir_.path() + "/jobs";
  fs::create_directories(data_dir);
  ASSERT_TRUE(WriteFileAtomic(data_dir + "/jets.bin", testing::FloatTable(40000, 8), true).ok());
  const std::string config = dir_.path() + "/boad.yaml";
  std::ofstream(config) << "train_data_dir: " << data_dir << "\njobs_dir: " << jobs_dir << "\nthreads: 2\n";
  v1::TrainRequest req;
  req.set_name("killed");
  req.add_files("jets.bin");
  req.set_d_model(16);
  req.set_n_layers(1);
  req.set_seq_len(128);
  req.set_epochs(30);
  std::string id;
  for (const double extra : {0.2, 0.6, 1.0, 1.4}) {
    Boad b(BOAD, store(), {"--config", config});
    auto c = b.Connect();
    ASSERT_TRUE(c);
    c->set_deadline(0.8);  // listen for a moment, then let the job run on its own
    if (id.empty()) {
      c->Train(req, [&](const v1::TrainEvent& e) { if (e.has_job()) id = e.job().id(); }).ok();
    } else {
      Result<v1::JobInfo> j = c->GetJob(id);
      ASSERT_TRUE(j.ok()) << j.status().message();
      ASSERT_EQ(j->state(), v1::JOB_INTERRUPTED) << j->message();
      c->ResumeJob(id, [](const v1::TrainEvent&) {}).ok();
    }
    ASSERT_FALSE(id.empty());
    std::this_thread::sleep_for(std::chrono::duration<double>(extra));
    b.Signal(SIGKILL);
    b.Wait();
    // What a resume will read: CURRENT names a generation with every file in it.
    const std::string ckpt = jobs_dir + "/" + id + "/ckpt";
    if (!fs::exists(ckpt + "/CURRENT")) continue;  // killed before the first epoch ended
    std::vector<uint8_t> current = ReadFile(ckpt + "/CURRENT", 64).value();
    const std::string gen(current.begin(), current.end() - 1);
    for (const char* file : {"model.pt", "optimizer.pt", "state.txt", "loss.csv", "best.boam"}) {
      EXPECT_GT(fs::file_size(ckpt + "/" + gen + "/" + file), 0u) << gen << "/" << file << " after a kill " << extra << " s in";
    }
  }
  Boad b(BOAD, store(), {"--config", config});
  auto c = b.Connect();
  ASSERT_TRUE(c);
  v1::JobInfo last;
  Status s = c->ResumeJob(id, [&](const v1::TrainEvent& e) { if (e.has_job()) last = e.job(); });
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(last.state(), v1::JOB_SUCCEEDED) << last.message();
  req.set_name("whole");
  v1::JobInfo whole;
  s = c->Train(req, [&](const v1::TrainEvent& e) { if (e.has_job()) whole = e.job(); });
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(whole.state(), v1::JOB_SUCCEEDED) << whole.message();
  EXPECT_EQ(last.model().id(), whole.model().id()) << "killed four times and resumed: the uninterrupted model";
  EXPECT_EQ(last.steps(), whole.steps());
}
#endif

}  // namespace
}  // namespace boa
