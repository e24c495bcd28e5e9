// boad's Prometheus metrics (docs/server.md, "Metrics"): one prometheus-cpp registry whose
// families are made once, handles cached where the hot paths count (a model's scheduler gets
// its own when the model loads), the server's state read at scrape time, and /metrics.
// Names follow Prometheus practice: prefix boad_, base units, counters end in _total, labels
// only from bounded sets (op, model name, device, gRPC code, reason, state).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/util/status.h"
#include "server/metrics_listener.h"
#include "server/model_store.h"
#include "server/scheduler.h"

namespace boa::server {

// What a scrape shows of the running server, read when Prometheus asks.
struct ServerState {
  uint64_t queued_chunks = 0;
  int open_requests = 0;
  std::vector<DeviceUsage> devices;  // lanes, models and memory of each
  bool draining = false;
  std::map<std::string, int> jobs_by_state;  // "queued", "running", "succeeded", ...
};

// Why a request was refused before any work.
// Why a request was refused before any work (boad_rejected_requests_total{reason}).
enum class Rejection {
  kQueueFull,         // queue_limit requests are open
  kDraining,          // SIGTERM
  kTooLarge,          // a size limit (upload, decompressed output, expansion)
  kUnauthenticated,   // no token, or one boad does not know
  kPermissionDenied,  // the caller's roles do not allow the RPC
  kCallerLimit,       // the caller has its limit of open requests
  kIdle,              // a stream sent or read nothing for stream_idle_seconds
  kTransfersBusy,       // max_model_transfers uploads are running
};
const char* RejectionName(Rejection why);
constexpr Rejection kRejections[] = {Rejection::kQueueFull,        Rejection::kDraining,          Rejection::kTooLarge,
                                     Rejection::kUnauthenticated,  Rejection::kPermissionDenied,  Rejection::kCallerLimit,
                                     Rejection::kIdle,             Rejection::kTransfersBusy};

// One finished request, as the request log sees it.
struct RequestRecord {
  const char* op = "";      // Compress, Decompress, Verify, Eval
  std::string model;        // the store name ("" if none was resolved)
  const char* code = "OK";  // the gRPC code's name (rpc::GrpcCodeName)
  uint64_t raw_bytes = 0;   // original data
  uint64_t coded_bytes = 0; // .boa bytes
  double seconds = 0;
  bool refused = false;     // before any work: not in the duration histogram
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void RequestFinished(const RequestRecord& r);
  void Rejected(Rejection why);
  // SIGHUP: whether the configuration and token file loaded (boad_config_reloads_total{result}).
  void ConfigReloaded(bool ok);
  // The observer a model's scheduler on `device` reports to (steps, batch fill, queue wait,
  // chunks).
  std::shared_ptr<SchedulerObserver> ForModel(const std::string& model, const std::string& device);
  // Where a scrape reads the server's state (set once the service exists; may stay unset).
  // Setting another (or none) waits for a scrape that is reading the old one.
  void SetStateSource(std::function<ServerState()> source);

  // Serves /metrics on HOST:PORT (port 0: a free one); returns the address bound.
  Result<std::string> Serve(const std::string& listen);
  // The text exposition format, as /metrics serves it.
  std::string Scrape() const;
  // For metrics kept elsewhere (the gRPC interceptor's); it outlives every user.
  prometheus::Registry& registry() { return *registry_; }

 private:
  class Collector;
  class ModelObserver;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Collector> collector_;  // the state and process gauges, then the registry
  std::unique_ptr<MetricsListener> listener_;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& raw_bytes_;
  prometheus::Family<prometheus::Counter>& coded_bytes_;
  prometheus::Family<prometheus::Counter>& data_loss_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Histogram>& request_ratio_;
  prometheus::Family<prometheus::Counter>& chunks_;
  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Family<prometheus::Counter>& step_lanes_;
  prometheus::Family<prometheus::Counter>& step_capacity_;
  prometheus::Family<prometheus::Histogram>& step_seconds_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Histogram>& chunk_seconds_;
};

}  // namespace boa::server
