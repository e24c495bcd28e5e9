// Status and Result<T>: the error type of the whole library (no exceptions cross its API).
// Codes mirror the gRPC codes the daemon maps them to at its edge.
#pragma once

#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace boa {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad option or parameter
  kNotFound,            // missing file or model
  kAlreadyExists,       // output exists and overwriting was not allowed
  kFailedPrecondition,  // e.g. the stream needs another model
  kDataLoss,            // corrupt or truncated input, checksum mismatch
  kResourceExhausted,   // a size limit was hit
  kUnavailable,         // the server is draining or unreachable
  kCancelled,           // the caller gave up
  kDeadlineExceeded,    // the caller's deadline passed
  kIoError,             // the operating system refused a read or write
  kInternal,
  kUnauthenticated,     // the caller did not say who it is (no or an unknown token)
  kPermissionDenied,    // the caller may not do this (its roles)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message starts with `context: ` (e.g. the file name).
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

// Runs `body` (which returns Status or Result<T>) so that running out of memory in it — an
// allocation that fails, or a thread that cannot be started — is a RESOURCE_EXHAUSTED
// status ("out of memory <what>"): one request or job fails, never the process.
template <class F>
auto CatchOutOfMemory(const std::string& what, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory " + what);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::resource_unavailable_try_again || e.code() == std::errc::not_enough_memory) {
      return Status::ResourceExhausted("out of memory " + what + " (" + e.what() + ")");
    }
    return Status::Internal(std::string(e.what()) + " " + what);
  }
}

}  // namespace boa

#define BOA_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::boa::Status boa_status_ = (expr);    \
    if (!boa_status_.ok()) return boa_status_; \
  } while (0)

#define BOA_CONCAT_INNER(a, b) a##b
#define BOA_CONCAT(a, b) BOA_CONCAT_INNER(a, b)
#define BOA_ASSIGN_OR_RETURN(lhs, expr) BOA_ASSIGN_OR_RETURN_IMPL(BOA_CONCAT(boa_result_, __LINE__), lhs, expr)
#define BOA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
