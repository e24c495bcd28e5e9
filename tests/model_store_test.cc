// boad's model store: names, versions and ids resolve; uploads are validated before anything
// is written; the store survives a restart; resident models are evicted least recently used
// above the memory budget, never while in use; models are placed on devices in order and
// copied to another when their holders' lanes are busy.
#include "server/model_store.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "testkit/test_util.h"

namespace boa::server {
namespace {

std::vector<uint8_t> ModelFile(uint32_t d, uint64_t seed) {
  return SerializeModel(InitRandomModel(ModelConfig::Default(d, 1), seed), WeightType::kF32, "test");
}

std::unique_ptr<ModelStore> OpenStore(const std::string& dir, uint64_t budget = 1ull << 30, bool shared = false,
                                      double rescan_seconds = 0) {
  ModelStore::Options o;
  o.dir = dir;
  o.devices[0].memory_budget = budget;
  o.shared = shared;
  o.rescan_seconds = rescan_seconds;
  o.devices[0].scheduler.threads = 1;
  o.devices[0].scheduler.lanes_per_thread = 2;
  auto s = ModelStore::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return std::move(s).value();
}

TEST(ModelStore, NamesVersionsAndIdsResolve) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path() + "/models");
  auto a1 = store->Add("jets", 0, ModelFile(8, 1));
  ASSERT_TRUE(a1.ok()) << a1.status().message();
  EXPECT_EQ(a1->version, 1u);
  auto a2 = store->Add("jets", 0, ModelFile(8, 2));
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->version, 2u);
  EXPECT_EQ(store->Resolve("jets")->id, a2->id) << "a bare name is the highest version";
  EXPECT_EQ(store->Resolve("jets:1")->id, a1->id);
  EXPECT_EQ(store->Resolve(a1->id)->Ref(), "jets:1");
  EXPECT_EQ(store->Resolve("jets:3").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Resolve("other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Resolve(std::string(64, 'a')).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Resolve("jets:x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Resolve("../etc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add("jets", 2, ModelFile(8, 3)).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store->List().size(), 2u);

  // A restart finds the same models.
  store.reset();
  store = OpenStore(dir.path() + "/models");
  EXPECT_EQ(store->List().size(), 2u);
  EXPECT_EQ(store->Resolve("jets:1")->id, a1->id);
  EXPECT_GT(store->Resolve("jets:1")->created_unix, 0);

  auto removed = store->Remove("jets:2");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(store->Resolve("jets")->id, a1->id);
  EXPECT_FALSE(std::filesystem::exists(removed->dir));
}

TEST(ModelStore, RescanServesWhatOthersPutInTheDirectory) {
  testing::TempDir dir("store");
  auto mine = OpenStore(dir.path() + "/models");
  auto other = OpenStore(dir.path() + "/models");  // another replica on the shared volume
  ASSERT_TRUE(mine->Add("jets", 0, ModelFile(8, 1)).ok());
  auto added = other->Add("muons", 0, ModelFile(8, 2));
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(mine->Resolve("muons").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(mine->Acquire("jets").ok());  // resident across the rescan
  Result<ModelStore::RescanReport> r = mine->Rescan();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(r->removed, 0u);
  EXPECT_EQ(mine->Resolve("muons")->id, added->id);
  EXPECT_TRUE(mine->Resolve("jets")->loaded);

  ASSERT_TRUE(other->Remove("muons").ok());
  std::filesystem::create_directories(dir.path() + "/models/Bad Name");
  r = mine->Rescan();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->removed, 1u);
  EXPECT_EQ(r->problems, 1u);
  EXPECT_EQ(mine->problems().size(), 1u);
  EXPECT_EQ(mine->Resolve("muons").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(mine->Resolve("jets").ok());
}

TEST(ModelStore, RefusesBadNamesAndBadFilesBeforeWriting) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  for (const char* bad : {"", ".hidden", "a/b", "..", "x y", "-rf"}) {
    EXPECT_EQ(store->Add(bad, 0, ModelFile(8, 1)).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  std::vector<uint8_t> file = ModelFile(8, 1);
  file[file.size() / 2] ^= 1;  // the checksum no longer matches
  EXPECT_EQ(store->Add("broken", 0, file).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store->Add("empty", 0, {}).ok());
  EXPECT_TRUE(store->List().empty());
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/broken"));
}

// Nothing of a refused or abandoned upload stays in the store directory.
void ExpectNoTemporaries(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_NE(e.path().filename().string().rfind(".incoming-", 0), 0u) << e.path();
  }
}

TEST(ModelStore, UploadsAreCheckedFromTheirFirstBytesAndBounded) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  const std::vector<uint8_t> file = ModelFile(8, 1);
  // In pieces of any size: the same model as Add.
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}}) {
    auto u = store->BeginUpload("pieces", 0, 1ull << 30);
    ASSERT_TRUE(u.ok());
    for (size_t at = 0; at < file.size(); at += piece) {
      ASSERT_TRUE((*u)->Write(file.data() + at, std::min(piece, file.size() - at)).ok()) << piece << " at " << at;
    }
    Result<ModelEntry> e = store->Commit(std::move(*u));
    ASSERT_TRUE(e.ok()) << e.status().message();
    EXPECT_EQ(e->id, HexString(Sha256(file.data(), file.size()).data(), 32));
  }
  // A wrong magic is refused at the first bytes.
  {
    auto u = store->BeginUpload("junk", 0, 1ull << 30);
    ASSERT_TRUE(u.ok());
    const std::vector<uint8_t> junk(64, 'x');
    Status s = (*u)->Write(junk.data(), junk.size());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("bad magic"), std::string::npos) << s.message();
  }
  // Past the header's size, past the limit, or short: refused, nothing published or left.
  {
    auto u = store->BeginUpload("long", 0, 1ull << 30);
    std::vector<uint8_t> longer = file;
    longer.push_back(0);
    EXPECT_EQ((*u)->Write(longer.data(), longer.size()).code(), StatusCode::kResourceExhausted);
  }
  {
    // Refused once the header shows the file would be larger, before the limit is reached.
    auto u = store->BeginUpload("limited", 0, file.size() - 1);
    Status s;
    size_t at = 0;
    for (; s.ok() && at < file.size(); at += 256) s = (*u)->Write(file.data() + at, std::min<size_t>(256, file.size() - at));
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
    EXPECT_NE(s.message().find("would be " + std::to_string(file.size()) + " bytes"), std::string::npos) << s.message();
    EXPECT_LT(at, file.size());
  }
  {
    auto u = store->BeginUpload("short", 0, 1ull << 30);
    ASSERT_TRUE((*u)->Write(file.data(), file.size() - 1).ok());
    Result<ModelEntry> e = store->Commit(std::move(*u));
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("ends after"), std::string::npos) << e.status().message();
  }
  EXPECT_EQ(store->List().size(), 3u);
  for (const char* gone : {"junk", "long", "limited", "short"}) EXPECT_FALSE(std::filesystem::exists(dir.path() + "/" + gone));
  ExpectNoTemporaries(dir.path());
}

TEST(ModelStore, VersionsHaveOneRangeEverywhere) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  for (uint32_t bad : {kMaxModelVersion + 1, 4294967295u}) {
    EXPECT_EQ(store->Add("v", bad, ModelFile(8, 1)).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE(store->Add("v", kMaxModelVersion, ModelFile(8, 1)).ok());
  EXPECT_EQ(store->Resolve("v:999999999")->version, kMaxModelVersion);
  EXPECT_EQ(store->Resolve("v:1000000000").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Resolve("v:0").status().code(), StatusCode::kInvalidArgument);
  // The next version after the last there is: refused, never wrapped to 0.
  Result<ModelEntry> next = store->Add("v", 0, ModelFile(8, 2));
  EXPECT_EQ(next.status().code(), StatusCode::kFailedPrecondition) << next.status().message();
  ASSERT_TRUE(store->Add("v", 7, ModelFile(8, 2)).ok()) << "a free version given explicitly";
  store.reset();
  store = OpenStore(dir.path());
  EXPECT_TRUE(store->problems().empty()) << store->problems()[0];
  EXPECT_EQ(store->List().size(), 2u) << "a restart finds every version";
  EXPECT_EQ(store->Resolve("v")->version, kMaxModelVersion);
}

// What cannot be served is reported, with its path and reason, and left where it is.
TEST(ModelStore, ReportsEveryEntryItCannotServe) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->Add("good", 0, ModelFile(8, 1)).ok());
  ASSERT_TRUE(store->Add("damaged", 0, ModelFile(8, 2)).ok());
  store.reset();
  namespace fs = std::filesystem;
  const std::string d = dir.path();
  fs::create_directories(d + "/good/007");
  fs::create_directories(d + "/good/1000000000");
  fs::create_directories(d + "/bad name!/1");
  std::ofstream(d + "/stray.txt") << "x";
  std::vector<uint8_t> damaged = ReadFile(d + "/damaged/1/model.boam", 1 << 20).value();
  damaged[damaged.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(d + "/damaged/1/model.boam", damaged, true).ok());
  store = OpenStore(d);
  EXPECT_EQ(store->List().size(), 1u);
  const std::vector<std::string>& p = store->problems();
  ASSERT_EQ(p.size(), 5u);
  auto reported = [&](const std::string& path) {
    return std::any_of(p.begin(), p.end(), [&](const std::string& line) { return line.rfind(d + "/" + path + ":", 0) == 0; });
  };
  for (const char* path : {"good/007", "good/1000000000", "bad name!", "stray.txt", "damaged/1"}) {
    EXPECT_TRUE(reported(path)) << path;
  }
  EXPECT_TRUE(fs::exists(d + "/damaged/1/model.boam")) << "nothing is deleted";
  // Uploads go around what is left on disk, never over it.
  EXPECT_EQ(store->Add("damaged", 1, ModelFile(8, 3)).status().code(), StatusCode::kFailedPrecondition);
  Result<ModelEntry> next = store->Add("damaged", 0, ModelFile(8, 3));
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(next->version, 2u);
  EXPECT_EQ(ReadFile(d + "/damaged/1/model.boam", 1 << 20).value(), damaged);
  Result<ModelEntry> good = store->Add("good", 0, ModelFile(8, 4));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->version, 2u) << "good:007 and good:1000000000 are not versions";
}

TEST(ModelStore, NamesCannotLookLikeIdsOrFiles) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  const std::string id = store->Add("m", 0, ModelFile(8, 1))->id;
  for (const std::string& bad : {id, std::string(64, 'a'), std::string("model.boam")}) {
    EXPECT_EQ(store->Add(bad, 0, ModelFile(8, 2)).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(store->Resolve(id)->name, "m");
}

TEST(ModelStore, AnInvalidUploadIsAnInvalidArgumentAndADamagedStoredFileIsDataLoss) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  std::vector<uint8_t> file = ModelFile(8, 1);
  file[file.size() / 2] ^= 1;
  EXPECT_EQ(store->Add("broken", 0, file).status().code(), StatusCode::kInvalidArgument);
  auto e = store->Add("m", 0, ModelFile(8, 1));
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(store->ReadFile("m").ok());
  std::vector<uint8_t> stored = ReadFile(e->dir + "/model.boam", 1 << 20).value();
  stored[100] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(e->dir + "/model.boam", stored, true).ok());
  Result<std::vector<uint8_t>> read = store->ReadFile("m");
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find("damaged"), std::string::npos) << read.status().message();
}

TEST(ModelStore, EvictsLeastRecentlyUsedIdleModelsAboveTheBudget) {
  testing::TempDir dir("store");
  uint64_t one_model = 0;  // what one resident d_model 32 model counts
  {
    auto probe = OpenStore(dir.path());
    for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(probe->Add(name, 0, ModelFile(32, name[0])).ok());
    ASSERT_TRUE(probe->Acquire("a").ok());
    one_model = probe->resident_bytes();
    ASSERT_GT(one_model, 4u * ModelConfig::Default(32, 1).ParameterCount()) << "weights and engine";
  }
  auto store = OpenStore(dir.path(), one_model * 5 / 2);  // fits two
  auto a = store->Acquire("a");
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(store->Acquire("b").ok());
  a = Status::Cancelled("released");  // "a" is idle now, and least recently used
  ASSERT_TRUE(store->Acquire("c").ok());
  EXPECT_FALSE(store->Resolve("a")->loaded);
  EXPECT_TRUE(store->Resolve("b")->loaded);
  EXPECT_TRUE(store->Resolve("c")->loaded);
  // In use: kept even over budget.
  auto held_b = store->Acquire("b");
  auto held_c = store->Acquire("c");
  ASSERT_TRUE(store->Acquire("a").ok());
  EXPECT_TRUE(store->Resolve("b")->loaded);
  EXPECT_TRUE(store->Resolve("c")->loaded);
  ASSERT_TRUE(store->Unload("a").ok());
  EXPECT_FALSE(store->Resolve("a")->loaded);
}

// A small file whose lanes are huge: every lane holds d_model x expand x d_state floats of
// scan state per layer (here 8 MiB per lane, 2 GiB for 256 lanes).
std::vector<uint8_t> WideStateModelFile() {
  ModelConfig c = ModelConfig::Default(16, 64);
  c.d_state = 256;
  c.expand = 8;
  return SerializeModel(InitRandomModel(c, 1), WeightType::kF16, "test");
}

TEST(ModelStore, CountsEveryByteOfAResidentModelAndRefusesWhatCannotFit) {
  testing::TempDir dir("store");
  ModelStore::Options o;
  o.dir = dir.path();
  o.devices[0].memory_budget = 256ull << 20;
  o.devices[0].scheduler.threads = 2;
  o.devices[0].scheduler.lanes_per_thread = 128;
  auto store = ModelStore::Open(o).value();
  ASSERT_TRUE(store->Add("small", 0, ModelFile(16, 1)).ok());
  auto wide = store->Add("wide", 0, WideStateModelFile());
  ASSERT_TRUE(wide.ok()) << wide.status().message();
  const uint64_t need = store->ResidentBytes(wide->config);
  EXPECT_GT(need, 2ull << 30) << "256 lanes x 8 MiB of state";
  auto refused = store->Acquire("wide");
  ASSERT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("memory_budget"), std::string::npos) << refused.status().message();
  EXPECT_NE(refused.status().message().find("wide:1"), std::string::npos) << refused.status().message();
  EXPECT_EQ(store->resident_bytes(), 0u) << "nothing was loaded";
  // What is counted is what the model holds: engine and lanes, not only its weights.
  auto small = store->Acquire("small");
  ASSERT_TRUE(small.ok());
  const ModelConfig& sc = small->entry.config;
  EXPECT_EQ(store->resident_bytes(), engine::Engine::MemoryBytesFor(sc) + ChunkScheduler::MemoryBytes(sc, o.devices[0].scheduler));
  EXPECT_EQ(store->resident_bytes(), small->model->engine->MemoryBytes() + 2 * (engine::Session::MemoryBytes(sc, 128, 512) +
                                                                                  2ull * 512 * kFreqTableStride * 4));
}

// Callers that ask for a model while it loads (outside the store's lock) wait for that one
// load; the store answers other calls meanwhile; a removed model's load is not kept resident.
TEST(ModelStore, ConcurrentAcquiresShareOneLoad) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->Add("big", 0, SerializeModel(InitRandomModel(ModelConfig::Default(256, 4), 3), WeightType::kF32, "t")).ok());
  ASSERT_TRUE(store->Add("small", 0, ModelFile(8, 1)).ok());
  std::vector<std::shared_ptr<ResidentModel>> got(6);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < got.size(); ++i) {
    callers.emplace_back([&, i] {
      auto lease = store->Acquire(i % 2 ? "big" : "big:1");
      ASSERT_TRUE(lease.ok()) << lease.status().message();
      got[i] = lease->model;
    });
  }
  EXPECT_TRUE(store->Acquire("small").ok());
  EXPECT_EQ(store->List().size(), 2u);
  for (auto& t : callers) t.join();
  for (const auto& m : got) EXPECT_EQ(m, got[0]) << "one load, shared";
  const uint64_t big = store->ResidentBytes(got[0]->model.weights.config);
  EXPECT_EQ(store->resident_bytes(), big + store->ResidentBytes(ModelConfig::Default(8, 1)));

  ASSERT_TRUE(store->Unload("big").ok());
  // Removed before, during or after the load: the load may fail (its file is gone), or
  // succeed for this caller only.
  std::thread loader([&] { (void)store->Acquire("big"); });
  ASSERT_TRUE(store->Remove("big").ok());
  loader.join();
  EXPECT_EQ(store->Resolve("big").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->resident_bytes(), store->ResidentBytes(ModelConfig::Default(8, 1))) << "a removed model does not stay";
}

// Two devices (CPU engines both, under two names: the store only sees StoreDevices), each
// with `lanes` lanes and room for `models` models of d_model 32.
struct TwoDevices {
  std::unique_ptr<ModelStore> store;
  std::shared_ptr<LaneBudget> lanes[2];
};
TwoDevices OpenTwoDeviceStore(const std::string& dir, double models0, double models1, uint32_t lanes = 4) {
  uint64_t one_model = 0;
  {
    auto probe = OpenStore(dir + "/probe");
    EXPECT_TRUE(probe->Add("p", 0, ModelFile(32, 1)).ok());
    one_model = probe->ResidentBytes(probe->Resolve("p")->config);
  }
  ModelStore::Options o;
  o.dir = dir + "/store";
  TwoDevices t;
  o.devices.clear();
  for (int i = 0; i < 2; ++i) {
    StoreDevice d;
    d.name = i == 0 ? "cpu" : "cpu2";
    d.description = d.name + " (test)";
    d.memory_budget = static_cast<uint64_t>((i == 0 ? models0 : models1) * one_model);
    d.scheduler.threads = 1;
    d.scheduler.lanes_per_thread = 2;
    t.lanes[i] = d.scheduler.device_lanes = std::make_shared<LaneBudget>(lanes);
    o.devices.push_back(d);
  }
  t.store = std::move(ModelStore::Open(o)).value();
  for (const char* name : {"a", "b", "c", "d"}) EXPECT_TRUE(t.store->Add(name, 0, ModelFile(32, name[0])).ok());
  return t;
}

std::vector<std::string> DevicesOf(ModelStore& store, const std::string& ref) { return store.Resolve(ref)->devices; }
using Names = std::vector<std::string>;

TEST(ModelStore, PlacesModelsInDeviceOrderAndSpillsToTheNextWhenFull) {
  testing::TempDir dir("store");
  TwoDevices t = OpenTwoDeviceStore(dir.path(), 2.5, 10);
  auto a = t.store->Acquire("a");
  auto b = t.store->Acquire("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->model->device, "cpu");
  EXPECT_EQ(b->entry.devices, Names{"cpu"});
  // The first device is full of models in use: the next.
  auto c = t.store->Acquire("c");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model->device, "cpu2");
  EXPECT_EQ(DevicesOf(*t.store, "c"), Names{"cpu2"});
  // Idle models on the first device give way to a new one there (least recently used first).
  a = b = c = Status::Cancelled("released");
  auto d = t.store->Acquire("d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->model->device, "cpu");
  EXPECT_EQ(DevicesOf(*t.store, "a"), Names{}) << "a was the least recently used";
  EXPECT_EQ(DevicesOf(*t.store, "b"), Names{"cpu"});
  const std::vector<DeviceUsage> u = t.store->Usage();
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].name, "cpu");
  EXPECT_EQ(u[0].description, "cpu (test)");
  EXPECT_EQ(u[0].models, 2u);
  EXPECT_EQ(u[1].models, 1u);
  EXPECT_EQ(u[0].resident_bytes + u[1].resident_bytes, t.store->resident_bytes());
  EXPECT_EQ(u[0].memory_budget + u[1].memory_budget, t.store->memory_budget());
  EXPECT_EQ(u[0].lanes, 4u);
}

TEST(ModelStore, ACopyGoesToAnotherDeviceWhenEveryLaneOfItsHoldersIsBusy) {
  testing::TempDir dir("store");
  TwoDevices t = OpenTwoDeviceStore(dir.path(), 4, 4);
  auto first = t.store->Acquire("a");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->model->device, "cpu");
  // Other requests hold every lane of the first device.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t.lanes[0]->TryTake());
  EXPECT_EQ(t.store->Usage()[0].lanes_busy, 4u);
  auto second = t.store->Acquire("a");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->model->device, "cpu2");
  EXPECT_EQ(second->entry.devices, (Names{"cpu", "cpu2"}));
  // Now the holder with free lanes serves it; no third copy.
  auto third = t.store->Acquire("a");
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->model, second->model);
  // Lanes free on both: the first device in order.
  t.lanes[0]->Give(4);
  auto fourth = t.store->Acquire("a");
  EXPECT_EQ(fourth->model, first->model);
  // Both copies answer for one model: unloading it empties both devices.
  ASSERT_TRUE(t.store->Unload("a").ok());
  EXPECT_EQ(DevicesOf(*t.store, "a"), Names{});
  for (const DeviceUsage& u : t.store->Usage()) EXPECT_EQ(u.models, 0u) << u.name;
}

TEST(ModelStore, NoCopyWhereItWouldUnloadAnything) {
  testing::TempDir dir("store");
  TwoDevices t = OpenTwoDeviceStore(dir.path(), 4, 1.5);
  ASSERT_EQ(t.store->Acquire("b")->model->device, "cpu");
  {  // b on the second device too (the first is busy), then idle there
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(t.lanes[0]->TryTake());
    ASSERT_EQ(t.store->Acquire("b")->model->device, "cpu2");
    t.lanes[0]->Give(4);
  }
  auto a = t.store->Acquire("a");
  ASSERT_EQ(a->model->device, "cpu");
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t.lanes[0]->TryTake());
  // The second device could take a only by unloading b: a waits for the busy first device.
  auto again = t.store->Acquire("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->model, a->model);
  EXPECT_EQ(DevicesOf(*t.store, "b"), (Names{"cpu", "cpu2"}));
  t.lanes[0]->Give(4);
}

TEST(ModelStore, AModelUnloadedWhileInUseStillCountsOnItsDevice) {
  testing::TempDir dir("store");
  TwoDevices t = OpenTwoDeviceStore(dir.path(), 2.5, 10);
  auto a = t.store->Acquire("a");
  auto b = t.store->Acquire("b");
  ASSERT_EQ(a->model->device, "cpu");
  ASSERT_EQ(b->model->device, "cpu");
  ASSERT_TRUE(t.store->Unload("a").ok());  // a request still codes with it: its memory is held
  auto c = t.store->Acquire("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->model->device, "cpu2") << "a and b still fill the first device";
  a = Status::Cancelled("released");  // now a's memory is free
  auto d = t.store->Acquire("d");
  EXPECT_EQ(d->model->device, "cpu");
}

// A copy that cannot load (here: a CUDA device that does not exist) leaves the request on
// the busy holder, and no copy is tried there again for a while.
TEST(ModelStore, ACopyThatFailsToLoadLeavesTheRequestOnTheHolder) {
  testing::TempDir dir("store");
  ModelStore::Options o;
  o.dir = dir.path();
  o.devices.clear();
  for (int i = 0; i < 2; ++i) {
    StoreDevice d;
    d.name = i == 0 ? "cpu" : "cuda:99";
    d.backend = i == 0 ? engine::Backend::kAuto : engine::Backend::kCuda;
    d.cuda_device = 99;
    d.memory_budget = 1ull << 30;
    d.scheduler.threads = 1;
    d.scheduler.lanes_per_thread = 2;
    d.scheduler.device_lanes = std::make_shared<LaneBudget>(2);
    o.devices.push_back(d);
  }
  std::shared_ptr<LaneBudget> cpu_lanes = o.devices[0].scheduler.device_lanes;
  auto store = ModelStore::Open(o).value();
  ASSERT_TRUE(store->Add("a", 0, ModelFile(16, 1)).ok());
  auto first = store->Acquire("a");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(cpu_lanes->TryTake() && cpu_lanes->TryTake());
  auto second = store->Acquire("a");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->model, first->model);
  EXPECT_EQ(second->entry.devices, Names{"cpu"});
  auto third = store->Acquire("a");
  EXPECT_EQ(third->model, first->model);
  EXPECT_EQ(store->Usage()[1].models, 0u);
  cpu_lanes->Give(2);
}

TEST(ModelStore, AModelThatFitsNoDeviceIsRefusedSayingWhatEachHas) {
  testing::TempDir dir("store");
  TwoDevices t = OpenTwoDeviceStore(dir.path(), 0.5, 0.7);
  auto r = t.store->Acquire("a");
  ASSERT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("model a:1 needs "), std::string::npos) << m;
  EXPECT_NE(m.find(" resident on cpu (engine "), std::string::npos) << m;
  EXPECT_NE(m.find(" resident on cpu2 (engine "), std::string::npos) << m;
  EXPECT_NE(m.find("memory_budget"), std::string::npos) << m;
  EXPECT_EQ(t.store->resident_bytes(), 0u);
}

// Two names for one file are one resident model, and each caller sees the name it used.
TEST(ModelStore, NamesThatShareAModelEachResolveToThemselves) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->Add("a", 0, ModelFile(8, 1)).ok());
  ASSERT_TRUE(store->Add("b", 0, ModelFile(8, 1)).ok());
  auto a = store->Acquire("a");
  auto b = store->Acquire("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->model, b->model);
  EXPECT_EQ(a->entry.Ref(), "a:1");
  EXPECT_EQ(b->entry.Ref(), "b:1");
  EXPECT_TRUE(store->Resolve("a")->loaded);
  EXPECT_TRUE(store->Resolve("b")->loaded);
  ASSERT_TRUE(store->Remove("a").ok());
  EXPECT_TRUE(store->Resolve("b")->loaded) << "b still serves the model";
}

// Replicas on one directory: automatic versions never collide, each version appears whole
// (the scans running meanwhile never report a half-written one) and every store ends up
// seeing every version.
TEST(ModelStore, SharedStoresRacingForVersionsEachGetTheirOwn) {
  testing::TempDir dir("store");
  const std::string d = dir.path() + "/models";
  std::vector<std::unique_ptr<ModelStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenStore(d, 1ull << 30, true));
  constexpr int kEach = 6;
  std::vector<std::vector<uint32_t>> versions(stores.size());
  std::atomic<bool> done{false};
  std::atomic<size_t> scan_problems{0};
  std::thread scanner([&] {
    while (!done) {
      Result<ModelStore::RescanReport> r = stores[0]->Rescan();
      if (r.ok()) scan_problems += r->problems;
    }
  });
  std::vector<std::thread> writers;
  for (size_t i = 0; i < stores.size(); ++i) {
    writers.emplace_back([&, i] {
      for (int k = 0; k < kEach; ++k) {
        Result<ModelEntry> e = stores[i]->Add("jets", 0, ModelFile(8, 100 * i + k));
        ASSERT_TRUE(e.ok()) << e.status().message();
        versions[i].push_back(e->version);
      }
    });
  }
  for (auto& t : writers) t.join();
  done = true;
  scanner.join();
  EXPECT_EQ(scan_problems.load(), 0u) << "a scan saw a version half written";
  std::set<uint32_t> all;
  for (const auto& v : versions) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), stores.size() * kEach) << "two uploads got one version";
  for (auto& store : stores) {
    ASSERT_TRUE(store->Rescan().ok());
    EXPECT_EQ(store->List().size(), stores.size() * kEach);
    EXPECT_TRUE(store->problems().empty()) << store->problems()[0];
  }
  // An explicit version another replica took is refused, and the stored file is untouched.
  const ModelEntry first = stores[1]->Resolve("jets:1").value();
  EXPECT_FALSE(stores[2]->Add("jets", 1, ModelFile(8, 999)).ok());
  EXPECT_EQ(stores[0]->Resolve("jets:1")->id, first.id);
  // Nothing is left behind but the versions.
  for (const auto& entry : std::filesystem::directory_iterator(d)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "jets" || name == ".boad.lock") << name;
  }
}

// A shared store finds what a replica added when a reference misses, without a SIGHUP; a
// store of its own does not look (nobody else writes it).
TEST(ModelStore, ASharedStoreLooksAgainWhenAReferenceMisses) {
  testing::TempDir dir("store");
  const std::string d = dir.path() + "/models";
  auto mine = OpenStore(d, 1ull << 30, true);
  auto other = OpenStore(d, 1ull << 30, true);
  auto alone = OpenStore(d);
  Result<ModelEntry> added = other->Add("muons", 0, ModelFile(8, 2));
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(alone->Resolve(added->id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(mine->Resolve(added->id)->Ref(), "muons:1") << "found by id after one scan";
  Result<ModelEntry> next = other->Add("muons", 0, ModelFile(8, 3));
  ASSERT_TRUE(next.ok());
  Result<ModelLease> lease = mine->Acquire("muons:2");
  ASSERT_TRUE(lease.ok()) << lease.status().message();
  EXPECT_EQ(lease->entry.id, next->id);
  // A model a replica removed leaves memory at the next scan, once unused.
  lease = Status::Internal("released");
  ASSERT_TRUE(mine->Acquire("muons:1").ok());
  ASSERT_TRUE(other->Remove("muons:1").ok());
  Result<ModelStore::RescanReport> r = mine->Rescan();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->removed, 1u);
  for (const auto& m : mine->Resident()) EXPECT_NE(m->id, added->id);
  // Unknown references wait for the next allowed scan rather than scanning each time.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(mine->Resolve("nothing").status().code(), StatusCode::kNotFound);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << "at most one scan a second";
}

// With rescan_seconds, a shared store serves a replica's model without being asked.
TEST(ModelStore, ASharedStoreRescansInTheBackground) {
  testing::TempDir dir("store");
  const std::string d = dir.path() + "/models";
  auto mine = OpenStore(d, 1ull << 30, true, 0.1);
  auto other = OpenStore(d, 1ull << 30, true);
  ASSERT_TRUE(other->Add("jets", 0, ModelFile(8, 1)).ok());
  for (int i = 0; i < 100 && mine->List().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(mine->List().size(), 1u);
}

// A scan reads again only model files whose size or time changed: an unchanged store costs a
// directory listing, and a file that changed is checked again.
TEST(ModelStore, RescanReadsOnlyFilesThatChanged) {
  testing::TempDir dir("store");
  auto store = OpenStore(dir.path());
  Result<ModelEntry> e = store->Add("jets", 0, ModelFile(8, 1));
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(store->Rescan().ok());
  const std::string file = e->dir + "/model.boam";
  struct stat before {};
  ASSERT_EQ(stat(file.c_str(), &before), 0);
  // Same size, same time, different bytes: not read again, so still served as it was.
  std::vector<uint8_t> bytes = ReadFile(file, 1 << 20).value();
  bytes[bytes.size() / 2] ^= 1;
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  ASSERT_TRUE(store->Rescan().ok());
  EXPECT_TRUE(store->problems().empty());
  EXPECT_TRUE(store->Resolve("jets").ok());
  // A new time: read again, and the damage is found.
  const timespec later[2] = {before.st_atim, {before.st_mtim.tv_sec + 5, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), later, 0), 0);
  ASSERT_TRUE(store->Rescan().ok());
  ASSERT_EQ(store->problems().size(), 1u);
  EXPECT_EQ(store->Resolve("jets").status().code(), StatusCode::kNotFound);
}

// Uploads and removals a killed boad left half done are hidden from scans and removed at the
// next start once an hour old (a replica may still be writing a younger one).
// What a killed upload or removal left: in a shared store only once an hour old (another
// replica may still be writing a younger one); in one this boad holds alone, all of it.
TEST(ModelStore, TemporariesAreHiddenAndStaleOnesRemoved) {
  namespace fs = std::filesystem;
  for (const bool shared : {true, false}) {
    testing::TempDir dir("store");
    const std::string d = dir.path();
    fs::create_directories(d + "/.incoming-old");
    fs::create_directories(d + "/.removed-jets-1-1-1");
    fs::create_directories(d + "/.incoming-young");
    std::ofstream(d + "/.incoming-old/model.boam") << "half";
    fs::last_write_time(d + "/.incoming-old", fs::file_time_type::clock::now() - std::chrono::hours(2));
    fs::last_write_time(d + "/.removed-jets-1-1-1", fs::file_time_type::clock::now() - std::chrono::hours(2));
    auto store = OpenStore(d, 1ull << 30, shared);
    EXPECT_TRUE(store->problems().empty()) << store->problems()[0];
    EXPECT_FALSE(fs::exists(d + "/.incoming-old"));
    EXPECT_FALSE(fs::exists(d + "/.removed-jets-1-1-1"));
    EXPECT_EQ(fs::exists(d + "/.incoming-young"), shared) << (shared ? "shared" : "held alone");
  }
}

}  // namespace
}  // namespace boa::server
