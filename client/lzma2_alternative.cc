// The whole-input LZMA2 alternative (see lzma2_alternative.h).
#include "client/lzma2_alternative.h"

#include <algorithm>
#include <string>
#include <system_error>

namespace boa::client {

Status Lzma2Alternative::HeaderTap::Write(const uint8_t* buf, size_t n) {
  if (head_.size() < format::kHeaderBytes) {
    const size_t take = std::min(n, format::kHeaderBytes - head_.size());
    head_.insert(head_.end(), buf, buf + take);
    if (head_.size() == format::kHeaderBytes) {
      ContainerHeader header;
      Status s = DecodeHeader(head_.data(), &header);
      owner_->SetHeader(s.ok() ? Result<ContainerHeader>(header) : Result<ContainerHeader>(s));
    }
  }
  return out_->Write(buf, n);
}

std::unique_ptr<Lzma2Alternative> Lzma2Alternative::Start(const FileSource& input, const std::string& output,
                                                          bool overwrite, ByteSink* hybrid) {
  // The open file again, with an offset of its own (its path may name another file by now).
  if (input.SizeHint() < 0 || input.fd() < 0) return nullptr;
  Result<std::unique_ptr<FileSource>> in = FileSource::Open("/proc/self/fd/" + std::to_string(input.fd()));
  if (!in.ok() || !(*in)->identity().SameFile(input.identity())) return nullptr;
  Result<std::unique_ptr<AtomicOutputFile>> out = AtomicOutputFile::Create(output, overwrite, {input.identity()});
  if (!out.ok()) return nullptr;
  try {
    return std::unique_ptr<Lzma2Alternative>(new Lzma2Alternative(std::move(*in), std::move(*out), hybrid));
  } catch (const std::system_error&) {  // no thread to be had: the model's stream alone
    return nullptr;
  }
}

Lzma2Alternative::Lzma2Alternative(std::unique_ptr<FileSource> in, std::unique_ptr<AtomicOutputFile> out,
                                   ByteSink* hybrid)
    : tap_(this, hybrid), in_(std::move(in)), out_(std::move(out)) {
  std::future<Result<ContainerHeader>> header = header_.get_future();
  thread_ = std::thread([this, header = std::move(header)]() mutable {
    result_ = CompressWithLzma2Only([&header] { return header.get(); }, in_.get(), out_.get(), &stats_, &stop_);
    if (!result_.ok()) out_.reset();  // its disk space back at once
  });
}

Lzma2Alternative::~Lzma2Alternative() {
  stop_ = true;
  Join();
}

void Lzma2Alternative::SetHeader(Result<ContainerHeader> header) {
  std::lock_guard<std::mutex> lock(mu_);
  if (header_set_) return;
  header_set_ = true;
  header_.set_value(std::move(header));
}

void Lzma2Alternative::Join() {
  if (!thread_.joinable()) return;
  SetHeader(Status::Cancelled("the model's stream has no header"));
  thread_.join();
}

AtomicOutputFile* Lzma2Alternative::ChooseSmaller(const CodecStats& hybrid, CodecStats* stats) {
  Join();
  if (!result_.ok() || stats_.input_bytes != hybrid.input_bytes ||
      stats_.output_bytes + kMinSaving >= hybrid.output_bytes) {
    return nullptr;
  }
  const int threads = hybrid.threads;
  *stats = stats_;
  stats->threads = threads;
  return out_.get();
}

}  // namespace boa::client
