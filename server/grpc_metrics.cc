// The standard gRPC server metrics (see grpc_metrics.h).
#include "server/grpc_metrics.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "rpc/wire.h"

namespace boa::server {

namespace {

// A code as go-grpc-prometheus labels grpc_code (Go's codes.Code.String(): "OK",
// "InvalidArgument", "Canceled", ...), so dashboards and alerts written for that de-facto
// standard work unchanged. boad's own metrics use the canonical names (INVALID_ARGUMENT).
const char* GoCodeName(int code) {
  static const char* const kNames[] = {
      "OK",           "Canceled",           "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
      "AlreadyExists", "PermissionDenied",  "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
      "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
  return code >= 0 && code < static_cast<int>(sizeof kNames / sizeof kNames[0]) ? kNames[code] : "Unknown";
}

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

const prometheus::Histogram::BucketBoundaries kHandlingBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                                  1,     5,     10,   30,   60,  300};

const char* TypeName(ServerRpcInfo::Type t) {
  switch (t) {
    case ServerRpcInfo::Type::UNARY: return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING: return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING: return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

ServerRpcInfo::Type TypeOf(const google::protobuf::MethodDescriptor& m) {
  if (m.client_streaming() && m.server_streaming()) return ServerRpcInfo::Type::BIDI_STREAMING;
  if (m.client_streaming()) return ServerRpcInfo::Type::CLIENT_STREAMING;
  if (m.server_streaming()) return ServerRpcInfo::Type::SERVER_STREAMING;
  return ServerRpcInfo::Type::UNARY;
}

// One method's series.
struct MethodSeries {
  prometheus::Counter* started = nullptr;
  std::array<prometheus::Counter*, kCodes> handled{};
  prometheus::Counter* received = nullptr;
  prometheus::Counter* sent = nullptr;
  prometheus::Histogram* seconds = nullptr;
};

class Families {
 public:
  explicit Families(prometheus::Registry& r)
      : started_(prometheus::BuildCounter()
                     .Name("grpc_server_started_total")
                     .Help("RPCs started on the server.")
                     .Register(r)),
        handled_(prometheus::BuildCounter()
                     .Name("grpc_server_handled_total")
                     .Help("RPCs completed on the server, whatever their outcome.")
                     .Register(r)),
        received_(prometheus::BuildCounter()
                      .Name("grpc_server_msg_received_total")
                      .Help("Messages received by the server (stream messages included).")
                      .Register(r)),
        sent_(prometheus::BuildCounter()
                  .Name("grpc_server_msg_sent_total")
                  .Help("Messages sent by the server (stream messages included).")
                  .Register(r)),
        seconds_(prometheus::BuildHistogram()
                     .Name("grpc_server_handling_seconds")
                     .Help("Time from an RPC's start to its status (a stream's whole life).")
                     .Register(r)) {}

  // The series of "/package.Service/Method"; made on first use for methods not made up front.
  const MethodSeries& For(const std::string& full_method, ServerRpcInfo::Type type) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = methods_.find(full_method);
    if (it != methods_.end()) return it->second;
    const size_t slash = full_method.rfind('/');
    const std::string service = slash == std::string::npos || slash == 0 ? "unknown" : full_method.substr(1, slash - 1);
    const std::string method = slash == std::string::npos ? full_method : full_method.substr(slash + 1);
    const prometheus::Labels labels = {{"grpc_type", TypeName(type)}, {"grpc_service", service}, {"grpc_method", method}};
    MethodSeries s;
    s.started = &started_.Add(labels);
    for (int c = 0; c < kCodes; ++c) {
      prometheus::Labels with_code = labels;
      with_code["grpc_code"] = GoCodeName(c);
      s.handled[static_cast<size_t>(c)] = &handled_.Add(with_code);
    }
    s.received = &received_.Add(labels);
    s.sent = &sent_.Add(labels);
    s.seconds = &seconds_.Add(labels, kHandlingBuckets);
    return methods_.emplace(full_method, s).first->second;
  }

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  std::mutex mu_;
  std::map<std::string, MethodSeries> methods_;  // guarded by mu_; entries never move or go
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(const MethodSeries& s) : s_(s) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
      s_.started->Increment();
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) && m->GetRecvMessage() != nullptr) {
      s_.received->Increment();
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) s_.sent->Increment();
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const int code = static_cast<int>(m->GetSendStatus().error_code());
      s_.handled[static_cast<size_t>(code >= 0 && code < kCodes ? code : 2)]->Increment();  // else UNKNOWN
      s_.seconds->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    m->Proceed();
  }

 private:
  const MethodSeries& s_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  Factory(prometheus::Registry& registry, const std::vector<std::string>& services) : families_(registry) {
    for (const std::string& name : services) {
      const google::protobuf::ServiceDescriptor* service =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
      if (service == nullptr) continue;
      for (int i = 0; i < service->method_count(); ++i) {
        const google::protobuf::MethodDescriptor& m = *service->method(i);
        families_.For("/" + name + "/" + m.name(), TypeOf(m));
      }
    }
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new MetricsInterceptor(families_.For(info->method(), info->type()));
  }

 private:
  Families families_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewGrpcMetricsInterceptorFactory(
    prometheus::Registry& registry, const std::vector<std::string>& services) {
  return std::make_unique<Factory>(registry, services);
}

}  // namespace boa::server
