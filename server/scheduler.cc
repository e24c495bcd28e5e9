// The scheduler's step threads, admission and per-request ordering (see scheduler.h for who
// owns what and which lock guards it).
#include "server/scheduler.h"

#include <algorithm>
#include <utility>

namespace boa::server {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

Status OutOfMemoryForChunk(uint64_t bytes) {
  return Status::ResourceExhausted("out of memory for a chunk of " + std::to_string(bytes) + " bytes");
}

Status ShuttingDown() { return Status::Unavailable("the server is shutting down"); }

}  // namespace

bool LaneBudget::TryTake() {
  uint32_t f = free_.load();
  while (f > 0) {
    if (free_.compare_exchange_weak(f, f - 1)) return true;
  }
  return false;
}

void LaneBudget::Give(uint32_t n) {
  free_ += n;
  MutexLock l(&mu_);
  for (ChunkScheduler* s : schedulers_) s->WakeForLanes();
}

void LaneBudget::Subscribe(ChunkScheduler* s) {
  MutexLock l(&mu_);
  schedulers_.push_back(s);
}

void LaneBudget::Unsubscribe(ChunkScheduler* s) {
  MutexLock l(&mu_);
  schedulers_.erase(std::remove(schedulers_.begin(), schedulers_.end(), s), schedulers_.end());
}

// One lane of a step thread: a chunk being encoded or decoded. The step thread's, except
// `encoder` and `coder_status` while `with_coder`.
struct ChunkScheduler::Lane {
  std::shared_ptr<RequestState> request;  // whose chunk it is
  uint64_t index = 0;    // the chunk's place in its request
  uint32_t length = 0;   // the chunk's length, for errors
  std::chrono::steady_clock::time_point submitted;  // for the observer
  bool with_coder = false;  // encoding: rows of it are with the coder thread
  Status coder_status;      // encoding: set by the coder thread if the code could not grow
  bool ended = false;       // takes no more rows (finished, or its request failed); freed once not with the coder
  std::unique_ptr<ChunkEncoder> encoder;  // the chunk being encoded, or
  std::unique_ptr<ChunkDecoder> decoder;  // the chunk being decoded
};

// Rows of one encoding lane in a step's frequency tables, for the coder thread.
struct ChunkScheduler::Coding {
  int lane;
  size_t row, count;
};

// A chunk that ended in a step, handed back to its request under the locks.
struct ChunkScheduler::Finished {
  int lane;
  ChunkResult result;
  Status status;
};

// Runs one task at a time on its own thread: a step thread hands it the range coding of its
// encoding lanes and goes on with the next model step.
class ChunkScheduler::CoderThread {
 public:
  CoderThread() : thread_([this] { Run(); }) {}
  ~CoderThread() {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    thread_.join();
  }
  void Submit(std::function<void()> task) BOA_EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      task_ = std::move(task);
      busy_ = true;
    }
    cv_.SignalAll();
  }
  // Returns once the last task is done.
  void Wait() BOA_EXCLUDES(mu_) {
    MutexLock l(&mu_);
    while (busy_) cv_.Wait(&mu_);
  }

 private:
  void Run() BOA_EXCLUDES(mu_) {
    mu_.Lock();
    for (;;) {
      while (!busy_ && !stop_) cv_.Wait(&mu_);
      if (!busy_) break;
      std::function<void()> task = std::move(task_);
      mu_.Unlock();
      task();
      mu_.Lock();
      busy_ = false;
      cv_.SignalAll();
    }
    mu_.Unlock();
  }
  Mutex mu_;
  CondVar cv_;
  std::function<void()> task_ BOA_GUARDED_BY(mu_);
  bool busy_ BOA_GUARDED_BY(mu_) = false;
  bool stop_ BOA_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A step thread's memory, made before it starts (so that running out of it fails the
// constructor, not the thread), then owned by that thread alone.
struct ChunkScheduler::StepLanes {
  StepLanes(const std::shared_ptr<const engine::Engine>& engine, int lanes_count, int rows)
      : session(engine::Session::New(engine, lanes_count, rows)),
        lanes(static_cast<size_t>(lanes_count)),
        coder(std::make_unique<CoderThread>()) {
    for (auto& t : tables) t.resize(static_cast<size_t>(rows) * kFreqTableStride);
    for (int i = lanes_count - 1; i >= 0; --i) free.push_back(i);
    active.reserve(lanes.size());
    // The observer's buffers never grow in the step loop (an allocation failure there would
    // leave a lane half admitted); beyond their capacity a chunk is not observed.
    admitted.reserve(2 * lanes.size());
    done.reserve(2 * lanes.size());
  }
  std::unique_ptr<engine::Session> session;
  // Two frequency buffers: the coder thread reads the last step's while the model writes the
  // next one's (`buf` is the next one).
  std::vector<uint32_t> tables[2];
  int buf = 0;
  std::vector<Lane> lanes;
  std::vector<int> free, active;
  std::vector<engine::LaneInput> inputs;  // this step's model inputs
  std::vector<Coding> coding;    // the task with the coder thread
  std::vector<Finished> finished;  // to hand back
  uint32_t to_give = 0;          // device lanes to give back once no lock is held
  Heartbeat* heartbeat = nullptr;  // the scheduler's, for this thread
  // For the observer, told once no lock is held: chunks admitted (their queue time) and
  // chunks done (decode or not, seconds since submitted).
  std::vector<double> admitted;
  std::vector<std::pair<bool, double>> done;
  std::unique_ptr<CoderThread> coder;  // last: joined before the lanes it reads go
};

ChunkScheduler::ChunkScheduler(std::shared_ptr<const engine::Engine> engine, Options options)
    : engine_(std::move(engine)), options_(options), thread_count_(std::max(1, options.threads)) {
  std::vector<std::unique_ptr<StepLanes>> memory;
  for (int i = 0; i < thread_count_; ++i) {
    memory.push_back(std::make_unique<StepLanes>(engine_, LanesPerThread(options_), RowsPerStep(options_)));
  }
  threads_.reserve(thread_count_);
  for (int i = 0; i < thread_count_; ++i) heartbeats_.push_back(std::make_unique<Heartbeat>());
  if (options_.device_lanes) options_.device_lanes->Subscribe(this);
  try {
    for (size_t i = 0; i < memory.size(); ++i) {
      memory[i]->heartbeat = heartbeats_[i].get();
      threads_.emplace_back([this, m = std::move(memory[i])]() mutable { StepThread(std::move(m)); });
    }
  } catch (...) {  // a thread that cannot start: stop the ones that did, then fail
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    work_cv_.SignalAll();
    for (auto& t : threads_) t.join();
    if (options_.device_lanes) options_.device_lanes->Unsubscribe(this);
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

uint64_t ChunkScheduler::MemoryBytes(const ModelConfig& config, const Options& o, engine::Backend backend) {
  const int rows = RowsPerStep(o);
  const uint64_t per_thread = engine::Session::MemoryBytes(config, LanesPerThread(o), rows, backend) +
                              2ull * static_cast<uint64_t>(rows) * kFreqTableStride * sizeof(uint32_t);
  return static_cast<uint64_t>(std::max(1, o.threads)) * per_thread;
}

ChunkScheduler::~ChunkScheduler() {
  {
    MutexLock l(&mu_);
    stop_ = true;
    for (auto& list : ready_) {
      for (auto& s : list) {
        MutexLock r(&s->mu);
        Fail(*s, ShuttingDown());
      }
    }
  }
  work_cv_.SignalAll();
  for (auto& t : threads_) t.join();
  if (options_.device_lanes) options_.device_lanes->Unsubscribe(this);
}

std::unique_ptr<SchedulerRequest> ChunkScheduler::Open(Priority priority, std::function<Status()> cancelled) {
  auto s = std::make_shared<RequestState>(priority, std::move(cancelled));
  MutexLock l(&mu_);
  ++open_requests_;
  return std::unique_ptr<SchedulerRequest>(new SchedulerRequest(this, std::move(s)));
}

ChunkScheduler::Stats ChunkScheduler::stats() const {
  MutexLock l(&mu_);
  Stats st;
  st.lanes = static_cast<uint32_t>(thread_count_) * static_cast<uint32_t>(LanesPerThread(options_));
  st.lanes_in_use = lanes_in_use_;
  st.queued_chunks = queued_chunks_;
  st.open_requests = open_requests_;
  return st;
}

void ChunkScheduler::WakeForLanes() {
  // Taking the mutex orders this after a waiter's failed TryTake: it is waiting by now.
  { MutexLock l(&mu_); }
  work_cv_.SignalAll();
}

void ChunkScheduler::Fail(RequestState& s, const Status& why) {
  if (!s.failed.ok()) return;
  s.failed = why;
  queued_chunks_ -= s.queued.size();
  s.queued.clear();
  s.done.clear();
  s.cv.SignalAll();
}

void ChunkScheduler::FailRequest(RequestState& s, const Status& why) {
  MutexLock l(&mu_);
  MutexLock r(&s.mu);
  Fail(s, why);
}

void ChunkScheduler::Deliver(RequestState& s, uint64_t index, ChunkResult result) {
  if (!s.failed.ok()) return;
  s.done.emplace(index, std::move(result));
  s.cv.SignalAll();
}

void ChunkScheduler::WaitOrCancel(RequestState& s) {
  s.cv.WaitFor(&s.mu, options_.poll);
  if (s.failed.ok() && s.cancelled) {
    s.mu.Unlock();  // the check may take a while; the failure takes the scheduler's lock first
    Status c = s.cancelled();
    if (!c.ok()) FailRequest(s, c);
    s.mu.Lock();
  }
}

bool ChunkScheduler::PickJob(ChunkJob* job, std::shared_ptr<RequestState>* request) {
  for (int p = 1; p >= 0; --p) {  // online first
    auto& list = ready_[p];
    while (!list.empty()) {
      std::shared_ptr<RequestState> s = std::move(list.front());
      list.pop_front();
      MutexLock r(&s->mu);
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
      *request = std::move(s);
      return true;
    }
  }
  return false;
}

// A chunk picked but not admitted goes back to the front of its request's queue.
void ChunkScheduler::Requeue(ChunkJob job, const std::shared_ptr<RequestState>& request) {
  MutexLock r(&request->mu);
  if (!request->failed.ok()) return;
  request->queued.push_front(std::move(job));
  ++queued_chunks_;
  if (!request->in_ready) {
    request->in_ready = true;
    ready_[request->priority == Priority::kOnline ? 1 : 0].push_front(request);
  }
}

void ChunkScheduler::HandBack(StepLanes& t) {
  for (Finished& f : t.finished) {
    Lane& ln = t.lanes[f.lane];
    MutexLock r(&ln.request->mu);
    if (f.status.ok()) {
      Deliver(*ln.request, ln.index, std::move(f.result));
      if (options_.observer && t.done.size() < t.done.capacity()) {
        t.done.emplace_back(ln.decoder != nullptr, SecondsSince(ln.submitted));
      }
    } else {
      Fail(*ln.request, f.status);
    }
    ln.ended = true;
  }
  t.finished.clear();
  size_t keep = 0;
  for (int lane : t.active) {
    Lane& ln = t.lanes[lane];
    bool release = false;
    {
      MutexLock r(&ln.request->mu);
      if (!ln.request->failed.ok()) ln.ended = true;
      release = ln.ended && !ln.with_coder;
      if (release) --ln.request->lanes;
    }
    if (!release) {
      t.active[keep++] = lane;
      continue;
    }
    --lanes_in_use_;
    if (options_.device_lanes) ++t.to_give;
    ln = Lane();
    t.free.push_back(lane);
  }
  t.active.resize(keep);
}

void ChunkScheduler::Admit(StepLanes& t) {
  // Up to this thread's share of the work, so one thread does not take every chunk while
  // the others idle.
  const uint64_t n_threads = static_cast<uint64_t>(thread_count_);
  const uint64_t share = std::max<uint64_t>(1, (lanes_in_use_ + queued_chunks_ + n_threads - 1) / n_threads);
  while (!t.free.empty() && t.active.size() < share) {
    ChunkJob job;
    std::shared_ptr<RequestState> request;
    if (!PickJob(&job, &request)) return;
    // A chunk picked is admitted, delivered or requeued; if memory for that runs out, its
    // request fails (never left waiting for a chunk that is gone).
    try {
      if (!AdmitJob(t, std::move(job), request)) return;
    } catch (const std::bad_alloc&) {
      MutexLock l(&request->mu);
      Fail(*request, Status::ResourceExhausted("out of memory while admitting a chunk"));
    }
  }
}

bool ChunkScheduler::AdmitJob(StepLanes& t, ChunkJob job, const std::shared_ptr<RequestState>& request) {
  ChunkResult r;
  Result<bool> without_model =
      job.decode ? DecodeWithoutModel(&job.record, job.index, &r.decoded) : EncodeWithoutModel(&job.bytes, &r.encoded);
  if (!without_model.ok()) {
    MutexLock l(&request->mu);
    Fail(*request, without_model.status());
    return true;
  }
  if (*without_model) {
    MutexLock l(&request->mu);
    Deliver(*request, job.index, std::move(r));
    if (options_.observer && t.done.size() < t.done.capacity()) t.done.emplace_back(job.decode, SecondsSince(job.submitted));
    return true;
  }
  // A lane this thread freed and has not given back yet is this chunk's at once.
  if (t.to_give > 0) {
    --t.to_give;
  } else if (options_.device_lanes && !options_.device_lanes->TryTake()) {
    // Every lane of the device is busy (other models): wait for one to be given back.
    Requeue(std::move(job), request);
    return false;
  }
  const int lane = t.free.back();
  Lane& ln = t.lanes[lane];
  ln.index = job.index;
  ln.length = job.decode ? job.record.original_length : static_cast<uint32_t>(job.bytes.size());
  ln.submitted = job.submitted;
  // The chunk's own buffers; if they cannot be had, its request fails, not the server.
  try {
    if (job.decode) {
      ln.decoder = std::make_unique<ChunkDecoder>(std::move(job.record), job.index, Mixing::Of(engine_->config()));
    } else {
      ln.encoder = std::make_unique<ChunkEncoder>(std::move(job.bytes), Mixing::Of(engine_->config()));
    }
  } catch (const std::bad_alloc&) {
    MutexLock l(&request->mu);
    Fail(*request, OutOfMemoryForChunk(ln.length));
    ln = Lane();
    if (options_.device_lanes) ++t.to_give;
    return true;
  }
  t.free.pop_back();
  if (options_.observer && t.admitted.size() < t.admitted.capacity()) t.admitted.push_back(SecondsSince(job.submitted));
  t.session->ResetLane(lane);
  t.active.push_back(lane);
  ++lanes_in_use_;
  {
    MutexLock l(&request->mu);
    request->peak_lanes = std::max(request->peak_lanes, ++request->lanes);
  }
  ln.request = request;
  return true;
}

bool ChunkScheduler::AdmitOrWait(StepLanes& t) {
  uint32_t give = 0;
  {
    MutexLock l(&mu_);
    HandBack(t);
    if (stop_) return false;
    Admit(t);
    give = std::exchange(t.to_give, 0);
    if (t.active.empty() && give == 0 && t.admitted.empty() && t.done.empty()) {
      t.heartbeat->busy = false;
      // Woken by new chunks, lanes given back or a stop; and every second regardless, so a
      // wake-up that was somehow missed costs a second, never a wedged thread.
      work_cv_.WaitFor(&mu_, std::chrono::seconds(1));
    }
  }
  Beat(t);
  if (give) options_.device_lanes->Give(give);
  Report(t);
  return true;
}

void ChunkScheduler::Beat(StepLanes& t) {
  t.heartbeat->last_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  t.heartbeat->busy = !t.active.empty();
}

bool ChunkScheduler::Stalled(std::chrono::steady_clock::duration limit) const {
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  for (const auto& h : heartbeats_) {
    if (h->busy && now - h->last_ns > std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count()) return true;
  }
  return false;
}

void ChunkScheduler::Report(StepLanes& t) {
  if (!options_.observer) return;
  for (double queued : t.admitted) options_.observer->OnAdmitted(queued);
  for (const auto& [decode, seconds] : t.done) options_.observer->OnChunkDone(decode, seconds);
  t.admitted.clear();
  t.done.clear();
}

// A decoding lane needs each byte before its next step; an encoding lane knows all its bytes
// and may feed several per step (chunk mode: the same frequencies, fewer calls). The step's
// rows are shared between requests, not lanes — a request with one chunk moves as fast as
// one with a hundred — and an online request weighs 4 bulk ones.
void ChunkScheduler::PlanRows(StepLanes& t) {
  const size_t rows_per_step = static_cast<size_t>(RowsPerStep(options_));
  size_t decoding = 0, encoding = 0;
  std::map<const RequestState*, size_t> encode_lanes;
  for (int lane : t.active) {
    const Lane& ln = t.lanes[lane];
    if (ln.ended) continue;
    decoding += ln.decoder != nullptr;
    if (ln.encoder && ln.encoder->inputs_left() > 0) {
      ++encoding;
      ++encode_lanes[ln.request.get()];
    }
  }
  auto weight = [](const RequestState* s) { return s->priority == Priority::kOnline ? 4.0 : 1.0; };
  double total_weight = 0;
  for (const auto& [request, n] : encode_lanes) total_weight += weight(request);
  size_t rows_left = rows_per_step - decoding, encode_left = encoding;
  t.inputs.clear();
  for (int lane : t.active) {
    Lane& ln = t.lanes[lane];
    if (ln.ended) continue;
    if (ln.decoder) {
      t.inputs.push_back(ln.decoder->Input(lane));
    } else if (ln.encoder->inputs_left() > 0) {
      const RequestState* request = ln.request.get();
      const size_t share = static_cast<size_t>(static_cast<double>(rows_per_step - decoding) * weight(request) /
                                               total_weight / static_cast<double>(encode_lanes[request]));
      // At least one row, and one left for each lane after this one.
      size_t n = std::clamp<size_t>(share, 1, rows_left - (encode_left - 1));
      n = std::min(n, ln.encoder->inputs_left());
      rows_left -= n;
      --encode_left;
      t.inputs.push_back(ln.encoder->TakeInputs(lane, n));
    }
  }
}

// Decodes this step's byte of every decoding lane; returns the encoding lanes' rows.
std::vector<ChunkScheduler::Coding> ChunkScheduler::DecodeRows(StepLanes& t, const uint32_t* tables) {
  std::vector<Coding> encoding;
  size_t row = 0;
  for (const engine::LaneInput& in : t.inputs) {
    Lane& ln = t.lanes[in.lane];
    if (ln.encoder) {
      encoding.push_back(Coding{in.lane, row, static_cast<size_t>(in.count)});
      row += static_cast<size_t>(in.count);
      continue;
    }
    Result<bool> complete = ln.decoder->Decode(&tables[row++ * kFreqTableStride]);
    if (!complete.ok()) {
      t.finished.push_back(Finished{in.lane, {}, complete.status()});
      ln.ended = true;
    } else if (*complete) {
      Finished f{in.lane, {}, Status::Ok()};
      f.result.decoded = ln.decoder->TakeBytes();
      t.finished.push_back(std::move(f));
      ln.ended = true;
    }
  }
  return encoding;
}

// After the coder thread's last task: the lanes it coded to the end are finished.
void ChunkScheduler::CollectCoded(StepLanes& t) {
  for (const Coding& w : t.coding) {
    Lane& ln = t.lanes[w.lane];
    ln.with_coder = false;
    if (ln.ended) continue;
    if (!ln.coder_status.ok()) {
      t.finished.push_back(Finished{w.lane, {}, ln.coder_status});
      ln.ended = true;
    } else if (ln.encoder->coded()) {
      Finished f{w.lane, {}, Status::Ok()};
      f.result.encoded = ln.encoder->Seal();
      t.finished.push_back(std::move(f));
      ln.ended = true;
    }
  }
  t.coding.clear();
}

void ChunkScheduler::StartCoding(StepLanes& t, const uint32_t* tables) {
  for (const Coding& w : t.coding) t.lanes[w.lane].with_coder = true;
  t.coder->Submit([&lanes = t.lanes, work = t.coding, tables] {
    for (const Coding& w : work) {
      Lane& ln = lanes[w.lane];
      try {  // the range code grows its lane's payload
        ln.encoder->Code(&tables[w.row * kFreqTableStride], w.count);
      } catch (const std::bad_alloc&) {
        ln.coder_status = OutOfMemoryForChunk(ln.length);
      }
    }
  });
}

void ChunkScheduler::Step(StepLanes& t) {
  PlanRows(t);
  const uint32_t* tables = t.tables[t.buf].data();
  if (!t.inputs.empty()) {
    // The clock is read only for an observer: without metrics a step costs what it did.
    const auto start = options_.observer ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    t.session->Forward(t.inputs.data(), static_cast<int>(t.inputs.size()), t.tables[t.buf].data());
    if (options_.observer) {
      // The lanes that fed rows (one input each): a lane that ended and waits for its coder
      // holds a lane but adds nothing to the batch.
      options_.observer->OnStep(static_cast<uint32_t>(t.inputs.size()), static_cast<uint32_t>(t.lanes.size()),
                                SecondsSince(start));
    }
  }
  std::vector<Coding> encoding = DecodeRows(t, tables);
  t.coder->Wait();
  CollectCoded(t);
  t.coding = std::move(encoding);
  if (!t.coding.empty()) {
    StartCoding(t, tables);
    t.buf ^= 1;
  }
}

void ChunkScheduler::FailLanes(StepLanes& t, const Status& why) {
  for (int lane : t.active) {
    Lane& ln = t.lanes[lane];
    ln.with_coder = false;
    ln.ended = true;
    MutexLock r(&ln.request->mu);
    Fail(*ln.request, why);
  }
  t.coding.clear();
  t.finished.clear();
}

void ChunkScheduler::StepThread(std::unique_ptr<StepLanes> memory) {
  StepLanes& t = *memory;
  for (;;) {
    try {
      if (!AdmitOrWait(t)) break;
      if (!t.active.empty()) {
        Step(t);
        Beat(t);
      }
    } catch (const std::exception& e) {
      // Something a step needed could not be had (memory, most likely): the chunks on this
      // thread's lanes fail, and their requests with them; the thread and the others go on.
      t.coder->Wait();
      const Status why = dynamic_cast<const std::bad_alloc*>(&e) ? Status::ResourceExhausted("out of memory")
                                                                : Status::Internal(std::string("model step failed: ") + e.what());
      MutexLock l(&mu_);
      FailLanes(t, why);
    }
  }
  t.coder->Wait();  // its last task reads the lanes
  {
    MutexLock l(&mu_);
    FailLanes(t, ShuttingDown());
    HandBack(t);
  }
  if (t.to_give) options_.device_lanes->Give(t.to_give);
}

SchedulerRequest::~SchedulerRequest() {
  ChunkScheduler& sc = *scheduler_;
  MutexLock l(&sc.mu_);
  {
    MutexLock r(&state_->mu);
    sc.Fail(*state_, Status::Cancelled("request closed"));
  }
  --sc.open_requests_;
}

void SchedulerRequest::Cancel(const Status& why) { scheduler_->FailRequest(*state_, why); }

uint32_t SchedulerRequest::peak_lanes() const {
  MutexLock r(&state_->mu);
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
  ChunkScheduler& sc = *scheduler_;
  State& s = *state_;
  {
    MutexLock r(&s.mu);
    while (s.failed.ok() && s.held_bytes > 0 && s.held_bytes + job.cost > sc.options_.window_bytes) sc.WaitOrCancel(s);
    BOA_RETURN_IF_ERROR(s.failed);
    job.index = s.submitted++;
    job.submitted = std::chrono::steady_clock::now();
    s.held_bytes += job.cost;
    s.cost.emplace(job.index, job.cost);
  }
  {
    MutexLock l(&sc.mu_);
    MutexLock r(&s.mu);
    if (sc.stop_) sc.Fail(s, ShuttingDown());
    BOA_RETURN_IF_ERROR(s.failed);
    s.queued.push_back(std::move(job));
    ++sc.queued_chunks_;
    if (!s.in_ready) {
      s.in_ready = true;
      sc.ready_[s.priority == Priority::kOnline ? 1 : 0].push_back(state_);
    }
  }
  sc.work_cv_.SignalAll();
  return Status::Ok();
}

Status SchedulerRequest::Next(ChunkResult* out) {
  ChunkScheduler& sc = *scheduler_;
  State& s = *state_;
  MutexLock r(&s.mu);
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
      s.cv.SignalAll();  // a Submit may wait for room
      return Status::Ok();
    }
    if (s.next_out >= s.submitted) return Status::Internal("Next() without a pending chunk");
    sc.WaitOrCancel(s);
  }
}

}  // namespace boa::server
