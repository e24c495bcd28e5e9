// The standard gRPC server metrics (the names go-grpc-prometheus made common):
// grpc_server_started_total, grpc_server_handled_total{grpc_code}, grpc_server_msg_received_total,
// grpc_server_msg_sent_total and grpc_server_handling_seconds, each labelled grpc_type,
// grpc_service and grpc_method. A server interceptor counts them; the series of every method
// of the named services (one per gRPC code for handled) exist before the server starts, a
// call finds its method's handles once and then only adds.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/registry.h>

#include <memory>
#include <vector>

namespace boa::server {

class GrpcMetrics;

// Registers the families in `registry` and the series of every method of `services`
// (full names, e.g. "boa.v1.Boa"); other methods (health, reflection) get theirs on first use.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewGrpcMetricsInterceptorFactory(
    prometheus::Registry& registry, const std::vector<std::string>& services);

}  // namespace boa::server
