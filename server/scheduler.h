// Continuous batching of chunk coding across requests, for one resident model
// (docs/server.md, "Scheduler"). Every step of a step thread advances each of its active lanes:
// a decoding lane by one byte, an encoding lane by its share of the step's rows (it knows its
// bytes in advance); a chunk from any request takes a lane as soon as one is free and gives it
// back when it ends. Chunks are admitted round robin across requests, online priority before bulk.
// The chunks themselves go through the chunk coder (common/codec/chunk_coder.h), as in the
// in-process codec; because of the determinism contract, what a request gets back never
// depends on what else shares the batch.
//
// Threads and ownership (docs/architecture.md, "boad's threads"):
// - A request's threads (a gRPC handler submits, its writer thread takes results) call
//   SchedulerRequest; they touch only the request's State, under State::mu.
// - Each step thread owns a StepLanes: its session, frequency tables and lanes. It takes the
//   scheduler's mu_ to hand back finished chunks and admit new ones, and runs the model step
//   without it.
// - Each step thread has a coder thread that range-codes the encoding rows of the previous
//   step while the model runs the next one; it touches only the lanes it was given
//   (Lane::with_coder), and the step thread waits for it before touching them again.
// - Lock order: LaneBudget::mu_, then a scheduler's mu_, then a request's State::mu. A step
//   thread gives device lanes back only with no lock held.
// -Wthread-safety checks the annotations (common/util/mutex.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "common/codec/chunk_coder.h"
#include "common/codec/codec.h"
#include "common/engine/engine.h"
#include "common/util/mutex.h"
#include "common/util/status.h"

namespace boa::server {

enum class Priority { kBulk = 0, kOnline = 1 };

struct ChunkResult {
  EncodedChunk encoded;          // encode jobs
  std::vector<uint8_t> decoded;  // decode jobs
};

class ChunkScheduler;

// The lanes of one device, shared by every resident model's scheduler: a chunk holds one
// while it runs, so the device never runs more than its lane count at once. Taking is
// lock-free (a scheduler takes with its own mutex held); giving back wakes every scheduler,
// so one that found the device full admits again at once.
class LaneBudget {
 public:
  explicit LaneBudget(uint32_t lanes) : total_(lanes), free_(lanes) {}
  bool TryTake();
  // Never called with a scheduler's mutex held (the wake-up takes each one's).
  void Give(uint32_t n) BOA_EXCLUDES(mu_);
  uint32_t free() const { return free_.load(); }
  uint32_t total() const { return total_; }

 private:
  friend class ChunkScheduler;
  void Subscribe(ChunkScheduler* s) BOA_EXCLUDES(mu_);
  void Unsubscribe(ChunkScheduler* s) BOA_EXCLUDES(mu_);
  const uint32_t total_;
  std::atomic<uint32_t> free_;
  Mutex mu_;
  std::vector<ChunkScheduler*> schedulers_ BOA_GUARDED_BY(mu_);  // to wake on Give
};

// What a scheduler reports as it runs, for boad's metrics. Called from step threads with no
// scheduler lock held; must be cheap and must not block.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  // A model step: `lanes` of the thread's `capacity` lanes took part; the network's time.
  virtual void OnStep(uint32_t lanes, uint32_t capacity, double seconds) = 0;
  // A chunk took a lane `queued_seconds` after its request submitted it.
  virtual void OnAdmitted(double queued_seconds) = 0;
  // A chunk's result is ready `seconds` after its request submitted it (a decode or not).
  virtual void OnChunkDone(bool decode, double seconds) = 0;
};

// A chunk to code: bytes to encode, or a record to decode.
struct ChunkJob {
  uint64_t index = 0;
  std::chrono::steady_clock::time_point submitted;  // when its request handed it over
  bool decode = false;
  std::vector<uint8_t> bytes;
  ChunkRecord record;
  size_t cost = 0;  // bytes held for it: input plus output
};

// One request's chunks: submitted in order, results returned in the same order. Submit
// blocks while the request holds `window_bytes` of chunks in flight (back-pressure on the
// caller's input). Destroying the handle cancels whatever is still queued or running.
class SchedulerRequest {
 public:
  ~SchedulerRequest();
  Status SubmitEncode(std::vector<uint8_t> chunk);
  Status SubmitDecode(ChunkRecord record);
  // The next result in submission order. Fails with the request's error once it failed.
  Status Next(ChunkResult* out);
  // Fails the request: its queued chunks are dropped and its lanes freed before the next
  // step. The first error wins.
  void Cancel(const Status& why);
  uint32_t peak_lanes() const;

 private:
  friend class ChunkScheduler;
  struct State;
  SchedulerRequest(ChunkScheduler* scheduler, std::shared_ptr<State> state)
      : scheduler_(scheduler), state_(std::move(state)) {}
  Status Submit(ChunkJob job);
  ChunkScheduler* const scheduler_;
  const std::shared_ptr<State> state_;  // shared with the lanes and queues that hold its chunks
};

// One request's chunks as the scheduler holds them.
struct SchedulerRequest::State {
  State(Priority p, std::function<Status()> c) : priority(p), cancelled(std::move(c)) {}
  const Priority priority;
  const std::function<Status()> cancelled;
  Mutex mu;
  CondVar cv;  // a result delivered, room in the window, or the request failed
  std::deque<ChunkJob> queued BOA_GUARDED_BY(mu);  // waiting for a lane
  bool in_ready BOA_GUARDED_BY(mu) = false;       // in its scheduler's ready_ list
  std::map<uint64_t, ChunkResult> done BOA_GUARDED_BY(mu);  // results not taken by Next yet
  std::map<uint64_t, size_t> cost BOA_GUARDED_BY(mu);       // of each chunk not taken by Next yet
  uint64_t submitted BOA_GUARDED_BY(mu) = 0;
  uint64_t next_out BOA_GUARDED_BY(mu) = 0;
  size_t held_bytes BOA_GUARDED_BY(mu) = 0;  // the window's content
  uint32_t lanes BOA_GUARDED_BY(mu) = 0;     // lanes its chunks hold now
  uint32_t peak_lanes BOA_GUARDED_BY(mu) = 0;
  Status failed BOA_GUARDED_BY(mu);  // the first error; queued and done are dropped then
};

class ChunkScheduler {
 public:
  struct Options {
    int threads = 1;              // step threads, each with its own lanes
    int lanes_per_thread = 64;
    // Engine rows per step, shared by the encoding lanes (0: kRowsPerStep, or one per lane
    // if there are more lanes). A GPU wants tens of thousands (Engine::Batching::chunk_rows).
    int rows_per_step = 0;
    size_t window_bytes = 8u << 20;  // per request: chunk bytes queued, running or unread
    // A request's cancellation check is polled at this interval while it waits.
    std::chrono::milliseconds poll{20};
    // Shared with the other models on the device (may be null: no device-wide limit).
    std::shared_ptr<LaneBudget> device_lanes;
    // Told of steps and chunks (may be null).
    std::shared_ptr<SchedulerObserver> observer;
  };
  struct Stats {
    uint32_t lanes = 0;          // total lanes (threads x lanes_per_thread)
    uint32_t lanes_in_use = 0;
    uint64_t queued_chunks = 0;  // waiting for a lane
    uint32_t open_requests = 0;
  };

  // Allocates every step thread's session, frequency tables and lanes here, on the calling
  // thread (std::bad_alloc if they do not fit), then starts the threads.
  ChunkScheduler(std::shared_ptr<const engine::Engine> engine, Options options);
  // The same, with an allocation failure reported as RESOURCE_EXHAUSTED.
  static Result<std::unique_ptr<ChunkScheduler>> Create(std::shared_ptr<const engine::Engine> engine, Options options);
  // What the constructor allocates for a model of `config` on an engine of `backend`: each
  // thread's session (Session::MemoryBytes of its lanes and rows) and its two frequency
  // buffers.
  static uint64_t MemoryBytes(const ModelConfig& config, const Options& options,
                              engine::Backend backend = engine::Backend::kAuto);
  // Stops the step threads; requests still open fail with UNAVAILABLE.
  ~ChunkScheduler();
  ChunkScheduler(const ChunkScheduler&) = delete;
  ChunkScheduler& operator=(const ChunkScheduler&) = delete;

  // Whether a step thread with chunks on its lanes has made no progress for `limit`: a
  // wedged scheduler (boad's liveness: health turns NOT_SERVING, the watchdog stops).
  bool Stalled(std::chrono::steady_clock::duration limit) const;
  // `cancelled` is polled by the request's own Submit/Next calls (may be empty).
  std::unique_ptr<SchedulerRequest> Open(Priority priority, std::function<Status()> cancelled) BOA_EXCLUDES(mu_);
  Stats stats() const BOA_EXCLUDES(mu_);

 private:
  friend class SchedulerRequest;
  friend class LaneBudget;
  using RequestState = SchedulerRequest::State;
  struct Lane;
  struct Coding;
  struct Finished;
  class CoderThread;
  struct StepLanes;
  static constexpr int kRowsPerStep = 512;  // engine rows per step (encoding lanes share them)
  static int LanesPerThread(const Options& o) { return std::max(1, o.lanes_per_thread); }
  static int RowsPerStep(const Options& o) {
    return std::max(LanesPerThread(o), o.rows_per_step > 0 ? o.rows_per_step : kRowsPerStep);
  }

  // A step thread's loop and its named steps.
  void StepThread(std::unique_ptr<StepLanes> t) BOA_EXCLUDES(mu_);
  // Hands back what finished, admits new chunks, or waits for work; false once stopping.
  bool AdmitOrWait(StepLanes& t) BOA_EXCLUDES(mu_);
  void HandBack(StepLanes& t) BOA_REQUIRES(mu_);
  void Admit(StepLanes& t) BOA_REQUIRES(mu_);
  // Gives a picked chunk a lane, or its result at once; false if the device is full.
  bool AdmitJob(StepLanes& t, ChunkJob job, const std::shared_ptr<RequestState>& request) BOA_REQUIRES(mu_);
  bool PickJob(ChunkJob* job, std::shared_ptr<RequestState>* request) BOA_REQUIRES(mu_);
  void Requeue(ChunkJob job, const std::shared_ptr<RequestState>& request) BOA_REQUIRES(mu_);
  // One model step over the active lanes (no lock: the lanes are this thread's).
  void Step(StepLanes& t) BOA_EXCLUDES(mu_);
  // Marks this thread's progress for Stalled.
  void Beat(StepLanes& t) BOA_EXCLUDES(mu_);
  // Tells the observer what the last admission and hand-back collected.
  void Report(StepLanes& t) BOA_EXCLUDES(mu_);
  void PlanRows(StepLanes& t) BOA_EXCLUDES(mu_);
  std::vector<Coding> DecodeRows(StepLanes& t, const uint32_t* tables) BOA_EXCLUDES(mu_);
  void CollectCoded(StepLanes& t) BOA_EXCLUDES(mu_);
  void StartCoding(StepLanes& t, const uint32_t* tables) BOA_EXCLUDES(mu_);
  // Fails the requests of every chunk on the thread's lanes (a step that threw, or stopping).
  void FailLanes(StepLanes& t, const Status& why) BOA_REQUIRES(mu_);

  // Request state, for SchedulerRequest and the step threads.
  void Fail(RequestState& s, const Status& why) BOA_REQUIRES(mu_, s.mu);
  void FailRequest(RequestState& s, const Status& why) BOA_EXCLUDES(mu_, s.mu);
  static void Deliver(RequestState& s, uint64_t index, ChunkResult result) BOA_REQUIRES(s.mu);
  // Waits on the request for one poll interval, then runs its cancellation check.
  void WaitOrCancel(RequestState& s) BOA_REQUIRES(s.mu) BOA_EXCLUDES(mu_);
  // LaneBudget::Give: lanes came free on the device.
  void WakeForLanes() BOA_EXCLUDES(mu_);

  const std::shared_ptr<const engine::Engine> engine_;
  const Options options_;
  const int thread_count_;
  mutable Mutex mu_;
  CondVar work_cv_;  // chunks queued, device lanes given back, or stopping
  bool stop_ BOA_GUARDED_BY(mu_) = false;
  // Requests with queued chunks, by priority; each turn takes one chunk from the front
  // request and moves it to the back (round robin).
  std::list<std::shared_ptr<RequestState>> ready_[2] BOA_GUARDED_BY(mu_);
  uint32_t open_requests_ BOA_GUARDED_BY(mu_) = 0;
  uint32_t lanes_in_use_ BOA_GUARDED_BY(mu_) = 0;
  uint64_t queued_chunks_ BOA_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;  // the constructor's and destructor's only
  // One per step thread, written by it and read by Stalled: whether it has lanes to step, and
  // when it last moved (steady-clock nanoseconds).
  struct Heartbeat {
    std::atomic<bool> busy{false};
    std::atomic<int64_t> last_ns{0};
  };
  std::vector<std::unique_ptr<Heartbeat>> heartbeats_;  // made by the constructor
};

}  // namespace boa::server
