// The scheduler's step threads, admission and per-request ordering.
#include "server/scheduler.h"

#include <algorithm>


namespace boa::server {

struct SchedulerRequest::State {
  Priority priority = Priority::kBulk;
  std::function<Status()> cancelled;
  std::deque<ChunkJob> queued;
  std::map<uint64_t, ChunkResult> done;
  std::map<uint64_t, size_t> cost;  // per submitted chunk not yet returned by Next
  uint64_t submitted = 0;
  uint64_t next_out = 0;
  size_t held_bytes = 0;
  uint32_t lanes = 0;
  uint32_t peak_lanes = 0;
  bool in_ready = false;
  Status failed;
  std::condition_variable cv;
};

// One lane of a step thread: a chunk being encoded or decoded.
struct ChunkScheduler::Lane {
  std::shared_ptr<SchedulerRequest::State> owner;
  ChunkJob job;
  uint64_t index = 0;    // the chunk's place in its request
  uint32_t length = 0;   // the chunk's length, for errors
  bool coding = false;   // encoding: rows of it are with the coder thread
  Status coder_status;   // encoding: set by the coder thread if the code could not grow
  bool dropped = false;  // its request failed: no more input, freed once not coding
  std::unique_ptr<ChunkEncoder> encoder;  // the chunk being encoded, or
  std::unique_ptr<ChunkDecoder> decoder;  // the chunk being decoded
};

namespace {

Status OutOfMemoryForChunk(uint64_t bytes) {
  return Status::ResourceExhausted("out of memory for a chunk of " + std::to_string(bytes) + " bytes");
}

}  // namespace

// Runs one task at a time on its own thread: a step thread hands it the range coding of its
// encoding lanes and goes on with the next model step.
class ChunkScheduler::CoderThread {
 public:
  CoderThread() : thread_([this] { Run(); }) {}
  ~CoderThread() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Submit(std::function<void()> task) {
    std::lock_guard<std::mutex> lk(mu_);
    task_ = std::move(task);
    busy_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !busy_; });
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return busy_ || stop_; });
      if (!busy_) return;
      std::function<void()> task = std::move(task_);
      lk.unlock();
      task();
      lk.lock();
      busy_ = false;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> task_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

ChunkScheduler::ThreadMemory::ThreadMemory() = default;
ChunkScheduler::ThreadMemory::ThreadMemory(ThreadMemory&&) noexcept = default;
ChunkScheduler::ThreadMemory::~ThreadMemory() = default;

ChunkScheduler::ChunkScheduler(std::shared_ptr<const engine::Engine> engine, Options options)
    : engine_(std::move(engine)), options_(options), thread_count_(std::max(1, options.threads)) {
  const size_t rows = static_cast<size_t>(RowsPerStep(options_));
  std::vector<ThreadMemory> memory(thread_count_);
  for (ThreadMemory& m : memory) {
    m.session = std::make_unique<engine::Session>(engine_, LanesPerThread(options_), static_cast<int>(rows));
    for (auto& c : m.cum) c.resize(rows * kFreqTableStride);
    m.coder = std::make_unique<CoderThread>();
  }
  threads_.reserve(thread_count_);
  try {
    for (ThreadMemory& m : memory) threads_.emplace_back([this, m = std::move(m)]() mutable { StepThread(std::move(m)); });
  } catch (...) {  // a thread that cannot start: stop the ones that did, then fail
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

Result<std::unique_ptr<ChunkScheduler>> ChunkScheduler::Create(std::shared_ptr<const engine::Engine> engine,
                                                                Options options) {
  const uint64_t bytes = MemoryBytes(engine->config(), options);
  return CatchOutOfMemory("for the model's lanes (" + std::to_string(bytes >> 20) + " MiB)",
                          [&]() -> Result<std::unique_ptr<ChunkScheduler>> {
                            return std::make_unique<ChunkScheduler>(std::move(engine), std::move(options));
                          });
}

uint64_t ChunkScheduler::MemoryBytes(const ModelConfig& config, const Options& o) {
  const int rows = RowsPerStep(o);
  const uint64_t per_thread = engine::Session::MemoryBytes(config, LanesPerThread(o), rows) +
                              2ull * static_cast<uint64_t>(rows) * kFreqTableStride * sizeof(uint32_t);
  return static_cast<uint64_t>(std::max(1, o.threads)) * per_thread;
}

ChunkScheduler::~ChunkScheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    for (auto& list : ready_) {
      for (auto& s : list) Fail(*s, Status::Unavailable("the server is shutting down"));
    }
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::unique_ptr<SchedulerRequest> ChunkScheduler::Open(Priority priority, std::function<Status()> cancelled) {
  auto s = std::make_shared<SchedulerRequest::State>();
  s->priority = priority;
  s->cancelled = std::move(cancelled);
  std::lock_guard<std::mutex> lk(mu_);
  ++open_requests_;
  return std::unique_ptr<SchedulerRequest>(new SchedulerRequest(this, std::move(s)));
}

ChunkScheduler::Stats ChunkScheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  Stats st;
  st.lanes = static_cast<uint32_t>(thread_count_) * static_cast<uint32_t>(options_.lanes_per_thread);
  st.lanes_in_use = lanes_in_use_;
  st.queued_chunks = queued_chunks_;
  st.open_requests = open_requests_;
  return st;
}

void ChunkScheduler::Fail(SchedulerRequest::State& s, const Status& why) {
  if (!s.failed.ok()) return;
  s.failed = why;
  queued_chunks_ -= s.queued.size();
  s.queued.clear();
  s.done.clear();
  s.cv.notify_all();
}

void ChunkScheduler::Deliver(SchedulerRequest::State& s, uint64_t index, ChunkResult result) {
  if (!s.failed.ok()) return;
  s.done.emplace(index, std::move(result));
  s.cv.notify_all();
}

// Waits on the request's condition in slices, polling its cancellation check.
void ChunkScheduler::Wait(SchedulerRequest::State& s, std::unique_lock<std::mutex>& lk) {
  s.cv.wait_for(lk, options_.poll);
  if (s.failed.ok() && s.cancelled) {
    lk.unlock();
    Status c = s.cancelled();
    lk.lock();
    if (!c.ok()) Fail(s, c);
  }
}

bool ChunkScheduler::PickJob(ChunkJob* job, std::shared_ptr<SchedulerRequest::State>* owner) {
  for (int p = 1; p >= 0; --p) {  // online first
    auto& list = ready_[p];
    while (!list.empty()) {
      std::shared_ptr<SchedulerRequest::State> s = list.front();
      list.pop_front();
      if (s->queued.empty() || !s->failed.ok()) {
        s->in_ready = false;
        continue;
      }
      *job = std::move(s->queued.front());
      s->queued.pop_front();
      --queued_chunks_;
      if (s->queued.empty()) {
        s->in_ready = false;
      } else {
        list.push_back(s);  // round robin: one chunk per turn
      }
      *owner = std::move(s);
      return true;
    }
  }
  return false;
}

void ChunkScheduler::StepThread(ThreadMemory memory) {
  const int L = LanesPerThread(options_);
  const int rows_per_step = RowsPerStep(options_);
  engine::Session& session = *memory.session;
  std::vector<uint32_t>* cum = memory.cum;
  std::vector<Lane> lanes(L);
  std::vector<int> free_lanes, active;
  for (int i = L - 1; i >= 0; --i) free_lanes.push_back(i);
  int buf = 0;
  CoderThread& coder = *memory.coder;
  struct Coding {
    int lane;
    size_t row, count;
  };
  std::vector<Coding> coding;  // the task with the coder thread
  std::vector<engine::LaneInput> inputs;
  struct Finished {
    int lane;
    ChunkResult result;
    Status status;
  };
  std::vector<Finished> finished;

  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    try {
      // Deliver what finished, free lanes of failed requests (once the coder is done with
      // them), admit new chunks.
      for (Finished& f : finished) {
        Lane& ln = lanes[f.lane];
        if (f.status.ok()) {
          Deliver(*ln.owner, ln.index, std::move(f.result));
        } else {
          Fail(*ln.owner, f.status);
        }
        ln.dropped = true;
      }
      finished.clear();
      size_t keep = 0;
      for (int lane : active) {
        Lane& ln = lanes[lane];
        if (!ln.owner->failed.ok()) ln.dropped = true;
        if (!ln.dropped || ln.coding) {
          active[keep++] = lane;
          continue;
        }
        --ln.owner->lanes;
        --lanes_in_use_;
        if (options_.device_lanes) options_.device_lanes->Give();
        ln = Lane();
        free_lanes.push_back(lane);
      }
      active.resize(keep);
      bool device_full = false;
      // Admit up to this thread's share of the work, so one thread does not take every chunk
      // while the others idle.
      const uint64_t n_threads = static_cast<uint64_t>(thread_count_);
      const uint64_t share = std::max<uint64_t>(1, (lanes_in_use_ + queued_chunks_ + n_threads - 1) / n_threads);
      while (!stop_ && !free_lanes.empty() && active.size() < share) {
        ChunkJob job;
        std::shared_ptr<SchedulerRequest::State> owner;
        if (!PickJob(&job, &owner)) break;
        ChunkResult r;
        if (job.decode ? DecodeWithoutModel(&job.record, &r.decoded) : EncodeWithoutModel(&job.bytes, &r.encoded)) {
          Deliver(*owner, job.index, std::move(r));
          continue;
        }
        if (options_.device_lanes && !options_.device_lanes->TryTake()) {
          // Every lane of the device is busy (other models): the chunk goes back to the front.
          owner->queued.push_front(std::move(job));
          ++queued_chunks_;
          if (!owner->in_ready) {
            owner->in_ready = true;
            ready_[owner->priority == Priority::kOnline ? 1 : 0].push_front(owner);
          }
          device_full = true;
          break;
        }
        int lane = free_lanes.back();
        Lane& ln = lanes[lane];
        ln.index = job.index;
        ln.length = job.decode ? job.record.original_length : static_cast<uint32_t>(job.bytes.size());
        // The chunk's own buffers; if they cannot be had, its request fails, not the server.
        try {
          if (job.decode) {
            ln.decoder = std::make_unique<ChunkDecoder>(std::move(job.record), job.index);
          } else {
            ln.encoder = std::make_unique<ChunkEncoder>(std::move(job.bytes));
          }
        } catch (const std::bad_alloc&) {
          Fail(*owner, OutOfMemoryForChunk(ln.length));
          ln = Lane();
          if (options_.device_lanes) options_.device_lanes->Give();
          continue;
        }
        free_lanes.pop_back();
        ln.owner = owner;
        session.ResetLane(lane);
        active.push_back(lane);
        ++lanes_in_use_;
        owner->peak_lanes = std::max(owner->peak_lanes, ++owner->lanes);
      }
      if (stop_) break;
      if (active.empty()) {
        // Lanes freed by another model's scheduler do not wake this one: look again soon.
        if (device_full) {
          work_cv_.wait_for(lk, std::chrono::milliseconds(5));
        } else {
          work_cv_.wait(lk);
        }
        continue;
      }
      lk.unlock();

      // A decoding lane needs each byte before its next step; an encoding lane knows all its
      // bytes and may feed several per step (chunk mode: the same frequencies, fewer calls).
      // The step's rows are shared between requests, not lanes — a request with one chunk
      // moves as fast as one with a hundred — and an online request weighs 4 bulk ones.
      size_t decoding = 0, encoding = 0;
      std::map<const SchedulerRequest::State*, size_t> encode_lanes;
      for (int lane : active) {
        const Lane& ln = lanes[lane];
        if (ln.dropped) continue;
        decoding += ln.decoder != nullptr;
        if (ln.encoder && ln.encoder->inputs_left() > 0) {
          ++encoding;
          ++encode_lanes[ln.owner.get()];
        }
      }
      auto weight = [](const SchedulerRequest::State* s) { return s->priority == Priority::kOnline ? 4.0 : 1.0; };
      double total_weight = 0;
      for (const auto& [owner, n] : encode_lanes) total_weight += weight(owner);
      size_t rows_left = static_cast<size_t>(rows_per_step) - decoding, encode_left = encoding;
      inputs.clear();
      for (int lane : active) {
        Lane& ln = lanes[lane];
        if (ln.dropped) continue;
        if (ln.decoder) {
          inputs.push_back(ln.decoder->Input(lane));
        } else if (ln.encoder->inputs_left() > 0) {
          const auto* owner = ln.owner.get();
          size_t share = static_cast<size_t>((rows_per_step - decoding) * weight(owner) / total_weight /
                                             static_cast<double>(encode_lanes[owner]));
          // At least one row, and one left for each lane after this one.
          size_t n = std::clamp<size_t>(share, 1, rows_left - (encode_left - 1));
          n = std::min(n, ln.encoder->inputs_left());
          rows_left -= n;
          --encode_left;
          inputs.push_back(ln.encoder->TakeInputs(lane, n));
        }
      }
      const uint32_t* c = cum[buf].data();
      if (!inputs.empty()) session.Forward(inputs.data(), static_cast<int>(inputs.size()), cum[buf].data());
      // Decoding lanes now; encoding rows go to the coder thread after its last task.
      std::vector<Coding> next;
      size_t row = 0;
      for (const engine::LaneInput& in : inputs) {
        Lane& ln = lanes[in.lane];
        if (ln.encoder) {
          next.push_back(Coding{in.lane, row, static_cast<size_t>(in.count)});
          row += static_cast<size_t>(in.count);
          continue;
        }
        Result<bool> complete = ln.decoder->Decode(&c[row++ * kFreqTableStride]);
        if (!complete.ok()) {
          finished.push_back(Finished{in.lane, {}, complete.status()});
          ln.dropped = true;
        } else if (*complete) {
          Finished f{in.lane, {}, Status::Ok()};
          f.result.decoded = ln.decoder->TakeBytes();
          finished.push_back(std::move(f));
          ln.dropped = true;
        }
      }
      coder.Wait();
      for (const Coding& w : coding) {
        Lane& ln = lanes[w.lane];
        ln.coding = false;
        if (ln.dropped) continue;
        if (!ln.coder_status.ok()) {
          finished.push_back(Finished{w.lane, {}, ln.coder_status});
          ln.dropped = true;
        } else if (ln.encoder->coded()) {
          Finished f{w.lane, {}, Status::Ok()};
          f.result.encoded = ln.encoder->Seal();
          finished.push_back(std::move(f));
          ln.dropped = true;
        }
      }
      coding = std::move(next);
      if (!coding.empty()) {
        for (const Coding& w : coding) lanes[w.lane].coding = true;
        coder.Submit([&lanes, work = coding, c] {
          for (const Coding& w : work) {
            Lane& ln = lanes[w.lane];
            try {  // the range code grows its lane's payload
              ln.encoder->Code(&c[w.row * kFreqTableStride], w.count);
            } catch (const std::bad_alloc&) {
              ln.coder_status = OutOfMemoryForChunk(ln.length);
            }
          }
        });
        buf ^= 1;
      }
      lk.lock();
    } catch (const std::exception& e) {
      // Something a step needed could not be had (memory, most likely): the chunks on this
      // thread's lanes fail, and their requests with them; the thread and the others go on.
      if (!lk.owns_lock()) lk.lock();
      coder.Wait();
      const Status why = dynamic_cast<const std::bad_alloc*>(&e) ? Status::ResourceExhausted("out of memory")
                                                                : Status::Internal(std::string("model step failed: ") + e.what());
      for (int lane : active) {
        Lane& ln = lanes[lane];
        ln.coding = false;
        ln.dropped = true;
        if (ln.owner) Fail(*ln.owner, why);
      }
      coding.clear();
      finished.clear();
    }
  }
  coder.Wait();  // its last task reads `lanes`, which go away with this function
  for (int lane : active) {
    --lanes[lane].owner->lanes;
    --lanes_in_use_;
    if (options_.device_lanes) options_.device_lanes->Give();
  }
}

SchedulerRequest::~SchedulerRequest() {
  std::lock_guard<std::mutex> lk(owner_->mu_);
  owner_->Fail(*state_, Status::Cancelled("request closed"));
  --owner_->open_requests_;
}

void SchedulerRequest::Cancel(const Status& why) {
  std::lock_guard<std::mutex> lk(owner_->mu_);
  owner_->Fail(*state_, why);
}

uint32_t SchedulerRequest::peak_lanes() const {
  std::lock_guard<std::mutex> lk(owner_->mu_);
  return state_->peak_lanes;
}

Status SchedulerRequest::SubmitEncode(std::vector<uint8_t> chunk) {
  ChunkJob job;
  job.cost = 2 * chunk.size();
  job.bytes = std::move(chunk);
  return Submit(std::move(job));
}

Status SchedulerRequest::SubmitDecode(ChunkRecord record) {
  ChunkJob job;
  job.decode = true;
  job.cost = record.payload.size() + record.original_length;
  job.record = std::move(record);
  return Submit(std::move(job));
}

Status SchedulerRequest::Submit(ChunkJob job) {
  ChunkScheduler& o = *owner_;
  State& s = *state_;
  std::unique_lock<std::mutex> lk(o.mu_);
  while (s.failed.ok() && !o.stop_ && s.held_bytes > 0 && s.held_bytes + job.cost > o.options_.window_bytes) {
    o.Wait(s, lk);
  }
  if (o.stop_ && s.failed.ok()) o.Fail(s, Status::Unavailable("the server is shutting down"));
  BOA_RETURN_IF_ERROR(s.failed);
  job.index = s.submitted++;
  s.held_bytes += job.cost;
  s.cost.emplace(job.index, job.cost);
  s.queued.push_back(std::move(job));
  ++o.queued_chunks_;
  if (!s.in_ready) {
    s.in_ready = true;
    o.ready_[s.priority == Priority::kOnline ? 1 : 0].push_back(state_);
  }
  lk.unlock();
  o.work_cv_.notify_all();
  return Status::Ok();
}

Status SchedulerRequest::Next(ChunkResult* out) {
  ChunkScheduler& o = *owner_;
  State& s = *state_;
  std::unique_lock<std::mutex> lk(o.mu_);
  for (;;) {
    BOA_RETURN_IF_ERROR(s.failed);
    auto it = s.done.find(s.next_out);
    if (it != s.done.end()) {
      *out = std::move(it->second);
      s.done.erase(it);
      auto c = s.cost.find(s.next_out);
      s.held_bytes -= c->second;
      s.cost.erase(c);
      ++s.next_out;
      s.cv.notify_all();  // a Submit may wait for room
      return Status::Ok();
    }
    if (s.next_out >= s.submitted) return Status::Internal("Next() without a pending chunk");
    o.Wait(s, lk);
  }
}

}  // namespace boa::server
