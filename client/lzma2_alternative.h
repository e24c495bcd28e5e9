// boa-client's whole-input alternative (docs/format.md, "The whole-input alternative"):
// while the backend (boad or this process) codes a file chunk by chunk, one more thread codes
// the same file with LZMA2 alone in the longest chunks the format allows
// (CompressWithLzma2Only), into a second temporary output, and the smaller of the two is the
// one committed. Per chunk, the model's stream never loses to LZMA2 on that chunk; this makes
// the whole file no larger than xz -9 makes it (but for the framing) where the model does not
// fit the data or repeats far apart are worth more than the model.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/codec/codec.h"
#include "common/format/container.h"
#include "common/util/io.h"
#include "common/util/status.h"

namespace boa::client {

class Lzma2Alternative {
 public:
  // The alternative is kept only when it saves more than this: a few bytes of framing
  // (a short chunk's explicit length) are not worth a stream that differs from `-c`'s.
  static constexpr uint64_t kMinSaving = 16;

  // Starts coding `input`, when it is a regular file, for `output`, beside the backend that
  // writes to `hybrid`. Null otherwise, or when the file cannot be opened a second time or
  // the thread not started (the model's stream alone is written then).
  static std::unique_ptr<Lzma2Alternative> Start(const FileSource& input, const std::string& output, bool overwrite,
                                                 ByteSink* hybrid);
  // Stops the alternative (within about a MiB of work) and removes its temporary file.
  ~Lzma2Alternative();

  // What the backend writes to: `hybrid`, whose header the alternative copies.
  ByteSink* sink() { return &tap_; }

  // Once the backend has succeeded: waits for the alternative. Returns its output, and sets
  // *stats to its figures (but the backend's thread count), when it is smaller than `hybrid`
  // (of the same input) by more than kMinSaving; else null, and the hybrid is kept (an
  // alternative that failed is not an error).
  AtomicOutputFile* ChooseSmaller(const CodecStats& hybrid, CodecStats* stats);

 private:
  // Forwards to the hybrid output and hands its first kHeaderBytes, decoded, to the thread.
  class HeaderTap final : public ByteSink {
   public:
    HeaderTap(Lzma2Alternative* owner, ByteSink* out) : owner_(owner), out_(out) {}
    Status Write(const uint8_t* buf, size_t n) override;

   private:
    Lzma2Alternative* owner_;
    ByteSink* out_;
    std::vector<uint8_t> head_;  // the first bytes written, up to a header's
  };

  Lzma2Alternative(std::unique_ptr<FileSource> in, std::unique_ptr<AtomicOutputFile> out, ByteSink* hybrid);
  // Gives the thread its header (or, with an error, tells it to give up); once only.
  void SetHeader(Result<ContainerHeader> header);
  // Joins the thread (after giving it a header if the backend never wrote one).
  void Join();

  HeaderTap tap_;
  std::unique_ptr<FileSource> in_;        // Used by the thread.
  std::unique_ptr<AtomicOutputFile> out_;  // Used by the thread, which drops it on failure.
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  bool header_set_ = false;  // Guarded by mu_.
  std::promise<Result<ContainerHeader>> header_;
  CodecStats stats_;  // Written by the thread; read after it is joined.
  Status result_;     // Likewise.
  std::thread thread_;
};

}  // namespace boa::client
