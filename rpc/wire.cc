// The gRPC edge (see wire.h).
#include "rpc/wire.h"

namespace boa::rpc {

namespace {

struct CodePair {
  StatusCode boa;
  grpc::StatusCode grpc;
};

// Each library code and the gRPC code it travels as; read left to right on the server and
// right to left on the client. IO_ERROR travels as INTERNAL (ToGrpcStatus).
constexpr CodePair kCodes[] = {
    {StatusCode::kOk, grpc::StatusCode::OK},
    {StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
    {StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    {StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    {StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
    {StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    {StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
    {StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    {StatusCode::kInternal, grpc::StatusCode::INTERNAL},
    {StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
    {StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
};

}  // namespace

grpc::Status ToGrpcStatus(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  for (const CodePair& c : kCodes) {
    if (c.boa == s.code()) return grpc::Status(c.grpc, s.message());
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, s.message());
}

Status FromGrpcStatus(const grpc::Status& s, const std::string& address) {
  if (s.ok()) return Status::Ok();
  const std::string& m = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED: return Status::DeadlineExceeded("deadline exceeded (server " + address + ")");
    case grpc::StatusCode::CANCELLED: return Status::Cancelled(m.empty() ? "cancelled" : m);
    case grpc::StatusCode::UNAVAILABLE:
      if (m.find("connect") != std::string::npos || m.find("onnection") != std::string::npos) {
        return Status::Unavailable("cannot reach boad at " + address + " (start it with `boad`, or use --local)");
      }
      return Status::Unavailable("server " + address + ": " + m);
    default: break;
  }
  for (const CodePair& c : kCodes) {
    if (c.grpc == s.error_code() && c.boa != StatusCode::kInternal) return Status(c.boa, m);
  }
  return Status::Internal("server " + address + ": " + m);  // INTERNAL, UNKNOWN, UNIMPLEMENTED, ...
}

bool IsOnline(v1::Priority p) { return p == v1::PRIORITY_ONLINE; }
v1::Priority PriorityOf(bool online) { return online ? v1::PRIORITY_ONLINE : v1::PRIORITY_BULK; }

CodecStats StatsFromSummary(const v1::CodecSummary& s) {
  CodecStats stats;
  stats.input_bytes = s.input_bytes();
  stats.output_bytes = s.output_bytes();
  stats.chunks = s.chunks();
  stats.stored_chunks = s.stored_chunks();
  stats.lzma2_chunks = s.lzma2_chunks();
  stats.chunk_length = s.chunk_size();
  stats.threads = 0;
  return stats;
}

const char* GrpcCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(sizeof kNames / sizeof kNames[0]) ? kNames[i] : "UNKNOWN";
}

}  // namespace boa::rpc
