// The model repository on disk and the set of resident models.
#include "server/model_store.h"

#include <yaml-cpp/yaml.h>

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
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
// Hidden entries of the store's root (a scan skips names that begin with '.'): uploads being
// written and versions being deleted.
constexpr const char* kIncomingPrefix = ".incoming-";
constexpr const char* kRemovedPrefix = ".removed-";

// A file's modification time as the scan cache compares it.
int64_t MtimeNs(const struct stat& st) { return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

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

// Reads every entry of the store's directory: valid ones into `scan`, the rest (left on
// disk) into its problems. A model file is read (and hashed) only when it is new or its
// size or time changed since the scan that filled `cache`. Slow on a first scan: never under
// the store's lock.
Status ModelStore::Index(const std::string& dir, ScanCache* cache, Scan* scan) {
  ScanCache next;
  auto problem = [&](const std::string& path, const std::string& what) {
    scan->problems.push_back(path + ": " + what + " (left on disk, not served)");
  };
  std::error_code ec;
  for (const auto& name_dir : fs::directory_iterator(dir, ec)) {
    const std::string name = name_dir.path().filename().string();
    if (name[0] == '.') continue;  // hidden files, uploads being written, removals
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
      const std::string file = path + "/" + kModelFileName;
      struct stat st {};
      if (::stat(file.c_str(), &st) != 0) {
        problem(path, "cannot read " + file + ": " + std::strerror(errno));
        continue;
      }
      const Manifest manifest = ReadManifest(path);
      ScanCacheItem item;
      item.size = static_cast<uint64_t>(st.st_size);
      item.mtime_ns = MtimeNs(st);
      item.manifest_id = manifest.id;
      const auto seen = cache->find(path);
      if (seen != cache->end() && seen->second.size == item.size && seen->second.mtime_ns == item.mtime_ns &&
          seen->second.manifest_id == item.manifest_id) {
        item.entry = seen->second.entry;
      } else if (Result<LoadedModel> m = LoadModelFile(file); !m.ok()) {
        item.entry = m.status();
      } else if (manifest.id != m->IdHex()) {
        item.entry = Status::DataLoss("the manifest's id " + (manifest.id.empty() ? std::string("(missing)") : manifest.id) +
                                      " is not the model file's " + m->IdHex());
      } else {
        ModelEntry e = EntryFor(name, *version, path, *m, manifest.created_unix);
        e.file_mtime_ns = item.mtime_ns;
        item.entry = std::move(e);
      }
      if (item.entry.ok()) {
        scan->entries[name][*version] = *item.entry;
      } else {
        problem(path, item.entry.status().message());
      }
      next[path] = std::move(item);
    }
    if (name_ec) {
      problem(name_dir.path().string(), "cannot read it: " + name_ec.message());
      scan->unreadable.insert(name);
    }
  }
  if (ec) return Status::IoError("model directory " + dir + ": " + ec.message());
  *cache = std::move(next);
  return Status::Ok();
}

namespace {

// Uploads and removals that a boad killed part way left behind: all of them in a store this
// boad holds alone, those an hour old in a shared one (a replica on the same directory may
// still be writing a younger one).
void RemoveStaleTemporaries(const std::string& dir, bool shared) {
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kIncomingPrefix, 0) != 0 && name.rfind(kRemovedPrefix, 0) != 0) continue;
    std::error_code time_ec;
    const auto written = fs::last_write_time(entry.path(), time_ec);
    if (shared && (time_ec || now - written < std::chrono::hours(1))) continue;
    std::error_code rm_ec;
    fs::remove_all(entry.path(), rm_ec);
  }
}

}  // namespace

Result<std::unique_ptr<ModelStore>> ModelStore::Open(const Options& options) {
  if (options.devices.empty()) return Status::InvalidArgument("model store " + options.dir + ": no device to load models on");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir)) {
    return Status::IoError("model directory " + options.dir + ": cannot create or open it" + (ec ? ": " + ec.message() : ""));
  }
  RemoveStaleTemporaries(options.dir, options.shared);
  std::unique_ptr<ModelStore> store(new ModelStore(options));
  BOA_RETURN_IF_ERROR(store->Rescan().status());
  if (options.shared && options.rescan_seconds > 0) {
    ModelStore* s = store.get();
    store->rescanner_ = std::thread([s] { s->RescanEvery(std::chrono::duration<double>(s->options_.rescan_seconds)); });
  }
  return Result<std::unique_ptr<ModelStore>>(std::move(store));
}

ModelStore::~ModelStore() {
  {
    MutexLock l(&stop_mu_);
    stopping_ = true;
  }
  stop_cv_.SignalAll();
  if (rescanner_.joinable()) rescanner_.join();
}

void ModelStore::RescanEvery(std::chrono::duration<double> period) {
  for (;;) {
    {
      MutexLock l(&stop_mu_);
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      while (!stopping_ && std::chrono::steady_clock::now() < until) stop_cv_.WaitFor(&stop_mu_, until - std::chrono::steady_clock::now());
      if (stopping_) return;
    }
    Result<RescanReport> r = Rescan();
    if (!r.ok()) {
      spdlog::error("model store rescan: {}", r.status().message());
    } else if (r->added + r->removed > 0) {
      spdlog::info("model store read again: {} models added, {} gone, {} problems", r->added, r->removed, r->problems);
    }
  }
}

Result<ModelStore::RescanReport> ModelStore::Rescan() {
  MutexLock scan(&scan_mu_);
  return RescanLocked();
}

Result<ModelStore::RescanReport> ModelStore::RescanLocked() {
  last_scan_start_ = std::chrono::steady_clock::now();
  {
    MutexLock l(&mu_);
    scanning_ = true;
    touched_.clear();
  }
  Scan found;
  Status indexed = Index(options_.dir, &scan_cache_, &found);
  RescanReport report;
  MutexLock l(&mu_);
  scanning_ = false;
  if (!indexed.ok()) {
    touched_.clear();
    return indexed;
  }
  Entries& next = found.entries;
  for (const std::string& name : found.unreadable) {
    const auto known = entries_.find(name);
    if (known != entries_.end()) next[name] = known->second;
  }
  for (const auto& [name, v] : touched_) {
    const auto known = entries_.find(name);
    if (known != entries_.end() && known->second.count(v)) {
      next[name][v] = known->second.at(v);
    } else if (next.count(name)) {
      next[name].erase(v);
      if (next[name].empty()) next.erase(name);
    }
  }
  touched_.clear();
  const auto id_of = [](const Entries& entries, const std::string& name, uint32_t v) -> const std::string* {
    const auto n = entries.find(name);
    if (n == entries.end()) return nullptr;
    const auto e = n->second.find(v);
    return e == n->second.end() ? nullptr : &e->second.id;
  };
  std::set<std::string> ids;  // served after the scan
  for (const auto& [name, versions] : next) {
    for (const auto& [v, e] : versions) {
      ids.insert(e.id);
      const std::string* before = id_of(entries_, name, v);
      if (before == nullptr || *before != e.id) ++report.added;
    }
  }
  for (const auto& [name, versions] : entries_) {
    for (const auto& [v, e] : versions) {
      const std::string* after = id_of(next, name, v);
      if (after == nullptr || *after != e.id) ++report.removed;
    }
  }
  // A model no name serves any more leaves memory (requests coding with it keep their lease).
  for (DeviceSlots& d : slots_) {
    for (auto it = d.resident.begin(); it != d.resident.end();) it = ids.count(it->first) ? std::next(it) : Release(d, it);
    for (auto it = d.loading.begin(); it != d.loading.end();) it = ids.count(it->first) ? std::next(it) : d.loading.erase(it);
  }
  entries_ = std::move(next);
  problems_ = std::move(found.problems);
  report.problems = problems_.size();
  return report;
}

bool ModelStore::RescanAfterMiss(std::chrono::steady_clock::time_point asked) {
  if (!options_.shared) return false;
  MutexLock scan(&scan_mu_);
  if (last_scan_start_ >= asked) return true;  // a scan began after the miss: it saw what there is
  // At most one scan a second, whatever asks: a flood of unknown references costs waiting,
  // not directory reads.
  const auto earliest = last_scan_start_ + std::chrono::seconds(1);
  const auto now = std::chrono::steady_clock::now();
  if (now < earliest) std::this_thread::sleep_for(earliest - now);
  Result<RescanReport> r = RescanLocked();
  if (!r.ok()) {
    spdlog::error("model store rescan: {}", r.status().message());
  } else if (r->added + r->removed > 0) {
    spdlog::info("model store read again for a model it did not know: {} models added, {} gone", r->added, r->removed);
  }
  return true;
}

std::vector<std::string> ModelStore::problems() const {
  MutexLock l(&mu_);
  return problems_;
}

ModelEntry ModelStore::WithLoaded(ModelEntry e) const {
  e.devices.clear();
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].resident.count(e.id)) e.devices.push_back(options_.devices[i].name);
  }
  e.loaded = !e.devices.empty();
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

Result<ModelEntry> ModelStore::Find(const std::string& ref) {
  const auto asked = std::chrono::steady_clock::now();
  {
    MutexLock l(&mu_);
    Result<ModelEntry> e = ResolveLocked(ref);
    if (e.ok() || e.status().code() != StatusCode::kNotFound || !options_.shared) return e;
  }
  RescanAfterMiss(asked);
  MutexLock l(&mu_);
  return ResolveLocked(ref);
}

Result<ModelEntry> ModelStore::Resolve(const std::string& ref) { return Find(ref); }

ModelStore::Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

Status ModelStore::Upload::Write(const uint8_t* p, size_t n) {
  const uint64_t limit = expected_ ? std::min(expected_, max_bytes_) : max_bytes_;
  if (n > limit - std::min(limit, written_)) {
    return Status::ResourceExhausted(expected_ > max_bytes_ || expected_ == 0
                                         ? "the model file is larger than this server accepts (max_model_bytes " +
                                               std::to_string(max_bytes_) + ")"
                                         : "the file is longer than its header promises (" + std::to_string(expected_) +
                                               " bytes): not a valid model file");
  }
  if (expected_ == 0) {
    head_.insert(head_.end(), p, p + n);
    Result<ModelHead> head = ReadModelHead(head_.data(), head_.size());
    if (!head.ok()) return Status::InvalidArgument("not a valid model file: " + head.status().message());
    if (head->need == 0) {
      expected_ = head->file_bytes;
      if (expected_ > max_bytes_) {
        return Status::ResourceExhausted("the model file would be " + std::to_string(expected_) +
                                         " bytes, more than this server accepts (max_model_bytes " +
                                         std::to_string(max_bytes_) + ")");
      }
      head_.clear();
      head_.shrink_to_fit();
      if (n > expected_ - written_) {
        return Status::ResourceExhausted("the file is longer than its header promises (" + std::to_string(expected_) +
                                         " bytes): not a valid model file");
      }
    }
  }
  for (size_t done = 0; done < n;) {
    ssize_t w = ::write(fd_, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::IoError("model directory " + dir_ + ": writing the upload: " + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  written_ += n;
  return Status::Ok();
}

Result<std::unique_ptr<ModelStore::Upload>> ModelStore::BeginUpload(const std::string& name, uint32_t version,
                                                                    uint64_t max_bytes) {
  BOA_RETURN_IF_ERROR(CheckName(name));
  if (version > kMaxModelVersion) {
    return Status::InvalidArgument("version " + std::to_string(version) + " is out of range 1.." + std::to_string(kMaxModelVersion));
  }
  std::unique_ptr<Upload> u(new Upload());
  u->name_ = name;
  u->version_ = version;
  u->max_bytes_ = std::min(max_bytes, kMaxModelFileBytes);
  // Written where no scan looks, then renamed into place (Commit).
  std::string tmp = options_.dir + "/" + kIncomingPrefix + "XXXXXX";
  if (mkdtemp(tmp.data()) == nullptr) {
    return Status::IoError("model directory " + options_.dir + ": cannot create a temporary directory: " + std::strerror(errno));
  }
  u->dir_ = tmp;
  u->fd_ = ::open((tmp + "/" + kModelFileName).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (u->fd_ < 0) return Status::IoError("model directory " + tmp + ": " + std::strerror(errno));
  return u;
}

Result<ModelEntry> ModelStore::Add(const std::string& name, uint32_t version, const std::vector<uint8_t>& file) {
  BOA_ASSIGN_OR_RETURN(std::unique_ptr<Upload> u, BeginUpload(name, version, kMaxModelFileBytes));
  BOA_RETURN_IF_ERROR(u->Write(file.data(), file.size()));
  return Commit(std::move(u));
}

Result<ModelEntry> ModelStore::Commit(std::unique_ptr<Upload> upload) {
  Upload& u = *upload;
  const std::string& name = u.name_;
  const uint32_t version = u.version_;
  if (u.expected_ == 0 || u.written_ != u.expected_) {
    return Status::InvalidArgument("not a valid model file: it ends after " + std::to_string(u.written_) + " bytes" +
                                   (u.expected_ ? " of the " + std::to_string(u.expected_) + " its header promises" : ""));
  }
  const bool synced = ::fsync(u.fd_) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(u.fd_) == 0;
  u.fd_ = -1;
  if (!synced || !closed) {
    return Status::IoError("model directory " + u.dir_ + ": writing the upload: " + std::strerror(synced ? errno : sync_errno));
  }
  const std::string tmp = u.dir_;
  BOA_ASSIGN_OR_RETURN(std::vector<uint8_t> file, boa::ReadFile(tmp + "/" + kModelFileName, kMaxModelFileBytes));
  Result<LoadedModel> parsed = ParseModelFile(file);
  if (!parsed.ok()) return Status::InvalidArgument("not a valid model file: " + parsed.status().message());
  file.clear();
  file.shrink_to_fit();
  const LoadedModel& m = *parsed;
  struct stat st {};
  if (::stat((tmp + "/" + kModelFileName).c_str(), &st) != 0) return Status::IoError(tmp + ": " + std::strerror(errno));
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const auto write_manifest = [&](uint32_t v) {
    YAML::Emitter y;
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "version" << YAML::Value << v
      << YAML::Key << "id" << YAML::Value << m.IdHex() << YAML::Key << "created_unix" << YAML::Value << created
      << YAML::EndMap;
    std::string text = std::string(y.c_str()) + "\n";
    return WriteFileAtomic(tmp + "/" + kManifestName, std::vector<uint8_t>(text.begin(), text.end()), true);
  };
  const std::string name_dir = options_.dir + "/" + name;

  MutexLock l(&mu_);
  const auto known = entries_.find(name);
  const bool any = known != entries_.end() && !known->second.empty();
  uint32_t v = version;
  if (v == 0) {
    v = any ? known->second.rbegin()->first + 1 : 1;  // then past anything on disk
  } else if (any && known->second.count(v)) {
    return Status::AlreadyExists("model " + name + ":" + std::to_string(v) + " already exists");
  }
  std::string dir;
  for (int vanished = 0;;) {
    if (v > kMaxModelVersion) {
      return Status::FailedPrecondition("model " + name + " has no version left after " + std::to_string(kMaxModelVersion) +
                                        ": give a free version explicitly");
    }
    dir = name_dir + "/" + std::to_string(v);
    std::error_code ec;
    fs::create_directories(name_dir, ec);
    if (ec) return Status::IoError("model directory " + name_dir + ": " + ec.message());
    BOA_RETURN_IF_ERROR(write_manifest(v));
    // A directory already there is never replaced: another replica's version, or one left on
    // disk that is someone's evidence. rename() does not replace a directory that has files,
    // so of two replicas racing for one version exactly one gets it.
    int err = fs::exists(dir, ec) ? EEXIST : 0;
    if (err == 0 && ::rename(tmp.c_str(), dir.c_str()) == 0) break;
    if (err == 0) err = errno;
    if (err == ENOENT && ++vanished < 8) continue;  // another replica removed the (empty) name directory
    if (err != EEXIST && err != ENOTEMPTY) return Status::IoError("model directory " + dir + ": " + std::strerror(err));
    if (version != 0) {
      return Status::FailedPrecondition(dir + " is already on disk but not served here (another replica's upload, served "
                                        "after the next rescan, or a problem listed in status): upload another version");
    }
    ++v;
  }
  u.dir_.clear();  // published: no longer the upload's to remove
  ModelEntry e = EntryFor(name, v, dir, m, created);
  e.file_mtime_ns = MtimeNs(st);
  entries_[name][v] = e;
  if (scanning_) touched_.insert({name, v});
  return WithLoaded(e);
}

Result<ModelEntry> ModelStore::Remove(const std::string& ref) {
  static std::atomic<uint64_t> removals{0};
  std::string gone;
  ModelEntry e;
  {
    MutexLock l(&mu_);
    BOA_ASSIGN_OR_RETURN(e, ResolveLocked(ref));
    // Out of sight in one step (a scan, this boad's or a replica's, sees it whole or not at
    // all), deleted after.
    gone = options_.dir + "/" + kRemovedPrefix + e.name + "-" + std::to_string(e.version) + "-" +
           std::to_string(getpid()) + "-" + std::to_string(++removals);
    if (::rename(e.dir.c_str(), gone.c_str()) != 0) {
      if (errno != ENOENT) return Status::IoError("removing " + e.dir + ": " + std::strerror(errno));
      gone.clear();  // another replica removed it already
    }
    auto& versions = entries_[e.name];
    versions.erase(e.version);
    if (versions.empty()) entries_.erase(e.name);
    if (scanning_) touched_.insert({e.name, e.version});
    // A request still coding with it keeps its own reference until it ends; a load in
    // progress finishes for its callers but does not stay. Another name with the same id
    // keeps it.
    bool still_served = false;
    for (const auto& [name, others] : entries_) {
      for (const auto& [v, other] : others) still_served = still_served || other.id == e.id;
    }
    if (!still_served) DropLocked(e.id);
  }
  std::error_code ec;
  if (!gone.empty()) fs::remove_all(gone, ec);  // what a failure leaves, the next start removes
  fs::remove(options_.dir + "/" + e.name, ec);  // only when empty
  e.loaded = false;
  e.devices.clear();
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

ModelStore::ModelStore(Options options) : options_(std::move(options)) {
  for (const StoreDevice& d : options_.devices) slots_.push_back(DeviceSlots{d.memory_budget, {}, {}});
}

ModelStore::Slots::iterator ModelStore::Release(DeviceSlots& d, Slots::iterator it) {
  auto gone = [](const std::weak_ptr<ResidentModel>& m) { return m.expired(); };
  d.leaving.erase(std::remove_if(d.leaving.begin(), d.leaving.end(), gone), d.leaving.end());
  if (it->second.model.use_count() > 1) d.leaving.push_back(it->second.model);
  return d.resident.erase(it);
}

void ModelStore::DropLocked(const std::string& id) {
  for (DeviceSlots& d : slots_) {
    if (auto it = d.resident.find(id); it != d.resident.end()) Release(d, it);
    d.loading.erase(id);  // a load in progress finishes for its callers but does not stay
  }
}

uint64_t ModelStore::HeldBytes(const DeviceSlots& d, uint64_t* busy) {
  uint64_t used = 0, in_use = 0;  // in use: what eviction cannot free
  for (const auto& [id, slot] : d.resident) {
    used += slot.model->bytes;
    if (slot.model.use_count() > 1) in_use += slot.model->bytes;  // in use by a request
  }
  for (const auto& [id, load] : d.loading) used += load->bytes(), in_use += load->bytes();
  for (const auto& weak : d.leaving) {
    if (std::shared_ptr<ResidentModel> m = weak.lock()) used += m->bytes, in_use += m->bytes;
  }
  if (busy) *busy = in_use;
  return used;
}

ModelStore::Fit ModelStore::FitLocked(size_t device, uint64_t need) const {
  const DeviceSlots& d = slots_[device];
  uint64_t busy = 0;
  const uint64_t used = HeldBytes(d, &busy);
  if (used + need <= d.memory_budget) return Fit::kFree;
  return busy + need <= d.memory_budget ? Fit::kAfterEviction : Fit::kNo;
}

void ModelStore::EvictLocked(size_t device, uint64_t incoming) {
  DeviceSlots& d = slots_[device];
  for (;;) {
    if (incoming + HeldBytes(d) <= d.memory_budget) return;
    auto lru = d.resident.end();
    for (auto it = d.resident.begin(); it != d.resident.end(); ++it) {
      if (it->second.model.use_count() > 1) continue;  // in use by a request
      if (lru == d.resident.end() || it->second.last_used < lru->second.last_used) lru = it;
    }
    if (lru == d.resident.end()) return;  // everything is busy: go over budget rather than fail
    Release(d, lru);
  }
}

uint64_t ModelStore::ResidentBytes(const ModelConfig& config, size_t device) const {
  const StoreDevice& d = options_.devices.at(device);
  return engine::Engine::MemoryBytesFor(config) + ChunkScheduler::MemoryBytes(config, d.scheduler, d.backend);
}

uint32_t ModelStore::FreeLanes(size_t device) const {
  const LaneBudget* lanes = options_.devices[device].scheduler.device_lanes.get();
  return lanes ? lanes->free() : UINT32_MAX;
}

namespace {

std::string MiB(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

Result<size_t> ModelStore::PlaceLocked(const ModelEntry& e) const {
  // The order is the operator's preference: unloading an idle model from a GPU costs a
  // reload later, running on the CPU instead costs every request.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (FitLocked(i, ResidentBytes(e.config, i)) != Fit::kNo) return i;
  }
  // Every device is busy with models in use: the first whose budget the model fits at all
  // goes over its budget rather than fail (those requests end soon).
  std::string why;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const uint64_t need = ResidentBytes(e.config, i);
    if (need <= slots_[i].memory_budget) return i;
    const ChunkScheduler::Options& so = options_.devices[i].scheduler;
    const uint64_t lanes = static_cast<uint64_t>(std::max(1, so.threads)) * std::max(1, so.lanes_per_thread);
    const bool several = slots_.size() > 1;
    why += std::string(why.empty() ? "" : "; ") + MiB(need) + " resident" +
           (several ? " on " + options_.devices[i].name : "") + " (engine " +
           MiB(engine::Engine::MemoryBytesFor(e.config)) + ", " + std::to_string(lanes) + " lanes of " +
           MiB(engine::Session::MemoryBytes(e.config, 1, 0)) + " state each, and activations), more than " +
           (several ? "its " : "") + "memory_budget (" + MiB(slots_[i].memory_budget) + ")";
  }
  return Status::ResourceExhausted("model " + e.Ref() + " needs " + why +
                                   ": raise memory_budget or lower lanes in boad.yaml");
}

Result<std::shared_ptr<ResidentModel>> ModelStore::Load(const ModelEntry& e, size_t device, uint64_t bytes) const {
  const StoreDevice& d = options_.devices[device];
  auto r = std::make_shared<ResidentModel>();
  r->id = e.id;
  r->device = d.name;
  r->bytes = bytes;
  BOA_RETURN_IF_ERROR(CatchOutOfMemory("loading model " + e.Ref() + " on " + d.name, [&]() -> Status {
    BOA_ASSIGN_OR_RETURN(r->model, LoadModelFile(e.dir + "/" + kModelFileName));
    if (r->model.IdHex() != e.id) return Status::DataLoss("model file " + e.dir + " changed on disk since the store indexed it");
    BOA_ASSIGN_OR_RETURN(r->engine, engine::Engine::Create(r->model.weights, d.backend, d.cuda_device));
    r->model.weights.tensors = {};  // the engine has its own copy
    ChunkScheduler::Options scheduler = d.scheduler;
    if (options_.observe) scheduler.observer = options_.observe(e.name, d.name);
    BOA_ASSIGN_OR_RETURN(r->scheduler, ChunkScheduler::Create(r->engine, std::move(scheduler)));
    return Status::Ok();
  }));
  return r;
}

Result<ModelLease> ModelStore::Acquire(const std::string& ref) {
  const auto asked = std::chrono::steady_clock::now();
  Result<ModelLease> lease = AcquireKnown(ref);
  // A shared store: the model may be new on the volume, or its file just removed by a replica.
  if (lease.ok() || lease.status().code() != StatusCode::kNotFound || !RescanAfterMiss(asked)) return lease;
  return AcquireKnown(ref);
}

Result<ModelLease> ModelStore::AcquireKnown(const std::string& ref) {
  ModelEntry e;
  std::shared_ptr<Loading> load;
  size_t device = 0;
  bool mine = false;  // this call loads it; others wait for it
  std::shared_ptr<ResidentModel> fallback;  // when this call loads a copy: the busy holder's
  {
    MutexLock l(&mu_);
    BOA_ASSIGN_OR_RETURN(e, ResolveLocked(ref));
    // The first holder in device order with a free lane (the order is the operator's
    // preference: a GPU with a few free lanes before an idle CPU), else the first holder;
    // and whether a load is under way somewhere.
    std::optional<size_t> held, loading_on;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].resident.count(e.id)) {
        if (!held || (FreeLanes(*held) == 0 && FreeLanes(i) > 0)) held = i;
      } else if (!loading_on && slots_[i].loading.count(e.id)) {
        loading_on = i;
      }
    }
    // Every holder's lanes busy: a copy on another device, if one has room without unloading
    // (and no copy failed to load there lately).
    std::optional<size_t> copy_on;
    const auto now = std::chrono::steady_clock::now();
    if (held && FreeLanes(*held) == 0 && !loading_on) {
      for (size_t i = 0; i < slots_.size() && !copy_on; ++i) {
        if (!slots_[i].resident.count(e.id) && now >= slots_[i].no_copies_until &&
            FitLocked(i, ResidentBytes(e.config, i)) == Fit::kFree) {
          copy_on = i;
        }
      }
    }
    if (held) {
      Slot& slot = slots_[*held].resident[e.id];
      slot.last_used = now;
      // A copy's load may fail; this request then codes on the holder after all.
      fallback = slot.model;
      if (!copy_on) return ModelLease{WithLoaded(e), slot.model};
    }
    if (loading_on) {
      device = *loading_on;
      load = slots_[device].loading[e.id];
    } else {
      if (copy_on) {
        device = *copy_on;
      } else {
        BOA_ASSIGN_OR_RETURN(device, PlaceLocked(e));
      }
      const uint64_t need = ResidentBytes(e.config, device);
      EvictLocked(device, need);
      load = std::make_shared<Loading>(need);
      slots_[device].loading[e.id] = load;
      mine = true;
    }
  }
  if (!mine) {
    BOA_ASSIGN_OR_RETURN(std::shared_ptr<ResidentModel> model, load->Wait());
    MutexLock l(&mu_);
    return ModelLease{WithLoaded(e), std::move(model)};
  }
  // Whatever happens, the load ends: its waiters get the result and it leaves the loads.
  Result<std::shared_ptr<ResidentModel>> model = Status::Internal("loading model " + e.id + " failed");
  try {
    model = Load(e, device, load->bytes());
  } catch (const std::exception& ex) {
    model = dynamic_cast<const std::bad_alloc*>(&ex) ? Status::ResourceExhausted("out of memory loading model " + e.id)
                                                     : Status::Internal("loading model " + e.id + ": " + ex.what());
  }
  MutexLock l(&mu_);
  DeviceSlots& d = slots_[device];
  auto it = d.loading.find(e.id);
  // Unload or Remove took it out of the loads meanwhile: this caller still gets the model
  // (like a request that was coding with it), but it does not stay resident.
  const bool keep = it != d.loading.end() && it->second == load;
  if (keep) d.loading.erase(it);
  if (keep && model.ok()) {
    try {
      d.resident[e.id] = Slot{*model, std::chrono::steady_clock::now()};
    } catch (const std::bad_alloc&) {  // not kept resident; the callers have it
    }
  }
  load->Finish(model);
  if (!model.ok() && fallback) {
    constexpr auto kCopyBackoff = std::chrono::seconds(60);
    d.no_copies_until = std::chrono::steady_clock::now() + kCopyBackoff;
    spdlog::warn("a copy of model {} on {} failed to load ({}); no copies there for {} s", e.Ref(),
                 options_.devices[device].name, model.status().message(), kCopyBackoff.count());
    return ModelLease{WithLoaded(e), fallback};
  }
  BOA_RETURN_IF_ERROR(model.status());
  return ModelLease{WithLoaded(e), *model};
}

Result<ModelEntry> ModelStore::Unload(const std::string& ref) {
  MutexLock l(&mu_);
  BOA_ASSIGN_OR_RETURN(ModelEntry e, ResolveLocked(ref));
  DropLocked(e.id);
  return WithLoaded(e);
}

Result<std::vector<uint8_t>> ModelStore::ReadFile(const std::string& ref) {
  BOA_ASSIGN_OR_RETURN(ModelEntry e, Find(ref));
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
  for (const DeviceSlots& d : slots_) {
    for (const auto& [id, slot] : d.resident) out.push_back(slot.model);
  }
  return out;
}

uint64_t ModelStore::memory_budget() const {
  MutexLock l(&mu_);
  uint64_t total = 0;
  for (const DeviceSlots& d : slots_) total += d.memory_budget;
  return total;
}

void ModelStore::SetMemoryBudget(size_t device, uint64_t bytes) {
  MutexLock l(&mu_);
  slots_.at(device).memory_budget = bytes;
  EvictLocked(device, 0);
}

uint64_t ModelStore::resident_bytes() const {
  uint64_t total = 0;
  for (const DeviceUsage& u : Usage()) total += u.resident_bytes;
  return total;
}

std::vector<DeviceUsage> ModelStore::Usage() const {
  MutexLock l(&mu_);
  std::vector<DeviceUsage> out;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const StoreDevice& d = options_.devices[i];
    DeviceUsage u;
    u.name = d.name;
    u.description = d.description;
    u.memory_budget = slots_[i].memory_budget;
    for (const auto& [id, slot] : slots_[i].resident) u.resident_bytes += slot.model->bytes;
    u.models = static_cast<uint32_t>(slots_[i].resident.size());
    if (const LaneBudget* lanes = d.scheduler.device_lanes.get()) {
      u.lanes = lanes->total();
      u.lanes_busy = u.lanes - std::min(u.lanes, lanes->free());
    }
    out.push_back(u);
  }
  return out;
}

}  // namespace boa::server
