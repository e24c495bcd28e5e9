// .boa container writer and strict readers (docs/format.md).
#include "common/format/container.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/util/bytes.h"

namespace boa {

namespace {

Status Corrupt(const std::string& what) { return Status::DataLoss("corrupt .boa: " + what); }

uint32_t HeaderChecksum(const uint8_t* p) { return static_cast<uint32_t>(Xxh3(p, 64)); }

// The one varint decoder of every reader (LEB128 as PutVarint writes it: at most 10 bytes,
// and only the shortest form, so that equal numbers are equal bytes). `next` gives the
// following byte, or fails.
template <class NextByte>
Result<uint64_t> DecodeVarint(NextByte&& next, const char* what) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    BOA_ASSIGN_OR_RETURN(const uint8_t b, next());
    if (shift == 63 && b > 1) break;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (b == 0 && shift > 0) break;  // a longer form than the number needs
      return v;
    }
  }
  return Corrupt(std::string("malformed number in ") + what);
}

void PutVarint(std::vector<uint8_t>* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

}  // namespace

const char* ChunkMethodName(ChunkMethod m) {
  switch (m) {
    case ChunkMethod::kModel: return "model";
    case ChunkMethod::kStored: return "stored";
    case ChunkMethod::kLzma2: return "lzma2";
  }
  return "unknown";
}

std::vector<uint8_t> EncodeHeader(const ContainerHeader& h) {
  ByteWriter w;
  w.Bytes(format::kMagic, 8);
  w.U16(h.version);
  w.U16(0);  // flags
  w.U32(h.chunk_length);
  w.Bytes(h.model_id.data(), h.model_id.size());
  w.U32(h.model.d_model);
  w.U16(h.model.n_layers);
  w.U16(h.model.d_state);
  w.U16(h.model.d_conv);
  w.U16(h.model.expand);
  w.U16(h.model.dt_rank);
  w.U8(h.model.weight_type);
  w.U8(0);
  w.U32(HeaderChecksum(w.data().data()));
  return std::move(w.data());
}

Status DecodeHeader(const uint8_t* p, ContainerHeader* h) {
  if (std::memcmp(p, format::kMagic, 8) != 0) return Status::DataLoss("not a .boa file (bad magic)");
  ByteReader r(p + 8, format::kHeaderBytes - 8);
  h->version = r.U16();
  if (h->version < format::kOldestVersion || h->version > format::kVersion) {
    return Status::DataLoss("unsupported .boa format version " + std::to_string(h->version) + " (this build reads versions " +
                            std::to_string(format::kOldestVersion) + " to " + std::to_string(format::kVersion) + ")");
  }
  uint16_t flags = r.U16();
  h->chunk_length = r.U32();
  std::memcpy(h->model_id.data(), r.Bytes(32), 32);
  h->model.d_model = r.U32();
  h->model.n_layers = r.U16();
  h->model.d_state = r.U16();
  h->model.d_conv = r.U16();
  h->model.expand = r.U16();
  h->model.dt_rank = r.U16();
  h->model.weight_type = r.U8();
  uint8_t reserved = r.U8();
  uint32_t checksum = r.U32();
  if (checksum != HeaderChecksum(p)) return Corrupt("header checksum mismatch");
  if (flags != 0 || reserved != 0) return Corrupt("reserved header bits are set");
  if (h->chunk_length < format::kMinChunkLength || h->chunk_length > format::kMaxChunkLength) {
    return Corrupt("chunk length " + std::to_string(h->chunk_length) + " out of range 1.." +
                   std::to_string(format::kMaxChunkLength));
  }
  return Status::Ok();
}

ContainerWriter::ContainerWriter(ByteSink* sink, const ContainerHeader& header)
    : sink_(sink), header_(header) {}

Status ContainerWriter::Put(const uint8_t* p, size_t n) {
  hash_.Update(p, n);
  offset_ += n;
  return sink_->Write(p, n);
}

Status ContainerWriter::WriteHeader() {
  std::vector<uint8_t> h = EncodeHeader(header_);
  return Put(h.data(), h.size());
}

Status ContainerWriter::WriteChunk(ChunkMethod method, uint32_t original_length,
                                   const uint8_t* payload, size_t n) {
  if (short_chunk_seen_) return Status::Internal("chunk written after the final short chunk");
  if (original_length == 0 || original_length > header_.chunk_length) {
    return Status::Internal("chunk length out of range");
  }
  if (method == ChunkMethod::kStored ? n != original_length : (n == 0 || n > original_length)) {
    return Status::Internal("chunk payload length out of range");
  }
  if (method == ChunkMethod::kLzma2 && header_.version < 3) return Status::Internal("LZMA2 chunk in a version 2 container");
  std::vector<uint8_t> head;
  uint8_t tag = static_cast<uint8_t>(method);
  if (original_length < header_.chunk_length) {
    tag |= format::kTagExplicitLength;
    short_chunk_seen_ = true;
  }
  head.push_back(tag);
  if (tag & format::kTagExplicitLength) PutVarint(&head, original_length);
  if (method != ChunkMethod::kStored) PutVarint(&head, n);
  BOA_RETURN_IF_ERROR(Put(head.data(), head.size()));
  BOA_RETURN_IF_ERROR(Put(payload, n));
  PutVarint(&index_, head.size() + n);
  original_ += original_length;
  ++chunks_;
  return Status::Ok();
}

Status ContainerWriter::Finish(uint64_t content_checksum) {
  uint8_t end = format::kTagEnd;
  BOA_RETURN_IF_ERROR(Put(&end, 1));
  uint64_t index_offset = offset_;
  std::vector<uint8_t> count;
  PutVarint(&count, chunks_);
  BOA_RETURN_IF_ERROR(Put(count.data(), count.size()));
  BOA_RETURN_IF_ERROR(Put(index_.data(), index_.size()));
  ByteWriter t;
  t.U64(original_);
  t.U64(chunks_);
  t.U64(index_offset);
  t.U64(content_checksum);
  BOA_RETURN_IF_ERROR(Put(t.data().data(), t.size()));
  ByteWriter tail;
  tail.U64(hash_.Digest());
  tail.Bytes(format::kEndMagic, 4);
  return Put(tail.data().data(), tail.size());
}

Status ContainerReader::Get(uint8_t* p, size_t n, const char* what) {
  Status s = src_->ReadExact(p, n, what);
  if (!s.ok()) {
    return s.code() == StatusCode::kDataLoss ? Corrupt(std::string("truncated in ") + what) : s;
  }
  hash_.Update(p, n);
  offset_ += n;
  return Status::Ok();
}

Result<uint64_t> ContainerReader::GetVarint(const char* what) {
  return DecodeVarint(
      [&]() -> Result<uint8_t> {
        uint8_t b;
        BOA_RETURN_IF_ERROR(Get(&b, 1, what));
        return b;
      },
      what);
}

Status ContainerReader::ReadHeader(ContainerHeader* header) {
  uint8_t h[format::kHeaderBytes];
  BOA_ASSIGN_OR_RETURN(size_t got, src_->Read(h, sizeof h));
  if (got < 8 || std::memcmp(h, format::kMagic, 8) != 0) {
    return Status::DataLoss("not a .boa file (bad magic)");
  }
  if (got < sizeof h) return Corrupt("truncated in header");
  hash_.Update(h, sizeof h);
  offset_ = sizeof h;
  BOA_RETURN_IF_ERROR(DecodeHeader(h, &header_));
  rules_ = RecordRules(header_.chunk_length, header_.version);
  *header = header_;
  return Status::Ok();
}

Result<RecordHead> RecordRules::Parse(uint8_t tag, uint64_t index,
                                      const std::function<Result<uint64_t>(const char* what)>& varint) {
  const std::string where = "chunk " + std::to_string(index) + ": ";
  const uint8_t method = tag & ~format::kTagExplicitLength;
  const uint8_t known = version_ >= 3 ? 3 : 2;  // methods 1..known
  if (method == 0 || method > known) {
    return Corrupt(where + "unknown coding method " + std::to_string(method) + " for format version " + std::to_string(version_));
  }
  if (short_chunk_seen_) return Corrupt(where + "follows the final (short) chunk");
  uint64_t length = chunk_length_;
  if (tag & format::kTagExplicitLength) {
    BOA_ASSIGN_OR_RETURN(length, varint("chunk length"));
    if (length == 0 || length >= chunk_length_) {
      return Corrupt(where + "length " + std::to_string(length) + " must be 1.." + std::to_string(chunk_length_ - 1));
    }
    short_chunk_seen_ = true;
  }
  uint64_t payload = length;
  if (method != static_cast<uint8_t>(ChunkMethod::kStored)) {
    BOA_ASSIGN_OR_RETURN(payload, varint("payload length"));
    if (payload == 0 || payload > length) {
      return Corrupt(where + "coded length " + std::to_string(payload) + " must be 1.." + std::to_string(length));
    }
  }
  return RecordHead{static_cast<ChunkMethod>(method), static_cast<uint32_t>(length), payload};
}

Result<bool> ContainerReader::Next(ChunkRecord* rec) {
  if (done_) return false;
  uint8_t tag;
  BOA_RETURN_IF_ERROR(Get(&tag, 1, "chunk record"));
  if (tag == format::kTagEnd) {
    BOA_RETURN_IF_ERROR(ReadEnd());
    done_ = true;
    return false;
  }
  const uint64_t record_start = offset_ - 1;
  BOA_ASSIGN_OR_RETURN(RecordHead head, rules_.Parse(tag, chunks_, [this](const char* what) { return GetVarint(what); }));
  rec->method = head.method;
  rec->original_length = head.original_length;
  rec->payload.resize(head.payload_length);
  BOA_RETURN_IF_ERROR(Get(rec->payload.data(), head.payload_length, "chunk payload"));
  std::vector<uint8_t> size;
  PutVarint(&size, offset_ - record_start);
  index_hash_.Update(size.data(), size.size());
  original_ += head.original_length;
  ++chunks_;
  return true;
}

Status ContainerReader::ReadEnd() {
  uint64_t index_offset = offset_;
  BOA_ASSIGN_OR_RETURN(uint64_t count, GetVarint("index"));
  if (count != chunks_) {
    return Corrupt("index lists " + std::to_string(count) + " chunks, the file has " +
                   std::to_string(chunks_));
  }
  Xxh3Hasher seen;
  std::vector<uint8_t> bytes;
  for (uint64_t i = 0; i < count; ++i) {
    BOA_ASSIGN_OR_RETURN(uint64_t size, GetVarint("index"));
    bytes.clear();
    PutVarint(&bytes, size);  // the bytes just read: only the shortest form is accepted
    seen.Update(bytes.data(), bytes.size());
  }
  if (seen.Digest() != index_hash_.Digest()) return Corrupt("index does not match the chunk records");
  uint8_t t[format::kTrailerBytes];
  BOA_RETURN_IF_ERROR(Get(t, 32, "trailer"));
  uint64_t expected_container = hash_.Digest();
  BOA_RETURN_IF_ERROR(Get(t + 32, 12, "trailer"));
  ByteReader r(t, sizeof t);
  trailer_.original_length = r.U64();
  trailer_.chunk_count = r.U64();
  trailer_.index_offset = r.U64();
  trailer_.content_checksum = r.U64();
  trailer_.container_checksum = r.U64();
  if (std::memcmp(t + 40, format::kEndMagic, 4) != 0) return Corrupt("bad end marker");
  if (trailer_.container_checksum != expected_container) {
    return Corrupt("container checksum mismatch");
  }
  if (trailer_.original_length != original_ || trailer_.chunk_count != chunks_ ||
      trailer_.index_offset != index_offset) {
    return Corrupt("trailer does not match the chunk records");
  }
  uint8_t extra;
  BOA_ASSIGN_OR_RETURN(size_t more, src_->Read(&extra, 1));
  if (more != 0) return Corrupt("unexpected data after the end of the container");
  return Status::Ok();
}

namespace {

class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

Status PreadExact(int fd, uint8_t* p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(ErrnoMessage(errno));
    }
    if (r == 0) return Corrupt("truncated");
    p += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Result<ContainerInfo> ReadContainerInfo(const std::string& path, const std::function<void(const ChunkInfo&)>& each_chunk) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError, ErrnoMessage(err));
  }
  FileHandle file(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("not a regular file");
  }
  ContainerInfo info;
  info.file_bytes = static_cast<uint64_t>(st.st_size);
  uint8_t h[format::kHeaderBytes];
  if (info.file_bytes < 8) return Status::DataLoss("not a .boa file (bad magic)");
  BOA_RETURN_IF_ERROR(PreadExact(fd, h, std::min<uint64_t>(8, info.file_bytes), 0));
  if (std::memcmp(h, format::kMagic, 8) != 0) return Status::DataLoss("not a .boa file (bad magic)");
  const uint64_t min_size = format::kHeaderBytes + 2 + format::kTrailerBytes;
  if (info.file_bytes < min_size) return Corrupt("truncated (file is too short)");
  BOA_RETURN_IF_ERROR(PreadExact(fd, h, sizeof h, 0));
  BOA_RETURN_IF_ERROR(DecodeHeader(h, &info.header));
  uint8_t t[format::kTrailerBytes];
  uint64_t trailer_at = info.file_bytes - format::kTrailerBytes;
  BOA_RETURN_IF_ERROR(PreadExact(fd, t, sizeof t, trailer_at));
  if (std::memcmp(t + 40, format::kEndMagic, 4) != 0) return Corrupt("bad end marker (truncated?)");
  ByteReader r(t, sizeof t);
  ContainerTrailer& tr = info.trailer;
  tr.original_length = r.U64();
  tr.chunk_count = r.U64();
  tr.index_offset = r.U64();
  tr.content_checksum = r.U64();
  tr.container_checksum = r.U64();
  if (tr.index_offset < format::kHeaderBytes + 1 || tr.index_offset > trailer_at) {
    return Corrupt("index offset out of range");
  }
  // Walk the index (buffered) and read each record's tag.
  const uint64_t index_bytes = trailer_at - tr.index_offset;
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(index_bytes, 1 << 20)));
  uint64_t buf_start = tr.index_offset, buf_len = 0, pos = tr.index_offset;
  auto next_byte = [&]() -> Result<uint8_t> {
    if (pos >= trailer_at) return Corrupt("index truncated");
    if (pos >= buf_start + buf_len) {
      buf_start = pos;
      buf_len = std::min<uint64_t>(buf.size(), trailer_at - pos);
      BOA_RETURN_IF_ERROR(PreadExact(fd, buf.data(), buf_len, buf_start));
    }
    return buf[pos++ - buf_start];
  };
  BOA_ASSIGN_OR_RETURN(const uint64_t count, DecodeVarint(next_byte, "index"));
  if (count != tr.chunk_count) return Corrupt("index and trailer disagree on the chunk count");
  uint64_t record = format::kHeaderBytes;
  const uint64_t records_end = tr.index_offset - 1;
  // Each record's head, checked as the sequential reader checks it.
  RecordRules rules(info.header.chunk_length, info.header.version);
  uint64_t original = 0;
  for (uint64_t i = 0; i < count; ++i) {
    BOA_ASSIGN_OR_RETURN(const uint64_t size, DecodeVarint(next_byte, "index"));
    if (size == 0 || size > records_end - record) return Corrupt("index entry out of range");
    uint8_t head[1 + 2 * 10];
    const size_t head_bytes = static_cast<size_t>(std::min<uint64_t>(sizeof head, size));
    BOA_RETURN_IF_ERROR(PreadExact(fd, head, head_bytes, record));
    size_t at = 1;
    auto head_varint = [&](const char* what) {
      return DecodeVarint(
          [&]() -> Result<uint8_t> {
            if (at >= head_bytes) return Corrupt(std::string("truncated in ") + what);
            return head[at++];
          },
          what);
    };
    if (head[0] == format::kTagEnd) return Corrupt("chunk " + std::to_string(i) + ": the index lists more chunks than the file has");
    BOA_ASSIGN_OR_RETURN(RecordHead h, rules.Parse(head[0], i, head_varint));
    if (at + h.payload_length != size) {
      return Corrupt("chunk " + std::to_string(i) + ": the record is " + std::to_string(at + h.payload_length) +
                     " bytes, the index says " + std::to_string(size));
    }
    ++(h.method == ChunkMethod::kModel    ? info.model_chunks
       : h.method == ChunkMethod::kLzma2 ? info.lzma2_chunks
                                          : info.stored_chunks);
    if (each_chunk) each_chunk(ChunkInfo{i, record, size, h.method, h.original_length});
    original += h.original_length;
    record += size;
  }
  if (record != records_end || pos != trailer_at) return Corrupt("index does not match the file layout");
  uint8_t end = 1;
  BOA_RETURN_IF_ERROR(PreadExact(fd, &end, 1, records_end));
  if (end != format::kTagEnd) return Corrupt("no end marker after the last chunk");
  if (original != tr.original_length) {
    return Corrupt("the chunks hold " + std::to_string(original) + " bytes, the trailer says " +
                   std::to_string(tr.original_length));
  }
  return info;
}

}  // namespace boa
