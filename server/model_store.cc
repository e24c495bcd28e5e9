// The model repository on disk and the set of resident models.
#include "server/model_store.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "common/util/hash.h"
#include "common/util/io.h"

namespace boa::server {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxModelFileBytes = 8ull << 30;
constexpr const char* kModelFileName = "model.boam";
constexpr const char* kManifestName = "manifest.yaml";

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// 64 hex digits: how a model id is written (in lower case; a name may not look like one in
// any case).
bool LooksLikeId(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}
bool IsHexId(const std::string& s) {
  return LooksLikeId(s) && std::none_of(s.begin(), s.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; });
}

ModelEntry EntryFor(const std::string& name, uint32_t version, const std::string& dir, const LoadedModel& m,
                    int64_t created) {
  ModelEntry e;
  e.name = name;
  e.version = version;
  e.id = m.IdHex();
  e.dir = dir;
  e.config = m.weights.config;
  e.dtype = WeightTypeName(m.stored_type);
  e.file_bytes = m.file_bytes;
  e.created_unix = created;
  return e;
}

struct Manifest {
  int64_t created_unix = 0;
  std::string id;
};

Manifest ReadManifest(const std::string& dir) {
  Manifest m;
  try {
    YAML::Node n = YAML::LoadFile(dir + "/" + kManifestName);
    if (n["created_unix"]) m.created_unix = n["created_unix"].as<int64_t>();
    if (n["id"]) m.id = n["id"].as<std::string>();
  } catch (const std::exception&) {
  }
  return m;
}

}  // namespace

Result<uint32_t> ParseModelVersion(const std::string& text) {
  const auto bad = [&] {
    return Status::InvalidArgument("version '" + text + "' is not a number 1.." + std::to_string(kMaxModelVersion));
  };
  if (text.empty() || text.size() > 9 || !std::all_of(text.begin(), text.end(), IsDigit)) return bad();
  const uint32_t v = static_cast<uint32_t>(std::stoul(text));
  if (v == 0 || v > kMaxModelVersion) return bad();
  return v;
}

Status ModelStore::CheckName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  if (!ok) {
    return Status::InvalidArgument("model name '" + name + "' is not valid: use 1..64 letters, digits, '_', '-', '.' (not first)");
  }
  if (LooksLikeId(name)) {
    return Status::InvalidArgument("model name '" + name + "' is not valid: 64 hex digits are a model id");
  }
  if (HasModelFileSuffix(name)) {
    return Status::InvalidArgument("model name '" + name + "' is not valid: a name ending in " + kModelFileSuffix +
                                   " is read as a model file");
  }
  return Status::Ok();
}

// Reads every entry of the store's directory: valid ones into `entries`, the rest (left on
// disk) into `problems`. Slow (it reads every model file): never under the store's lock.
Status ModelStore::Index(const std::string& dir, Entries* entries, std::vector<std::string>* problems) {
  auto problem = [&](const std::string& path, const std::string& what) {
    problems->push_back(path + ": " + what + " (left on disk, not served)");
  };
  std::error_code ec;
  for (const auto& name_dir : fs::directory_iterator(dir, ec)) {
    const std::string name = name_dir.path().filename().string();
    if (name[0] == '.') continue;  // hidden files and temporaries
    if (!name_dir.is_directory()) {
      problem(name_dir.path().string(), "not a model directory");
      continue;
    }
    if (Status s = CheckName(name); !s.ok()) {
      problem(name_dir.path().string(), s.message());
      continue;
    }
    std::error_code name_ec;  // an unreadable name directory is a problem, not a failure of the store
    for (const auto& ver_dir : fs::directory_iterator(name_dir.path(), name_ec)) {
      const std::string v = ver_dir.path().filename().string();
      const std::string path = ver_dir.path().string();
      if (v[0] == '.') continue;
      Result<uint32_t> version = ParseModelVersion(v);
      if (!ver_dir.is_directory() || !version.ok() || std::to_string(*version) != v) {
        problem(path, "not a version directory (1.." + std::to_string(kMaxModelVersion) + ", no leading zeros)");
        continue;
      }
      Result<LoadedModel> m = LoadModelFile(path + "/" + kModelFileName);
      if (!m.ok()) {
        problem(path, m.status().message());
        continue;
      }
      const Manifest manifest = ReadManifest(path);
      if (manifest.id != m->IdHex()) {
        problem(path, "the manifest's id " + (manifest.id.empty() ? std::string("(missing)") : manifest.id) +
                          " is not the model file's " + m->IdHex());
        continue;
      }
      (*entries)[name][*version] = EntryFor(name, *version, path, *m, manifest.created_unix);
    }
    if (name_ec) problem(name_dir.path().string(), "cannot read it: " + name_ec.message());
  }
  if (ec) return Status::IoError("model directory " + dir + ": " + ec.message());
  return Status::Ok();
}

Result<std::unique_ptr<ModelStore>> ModelStore::Open(const Options& options) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir)) {
    return Status::IoError("model directory " + options.dir + ": cannot create or open it" + (ec ? ": " + ec.message() : ""));
  }
  std::unique_ptr<ModelStore> store(new ModelStore(options));
  Entries entries;
  std::vector<std::string> problems;
  BOA_RETURN_IF_ERROR(Index(options.dir, &entries, &problems));
  MutexLock l(&store->mu_);  // not shared yet; the lock keeps the analysis simple
  store->entries_ = std::move(entries);
  store->problems_ = std::move(problems);
  return Result<std::unique_ptr<ModelStore>>(std::move(store));
}

Result<ModelStore::RescanReport> ModelStore::Rescan() {
  Entries found;
  std::vector<std::string> problems;
  BOA_RETURN_IF_ERROR(Index(options_.dir, &found, &problems));
  RescanReport report;
  MutexLock l(&mu_);
  // An entry added or removed by this boad while the directory was read is kept as it is
  // now: entries already known stay while their directory exists.
  for (const auto& [name, versions] : entries_) {
    for (const auto& [v, e] : versions) {
      std::error_code ec;
      if (found.count(name) && found[name].count(v)) continue;
      if (fs::exists(e.dir, ec)) {
        found[name][v] = e;
      } else {
        ++report.removed;
      }
    }
  }
  for (const auto& [name, versions] : found) {
    for (const auto& [v, e] : versions) {
      const auto known = entries_.find(name);
      if (known == entries_.end() || !known->second.count(v)) ++report.added;
    }
  }
  entries_ = std::move(found);
  problems_ = std::move(problems);
  report.problems = problems_.size();
  return report;
}

std::vector<std::string> ModelStore::problems() const {
  MutexLock l(&mu_);
  return problems_;
}

ModelEntry ModelStore::WithLoaded(ModelEntry e) const {
  e.loaded = resident_.count(e.id) > 0;
  return e;
}

std::vector<ModelEntry> ModelStore::List() const {
  MutexLock l(&mu_);
  std::vector<ModelEntry> out;
  for (const auto& [name, versions] : entries_) {
    for (const auto& [v, e] : versions) out.push_back(WithLoaded(e));
  }
  return out;
}

Result<ModelEntry> ModelStore::ResolveLocked(const std::string& ref) const {
  if (ref.empty()) return Status::InvalidArgument("no model given (a name, name:version or a 64-hex-digit id)");
  if (IsHexId(ref)) {
    for (const auto& [name, versions] : entries_) {
      for (const auto& [v, e] : versions) {
        if (e.id == ref) return WithLoaded(e);
      }
    }
    return Status::NotFound("no model with id " + ref + " in the store");
  }
  std::string name = ref;
  uint32_t version = 0;
  size_t colon = ref.rfind(':');
  if (colon != std::string::npos) {
    name = ref.substr(0, colon);
    Result<uint32_t> v = ParseModelVersion(ref.substr(colon + 1));
    if (!v.ok()) return v.status().WithContext("model reference '" + ref + "'");
    version = *v;
  }
  BOA_RETURN_IF_ERROR(CheckName(name));
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.empty()) return Status::NotFound("unknown model '" + name + "'");
  if (version == 0) return WithLoaded(it->second.rbegin()->second);
  auto v = it->second.find(version);
  if (v == it->second.end()) return Status::NotFound("model '" + name + "' has no version " + std::to_string(version));
  return WithLoaded(v->second);
}

Result<ModelEntry> ModelStore::Resolve(const std::string& ref) const {
  MutexLock l(&mu_);
  return ResolveLocked(ref);
}

Result<ModelEntry> ModelStore::Add(const std::string& name, uint32_t version, const std::vector<uint8_t>& file) {
  BOA_RETURN_IF_ERROR(CheckName(name));
  if (version > kMaxModelVersion) {
    return Status::InvalidArgument("version " + std::to_string(version) + " is out of range 1.." + std::to_string(kMaxModelVersion));
  }
  Result<LoadedModel> parsed = ParseModelFile(file);
  if (!parsed.ok()) return Status::InvalidArgument("not a valid model file: " + parsed.status().message());
  const LoadedModel& m = *parsed;
  MutexLock l(&mu_);
  auto& versions = entries_[name];
  auto dir_of = [&](uint32_t v) { return options_.dir + "/" + name + "/" + std::to_string(v); };
  std::error_code ec;
  if (version == 0) {
    // The next after the highest served, past any directory left on disk (a problem entry).
    version = versions.empty() ? 1 : versions.rbegin()->first + 1;
    while (version <= kMaxModelVersion && fs::exists(dir_of(version), ec)) ++version;
    if (version > kMaxModelVersion) {
      if (versions.empty()) entries_.erase(name);
      return Status::FailedPrecondition("model " + name + " has no version left after " +
                                        std::to_string(kMaxModelVersion) + ": give a free version explicitly");
    }
  }
  if (versions.count(version)) {
    return Status::AlreadyExists("model " + name + ":" + std::to_string(version) + " already exists");
  }
  const std::string dir = dir_of(version);
  // Only a directory made here is ever removed here: one left on disk is someone's evidence.
  fs::create_directories(options_.dir + "/" + name, ec);
  const bool made = !ec && fs::create_directory(dir, ec);
  if (!made) {
    if (versions.empty()) entries_.erase(name);
    if (ec) return Status::IoError("model directory " + dir + ": " + ec.message());
    return Status::FailedPrecondition(dir + " is already on disk but not served (see the problems in status): "
                                      "mend or remove it, or upload another version");
  }
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  Status s = WriteFileAtomic(dir + "/" + kModelFileName, file, false);
  if (s.ok()) {
    YAML::Emitter y;
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "version" << YAML::Value
      << version << YAML::Key << "id" << YAML::Value << m.IdHex() << YAML::Key << "created_unix" << YAML::Value
      << created << YAML::EndMap;
    std::string text = std::string(y.c_str()) + "\n";
    s = WriteFileAtomic(dir + "/" + kManifestName, std::vector<uint8_t>(text.begin(), text.end()), true);
  }
  if (!s.ok()) {
    fs::remove_all(dir, ec);  // made above
    if (versions.empty()) entries_.erase(name);
    return s;
  }
  ModelEntry e = EntryFor(name, version, dir, m, created);
  versions[version] = e;
  return WithLoaded(e);
}

Result<ModelEntry> ModelStore::Remove(const std::string& ref) {
  MutexLock l(&mu_);
  BOA_ASSIGN_OR_RETURN(ModelEntry e, ResolveLocked(ref));
  std::error_code ec;
  fs::remove_all(e.dir, ec);
  if (ec) return Status::IoError("removing " + e.dir + ": " + ec.message());
  auto& versions = entries_[e.name];
  versions.erase(e.version);
  if (versions.empty()) {
    entries_.erase(e.name);
    fs::remove(options_.dir + "/" + e.name, ec);
  }
  // A request still coding with it keeps its own reference until it ends; a load in
  // progress finishes for its callers but does not stay.
  resident_.erase(e.id);
  loading_.erase(e.id);
  e.loaded = false;
  return e;
}

// One load of a model, waited for by every caller that asks for it meanwhile.
class ModelStore::Loading {
 public:
  explicit Loading(uint64_t bytes) : bytes_(bytes) {}
  uint64_t bytes() const { return bytes_; }
  void Finish(Result<std::shared_ptr<ResidentModel>> r) BOA_EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      result_ = std::move(r);
      done_ = true;
    }
    cv_.SignalAll();
  }
  Result<std::shared_ptr<ResidentModel>> Wait() BOA_EXCLUDES(mu_) {
    MutexLock l(&mu_);
    while (!done_) cv_.Wait(&mu_);
    return result_;
  }

 private:
  const uint64_t bytes_;
  Mutex mu_;
  CondVar cv_;
  bool done_ BOA_GUARDED_BY(mu_) = false;
  Result<std::shared_ptr<ResidentModel>> result_ BOA_GUARDED_BY(mu_) = Status::Internal("not loaded");
};

void ModelStore::EvictLocked(uint64_t incoming) {
  for (;;) {
    uint64_t total = incoming;
    for (const auto& [id, slot] : resident_) total += slot.model->bytes;
    for (const auto& [id, load] : loading_) total += load->bytes();
    if (total <= options_.memory_budget) return;
    auto lru = resident_.end();
    for (auto it = resident_.begin(); it != resident_.end(); ++it) {
      if (it->second.model.use_count() > 1) continue;  // in use by a request
      if (lru == resident_.end() || it->second.last_used < lru->second.last_used) lru = it;
    }
    if (lru == resident_.end()) return;  // everything is busy: go over budget rather than fail
    resident_.erase(lru);
  }
}

uint64_t ModelStore::ResidentBytes(const ModelConfig& config) const {
  return engine::Engine::MemoryBytesFor(config) + ChunkScheduler::MemoryBytes(config, options_.scheduler);
}

namespace {

std::string MiB(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

Result<std::shared_ptr<ResidentModel>> ModelStore::Load(const ModelEntry& e, uint64_t bytes) const {
  auto r = std::make_shared<ResidentModel>();
  r->id = e.id;
  r->bytes = bytes;
  BOA_RETURN_IF_ERROR(CatchOutOfMemory("loading model " + e.Ref(), [&]() -> Status {
    BOA_ASSIGN_OR_RETURN(r->model, LoadModelFile(e.dir + "/" + kModelFileName));
    if (r->model.IdHex() != e.id) return Status::DataLoss("model file " + e.dir + " changed on disk since the store indexed it");
    BOA_ASSIGN_OR_RETURN(r->engine, engine::Engine::Create(r->model.weights, options_.backend));
    r->model.weights.tensors = {};  // the engine has its own copy
    ChunkScheduler::Options scheduler = options_.scheduler;
    if (options_.observe) scheduler.observer = options_.observe(e.name);
    BOA_ASSIGN_OR_RETURN(r->scheduler, ChunkScheduler::Create(r->engine, std::move(scheduler)));
    return Status::Ok();
  }));
  return r;
}

Result<ModelLease> ModelStore::Acquire(const std::string& ref) {
  ModelEntry e;
  std::shared_ptr<Loading> load;
  bool mine = false;  // this call loads it; others wait for it
  {
    MutexLock l(&mu_);
    BOA_ASSIGN_OR_RETURN(e, ResolveLocked(ref));
    e.loaded = true;
    auto it = resident_.find(e.id);
    if (it != resident_.end()) {
      it->second.last_used = std::chrono::steady_clock::now();
      return ModelLease{e, it->second.model};
    }
    auto loading = loading_.find(e.id);
    if (loading != loading_.end()) {
      load = loading->second;
    } else {
      // Refused before anything is allocated when the model cannot fit at all.
      const uint64_t need = ResidentBytes(e.config);
      if (need > options_.memory_budget) {
        const ChunkScheduler::Options& so = options_.scheduler;
        const uint64_t lanes = static_cast<uint64_t>(std::max(1, so.threads)) * std::max(1, so.lanes_per_thread);
        return Status::ResourceExhausted(
            "model " + e.Ref() + " needs " + MiB(need) + " resident (engine " + MiB(engine::Engine::MemoryBytesFor(e.config)) +
            ", " + std::to_string(lanes) + " lanes of " + MiB(engine::Session::MemoryBytes(e.config, 1, 0)) +
            " state each, and activations), more than memory_budget (" + MiB(options_.memory_budget) +
            "): raise memory_budget or lower lanes in boad.yaml");
      }
      EvictLocked(need);
      load = std::make_shared<Loading>(need);
      loading_[e.id] = load;
      mine = true;
    }
  }
  if (!mine) {
    BOA_ASSIGN_OR_RETURN(std::shared_ptr<ResidentModel> model, load->Wait());
    return ModelLease{e, std::move(model)};
  }
  // Whatever happens, the load ends: its waiters get the result and it leaves loading_.
  Result<std::shared_ptr<ResidentModel>> model = Status::Internal("loading model " + e.id + " failed");
  try {
    model = Load(e, load->bytes());
  } catch (const std::exception& ex) {
    model = dynamic_cast<const std::bad_alloc*>(&ex) ? Status::ResourceExhausted("out of memory loading model " + e.id)
                                                     : Status::Internal("loading model " + e.id + ": " + ex.what());
  }
  {
    MutexLock l(&mu_);
    auto it = loading_.find(e.id);
    // Unload or Remove took it out of loading_ meanwhile: this caller still gets the model
    // (like a request that was coding with it), but it does not stay resident.
    const bool keep = it != loading_.end() && it->second == load;
    if (keep) loading_.erase(it);
    if (keep && model.ok()) {
      try {
        resident_[e.id] = Slot{*model, std::chrono::steady_clock::now()};
      } catch (const std::bad_alloc&) {  // not kept resident; the callers have it
      }
    }
  }
  load->Finish(model);
  BOA_RETURN_IF_ERROR(model.status());
  return ModelLease{e, *model};
}

Result<ModelEntry> ModelStore::Unload(const std::string& ref) {
  MutexLock l(&mu_);
  BOA_ASSIGN_OR_RETURN(ModelEntry e, ResolveLocked(ref));
  resident_.erase(e.id);
  loading_.erase(e.id);  // a load in progress finishes for its callers but does not stay
  e.loaded = false;
  return e;
}

Result<std::vector<uint8_t>> ModelStore::ReadFile(const std::string& ref) const {
  ModelEntry e;
  {
    MutexLock l(&mu_);
    BOA_ASSIGN_OR_RETURN(e, ResolveLocked(ref));
  }
  const std::string path = e.dir + "/" + kModelFileName;
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> file, boa::ReadFile(path, kMaxModelFileBytes));
  const Sha256Digest sha = Sha256(file.data(), file.size());
  if (HexString(sha.data(), sha.size()) != e.id) {
    return Status::DataLoss("the stored file of model " + e.Ref() + " (" + path + ") is damaged: its SHA-256 is not the model id " +
                            e.id);
  }
  return file;
}

std::vector<std::shared_ptr<ResidentModel>> ModelStore::Resident() const {
  MutexLock l(&mu_);
  std::vector<std::shared_ptr<ResidentModel>> out;
  for (const auto& [id, slot] : resident_) out.push_back(slot.model);
  return out;
}

uint64_t ModelStore::resident_bytes() const {
  MutexLock l(&mu_);
  uint64_t total = 0;
  for (const auto& [id, slot] : resident_) total += slot.model->bytes;
  return total;
}

}  // namespace boa::server
