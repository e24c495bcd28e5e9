// The gRPC edge shared by boa-client, boad, the tests and the benchmarks: the one mapping
// between Status and gRPC status codes (both directions from one table), the wire constants
// and the conversions between proto messages and library types. The contract itself is
// proto/boa/v1/boa.proto (docs/server.md, "Wire contract").
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <string>

#include "boa/v1/boa.pb.h"
#include "common/codec/codec.h"
#include "common/util/status.h"

namespace boa::rpc {

// Payload bytes per stream message, both ways (well under gRPC's 4 MiB default limit).
constexpr size_t kMessageBytes = 1u << 20;

// A library Status as the gRPC status a handler returns (IO_ERROR is INTERNAL: the server's
// own files are not the client's to fix).
grpc::Status ToGrpcStatus(const Status& s);
// "OK", "INVALID_ARGUMENT", ...: the canonical name of a gRPC code (metrics labels).
const char* GrpcCodeName(grpc::StatusCode code);
// A call's gRPC status as a library Status, with `address` named where it helps: an
// unreachable server suggests starting boad or --local.
Status FromGrpcStatus(const grpc::Status& s, const std::string& address);

// Codec request priority: online data taking, or bulk (the default).
bool IsOnline(v1::Priority p);
v1::Priority PriorityOf(bool online);

// A codec call's summary as the in-process codec's stats.
CodecStats StatsFromSummary(const v1::CodecSummary& s);

}  // namespace boa::rpc
