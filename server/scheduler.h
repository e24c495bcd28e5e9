// Continuous batching of chunk coding across requests, for one resident model
// (docs/server.md, "Scheduler"). Every step of a step thread advances each of its active lanes:
// a decoding lane by one byte, an encoding lane by its share of the step's rows (it knows its
// bytes in advance); a chunk from any request takes a lane as soon as one is free and gives it
// back when it ends. Chunks are admitted round robin across requests, online priority before bulk.
// Because of the determinism contract, what a request gets back never depends on what else
// shares the batch.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/codec/chunk_coder.h"
#include "common/codec/codec.h"
#include "common/engine/engine.h"
#include "common/util/status.h"

namespace boa::server {

enum class Priority { kBulk = 0, kOnline = 1 };

struct ChunkResult {
  EncodedChunk encoded;          // encode jobs
  std::vector<uint8_t> decoded;  // decode jobs
};

class ChunkScheduler;

// The lanes of one device, shared by every resident model's scheduler: a chunk holds one
// while it runs, so the device never runs more than its lane count at once.
class LaneBudget {
 public:
  explicit LaneBudget(uint32_t lanes) : free_(lanes) {}
  bool TryTake() {
    uint32_t f = free_.load();
    while (f > 0) {
      if (free_.compare_exchange_weak(f, f - 1)) return true;
    }
    return false;
  }
  void Give() { ++free_; }
  uint32_t free() const { return free_.load(); }

 private:
  std::atomic<uint32_t> free_;
};

// A chunk to code: bytes to encode, or a record to decode.
struct ChunkJob {
  uint64_t index = 0;
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
  SchedulerRequest(ChunkScheduler* owner, std::shared_ptr<State> state) : owner_(owner), state_(std::move(state)) {}
  Status Submit(ChunkJob job);
  ChunkScheduler* owner_;
  std::shared_ptr<State> state_;
};

class ChunkScheduler {
 public:
  struct Options {
    int threads = 1;              // step threads, each with its own lanes
    int lanes_per_thread = 64;
    size_t window_bytes = 8u << 20;  // per request: chunk bytes queued, running or unread
    // A request's cancellation check is polled at this interval while it waits.
    std::chrono::milliseconds poll{20};
    // Shared with the other models on the device (may be null: no device-wide limit).
    std::shared_ptr<LaneBudget> device_lanes;
  };
  struct Stats {
    uint32_t lanes = 0;          // total lanes (threads x lanes_per_thread)
    uint32_t lanes_in_use = 0;
    uint64_t queued_chunks = 0;  // waiting for a lane
    uint32_t open_requests = 0;
  };

  // Allocates every step thread's session and frequency buffers here, on the calling thread
  // (std::bad_alloc if they do not fit), then starts the threads.
  ChunkScheduler(std::shared_ptr<const engine::Engine> engine, Options options);
  // The same, with an allocation failure reported as RESOURCE_EXHAUSTED.
  static Result<std::unique_ptr<ChunkScheduler>> Create(std::shared_ptr<const engine::Engine> engine, Options options);
  // What the constructor allocates for a model of `config`: each thread's session
  // (Session::MemoryBytes of its lanes and rows) and its two frequency buffers.
  static uint64_t MemoryBytes(const ModelConfig& config, const Options& options);
  // Stops the step threads; requests still open fail with UNAVAILABLE.
  ~ChunkScheduler();
  ChunkScheduler(const ChunkScheduler&) = delete;
  ChunkScheduler& operator=(const ChunkScheduler&) = delete;

  // `cancelled` is polled by the request's own Submit/Next calls (may be empty).
  std::unique_ptr<SchedulerRequest> Open(Priority priority, std::function<Status()> cancelled);
  Stats stats() const;

 private:
  friend class SchedulerRequest;
  struct Lane;
  static constexpr int kRowsPerStep = 512;  // engine rows per step (encoding lanes share them)
  static int LanesPerThread(const Options& o) { return std::max(1, o.lanes_per_thread); }
  static int RowsPerStep(const Options& o) { return std::max(LanesPerThread(o), kRowsPerStep); }
  class CoderThread;
  // A step thread's memory and its coder thread, made before it starts (so that running out
  // of either fails the constructor, not the thread). Owned by that thread once it runs.
  struct ThreadMemory {
    ThreadMemory();
    ThreadMemory(ThreadMemory&&) noexcept;
    ~ThreadMemory();
    std::unique_ptr<engine::Session> session;
    // Two frequency buffers: the coder thread reads the last step's while the model writes
    // the next one's.
    std::vector<uint32_t> cum[2];
    std::unique_ptr<CoderThread> coder;
  };
  void StepThread(ThreadMemory memory);
  bool PickJob(ChunkJob* job, std::shared_ptr<SchedulerRequest::State>* owner);
  void Fail(SchedulerRequest::State& s, const Status& why);
  void Deliver(SchedulerRequest::State& s, uint64_t index, ChunkResult result);
  // Waits on the request for one poll interval, then runs its cancellation check.
  void Wait(SchedulerRequest::State& s, std::unique_lock<std::mutex>& lk);

  const std::shared_ptr<const engine::Engine> engine_;
  const Options options_;
  const int thread_count_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  bool stop_ = false;
  // Requests with queued chunks, by priority; each turn takes one chunk from the front
  // request and moves it to the back (round robin).
  std::list<std::shared_ptr<SchedulerRequest::State>> ready_[2];
  uint32_t open_requests_ = 0;
  uint32_t lanes_in_use_ = 0;
  uint64_t queued_chunks_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace boa::server
