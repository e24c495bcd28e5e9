// The job queue, its worker thread, progress fan-out and the jobs' files on disk.
#include "server/jobs.h"

#include <google/protobuf/text_format.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <ctime>
#include <filesystem>
#include <random>

#include "common/util/io.h"

namespace boa::server {

namespace {

constexpr const char* kRequestFile = "request.txtpb";
constexpr const char* kStateFile = "job.yaml";

struct StateName {
  JobState state;
  const char* name;
};
constexpr StateName kStateNames[] = {{JobState::kQueued, "queued"},       {JobState::kRunning, "running"},
                                     {JobState::kSucceeded, "succeeded"}, {JobState::kFailed, "failed"},
                                     {JobState::kCancelled, "cancelled"}, {JobState::kInterrupted, "interrupted"}};

std::optional<JobState> ParseState(const std::string& name) {
  for (const StateName& s : kStateNames) {
    if (name == s.name) return s.state;
  }
  return std::nullopt;
}

std::string ResumeHint(const std::string& id) { return "resume it with: boa-client jobs resume " + id; }

// The number in "job-<n>-<random>", or 0.
uint64_t JobNumber(const std::string& id) {
  if (id.rfind("job-", 0) != 0) return 0;
  try {
    return std::stoull(id.substr(4));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

const char* JobStateName(JobState state) {
  for (const StateName& s : kStateNames) {
    if (s.state == state) return s.name;
  }
  return "unknown";
}

struct JobManager::Job {
  std::string id, name;
  std::string owner;  // the caller that submitted or last resumed it (per-caller limits)
  v1::TrainRequest request;
  JobState state = JobState::kQueued;
  std::string message;
  int64_t created_unix = 0;
  std::chrono::steady_clock::time_point started;
  double seconds_before = 0;  // spent in earlier runs (a resumed job)
  double seconds = 0;
  train::TrainOptions options;
  train::TrainReport report;
  std::optional<ModelEntry> model;
  std::vector<JobLine> lines;  // every progress line (a few per second at most)
  bool cancel = false;
  bool finished() const { return state != JobState::kQueued && state != JobState::kRunning; }
};

JobManager::JobManager(ModelStore* store, std::string jobs_dir) : store_(store), jobs_dir_(std::move(jobs_dir)) {
  Load();
  worker_ = std::thread([this] { Worker(); });
}

JobManager::~JobManager() { Stop(); }

void JobManager::Stop() {
  Shutdown();
  if (worker_.joinable()) worker_.join();
}

void JobManager::Load() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(jobs_dir_, ec)) return;  // created with the first job
  for (const auto& entry : fs::directory_iterator(jobs_dir_, ec)) {
    const std::string id = entry.path().filename().string();
    if (id[0] == '.' || !entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    auto problem = [&](const std::string& why) { problems_.push_back(dir + ": " + why + " (not listed)"); };
    auto j = std::make_shared<Job>();
    j->id = id;
    Result<std::vector<uint8_t>> text = ReadFile(dir + "/" + kRequestFile, 1 << 20);
    if (!text.ok() ||
        !google::protobuf::TextFormat::ParseFromString(std::string(text->begin(), text->end()), &j->request)) {
      problem(std::string("cannot read its ") + kRequestFile);
      continue;
    }
    j->name = j->request.name();
    try {
      YAML::Node n = YAML::LoadFile(dir + "/" + kStateFile);
      std::optional<JobState> state = ParseState(n["state"].as<std::string>());
      if (!state) throw YAML::Exception(YAML::Mark(), "unknown state");
      j->state = *state;
      j->message = n["message"].as<std::string>("");
      j->created_unix = n["created_unix"].as<int64_t>(0);
      j->seconds = j->seconds_before = n["seconds"].as<double>(0);
      j->report.steps = n["steps"].as<uint64_t>(0);
      j->report.bytes_seen = n["bytes_seen"].as<uint64_t>(0);
      j->report.val_bpb = n["val_bpb"].as<double>(0);
      j->report.test_bpb = n["test_bpb"].as<double>(0);
      if (n["model"]) {
        Result<ModelEntry> m = store_->Resolve(n["model"].as<std::string>());
        if (m.ok()) j->model = *m;
      }
    } catch (const std::exception& e) {
      problem(std::string("cannot read its ") + kStateFile + ": " + e.what());
      continue;
    }
    if (!j->finished()) {  // boad stopped under it
      j->message = "interrupted: the server stopped while it was " + std::string(JobStateName(j->state)) + "; " +
                   ResumeHint(id);
      j->state = JobState::kInterrupted;
      PersistLocked(*j);
    }
    next_ = std::max(next_, JobNumber(id) + 1);
    jobs_[id] = j;
  }
}

void JobManager::PersistLocked(const Job& j) const {
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "id" << YAML::Value << j.id;
  y << YAML::Key << "name" << YAML::Value << j.name;
  y << YAML::Key << "state" << YAML::Value << JobStateName(j.state);
  y << YAML::Key << "message" << YAML::Value << j.message;
  y << YAML::Key << "created_unix" << YAML::Value << j.created_unix;
  y << YAML::Key << "seconds" << YAML::Value << j.seconds;
  y << YAML::Key << "steps" << YAML::Value << j.report.steps;
  y << YAML::Key << "bytes_seen" << YAML::Value << j.report.bytes_seen;
  y << YAML::Key << "val_bpb" << YAML::Value << j.report.val_bpb;
  y << YAML::Key << "test_bpb" << YAML::Value << j.report.test_bpb;
  if (j.model) y << YAML::Key << "model" << YAML::Value << j.model->Ref();
  y << YAML::EndMap;
  const std::string text = std::string(y.c_str()) + "\n";
  std::error_code ec;
  std::filesystem::create_directories(Dir(j.id), ec);
  Status s = WriteFileAtomic(Dir(j.id) + "/" + kStateFile, std::vector<uint8_t>(text.begin(), text.end()), true);
  if (!s.ok()) spdlog::error("[{}] cannot record the job's state: {}", j.id, s.message());
}

void JobManager::Shutdown() {
  std::lock_guard<std::mutex> lk(mu_);
  shutdown_ = true;
  for (auto& [id, j] : jobs_) {
    if (j->state == JobState::kQueued) {
      j->state = JobState::kInterrupted;
      j->message = "interrupted: the server shut down before the job started; " + ResumeHint(id);
      PersistLocked(*j);
    }
  }
  queue_.clear();
  cv_.notify_all();
}

Status JobManager::Enqueue(const std::shared_ptr<Job>& j, train::TrainOptions options) {
  if (shutdown_) return Status::Unavailable("the server is shutting down");
  j->options = std::move(options);
  j->options.output = Dir(j->id) + "/model.boam";
  j->options.checkpoint_dir = Dir(j->id) + "/ckpt";
  j->state = JobState::kQueued;
  j->cancel = false;
  PersistLocked(*j);
  queue_.push_back(j);
  cv_.notify_all();
  return Status::Ok();
}

Status JobManager::CheckOwnerLocked(const std::string& owner, int max_active) const {
  int active = 0;
  for (const auto& [id, j] : jobs_) active += j->owner == owner && !j->finished();
  if (active < max_active) return Status::Ok();
  return Status::ResourceExhausted(owner + " has " + std::to_string(active) +
                                   " training jobs queued or running (max_jobs_per_caller); wait for one to end");
}

Result<std::string> JobManager::Submit(const v1::TrainRequest& request, train::TrainOptions options,
                                       const std::string& owner, int max_active) {
#ifndef BOA_WITH_TRAIN
  return Status::FailedPrecondition("this boad was built without LibTorch: it cannot train");
#else
  BOA_RETURN_IF_ERROR(ModelStore::CheckName(request.name()));
  auto j = std::make_shared<Job>();
  j->name = request.name();
  j->owner = owner;
  j->request = request;
  j->created_unix = static_cast<int64_t>(std::time(nullptr));
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(request, &text)) return Status::Internal("cannot write the request");
  std::lock_guard<std::mutex> lk(mu_);
  if (shutdown_) return Status::Unavailable("the server is shutting down");
  BOA_RETURN_IF_ERROR(CheckOwnerLocked(owner, max_active));
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%llu-%06x", static_cast<unsigned long long>(next_++),
                static_cast<unsigned>(std::random_device()() & 0xffffff));
  j->id = buf;
  std::error_code ec;
  std::filesystem::create_directories(Dir(j->id), ec);
  if (ec) return Status::IoError(Dir(j->id) + ": cannot create the job directory: " + ec.message());
  Status written = WriteFileAtomic(Dir(j->id) + "/" + kRequestFile, std::vector<uint8_t>(text.begin(), text.end()), false);
  if (!written.ok()) {
    std::filesystem::remove_all(Dir(j->id), ec);  // a job directory without its request is no job
    return written;
  }
  BOA_RETURN_IF_ERROR(Enqueue(j, std::move(options)));
  jobs_[j->id] = j;
  return j->id;
#endif
}

Result<v1::TrainRequest> JobManager::Request(const std::string& id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::NotFound("no job '" + id + "'");
  return it->second->request;
}

Result<JobSnapshot> JobManager::Resume(const std::string& id, train::TrainOptions options, const std::string& owner,
                                       int max_active) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::NotFound("no job '" + id + "'");
  Job& j = *it->second;
  if (!j.finished() || j.state == JobState::kSucceeded) {
    return Status::FailedPrecondition("job " + id + " is " + JobStateName(j.state) +
                                      ": only an interrupted, cancelled or failed job can be resumed");
  }
  BOA_RETURN_IF_ERROR(CheckOwnerLocked(owner, max_active));
  j.owner = owner;
  options.resume = true;
  j.message = "resumed: queued";
  j.lines.clear();
  BOA_RETURN_IF_ERROR(Enqueue(it->second, std::move(options)));
  return SnapshotLocked(j);
}

JobSnapshot JobManager::SnapshotLocked(const Job& j) const {
  JobSnapshot s;
  s.id = j.id;
  s.name = j.name;
  s.state = j.state;
  s.message = j.message;
  s.created_unix = j.created_unix;
  s.seconds = j.state == JobState::kRunning
                  ? j.seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - j.started).count()
                  : j.seconds;
  s.report = j.report;
  s.report.loss_curve.clear();
  s.model = j.model;
  s.lines = j.lines.size();
  return s;
}

Result<JobSnapshot> JobManager::Get(const std::string& id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::NotFound("no job '" + id + "'");
  return SnapshotLocked(*it->second);
}

std::vector<JobSnapshot> JobManager::List() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<JobSnapshot> out;
  for (const auto& [id, j] : jobs_) out.push_back(SnapshotLocked(*j));
  return out;
}

Result<JobSnapshot> JobManager::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::NotFound("no job '" + id + "'");
  Job& j = *it->second;
  j.cancel = true;
  if (j.state == JobState::kQueued) {
    j.state = JobState::kCancelled;
    j.message = "cancelled before it started";
    for (auto q = queue_.begin(); q != queue_.end(); ++q) {
      if ((*q)->id == id) {
        queue_.erase(q);
        break;
      }
    }
    PersistLocked(j);
    cv_.notify_all();
  }
  return SnapshotLocked(j);
}

Result<JobSnapshot> JobManager::Wait(const std::string& id, uint64_t* seen, std::vector<JobLine>* lines,
                                     std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::NotFound("no job '" + id + "'");
  std::shared_ptr<Job> j = it->second;
  cv_.wait_for(lk, timeout, [&] { return j->lines.size() > *seen || j->finished(); });
  for (uint64_t i = *seen; i < j->lines.size(); ++i) lines->push_back(j->lines[i]);
  *seen = j->lines.size();
  return SnapshotLocked(*j);
}

void JobManager::Worker() {
  for (;;) {
    std::shared_ptr<Job> j;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return shutdown_ || !queue_.empty(); });
      if (shutdown_) return;
      j = queue_.front();
      queue_.pop_front();
      j->state = JobState::kRunning;
      j->started = std::chrono::steady_clock::now();
      j->seconds_before = j->seconds;
      PersistLocked(*j);
      cv_.notify_all();
    }
#ifdef BOA_WITH_TRAIN
    train::TrainOptions o = j->options;
    o.progress = [this, j](const std::string& line, bool milestone) {
      std::lock_guard<std::mutex> lk(mu_);
      j->lines.push_back(JobLine{line, milestone});
      j->message = line;
      cv_.notify_all();
    };
    o.should_stop = [this, j] {
      std::lock_guard<std::mutex> lk(mu_);
      return j->cancel || shutdown_;
    };
    train::TrainReport report;
    Result<ModelEntry> registered = Status::Internal("not registered");
    Status s;
    // Whatever goes wrong in a job (Train itself never throws) ends that job, not boad.
    try {
      s = CatchOutOfMemory("registering the trained model", [&] {
        Status t = train::Train(o, &report);
        if (t.ok()) {
          Result<std::vector<uint8_t>> file = ReadFile(o.output, 16ull << 30);
          registered = file.ok() ? store_->Add(j->name, 0, *file) : Result<ModelEntry>(file.status());
          if (!registered.ok()) t = registered.status().WithContext("registering the trained model");
        }
        return t;
      });
    } catch (const std::exception& e) {
      s = Status::Internal(e.what());
    }
    std::lock_guard<std::mutex> lk(mu_);
    j->seconds = j->seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - j->started).count();
    if (report.steps > 0 || s.ok()) j->report = report;
    if (s.ok()) {
      j->state = JobState::kSucceeded;
      j->model = *registered;
      j->message = "registered as " + registered->Ref();
    } else if (s.code() == StatusCode::kCancelled && shutdown_ && !j->cancel) {
      j->state = JobState::kInterrupted;
      j->message = "interrupted by the server's shutdown at step " + std::to_string(report.steps) + "; " + ResumeHint(j->id);
    } else if (s.code() == StatusCode::kCancelled) {
      j->state = JobState::kCancelled;
      j->message = "cancelled at step " + std::to_string(report.steps) + "; " + ResumeHint(j->id);
    } else {
      j->state = JobState::kFailed;
      j->message = s.message();
    }
    PersistLocked(*j);
    cv_.notify_all();
#endif
  }
}

}  // namespace boa::server
