// Parts of one file over several boad requests at once, put back together in order.
#include "rpc/parallel.h"

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/codec/stream.h"
#include "common/format/container.h"
#include "common/util/hash.h"
#include "common/util/mutex.h"

namespace boa::rpc {

namespace {

// One run of whole chunks: the request's bytes, and the reply once a worker has it.
struct Part {
  uint64_t number = 0;
  std::vector<uint8_t> request;
  uint64_t raw_bytes = 0;  // original bytes in it
  uint64_t chunks = 0;
  Result<std::vector<uint8_t>> reply = Status::Internal("not sent");
  bool done = false;
};

// Reads parts on the calling thread (`next` says false at the end), sends them on `streams`
// threads, and hands each reply to `emit` on the calling thread in input order. At most
// 2 × streams parts are held. The first error (of a read, a send or `emit`) ends it: no part
// is sent after it, those already sent run to their end, and that error is returned.
Status RunInOrder(int streams, const std::function<Result<bool>(Part*)>& next,
                  const std::function<Result<std::vector<uint8_t>>(const Part&)>& send,
                  const std::function<Status(Part&)>& emit) {
  Mutex mu;
  CondVar cv;
  std::map<uint64_t, Part> parts;  // read and not yet emitted, by number. Guarded by mu.
  std::deque<Part*> queue;         // read and not yet sent. Guarded by mu.
  bool closing = false;            // Guarded by mu.
  std::vector<std::thread> workers;
  for (int i = 0; i < streams; ++i) {
    workers.emplace_back([&] {
      for (;;) {
        Part* part = nullptr;
        {
          MutexLock l(&mu);
          while (queue.empty() && !closing) cv.Wait(&mu);
          if (queue.empty()) return;
          part = queue.front();  // map nodes stay put until the calling thread emits them
          queue.pop_front();
        }
        Result<std::vector<uint8_t>> reply = send(*part);
        {
          MutexLock l(&mu);
          part->reply = std::move(reply);
          part->done = true;
        }
        cv.SignalAll();
      }
    });
  }
  const size_t window = 2 * static_cast<size_t>(streams);
  uint64_t read = 0, written = 0;
  bool ended = false;
  Status status;
  while (status.ok()) {
    std::optional<Part> ready;
    {
      MutexLock l(&mu);
      for (;;) {
        const auto it = parts.find(written);
        if (it != parts.end() && it->second.done) {
          ready = std::move(it->second);
          parts.erase(it);
          break;
        }
        if (ended ? parts.empty() : parts.size() < window) break;
        cv.Wait(&mu);
      }
    }
    if (ready) {
      ++written;
      status = ready->reply.ok() ? emit(*ready) : ready->reply.status();
      continue;
    }
    if (ended) break;  // every part emitted
    Part part;
    part.number = read;
    Result<bool> more = next(&part);
    if (!more.ok()) {
      status = more.status();
    } else if (!*more) {
      ended = true;
    } else {
      MutexLock l(&mu);
      Part& placed = parts.emplace(read++, std::move(part)).first->second;
      queue.push_back(&placed);
      cv.SignalAll();
    }
  }
  {
    MutexLock l(&mu);
    closing = true;
    queue.clear();
  }
  cv.SignalAll();
  for (auto& w : workers) w.join();
  return status;
}

// Runs `call` into a fresh buffer, again while the server is UNAVAILABLE (up to `attempts`
// times, waiting a little longer each time): the part is then sent to another replica.
Result<std::vector<uint8_t>> SendPart(const Part& part, int attempts, const std::function<Status(MemorySink*)>& call) {
  for (int attempt = 1;; ++attempt) {
    MemorySink sink;
    Status s = call(&sink);
    if (s.ok()) return std::move(sink.data);
    if (s.code() != StatusCode::kUnavailable || attempt >= attempts) {
      return s.WithContext("part " + std::to_string(part.number + 1) +
                           (attempt > 1 ? " (sent " + std::to_string(attempt) + " times)" : std::string()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
}

Status CheckParallelOptions(const ParallelOptions& p) {
  if (p.streams < 1 || p.streams > 64) return Status::InvalidArgument("--parallel must be 1..64");
  if (p.part_chunks < 1 || p.attempts < 1) return Status::InvalidArgument("parts need at least one chunk and one attempt");
  return Status::Ok();
}

EncodedChunk ToEncoded(ChunkRecord&& r) { return EncodedChunk{r.method, r.original_length, std::move(r.payload)}; }

}  // namespace

Status ParallelCompress(RemoteClient* client, const std::string& model, const CodecOptions& options,
                        const ParallelOptions& parallel, ByteSource* in, ByteSink* out, CodecStats* stats,
                        const RemoteClient::ProgressFn& progress) {
  BOA_RETURN_IF_ERROR(CheckParallelOptions(parallel));
  if (model.empty()) return Status::InvalidArgument("no model given (use -m NAME[:VERSION] or a model id)");
  BOA_ASSIGN_OR_RETURN(v1::ModelInfo info, client->GetModel(model));
  BOA_ASSIGN_OR_RETURN(uint32_t chunk_length, ChooseChunkLength(options, in->SizeHint()));
  CodecOptions part_options;
  part_options.chunk_length = chunk_length;
  const uint64_t part_bytes = static_cast<uint64_t>(chunk_length) * parallel.part_chunks;

  Xxh3Hasher content;
  std::unique_ptr<StreamWriter> writer;
  std::vector<uint8_t> header;  // the first part's, encoded: every part must have it
  const auto next = [&](Part* part) -> Result<bool> {
    part->request.resize(part_bytes);
    size_t got = 0;
    while (got < part_bytes) {
      BOA_ASSIGN_OR_RETURN(size_t n, in->Read(part->request.data() + got, part_bytes - got));
      if (n == 0) break;
      got += n;
    }
    part->request.resize(got);
    part->raw_bytes = got;
    content.Update(part->request.data(), got);
    return got > 0;
  };
  const auto send = [&](const Part& part) {
    return SendPart(part, parallel.attempts, [&](MemorySink* sink) {
      MemorySource src(part.request);
      return client->Compress(info.id(), part_options, &src, sink, nullptr, nullptr);
    });
  };
  const auto emit = [&](Part& part) -> Status {
    const std::string which = "part " + std::to_string(part.number + 1) + " from " + client->address();
    MemorySource src(*part.reply, which);
    StreamReader reader(&src);
    ContainerHeader h;
    BOA_RETURN_IF_ERROR(reader.ReadHeader(&h));
    if (!writer) {
      if (HexString(h.model_id.data(), h.model_id.size()) != info.id() || h.chunk_length != chunk_length) {
        return Status::DataLoss(which + ": coded with another model or chunk length than asked (" + info.id() + ")");
      }
      header = EncodeHeader(h);
      writer = std::make_unique<StreamWriter>(out, h);
      BOA_RETURN_IF_ERROR(writer->WriteHeader());
    } else if (EncodeHeader(h) != header) {
      return Status::DataLoss(which + ": its header differs from the first part's (model or chunk length)");
    }
    uint64_t bytes = 0;
    for (;;) {
      ChunkRecord rec;
      BOA_ASSIGN_OR_RETURN(bool more, reader.Next(&rec));
      if (!more) break;
      bytes += rec.original_length;
      BOA_RETURN_IF_ERROR(writer->Add(ToEncoded(std::move(rec))));
    }
    if (bytes != part.raw_bytes) {
      return Status::DataLoss(which + ": " + std::to_string(bytes) + " bytes came back coded, " +
                              std::to_string(part.raw_bytes) + " were sent");
    }
    BOA_RETURN_IF_ERROR(reader.CheckContent(Xxh3(part.request.data(), part.request.size())).WithContext(which));
    if (progress) progress(writer->input_bytes(), writer->bytes_written());
    return Status::Ok();
  };
  BOA_RETURN_IF_ERROR(RunInOrder(parallel.streams, next, send, emit));
  if (!writer) {  // an empty input: no part, so the header comes from one plain request
    MemorySource empty(nullptr, 0, in->name());
    return client->Compress(info.id(), part_options, &empty, out, stats, progress);
  }
  BOA_RETURN_IF_ERROR(writer->Finish(content.Digest()));
  if (stats) *stats = StatsOf(*writer, chunk_length, parallel.streams);
  return Status::Ok();
}

Status ParallelDecompress(RemoteClient* client, const std::string& model, const ParallelOptions& parallel,
                          ByteSource* in, ByteSink* out, CodecStats* stats, const RemoteClient::ProgressFn& progress) {
  BOA_RETURN_IF_ERROR(CheckParallelOptions(parallel));
  StreamReader reader(in);
  ContainerHeader header;
  BOA_RETURN_IF_ERROR(reader.ReadHeader(&header));
  bool records_ended = false;
  uint64_t chunks = 0, stored = 0, lzma2 = 0;
  const auto next = [&](Part* part) -> Result<bool> {
    if (records_ended) return false;
    MemorySink sink;
    StreamWriter w(&sink, header);
    BOA_RETURN_IF_ERROR(w.WriteHeader());
    while (w.chunks() < parallel.part_chunks) {
      ChunkRecord rec;
      BOA_ASSIGN_OR_RETURN(bool more, reader.Next(&rec));  // the index and trailer are checked after the last
      if (!more) {
        records_ended = true;
        break;
      }
      stored += rec.method == ChunkMethod::kStored;
      lzma2 += rec.method == ChunkMethod::kLzma2;
      BOA_RETURN_IF_ERROR(w.Add(ToEncoded(std::move(rec))));
    }
    if (w.chunks() == 0) return false;
    BOA_RETURN_IF_ERROR(w.Finish(0));  // DecompressOptions.part: the content checksum is the whole file's
    chunks += w.chunks();
    part->raw_bytes = w.input_bytes();
    part->chunks = w.chunks();
    part->request = std::move(sink.data);
    return true;
  };
  const auto send = [&](const Part& part) {
    return SendPart(part, parallel.attempts, [&](MemorySink* sink) {
      MemorySource src(part.request);
      return client->Decompress(model, &src, sink, nullptr, nullptr, /*part=*/true);
    });
  };
  Xxh3Hasher content;
  uint64_t decoded = 0;
  const auto emit = [&](Part& part) -> Status {
    const std::vector<uint8_t>& bytes = *part.reply;
    if (bytes.size() != part.raw_bytes) {
      return Status::DataLoss("part " + std::to_string(part.number + 1) + " from " + client->address() + ": " +
                              std::to_string(bytes.size()) + " bytes decoded, " + std::to_string(part.raw_bytes) +
                              " expected");
    }
    content.Update(bytes.data(), bytes.size());
    decoded += bytes.size();
    BOA_RETURN_IF_ERROR(out->Write(bytes));
    if (progress) progress(reader.bytes_read(), decoded);
    return Status::Ok();
  };
  BOA_RETURN_IF_ERROR(RunInOrder(parallel.streams, next, send, emit));
  BOA_RETURN_IF_ERROR(reader.CheckContent(content.Digest()));
  if (stats) {
    *stats = CodecStats();
    stats->input_bytes = reader.bytes_read();
    stats->output_bytes = decoded;
    stats->chunks = chunks;
    stats->stored_chunks = stored;
    stats->lzma2_chunks = lzma2;
    stats->chunk_length = header.chunk_length;
    stats->threads = parallel.streams;
  }
  return Status::Ok();
}

}  // namespace boa::rpc
