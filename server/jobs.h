// Training jobs run by boad (docs/server.md, "Training jobs"): one at a time in submission
// order on a worker thread, independent of the client that started them. A job that
// succeeds registers its model in the store; cancelling or shutting down stops a running job
// at its next step, after it checkpointed.
//
// Jobs outlive boad: each lives in <jobs_dir>/<id>/ with its request (request.txtpb, the
// TrainRequest as submitted), its state (job.yaml, rewritten atomically at every change of
// state), its checkpoint (ckpt/) and its model. At start the manager reads them back; a job
// that was queued or running when boad stopped is INTERRUPTED, and Resume continues it from
// its checkpoint.
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

#include "boa/v1/boa.pb.h"
#include "common/train/trainer.h"
#include "common/util/status.h"
#include "server/model_store.h"

namespace boa::server {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };

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
  // Not queued or running: it will not change until it is resumed.
  bool finished() const { return state != JobState::kQueued && state != JobState::kRunning; }
};

class JobManager {
 public:
  // `jobs_dir` holds each job's files (<jobs_dir>/<id>/); the jobs found there are loaded.
  JobManager(ModelStore* store, std::string jobs_dir);
  // Stops a running job (it checkpoints); it and the queued ones are left INTERRUPTED.
  ~JobManager();

  // Job directories found at start that could not be read: the path and why.
  const std::vector<std::string>& problems() const { return problems_; }

  // Queues a job. `request` is kept with it (Resume runs it again); `options` is what the
  // server made of it (`options.output`, the checkpoint directory and the hooks are set
  // here). Fails when training is not built in. `owner` (the caller) may have at most
  // `max_active` jobs queued or running: RESOURCE_EXHAUSTED beyond.
  Result<std::string> Submit(const v1::TrainRequest& request, train::TrainOptions options, const std::string& owner = "",
                             int max_active = 1 << 30);
  // The request a job was submitted with.
  Result<v1::TrainRequest> Request(const std::string& id) const;
  // Queues an INTERRUPTED, CANCELLED or FAILED job again, to continue from its checkpoint
  // (or start over where it has none). FAILED_PRECONDITION for a job that is queued,
  // running or succeeded.
  // The job's owner becomes `owner`, under the same limit as Submit.
  Result<JobSnapshot> Resume(const std::string& id, train::TrainOptions options, const std::string& owner = "",
                             int max_active = 1 << 30);
  Result<JobSnapshot> Get(const std::string& id) const;
  std::vector<JobSnapshot> List() const;
  Result<JobSnapshot> Cancel(const std::string& id);
  // Waits up to `timeout` for progress lines after the first `*seen` or for the job to end;
  // appends the new lines, advances *seen and returns the job.
  Result<JobSnapshot> Wait(const std::string& id, uint64_t* seen, std::vector<JobLine>* lines,
                           std::chrono::milliseconds timeout);
  // SIGTERM: the running job checkpoints and stops; it and the queued jobs become
  // INTERRUPTED.
  void Shutdown();
  // Shutdown, then waits for the running job to have stopped.
  void Stop();

 private:
  struct Job;
  void Worker();
  void Load();
  Status Enqueue(const std::shared_ptr<Job>& j, train::TrainOptions options);
  // RESOURCE_EXHAUSTED when `owner` has `max_active` jobs queued or running.
  Status CheckOwnerLocked(const std::string& owner, int max_active) const;
  JobSnapshot SnapshotLocked(const Job& j) const;
  // Rewrites <jobs_dir>/<id>/job.yaml; a failure is logged (the job goes on).
  void PersistLocked(const Job& j) const;
  std::string Dir(const std::string& id) const { return jobs_dir_ + "/" + id; }

  ModelStore* store_;
  const std::string jobs_dir_;
  std::vector<std::string> problems_;  // written by Load only
  mutable std::mutex mu_;
  std::condition_variable cv_;  // job queue and progress
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // guarded by mu_, as is every Job
  std::deque<std::shared_ptr<Job>> queue_;           // guarded by mu_
  uint64_t next_ = 1;                                 // guarded by mu_
  bool shutdown_ = false;                             // guarded by mu_
  std::thread worker_;
};

const char* JobStateName(JobState state);

}  // namespace boa::server
