// Training jobs run by boad (docs/server.md, "Training jobs"): one at a time in submission
// order on a worker thread, independent of the client that started them. A job that
// succeeds registers its model in the store; cancelling or shutting down stops a running job
// at its next step, after it checkpointed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/train/trainer.h"
#include "common/util/status.h"
#include "server/model_store.h"

namespace boa::server {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

struct JobLine {
  std::string text;
  bool milestone = false;  // validation result or early stop
};

struct JobSnapshot {
  std::string id;
  std::string name;
  JobState state = JobState::kQueued;
  std::string message;
  int64_t created_unix = 0;
  double seconds = 0;
  train::TrainReport report;
  std::optional<ModelEntry> model;
  uint64_t lines = 0;  // progress lines so far
  bool finished() const { return state == JobState::kSucceeded || state == JobState::kFailed || state == JobState::kCancelled; }
};

class JobManager {
 public:
  // `jobs_dir` holds each job's output and checkpoints (<jobs_dir>/<id>/).
  JobManager(ModelStore* store, std::string jobs_dir);
  // Stops a running job (it checkpoints) and cancels queued ones.
  ~JobManager();

  // `options.output` and the hooks are set here. Fails when training is not built in.
  Result<std::string> Submit(const std::string& name, train::TrainOptions options);
  Result<JobSnapshot> Get(const std::string& id) const;
  std::vector<JobSnapshot> List() const;
  Result<JobSnapshot> Cancel(const std::string& id);
  // Waits up to `timeout` for progress lines after the first `*seen` or for the job to end;
  // appends the new lines, advances *seen and returns the job.
  Result<JobSnapshot> Wait(const std::string& id, uint64_t* seen, std::vector<JobLine>* lines,
                           std::chrono::milliseconds timeout);
  // SIGTERM: the running job checkpoints and stops; queued jobs are cancelled.
  void Shutdown();

 private:
  struct Job;
  void Worker();
  JobSnapshot SnapshotLocked(const Job& j) const;

  ModelStore* store_;
  const std::string jobs_dir_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // job queue and progress
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::shared_ptr<Job>> queue_;
  uint64_t next_ = 1;
  bool shutdown_ = false;
  std::thread worker_;
};

}  // namespace boa::server
