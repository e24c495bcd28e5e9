// Stream pipelines: the caller's thread reads and writes in order; worker threads, each
// with its own engine Session, code chunks dealt to them round-robin.
#include "common/codec/codec.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/codec/chunk_coder.h"
#include "common/codec/stream.h"

namespace boa {

namespace {

using engine::Engine;
using engine::LaneInput;
using engine::Session;

constexpr uint64_t kInFlightBudget = 512ull << 20;  // bytes of chunks buffered between threads

// Jobs numbered in input order, dealt round-robin to per-worker FIFO queues; results are
// collected by number and consumed in order by the caller's thread.
template <class Job, class Out>
class OrderedPool {
 public:
  OrderedPool(int workers, size_t max_in_flight) : queues_(workers), max_in_flight_(max_in_flight) {}

  bool CanPush() {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_ < max_in_flight_;
  }
  void Push(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t index = pushed_++;
    queues_[index % queues_.size()].emplace_back(index, std::move(job));
    ++in_flight_;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  void Abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    closed_ = true;
    cv_.notify_all();
  }
  // A worker that cannot go on: aborts, and Wait's caller gets `why` from failure().
  void Fail(Status why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.ok()) failure_ = std::move(why);
    aborted_ = true;
    closed_ = true;
    cv_.notify_all();
  }
  Status failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_.ok() ? Status::Internal("the coding pipeline stopped") : failure_;
  }
  bool Aborted() {
    std::lock_guard<std::mutex> lock(mu_);
    return aborted_;
  }
  uint64_t pushed() {
    std::lock_guard<std::mutex> lock(mu_);
    return pushed_;
  }
  // Blocks until result `index` is published; false if the pool was aborted.
  bool Wait(uint64_t index, Out* out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return aborted_ || done_.count(index); });
    if (aborted_) return false;
    auto it = done_.find(index);
    *out = std::move(it->second);
    done_.erase(it);
    --in_flight_;
    cv_.notify_all();
    return true;
  }
  // Worker side: takes up to `max` jobs; with `block`, waits for at least one. Returns false
  // when the worker should stop (aborted, or closed with its queue empty and nothing taken).
  bool Take(int worker, size_t max, bool block, std::vector<std::pair<uint64_t, Job>>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    auto& q = queues_[worker];
    if (block) cv_.wait(lock, [&] { return aborted_ || closed_ || !q.empty(); });
    if (aborted_) return false;
    while (!q.empty() && out->size() < max) {
      out->push_back(std::move(q.front()));
      q.pop_front();
    }
    return !(block && out->empty());
  }
  void Publish(uint64_t index, Out out) {
    std::lock_guard<std::mutex> lock(mu_);
    done_.emplace(index, std::move(out));
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<std::pair<uint64_t, Job>>> queues_;
  std::map<uint64_t, Out> done_;
  size_t max_in_flight_;
  size_t in_flight_ = 0;
  uint64_t pushed_ = 0;
  bool closed_ = false;
  bool aborted_ = false;
  Status failure_;
};

// Joins worker threads on every exit path.
class WorkerThreads {
 public:
  ~WorkerThreads() {
    for (auto& t : threads_) t.join();
  }
  template <class F>
  void Start(int n, F f) {
    for (int i = 0; i < n; ++i) threads_.emplace_back(f, i);
  }

 private:
  std::vector<std::thread> threads_;
};

// Runs a worker's loop; running out of memory fails the pool instead of the process.
template <class Pool, class F>
void GuardWorker(Pool& pool, F&& body) {
  Status s = CatchOutOfMemory("while coding", [&] {
    body();
    return Status::Ok();
  });
  if (!s.ok()) pool.Fail(s);
}

// Starts the workers; if one cannot start, those that did are released (the pool aborts) so
// that joining them cannot hang.
template <class Pool, class F>
Status StartWorkers(WorkerThreads& workers, Pool& pool, int n, F&& worker) {
  Status s = CatchOutOfMemory("starting worker threads", [&] {
    workers.Start(n, worker);
    return Status::Ok();
  });
  if (!s.ok()) pool.Abort();
  return s;
}

// Runs chunk mode over a group of chunks (one lane each): takes every feed's inputs in tiles
// of up to session.max_rows() rows per Forward call, and hands each lane's rows to
// on_rows(lane, tables, logits, count) in order within the chunk.
template <class Feed, class OnRows>
void RunChunkGroup(Session& session, const std::vector<Feed*>& feeds, std::vector<uint32_t>& tables, OnRows on_rows) {
  const size_t n = feeds.size();
  for (size_t i = 0; i < n; ++i) session.ResetLane(static_cast<int>(i));
  std::vector<LaneInput> inputs;
  for (;;) {
    size_t active = 0;
    for (const Feed* f : feeds) active += f->inputs_left() > 0;
    if (active == 0) break;
    const size_t max_rows = static_cast<size_t>(session.max_rows());
    const size_t per = std::max<size_t>(1, max_rows / active);
    inputs.clear();
    size_t rows = 0;
    for (size_t i = 0; i < n && rows < max_rows; ++i) {
      const size_t count = std::min({feeds[i]->inputs_left(), per, max_rows - rows});
      if (count == 0) continue;
      inputs.push_back(feeds[i]->TakeInputs(static_cast<int>(i), count));
      rows += count;
    }
    session.Forward(inputs.data(), static_cast<int>(inputs.size()), tables.data());
    size_t r = 0;
    for (const LaneInput& in : inputs) {
      on_rows(static_cast<size_t>(in.lane), &tables[r * kFreqTableStride], session.logits() + r * 256,
              static_cast<size_t>(in.count));
      r += static_cast<size_t>(in.count);
    }
  }
}

// One session per worker, made on the calling thread so that running out of memory is a
// status, not an exception on a worker.
Result<std::vector<std::unique_ptr<Session>>> MakeSessions(const std::shared_ptr<const Engine>& engine, int threads,
                                                            int lanes, int rows) {
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < threads; ++i) {
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, Session::Create(engine, lanes, rows));
    sessions.push_back(std::move(s));
  }
  return sessions;
}

// Reads the input in chunks and hands groups of them to `process` on worker threads;
// `consume` sees each chunk's result in input order on the calling thread.
template <class Out, class Process, class Consume>
Status RunChunkPipeline(const std::shared_ptr<const Engine>& engine, ChunkCutter* cutter, uint32_t chunk_length,
                        int threads, Process process, Consume consume) {
  const Engine::Batching feed = engine->batching();
  const int batch = std::clamp(feed.chunk_rows / static_cast<int>(chunk_length), 1, feed.chunk_lanes);
  const size_t max_in_flight = std::max<size_t>(
      2 * threads, std::min<size_t>(threads * batch * 4, kInFlightBudget / chunk_length));
  BOA_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Session>> sessions,
                       MakeSessions(engine, threads, batch, feed.chunk_rows));
  OrderedPool<std::vector<uint8_t>, Out> pool(threads, max_in_flight);
  WorkerThreads workers;
  BOA_RETURN_IF_ERROR(StartWorkers(workers, pool, threads, [&](int w) {
    GuardWorker(pool, [&] {
      Session& session = *sessions[w];
      std::vector<uint32_t> tables(static_cast<size_t>(feed.chunk_rows) * kFreqTableStride);
      std::vector<std::pair<uint64_t, std::vector<uint8_t>>> jobs;
      for (;;) {
        jobs.clear();
        if (!pool.Take(w, batch, true, &jobs)) return;
        std::vector<std::vector<uint8_t>> chunks;
        for (auto& j : jobs) chunks.push_back(std::move(j.second));
        std::vector<Out> outs(jobs.size());
        process(session, chunks, tables, outs);
        for (size_t i = 0; i < jobs.size(); ++i) pool.Publish(jobs[i].first, std::move(outs[i]));
      }
    });
  }));
  uint64_t next_out = 0;
  // The pool is aborted below, not left waiting, whatever happens here.
  Status status = CatchOutOfMemory("while coding", [&] {
    Status s;
    while (s.ok()) {
      while (!cutter->ended() && pool.CanPush()) {
        std::vector<uint8_t> chunk;
        Result<bool> more = cutter->Next(&chunk);
        if (!more.ok()) {
          s = more.status();
          break;
        }
        if (*more) pool.Push(std::move(chunk));
      }
      if (!s.ok() || (cutter->ended() && next_out == pool.pushed())) break;
      Out out;
      if (!pool.Wait(next_out++, &out)) {
        s = pool.failure();
        break;
      }
      s = consume(out);
    }
    return s;
  });
  if (!status.ok()) {
    pool.Abort();
  } else {
    pool.Close();
  }
  return status;
}

Result<std::shared_ptr<const Engine>> MakeEngine(const LoadedModel& model, engine::Backend backend) {
  return Engine::Create(model.weights, backend);
}

// -T, else one per core or the engine's limit.
int Threads(const CodecOptions& o, const Engine& engine) {
  if (o.threads > 0) return o.threads;
  const int most = engine.batching().threads;
  return most > 0 ? std::min(most, DefaultThreadCount()) : DefaultThreadCount();
}

int WorkerCount(const CodecOptions& o, const Engine& engine, int64_t size, uint32_t chunk_length) {
  int threads = Threads(o, engine);
  if (size >= 0) {
    uint64_t chunks = (static_cast<uint64_t>(size) + chunk_length - 1) / chunk_length;
    threads = static_cast<int>(std::min<uint64_t>(threads, std::max<uint64_t>(chunks, 1)));
  }
  return std::max(threads, 1);
}

}  // namespace

int DefaultThreadCount() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

Result<uint32_t> ChooseChunkLength(const CodecOptions& o, int64_t size) {
  if (o.chunk_length && o.chunk_count) {
    return Status::InvalidArgument("give either a chunk size or a chunk count, not both");
  }
  uint64_t len = kDefaultChunkLength;
  if (o.chunk_length) {
    len = o.chunk_length;
  } else if (o.chunk_count) {
    if (size < 0) {
      return Status::InvalidArgument("a chunk count needs an input of known size (a regular file); use a chunk size instead");
    }
    len = std::max<uint64_t>(1, (static_cast<uint64_t>(size) + o.chunk_count - 1) / o.chunk_count);
  }
  if (len < format::kMinChunkLength || len > format::kMaxChunkLength) {
    return Status::InvalidArgument("chunk size " + std::to_string(len) + " out of range " +
                                   std::to_string(format::kMinChunkLength) + ".." +
                                   std::to_string(format::kMaxChunkLength));
  }
  return static_cast<uint32_t>(len);
}

CodecStats StatsOf(const StreamWriter& writer, uint32_t chunk_length, int threads) {
  CodecStats stats;
  stats.input_bytes = writer.input_bytes();
  stats.output_bytes = writer.bytes_written();
  stats.chunks = writer.chunks();
  stats.stored_chunks = writer.stored_chunks();
  stats.lzma2_chunks = writer.lzma2_chunks();
  stats.chunk_length = chunk_length;
  stats.threads = threads;
  return stats;
}

Status CheckModelMatches(const ContainerHeader& header, const LoadedModel& model) {
  if (header.model_id != model.id) {
    return Status::FailedPrecondition(
        "compressed with model " + HexString(header.model_id.data(), header.model_id.size()) +
        ", but the given model is " + model.IdHex());
  }
  return Status::Ok();
}

Status Compress(const LoadedModel& model, ByteSource* in, ByteSink* out, const CodecOptions& o,
                CodecStats* stats) {
  const int64_t size = in->SizeHint();
  BOA_ASSIGN_OR_RETURN(uint32_t chunk_length, ChooseChunkLength(o, size));
  BOA_ASSIGN_OR_RETURN(auto engine, MakeEngine(model, o.backend));
  const int threads = WorkerCount(o, *engine, size, chunk_length);
  StreamWriter writer(out, MakeHeader(model, chunk_length));
  BOA_RETURN_IF_ERROR(writer.WriteHeader());
  ChunkCutter cutter(in, chunk_length);
  Status s = RunChunkPipeline<EncodedChunk>(
      engine, &cutter, chunk_length, threads,
      [mixing = Mixing::Of(engine->config())](Session& session, std::vector<std::vector<uint8_t>>& chunks,
                                              std::vector<uint32_t>& tables, std::vector<EncodedChunk>& outs) {
        std::vector<std::unique_ptr<ChunkEncoder>> encoders;
        std::vector<ChunkEncoder*> feeds;
        std::vector<size_t> slot;  // the output of each encoder
        for (size_t i = 0; i < chunks.size(); ++i) {
          if (EncodeWithoutModel(&chunks[i], &outs[i])) continue;
          encoders.push_back(std::make_unique<ChunkEncoder>(std::move(chunks[i]), mixing));
          feeds.push_back(encoders.back().get());
          slot.push_back(i);
        }
        RunChunkGroup(session, feeds, tables, [&](size_t lane, const uint32_t* t, const float*, size_t count) {
          feeds[lane]->Code(t, count);
        });
        for (size_t e = 0; e < feeds.size(); ++e) outs[slot[e]] = feeds[e]->Seal();
      },
      [&](EncodedChunk& r) -> Status {
        BOA_RETURN_IF_ERROR(writer.Add(r));
        if (o.progress) o.progress(writer.input_bytes(), writer.bytes_written());
        return Status::Ok();
      });
  BOA_RETURN_IF_ERROR(s);
  BOA_RETURN_IF_ERROR(writer.Finish(cutter.content_checksum()));
  if (stats) *stats = StatsOf(writer, chunk_length, threads);
  return Status::Ok();
}

Status CompressWithLzma2Only(const std::function<Result<ContainerHeader>()>& header_like, ByteSource* in,
                             ByteSink* out, CodecStats* stats, const std::atomic<bool>* stop) {
  // An input that grows while it is read is cut in pieces no smaller than the default.
  const int64_t size = in->SizeHint();
  const uint32_t chunk_length = static_cast<uint32_t>(
      std::clamp<uint64_t>(size, kDefaultChunkLength, format::kMaxChunkLength));
  ChunkCutter cutter(in, chunk_length);
  std::optional<StreamWriter> writer;
  auto start = [&]() -> Status {
    BOA_ASSIGN_OR_RETURN(ContainerHeader header, header_like());
    header.chunk_length = chunk_length;
    writer.emplace(out, std::move(header));
    return writer->WriteHeader();
  };
  Status s = CatchOutOfMemory("while coding with LZMA2", [&]() -> Status {
    std::vector<uint8_t> chunk;
    for (;;) {
      BOA_ASSIGN_OR_RETURN(bool more, cutter.Next(&chunk));
      if (!more) break;
      EncodedChunk coded = EncodeWithLzma2Only(std::move(chunk), stop);
      chunk = {};
      if (stop && stop->load()) return Status::Cancelled("the whole-input LZMA2 coding was stopped");
      if (!writer) BOA_RETURN_IF_ERROR(start());
      BOA_RETURN_IF_ERROR(writer->Add(coded));
    }
    if (!writer) BOA_RETURN_IF_ERROR(start());
    return writer->Finish(cutter.content_checksum());
  });
  BOA_RETURN_IF_ERROR(s);
  if (stats) *stats = StatsOf(*writer, chunk_length, 1);
  return Status::Ok();
}

namespace {

struct DecodedChunk {
  Status status;
  std::vector<uint8_t> data;
};

// Decodes the chunks dealt to one worker, up to `lanes` at a time in step mode: every step
// advances every active lane by one byte; a chunk takes a lane as soon as one is free.
void DecodeWorker(int w, Session& session, Mixing mixing, OrderedPool<ChunkRecord, DecodedChunk>& pool) {
  const int lanes = session.lanes();
  struct Lane {
    uint64_t index = 0;
    std::unique_ptr<ChunkDecoder> decoder;
  };
  std::vector<Lane> state(lanes);
  std::vector<int> free_lanes;
  for (int i = lanes - 1; i >= 0; --i) free_lanes.push_back(i);
  std::vector<int> active;
  std::vector<uint32_t> tables(static_cast<size_t>(lanes) * kFreqTableStride);
  std::vector<LaneInput> inputs;
  std::vector<std::pair<uint64_t, ChunkRecord>> jobs;
  for (;;) {
    jobs.clear();
    if (!free_lanes.empty()) {
      if (!pool.Take(w, free_lanes.size(), active.empty(), &jobs)) return;
    } else if (pool.Aborted()) {
      return;
    }
    for (auto& job : jobs) {
      DecodedChunk trivial;
      Result<bool> without_model = DecodeWithoutModel(&job.second, job.first, &trivial.data);
      if (!without_model.ok() || *without_model) {
        if (!without_model.ok()) trivial.status = without_model.status();
        pool.Publish(job.first, std::move(trivial));
        continue;
      }
      const int lane = free_lanes.back();
      free_lanes.pop_back();
      state[lane].index = job.first;
      state[lane].decoder = std::make_unique<ChunkDecoder>(std::move(job.second), job.first, mixing);
      session.ResetLane(lane);
      active.push_back(lane);
    }
    if (active.empty()) continue;
    inputs.clear();
    for (int lane : active) inputs.push_back(state[lane].decoder->Input(lane));
    session.Forward(inputs.data(), static_cast<int>(inputs.size()), tables.data());
    size_t keep = 0;
    for (size_t r = 0; r < active.size(); ++r) {
      const int lane = active[r];
      Lane& L = state[lane];
      Result<bool> complete = L.decoder->Decode(&tables[r * kFreqTableStride]);
      if (complete.ok() && !*complete) {
        active[keep++] = lane;
        continue;
      }
      DecodedChunk d;
      if (complete.ok()) {
        d.data = L.decoder->TakeBytes();
      } else {
        d.status = complete.status();
      }
      pool.Publish(L.index, std::move(d));
      L.decoder.reset();
      free_lanes.push_back(lane);
    }
    active.resize(keep);
  }
}

}  // namespace

Status Decompress(const LoadedModel& model, ByteSource* in, ByteSink* out, const CodecOptions& o,
                  CodecStats* stats) {
  StreamReader reader(in);
  ContainerHeader header;
  BOA_RETURN_IF_ERROR(reader.ReadHeader(&header));
  BOA_RETURN_IF_ERROR(CheckModelMatches(header, model));
  BOA_ASSIGN_OR_RETURN(auto engine, MakeEngine(model, o.backend));
  const int threads = Threads(o, *engine);
  const uint64_t per_job = 2ull * header.chunk_length;  // payload + output
  const size_t budget_jobs = std::max<uint64_t>(2 * threads, kInFlightBudget / per_job);
  const int lanes = static_cast<int>(std::clamp<uint64_t>(o.lanes > 0 ? o.lanes : engine->batching().step_lanes, 1,
                                                          std::max<uint64_t>(1, budget_jobs / (2 * threads))));
  const size_t max_in_flight = std::min<size_t>(budget_jobs, static_cast<size_t>(threads) * lanes * 2);

  BOA_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Session>> sessions, MakeSessions(engine, threads, lanes, lanes));
  DecodedContent content;
  OrderedPool<ChunkRecord, DecodedChunk> pool(threads, max_in_flight);
  Status status;
  {
    WorkerThreads workers;
    status = StartWorkers(workers, pool, threads, [&](int w) { GuardWorker(pool, [&] { DecodeWorker(w, *sessions[w], Mixing::Of(engine->config()), pool); }); });
    uint64_t next_out = 0;
    bool end = false;
    // The pool is aborted below, not left waiting, whatever happens here.
    if (status.ok()) status = CatchOutOfMemory("while decoding", [&] {
      Status s;
      while (s.ok()) {
        while (!end && pool.CanPush()) {
          ChunkRecord rec;
          Result<bool> more = reader.Next(&rec);
          if (!more.ok()) {
            s = more.status();
            break;
          }
          if (!*more) {
            end = true;
            break;
          }
          pool.Push(std::move(rec));
        }
        if (!s.ok() || (end && next_out == pool.pushed())) break;
        DecodedChunk d;
        if (!pool.Wait(next_out++, &d)) {
          s = pool.failure();
          break;
        }
        s = d.status;
        if (!s.ok()) break;
        content.Add(d.data);
        s = out->Write(d.data.data(), d.data.size());
        if (o.progress) o.progress(reader.bytes_read(), content.bytes());
      }
      return s;
    });
    if (status.ok()) status = reader.CheckContent(content.checksum());
    if (status.ok()) {
      pool.Close();
    } else {
      pool.Abort();
    }
  }
  BOA_RETURN_IF_ERROR(status);
  if (stats) {
    stats->input_bytes = reader.bytes_read();
    stats->output_bytes = content.bytes();
    stats->chunks = content.chunks();
    stats->stored_chunks = 0;
    stats->chunk_length = header.chunk_length;
    stats->threads = threads;
  }
  return Status::Ok();
}

Result<EvalResult> Evaluate(const LoadedModel& model, ByteSource* in, const CodecOptions& o) {
  BOA_ASSIGN_OR_RETURN(auto engine, MakeEngine(model, o.backend));
  return Evaluate(engine, in, o);
}

Result<EvalResult> Evaluate(const std::shared_ptr<const Engine>& engine, ByteSource* in, const CodecOptions& o) {
  const int64_t size = in->SizeHint();
  BOA_ASSIGN_OR_RETURN(uint32_t chunk_length, ChooseChunkLength(o, size));
  const int threads = WorkerCount(o, *engine, size, chunk_length);
  EvalResult total;
  ChunkCutter cutter(in, chunk_length);
  Status s = RunChunkPipeline<EvalResult>(
      engine, &cutter, chunk_length, threads,
      [mixing = Mixing::Of(engine->config())](Session& session, std::vector<std::vector<uint8_t>>& chunks,
                                              std::vector<uint32_t>& tables, std::vector<EvalResult>& outs) {
        std::vector<ChunkFeed> feeds;
        feeds.reserve(chunks.size());
        for (size_t i = 0; i < chunks.size(); ++i) {
          outs[i].bytes = chunks[i].size();
          outs[i].chunks = 1;
          outs[i].predicted = chunks[i].size() - 1;
          feeds.emplace_back(std::move(chunks[i]));
        }
        std::vector<ChunkFeed*> lanes;
        for (ChunkFeed& f : feeds) lanes.push_back(&f);
        std::vector<size_t> next(feeds.size(), 1);  // each chunk's next predicted byte
        // The match and derived-field models as the coder runs them, whether or not the
        // model uses them: the three ideal sizes are reported (how `train` decides).
        std::vector<std::unique_ptr<TableMixer>> matches, derived;
        for (const ChunkFeed& f : feeds) {
          matches.push_back(std::make_unique<TableMixer>(Mixing{true, false}, static_cast<uint32_t>(f.chunk().size())));
          derived.push_back(std::make_unique<TableMixer>(Mixing{false, true}, static_cast<uint32_t>(f.chunk().size())));
        }
        RunChunkGroup(session, lanes, tables, [&](size_t i, const uint32_t* t, const float* l, size_t count) {
          for (size_t k = 0; k < count; ++k, t += kFreqTableStride, l += 256) {
            const size_t pos = next[i]++;
            const uint8_t b = feeds[i].chunk()[pos];
            const uint32_t* m_t = matches[i]->Mix(feeds[i].chunk().data(), t);
            const uint32_t* e_t = derived[i]->Mix(feeds[i].chunk().data(), m_t);
            matches[i]->Update(feeds[i].chunk().data(), pos);
            derived[i]->Update(feeds[i].chunk().data(), pos);
            const auto bits = [b](const uint32_t* c) { return kProbBits - std::log2(static_cast<double>(c[b + 1] - c[b])); };
            outs[i].network_code_bits += bits(t);
            outs[i].match_code_bits += bits(m_t);
            outs[i].derived_code_bits += bits(e_t);
            outs[i].ideal_code_bits += bits(mixing.derived ? e_t : mixing.match ? m_t : t);
            double m = l[0];
            for (int v = 1; v < 256; ++v) m = std::max<double>(m, l[v]);
            double sum = 0;
            for (int v = 0; v < 256; ++v) sum += std::exp(static_cast<double>(l[v]) - m);
            outs[i].cross_entropy_bits += (m + std::log(sum) - l[b]) / std::log(2.0);
          }
        });
      },
      [&](EvalResult& r) -> Status {
        total.bytes += r.bytes;
        total.chunks += r.chunks;
        total.predicted += r.predicted;
        total.cross_entropy_bits += r.cross_entropy_bits;
        total.ideal_code_bits += r.ideal_code_bits;
        total.network_code_bits += r.network_code_bits;
        total.match_code_bits += r.match_code_bits;
        total.derived_code_bits += r.derived_code_bits;
        return Status::Ok();
      });
  BOA_RETURN_IF_ERROR(s);
  total.match_model = engine->config().match_model;
  total.derived_fields = Mixing::Of(engine->config()).derived;
  return total;
}

}  // namespace boa
