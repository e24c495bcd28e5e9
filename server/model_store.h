// boad's model repository: `<dir>/<name>/<version>/model.boam` plus a `manifest.yaml`
// (docs/server.md, "Model store"). A model is addressed as `name` (its highest version),
// `name:version`, or by its id (the SHA-256 of the file, 64 hex digits) — the id is what a
// .boa stream records. Loaded models stay resident with their engine and scheduler on one or
// more devices (boad.yaml `devices`); above a device's memory budget the least recently used
// idle ones there are unloaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/engine/engine.h"
#include "common/model/model.h"
#include "common/util/mutex.h"
#include "common/util/status.h"
#include "server/scheduler.h"

namespace boa::server {

struct ModelEntry {
  std::string name;
  uint32_t version = 0;
  std::string id;  // 64 hex digits
  std::string dir;  // <store>/<name>/<version>
  ModelConfig config;
  std::string dtype;
  uint64_t file_bytes = 0;
  int64_t file_mtime_ns = 0;  // when indexed: a rescan reads again only files that changed
  int64_t created_unix = 0;
  bool loaded = false;
  std::vector<std::string> devices;  // where it is resident, in the store's device order
  std::string Ref() const { return name + ":" + std::to_string(version); }
};

// A model in memory with the scheduler that batches its chunks. One per model id: names
// that share an id share it.
struct ResidentModel {
  std::string id;
  std::string device;  // the device's name ("cpu", "cuda:0")
  // The model's id, architecture and stored type; its tensors are released once the engine
  // holds the weights.
  LoadedModel model;
  std::shared_ptr<const engine::Engine> engine;
  std::unique_ptr<ChunkScheduler> scheduler;
  uint64_t bytes = 0;  // ModelStore::ResidentBytes: everything it and its lanes can hold
};

// A resident model with the store entry the caller's reference resolved to (its name is the
// one the caller used, when several names share the model).
struct ModelLease {
  ModelEntry entry;
  std::shared_ptr<ResidentModel> model;
};

// Versions are 1..kMaxModelVersion everywhere: in references (name:version), uploads, the
// automatic next version and the store's directory names (written without leading zeros).
constexpr uint32_t kMaxModelVersion = 999999999;
Result<uint32_t> ParseModelVersion(const std::string& text);

// A device models run on (boad.yaml `devices`; server/devices.h makes them from the config):
// its engine, its memory and its lanes, shared by the models resident there.
struct StoreDevice {
  std::string name = "cpu";         // "cpu", "cuda:0": for status, metrics labels and logs
  std::string description = "cpu";  // with what it is: "cpu (avx2)", "cuda:0 (NVIDIA H200)"
  engine::Backend backend = engine::Backend::kAuto;  // a CPU kernel set, or kCuda
  int cuda_device = 0;
  uint64_t memory_budget = 4ull << 30;
  // Each resident model's step threads and lanes here; device_lanes is the device's budget.
  ChunkScheduler::Options scheduler;
};

// What one device holds now (status, metrics).
struct DeviceUsage {
  std::string name, description;
  uint64_t memory_budget = 0, resident_bytes = 0;
  uint32_t lanes = 0, lanes_busy = 0;  // the device's lane budget (0: none)
  uint32_t models = 0;
};

class ModelStore {
 public:
  struct Options {
    std::string dir;
    // In order of preference (docs/server.md, "Devices"); at least one.
    std::vector<StoreDevice> devices = {StoreDevice{}};
    // The observer of a model's scheduler, by the name it was loaded under and the device's
    // (may be empty).
    std::function<std::shared_ptr<SchedulerObserver>(const std::string& name, const std::string& device)> observe;
    // Other boads use the same directory (replicas on a shared volume, `shared_model_dir`):
    // a reference that is not found reads the directory again before it is NOT_FOUND (at
    // most one scan a second), and with rescan_seconds > 0 a background thread reads it that
    // often. Writes are safe either way (below).
    bool shared = false;
    double rescan_seconds = 0;
  };
  // Creates the directory if needed and indexes what it holds. Anything in it that is not a
  // valid entry (a bad name or version directory, a model file that does not load or whose
  // manifest disagrees) is left on disk and reported in problems(), never dropped silently.
  static Result<std::unique_ptr<ModelStore>> Open(const Options& options);
  ~ModelStore();
  std::vector<std::string> problems() const BOA_EXCLUDES(mu_);
  // Reads the directory again (SIGHUP; a store shared by replicas): models put there by
  // others are served, ones removed are no longer (and leave memory once no request uses
  // them); problems() is renewed. Only model files that changed since the last scan are read
  // again. What this store adds or removes while the scan runs stays as it left it, and a
  // name directory that cannot be read keeps the versions known before.
  struct RescanReport {
    size_t added = 0, removed = 0, problems = 0;
  };
  Result<RescanReport> Rescan() BOA_EXCLUDES(mu_, scan_mu_);

  std::vector<ModelEntry> List() const;
  // NOT_FOUND names the reference; INVALID_ARGUMENT for a malformed one.
  Result<ModelEntry> Resolve(const std::string& ref) BOA_EXCLUDES(mu_, scan_mu_);
  // Validates the file completely before anything is written (INVALID_ARGUMENT if it is not
  // a valid model); version 0 = the next after the highest stored. The version appears
  // whole or not at all, to this store and to others on the same directory: it is written
  // to a hidden directory and renamed into place, and a version directory that is already
  // there (another replica's, or one left on disk) is never replaced: an explicit version
  // is then ALREADY_EXISTS / FAILED_PRECONDITION, an automatic one takes the next.
  Result<ModelEntry> Add(const std::string& name, uint32_t version, const std::vector<uint8_t>& file)
      BOA_EXCLUDES(mu_);
  // Add for a file that arrives in pieces (UploadModel): each piece goes to a hidden
  // temporary file in the store as it comes, the first bytes are checked at once
  // (ReadModelHead: a wrong file is refused before more of it is taken) and no more is taken
  // than its header's tensors need or `max_bytes`. Commit validates the whole file and
  // publishes it as Add does; an upload dropped uncommitted leaves nothing behind.
  class Upload;
  Result<std::unique_ptr<Upload>> BeginUpload(const std::string& name, uint32_t version, uint64_t max_bytes);
  Result<ModelEntry> Commit(std::unique_ptr<Upload> upload) BOA_EXCLUDES(mu_);
  // Renames the version directory to a hidden name first (other replicas stop seeing it at
  // once), then deletes it.
  Result<ModelEntry> Remove(const std::string& ref) BOA_EXCLUDES(mu_);
  // Loads (or finds resident) and marks as recently used, on a device chosen as
  // docs/server.md "Devices" says: the first device holding it with a free lane; a second
  // device (loaded there) when every holder's lanes are busy and another has room without
  // unloading anything; for a model resident nowhere, the first device in order where it
  // fits, idle models there unloaded if need be. RESOURCE_EXHAUSTED when the
  // model cannot fit any device's memory budget with its lanes (the message says what it
  // needs), or when memory runs out while loading it. The model is loaded and its engine
  // and scheduler built without the store's lock, once per device: other callers asking
  // for it meanwhile wait for that load or use a device holding it; everything else goes on.
  Result<ModelLease> Acquire(const std::string& ref) BOA_EXCLUDES(mu_, scan_mu_);
  // Bytes a model of `config` holds while resident on device `device` (an index into
  // Options::devices): its engine (packed weights and tables) and every step thread's lanes
  // and activations (ChunkScheduler::MemoryBytes).
  uint64_t ResidentBytes(const ModelConfig& config, size_t device = 0) const;
  // Leaves every device.
  Result<ModelEntry> Unload(const std::string& ref);
  // The model file, checked against its id first (DATA_LOSS if it was damaged on disk).
  Result<std::vector<uint8_t>> ReadFile(const std::string& ref) BOA_EXCLUDES(mu_, scan_mu_);

  // On every device.
  std::vector<std::shared_ptr<ResidentModel>> Resident() const BOA_EXCLUDES(mu_);
  // Over every device.
  uint64_t resident_bytes() const BOA_EXCLUDES(mu_);
  uint64_t memory_budget() const BOA_EXCLUDES(mu_);
  // A new memory budget for device `device` (SIGHUP): idle models above it are unloaded at
  // once, least recently used first; models in use stay until their requests end.
  void SetMemoryBudget(size_t device, uint64_t bytes) BOA_EXCLUDES(mu_);
  const std::vector<StoreDevice>& devices() const { return options_.devices; }
  // Each device's memory and lanes now, in the store's device order. Lanes count every lane
  // taken, also by a model unloaded while its last chunks finish.
  std::vector<DeviceUsage> Usage() const BOA_EXCLUDES(mu_);

  // 1..64 of A-Z a-z 0-9 _ - . (not first), not 64 hex digits (that is an id) and not
  // ending in .boam (boa-client reads that as a model file).
  static Status CheckName(const std::string& name);

 private:
  class Loading;
  explicit ModelStore(Options options);
  Result<ModelEntry> ResolveLocked(const std::string& ref) const BOA_REQUIRES(mu_);
  Result<ModelLease> AcquireKnown(const std::string& ref) BOA_EXCLUDES(mu_, scan_mu_);
  // ResolveLocked, and for a shared store one scan after a NOT_FOUND.
  Result<ModelEntry> Find(const std::string& ref) BOA_EXCLUDES(mu_, scan_mu_);
  // In a shared store, after `ref` was not found at `asked`: scans unless a scan began since
  // (at most one a second; callers meanwhile wait for it). Whether it scanned.
  bool RescanAfterMiss(std::chrono::steady_clock::time_point asked) BOA_EXCLUDES(mu_, scan_mu_);
  Result<RescanReport> RescanLocked() BOA_REQUIRES(scan_mu_) BOA_EXCLUDES(mu_);
  void RescanEvery(std::chrono::duration<double> period) BOA_EXCLUDES(stop_mu_, mu_, scan_mu_);
  // One device's resident models and loads.
  struct Slot {
    std::shared_ptr<ResidentModel> model;
    std::chrono::steady_clock::time_point last_used;
  };
  using Slots = std::map<std::string, Slot>;  // by id
  struct DeviceSlots {
    uint64_t memory_budget = 0;  // StoreDevice::memory_budget until a SIGHUP changes it
    Slots resident;
    // Loads in progress, by id; their bytes count against the budget like resident ones.
    std::map<std::string, std::shared_ptr<Loading>> loading;
    // Models taken out while requests still used them: their memory stays held until the
    // last of those requests ends, so placement counts it as busy.
    std::vector<std::weak_ptr<ResidentModel>> leaving;
    // A copy that failed to load here (out of device memory, say): no copies are tried here
    // again before this time; requests use the devices that hold the model.
    std::chrono::steady_clock::time_point no_copies_until;
  };
  // Bytes a device holds: resident models, loads and models leaving; *busy (if given) gets
  // the part unloading idle models cannot free.
  static uint64_t HeldBytes(const DeviceSlots& d, uint64_t* busy = nullptr);
  // Takes a model out of its device (`leaving` keeps track of its memory while in use).
  static Slots::iterator Release(DeviceSlots& d, Slots::iterator it);
  // Where a model not resident on `device` can go: without unloading anything, after
  // unloading its idle models, or not even then.
  enum class Fit { kFree, kAfterEviction, kNo };
  Fit FitLocked(size_t device, uint64_t need) const BOA_REQUIRES(mu_);
  // The device to load a model of `config` on, or RESOURCE_EXHAUSTED saying what it needs.
  Result<size_t> PlaceLocked(const ModelEntry& e) const BOA_REQUIRES(mu_);
  // Free lanes on a device (its lane budget; no budget: never full).
  uint32_t FreeLanes(size_t device) const;
  void EvictLocked(size_t device, uint64_t incoming) BOA_REQUIRES(mu_);
  void DropLocked(const std::string& id) BOA_REQUIRES(mu_);
  ModelEntry WithLoaded(ModelEntry e) const BOA_REQUIRES(mu_);
  // Reads the model file and builds its engine and scheduler on `device` (slow: never under
  // mu_).
  Result<std::shared_ptr<ResidentModel>> Load(const ModelEntry& e, size_t device, uint64_t bytes) const
      BOA_EXCLUDES(mu_);

  using Entries = std::map<std::string, std::map<uint32_t, ModelEntry>>;  // name -> version -> entry
  // What the last scan learnt of each version directory, so the next reads again only model
  // files whose size or time changed.
  struct ScanCacheItem {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::string manifest_id;
    Result<ModelEntry> entry = Status::Internal("not scanned");  // or the problem
  };
  using ScanCache = std::map<std::string, ScanCacheItem>;  // by version directory
  struct Scan {
    Entries entries;
    std::vector<std::string> problems;
    std::set<std::string> unreadable;  // names whose directory could not be listed
  };
  static Status Index(const std::string& dir, ScanCache* cache, Scan* scan);

  const Options options_;
  // One scan at a time; taken before mu_, never while holding it. Guards the scan cache.
  Mutex scan_mu_ BOA_ACQUIRED_BEFORE(mu_);
  ScanCache scan_cache_ BOA_GUARDED_BY(scan_mu_);
  std::chrono::steady_clock::time_point last_scan_start_ BOA_GUARDED_BY(scan_mu_);
  mutable Mutex mu_;
  // While a scan reads the directory: the versions this store added or removed meanwhile
  // (the scan may have seen them either way; the store's own view wins).
  bool scanning_ BOA_GUARDED_BY(mu_) = false;
  std::set<std::pair<std::string, uint32_t>> touched_ BOA_GUARDED_BY(mu_);
  std::vector<std::string> problems_ BOA_GUARDED_BY(mu_);
  Entries entries_ BOA_GUARDED_BY(mu_);
  std::vector<DeviceSlots> slots_ BOA_GUARDED_BY(mu_);  // one per Options::devices entry

  // The background scans of a shared store (rescan_seconds).
  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ BOA_GUARDED_BY(stop_mu_) = false;
  std::thread rescanner_;
};

class ModelStore::Upload {
 public:
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  // INVALID_ARGUMENT when the bytes so far are not the start of a model file;
  // RESOURCE_EXHAUSTED past the size the header promises or the store's limit.
  Status Write(const uint8_t* p, size_t n);
  uint64_t bytes() const { return written_; }

 private:
  friend class ModelStore;
  Upload() = default;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t max_bytes_ = 0;
  std::string dir_;   // the hidden temporary directory; removed unless published
  int fd_ = -1;       // its model file
  std::vector<uint8_t> head_;  // the first bytes, until ReadModelHead has them all
  uint64_t expected_ = 0;      // the file's size by its header (0: header not read yet)
  uint64_t written_ = 0;
};

}  // namespace boa::server
