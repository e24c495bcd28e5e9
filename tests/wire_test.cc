// The gRPC edge: every library status code crosses the wire and comes back as itself (the
// two directions come from one table), codes with no library twin become INTERNAL naming the
// server, and the summary and priority conversions agree with the codec's types.
#include "rpc/wire.h"

#include <gtest/gtest.h>

namespace boa::rpc {
namespace {

TEST(Wire, EveryStatusCodeRoundTrips) {
  const StatusCode codes[] = {StatusCode::kInvalidArgument, StatusCode::kNotFound,         StatusCode::kAlreadyExists,
                              StatusCode::kFailedPrecondition, StatusCode::kDataLoss,      StatusCode::kResourceExhausted,
                              StatusCode::kUnavailable,      StatusCode::kCancelled,        StatusCode::kInternal};
  for (StatusCode c : codes) {
    const Status back = FromGrpcStatus(ToGrpcStatus(Status(c, "what went wrong")), "host:1");
    EXPECT_EQ(back.code(), c) << StatusCodeName(c);
    EXPECT_NE(back.message().find("what went wrong"), std::string::npos) << back.message();
  }
  EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK, "host:1").ok());
  EXPECT_EQ(FromGrpcStatus(ToGrpcStatus(Status::DeadlineExceeded("late")), "host:1").code(), StatusCode::kDeadlineExceeded);
}

TEST(Wire, ServerSideIoErrorsAndUnknownCodesAreInternal) {
  EXPECT_EQ(ToGrpcStatus(Status::IoError("disk")).error_code(), grpc::StatusCode::INTERNAL);
  for (grpc::StatusCode c : {grpc::StatusCode::UNKNOWN, grpc::StatusCode::UNIMPLEMENTED, grpc::StatusCode::INTERNAL}) {
    const Status s = FromGrpcStatus(grpc::Status(c, "odd"), "host:1");
    EXPECT_EQ(s.code(), StatusCode::kInternal);
    EXPECT_NE(s.message().find("host:1"), std::string::npos) << s.message();
  }
}

TEST(Wire, AccessRefusalsKeepTheirCodes) {
  EXPECT_EQ(ToGrpcStatus(Status::Unauthenticated("who")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(Status::PermissionDenied("no")).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who"), "h:1").code(), StatusCode::kUnauthenticated);
  const Status denied = FromGrpcStatus(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "needs write"), "h:1");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(), "needs write");
}

TEST(Wire, AnUnreachableServerIsNamedWithWhatToDo) {
  const Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses"), "h:9");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("cannot reach boad at h:9"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--local"), std::string::npos);
}

TEST(Wire, PriorityAndSummaryConvert) {
  EXPECT_TRUE(IsOnline(PriorityOf(true)));
  EXPECT_FALSE(IsOnline(PriorityOf(false)));
  EXPECT_EQ(PriorityOf(false), v1::PRIORITY_BULK);
  v1::CodecSummary s;
  s.set_input_bytes(100);
  s.set_output_bytes(40);
  s.set_chunks(3);
  s.set_stored_chunks(1);
  s.set_chunk_size(64);
  const CodecStats st = StatsFromSummary(s);
  EXPECT_EQ(st.input_bytes, 100u);
  EXPECT_EQ(st.output_bytes, 40u);
  EXPECT_EQ(st.chunks, 3u);
  EXPECT_EQ(st.stored_chunks, 1u);
  EXPECT_EQ(st.chunk_length, 64u);
}

}  // namespace
}  // namespace boa::rpc
