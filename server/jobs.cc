// The job queue, its worker thread and progress fan-out.
#include "server/jobs.h"

#include <ctime>
#include <filesystem>
#include <random>

#include "common/util/io.h"

namespace boa::server {

struct JobManager::Job {
  std::string id, name;
  JobState state = JobState::kQueued;
  std::string message;
  int64_t created_unix = 0;
  std::chrono::steady_clock::time_point started;
  double seconds = 0;
  train::TrainOptions options;
  train::TrainReport report;
  std::optional<ModelEntry> model;
  std::vector<JobLine> lines;  // every progress line (a few per second at most)
  bool cancel = false;
};

JobManager::JobManager(ModelStore* store, std::string jobs_dir) : store_(store), jobs_dir_(std::move(jobs_dir)) {
  worker_ = std::thread([this] { Worker(); });
}

JobManager::~JobManager() {
  Shutdown();
  worker_.join();
}

void JobManager::Shutdown() {
  std::lock_guard<std::mutex> lk(mu_);
  shutdown_ = true;
  for (auto& [id, j] : jobs_) {
    if (j->state == JobState::kQueued) {
      j->state = JobState::kCancelled;
      j->message = "cancelled: the server shut down before the job started";
    }
  }
  queue_.clear();
  cv_.notify_all();
}

Result<std::string> JobManager::Submit(const std::string& name, train::TrainOptions options) {
#ifndef BOA_WITH_TRAIN
  return Status::FailedPrecondition("this boad was built without LibTorch: it cannot train");
#else
  BOA_RETURN_IF_ERROR(ModelStore::CheckName(name));
  auto j = std::make_shared<Job>();
  std::lock_guard<std::mutex> lk(mu_);
  if (shutdown_) return Status::Unavailable("the server is shutting down");
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%llu-%06x", static_cast<unsigned long long>(next_++),
                static_cast<unsigned>(std::random_device()() & 0xffffff));
  j->id = buf;
  j->name = name;
  j->created_unix = static_cast<int64_t>(std::time(nullptr));
  j->options = std::move(options);
  const std::string dir = jobs_dir_ + "/" + j->id;
  j->options.output = dir + "/model.boam";
  j->options.checkpoint_dir = dir + "/ckpt";
  jobs_[j->id] = j;
  queue_.push_back(j);
  cv_.notify_all();
  return j->id;
#endif
}

JobSnapshot JobManager::SnapshotLocked(const Job& j) const {
  JobSnapshot s;
  s.id = j.id;
  s.name = j.name;
  s.state = j.state;
  s.message = j.message;
  s.created_unix = j.created_unix;
  s.seconds = j.state == JobState::kRunning
                  ? std::chrono::duration<double>(std::chrono::steady_clock::now() - j.started).count()
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
  auto ready = [&] {
    return j->lines.size() > *seen || j->state == JobState::kSucceeded || j->state == JobState::kFailed ||
           j->state == JobState::kCancelled;
  };
  cv_.wait_for(lk, timeout, ready);
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
      std::error_code ec;
      std::filesystem::create_directories(jobs_dir_ + "/" + j->id, ec);
      s = ec ? Status::IoError(jobs_dir_ + ": cannot create the job directory: " + ec.message()) : train::Train(o, &report);
      if (s.ok()) {
        Result<std::vector<uint8_t>> file = ReadFile(o.output, 16ull << 30);
        registered = file.ok() ? store_->Add(j->name, 0, *file) : Result<ModelEntry>(file.status());
        if (!registered.ok()) s = registered.status().WithContext("registering the trained model");
      }
    } catch (const std::bad_alloc&) {
      s = Status::ResourceExhausted("out of memory");
    } catch (const std::exception& e) {
      s = Status::Internal(e.what());
    }
    std::lock_guard<std::mutex> lk(mu_);
    j->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - j->started).count();
    j->report = report;
    if (s.ok()) {
      j->state = JobState::kSucceeded;
      j->model = *registered;
      j->message = "registered as " + registered->Ref();
    } else if (s.code() == StatusCode::kCancelled) {
      j->state = JobState::kCancelled;
      j->message = (shutdown_ && !j->cancel ? "interrupted by the server's shutdown: " : "cancelled: ") + s.message();
    } else {
      j->state = JobState::kFailed;
      j->message = s.message();
    }
    cv_.notify_all();
#endif
  }
}

}  // namespace boa::server
