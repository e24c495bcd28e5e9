// Byte streams (files, stdin/stdout, memory) and the atomic output file that guarantees
// "never a partial output": data goes to a temporary name that is renamed on success only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/util/status.h"

namespace boa {

// Sequential reader. Read() returns fewer bytes than asked only at end of input.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Result<size_t> Read(uint8_t* buf, size_t n) = 0;
  // Total size when known in advance (regular files, memory), else -1.
  virtual int64_t SizeHint() const { return -1; }
  // Name used in error messages ("<stdin>" for standard input).
  virtual const std::string& name() const = 0;

  // Reads exactly n bytes or fails with DATA_LOSS naming `what` ("unexpected end of ...").
  Status ReadExact(uint8_t* buf, size_t n, const char* what);
};

// A file's identity: its device and inode (what two paths share when they name one file,
// through symbolic or hard links). `path` is kept for messages.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  std::string path;
  bool SameFile(const FileIdentity& o) const { return device == o.device && inode == o.inode; }
};

// The identity of the file `path` names (links followed); NOT_FOUND when there is none.
Result<FileIdentity> IdentifyPath(const std::string& path);

// The identity of what an open descriptor refers to (standard output: where it is redirected).
Result<FileIdentity> IdentifyFd(int fd, const std::string& name);

// Refuses (INVALID_ARGUMENT, naming both) when `output` names the file `input` is: writing
// it would destroy the input. An output that does not exist yet is never an input.
Status RefuseOverwritingInput(const std::string& output, const FileIdentity& input);

// The identities of the input files that exist (a missing one fails later, when it is read),
// and the same check for every output against every input: for commands that read and
// write several files (training, experiments).
Result<std::vector<FileIdentity>> IdentifyInputs(const std::vector<std::string>& inputs);
Status RefuseOverwritingInputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);

// Removes a source file after its output was committed (`--rm`): only if `path` still names
// the file that was read (`read`) and not the one written (`written`), so a path replaced
// meanwhile, or an output that is the input, is never deleted.
Status RemoveSource(const std::string& path, const FileIdentity& read, const FileIdentity& written);

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Write(const uint8_t* buf, size_t n) = 0;
  Status Write(const std::vector<uint8_t>& v) { return Write(v.data(), v.size()); }
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size, std::string name = "<memory>")
      : data_(data), size_(size), name_(std::move(name)) {}
  explicit MemorySource(const std::vector<uint8_t>& v, std::string name = "<memory>")
      : MemorySource(v.data(), v.size(), std::move(name)) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override;
  int64_t SizeHint() const override { return static_cast<int64_t>(size_); }
  const std::string& name() const override { return name_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string name_;
};

// Discards what it is given and counts it (verify, benchmarks).
class CountingSink final : public ByteSink {
 public:
  Status Write(const uint8_t*, size_t n) override {
    bytes += n;
    return Status::Ok();
  }
  uint64_t bytes = 0;
};

class MemorySink final : public ByteSink {
 public:
  Status Write(const uint8_t* buf, size_t n) override {
    data.insert(data.end(), buf, buf + n);
    return Status::Ok();
  }
  std::vector<uint8_t> data;
};

// Reads a file descriptor (a file or standard input). Owns the descriptor unless it is 0.
class FileSource final : public ByteSource {
 public:
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  static std::unique_ptr<FileSource> Stdin();
  ~FileSource() override;
  Result<size_t> Read(uint8_t* buf, size_t n) override;
  int64_t SizeHint() const override { return size_; }
  const std::string& name() const override { return name_; }
  int fd() const { return fd_; }
  // The file read (standard input: whatever it is redirected from).
  const FileIdentity& identity() const { return identity_; }

 private:
  FileSource(int fd, int64_t size, std::string name, FileIdentity identity)
      : fd_(fd), size_(size), name_(std::move(name)), identity_(std::move(identity)) {}
  int fd_;
  int64_t size_;
  std::string name_;
  FileIdentity identity_;
};

// Writes to a file descriptor (standard output).
class FdSink final : public ByteSink {
 public:
  explicit FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  Status Write(const uint8_t* buf, size_t n) override;

 private:
  int fd_;
  std::string name_;
};

// A file written under a temporary name in the destination's directory and renamed over
// the destination by Commit() (after fsync). Destroying it uncommitted removes the
// temporary, so a failure never leaves a partial output.
class AtomicOutputFile final : public ByteSink {
 public:
  // Fails with ALREADY_EXISTS if `path` exists and !overwrite, and with INVALID_ARGUMENT if
  // `path` is one of `inputs` (checked here, before anything is written, and again just
  // before the rename).
  static Result<std::unique_ptr<AtomicOutputFile>> Create(const std::string& path, bool overwrite,
                                                          std::vector<FileIdentity> inputs = {});
  ~AtomicOutputFile() override;
  Status Write(const uint8_t* buf, size_t n) override;
  // Optionally copies permission bits and modification time from `like_path` first.
  Status Commit(const std::string& like_path = "");
  const std::string& path() const { return path_; }
  // The file written, once committed.
  const FileIdentity& identity() const { return identity_; }

 private:
  AtomicOutputFile(int fd, std::string path, std::string tmp, bool overwrite, std::vector<FileIdentity> inputs)
      : fd_(fd), path_(std::move(path)), tmp_(std::move(tmp)), overwrite_(overwrite), inputs_(std::move(inputs)) {}
  Status Flush();
  int fd_;
  std::string path_;
  std::string tmp_;
  bool overwrite_;
  std::vector<FileIdentity> inputs_;
  FileIdentity identity_;
  bool committed_ = false;
  std::vector<uint8_t> buffer_;
};

// A read-only memory map of a whole file (training data: the page cache serves it, nothing
// is copied).
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

// Installs SIGINT/SIGTERM/SIGHUP handlers that remove the temporary files of every
// uncommitted AtomicOutputFile before the process dies, so an interrupted run leaves no
// partial output either.
void RemoveTemporariesOnSignal();

// Reads a whole file into memory, refusing files larger than max_bytes.
Result<std::vector<uint8_t>> ReadFile(const std::string& path, uint64_t max_bytes);

// Writes bytes atomically (AtomicOutputFile) — for small files such as models.
Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& data, bool overwrite,
                       std::vector<FileIdentity> inputs = {});

bool PathExists(const std::string& path);

// Human-readable OS error for the current errno, e.g. "No such file or directory".
std::string ErrnoMessage(int err);

}  // namespace boa
