// Streams and atomic output files over POSIX descriptors.
#include "common/util/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace boa {

std::string ErrnoMessage(int err) { return std::strerror(err); }

Status ByteSource::ReadExact(uint8_t* buf, size_t n, const char* what) {
  BOA_ASSIGN_OR_RETURN(size_t got, Read(buf, n));
  if (got != n) {
    return Status::DataLoss(std::string("truncated: unexpected end of input in ") + what);
  }
  return Status::Ok();
}

Result<size_t> MemorySource::Read(uint8_t* buf, size_t n) {
  size_t take = std::min(n, size_ - pos_);
  if (take) std::memcpy(buf, data_ + pos_, take);
  pos_ += take;
  return take;
}

namespace {

FileIdentity IdentityOf(const struct stat& st, const std::string& path) {
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), path};
}

}  // namespace

Result<FileIdentity> IdentifyPath(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError, path + ": " + ErrnoMessage(err));
  }
  return IdentityOf(st, path);
}

Result<FileIdentity> IdentifyFd(int fd, const std::string& name) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IoError(name + ": " + ErrnoMessage(errno));
  return IdentityOf(st, name);
}

Status RefuseOverwritingInput(const std::string& output, const FileIdentity& input) {
  Result<FileIdentity> out = IdentifyPath(output);
  if (!out.ok()) return out.status().code() == StatusCode::kNotFound ? Status::Ok() : out.status();
  if (!out->SameFile(input)) return Status::Ok();
  const std::string same = output == input.path ? "" : " (the same file as " + input.path + ")";
  return Status::InvalidArgument(output + ": is the input file" + same + "; refusing to overwrite it");
}

Result<std::vector<FileIdentity>> IdentifyInputs(const std::vector<std::string>& inputs) {
  std::vector<FileIdentity> ids;
  for (const std::string& in : inputs) {
    Result<FileIdentity> id = IdentifyPath(in);
    if (id.ok()) {
      ids.push_back(*id);
    } else if (id.status().code() != StatusCode::kNotFound) {
      return id.status();
    }
  }
  return ids;
}

Status RefuseOverwritingInputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  BOA_ASSIGN_OR_RETURN(std::vector<FileIdentity> ids, IdentifyInputs(inputs));
  for (const std::string& out : outputs) {
    for (const FileIdentity& id : ids) BOA_RETURN_IF_ERROR(RefuseOverwritingInput(out, id));
  }
  return Status::Ok();
}

Status RemoveSource(const std::string& path, const FileIdentity& read, const FileIdentity& written) {
  BOA_ASSIGN_OR_RETURN(FileIdentity now, IdentifyPath(path));
  if (now.SameFile(written)) return Status::InvalidArgument(path + ": is the output just written; not removing it");
  if (!now.SameFile(read)) return Status::FailedPrecondition(path + ": was replaced while it was read; not removing it");
  if (::unlink(path.c_str()) != 0) return Status::IoError(path + ": cannot remove: " + ErrnoMessage(errno));
  return Status::Ok();
}

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Status s(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError, ErrnoMessage(err));
    return s.WithContext(path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::IoError(path + ": " + ErrnoMessage(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + ": is a directory");
  }
  int64_t size = S_ISREG(st.st_mode) ? static_cast<int64_t>(st.st_size) : -1;
  return std::unique_ptr<FileSource>(new FileSource(fd, size, path, IdentityOf(st, path)));
}

std::unique_ptr<FileSource> FileSource::Stdin() {
  struct stat st;
  int64_t size = -1;
  FileIdentity identity;
  if (::fstat(0, &st) == 0) {
    identity = IdentityOf(st, "<stdin>");
    if (S_ISREG(st.st_mode)) {
      off_t pos = ::lseek(0, 0, SEEK_CUR);
      if (pos >= 0) size = static_cast<int64_t>(st.st_size - pos);
    }
  }
  return std::unique_ptr<FileSource>(new FileSource(0, size, "<stdin>", identity));
}

FileSource::~FileSource() {
  if (fd_ > 0) ::close(fd_);
}

Result<size_t> FileSource::Read(uint8_t* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::read(fd_, buf + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(name_ + ": read failed: " + ErrnoMessage(errno));
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

static Status WriteAll(int fd, const uint8_t* buf, size_t n, const std::string& name) {
  while (n > 0) {
    ssize_t w = ::write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(name + ": write failed: " + ErrnoMessage(errno));
    }
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status FdSink::Write(const uint8_t* buf, size_t n) { return WriteAll(fd_, buf, n, name_); }

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

static std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

static std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

namespace {

// Temporary files that a signal handler must remove: fixed slots of C strings, so the
// handler only reads atomics and calls unlink (async-signal-safe).
constexpr int kTempSlots = 64;
std::atomic<const char*> g_temporaries[kTempSlots];

void RegisterTemporary(const char* path) {
  for (auto& slot : g_temporaries) {
    const char* expected = nullptr;
    if (slot.compare_exchange_strong(expected, path)) return;
  }
}

void UnregisterTemporary(const char* path) {
  for (auto& slot : g_temporaries) {
    const char* expected = path;
    if (slot.compare_exchange_strong(expected, nullptr)) return;
  }
}

extern "C" void RemoveTemporariesAndDie(int sig) {
  for (auto& slot : g_temporaries) {
    const char* p = slot.load();
    if (p) ::unlink(p);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void RemoveTemporariesOnSignal() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = RemoveTemporariesAndDie;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

Result<std::unique_ptr<AtomicOutputFile>> AtomicOutputFile::Create(const std::string& path, bool overwrite,
                                                                   std::vector<FileIdentity> inputs) {
  for (const FileIdentity& input : inputs) BOA_RETURN_IF_ERROR(RefuseOverwritingInput(path, input));
  if (!overwrite && PathExists(path)) {
    return Status::AlreadyExists(path + ": already exists (use -f to overwrite)");
  }
  std::string tmpl = DirName(path) + "/." + BaseName(path) + ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) {
    return Status::IoError(path + ": cannot create temporary file: " + ErrnoMessage(errno));
  }
  auto file = std::unique_ptr<AtomicOutputFile>(
      new AtomicOutputFile(fd, path, std::string(buf.data()), overwrite, std::move(inputs)));
  RegisterTemporary(file->tmp_.c_str());
  return file;
}

AtomicOutputFile::~AtomicOutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  UnregisterTemporary(tmp_.c_str());
}

Status AtomicOutputFile::Flush() {
  Status s = WriteAll(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
  return s;
}

Status AtomicOutputFile::Write(const uint8_t* buf, size_t n) {
  constexpr size_t kBufferBytes = 1 << 20;
  if (buffer_.size() + n > kBufferBytes) {
    BOA_RETURN_IF_ERROR(Flush());
    if (n >= kBufferBytes) return WriteAll(fd_, buf, n, path_);
  }
  buffer_.insert(buffer_.end(), buf, buf + n);
  return Status::Ok();
}

Status AtomicOutputFile::Commit(const std::string& like_path) {
  BOA_RETURN_IF_ERROR(Flush());
  if (!like_path.empty()) {
    struct stat st;
    if (::stat(like_path.c_str(), &st) == 0) {
      (void)::fchmod(fd_, st.st_mode & 07777);
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      (void)::futimens(fd_, times);
    }
  } else {
    // mkstemp creates 0600; give a new file the usual permissions under the umask.
    mode_t mask = ::umask(0);
    ::umask(mask);
    (void)::fchmod(fd_, 0666 & ~mask);
  }
  if (::fsync(fd_) != 0) return Status::IoError(path_ + ": fsync failed: " + ErrnoMessage(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::IoError(path_ + ": " + ErrnoMessage(errno));
  identity_ = IdentityOf(st, path_);
  // The destination may have been replaced by a link to an input since Create.
  for (const FileIdentity& input : inputs_) BOA_RETURN_IF_ERROR(RefuseOverwritingInput(path_, input));
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Status::IoError(path_ + ": close failed: " + ErrnoMessage(errno));
  }
  fd_ = -1;
  if (overwrite_) {
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return Status::IoError(path_ + ": rename failed: " + ErrnoMessage(errno));
    }
  } else {
    // link() fails if the destination appeared meanwhile: never clobber without -f.
    if (::link(tmp_.c_str(), path_.c_str()) != 0) {
      int err = errno;
      if (err == EEXIST) return Status::AlreadyExists(path_ + ": already exists (use -f to overwrite)");
      return Status::IoError(path_ + ": cannot create: " + ErrnoMessage(err));
    }
    ::unlink(tmp_.c_str());
  }
  committed_ = true;
  int dfd = ::open(DirName(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Result<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  BOA_ASSIGN_OR_RETURN(auto src, FileSource::Open(path));
  if (src->SizeHint() < 0) return Status::InvalidArgument(path + ": not a regular file (cannot be memory-mapped)");
  size_t size = static_cast<size_t>(src->SizeHint());
  if (size == 0) return std::unique_ptr<MappedFile>(new MappedFile(nullptr, 0));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, src->fd(), 0);
  if (p == MAP_FAILED) return Status::IoError(path + ": cannot map: " + ErrnoMessage(errno));
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<const uint8_t*>(p), size));
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::vector<uint8_t>> ReadFile(const std::string& path, uint64_t max_bytes) {
  BOA_ASSIGN_OR_RETURN(auto src, FileSource::Open(path));
  std::vector<uint8_t> data;
  if (src->SizeHint() >= 0) {
    if (static_cast<uint64_t>(src->SizeHint()) > max_bytes) {
      return Status::ResourceExhausted(path + ": file is larger than the limit of " +
                                       std::to_string(max_bytes) + " bytes");
    }
    data.resize(static_cast<size_t>(src->SizeHint()));
    BOA_ASSIGN_OR_RETURN(size_t got, src->Read(data.data(), data.size()));
    data.resize(got);
    return data;
  }
  uint8_t buf[1 << 16];
  for (;;) {
    BOA_ASSIGN_OR_RETURN(size_t got, src->Read(buf, sizeof buf));
    if (data.size() + got > max_bytes) {
      return Status::ResourceExhausted(path + ": input is larger than the limit of " +
                                       std::to_string(max_bytes) + " bytes");
    }
    data.insert(data.end(), buf, buf + got);
    if (got < sizeof buf) break;
  }
  return data;
}

Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& data, bool overwrite,
                       std::vector<FileIdentity> inputs) {
  BOA_ASSIGN_OR_RETURN(auto out, AtomicOutputFile::Create(path, overwrite, std::move(inputs)));
  BOA_RETURN_IF_ERROR(out->Write(data.data(), data.size()));
  return out->Commit();
}

}  // namespace boa
