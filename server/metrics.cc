// boad's Prometheus metrics (see metrics.h).
#include "server/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "server/config.h"

namespace boa::server {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Request durations and chunk latencies: 1 ms to 10 min.
const prometheus::Histogram::BucketBoundaries kSecondsBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                 0.5,   1,      2.5,   5,    10,    30,   60,  120,
                                                                 300,   600};
// One model step: 10 µs (a d_model 16 step) to 0.25 s (a large model's full batch).
const prometheus::Histogram::BucketBoundaries kStepBuckets = {1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                                              2.5e-3, 5e-3,   0.01, 0.025, 0.05, 0.1,  0.25};
// Original / coded size of a request.
const prometheus::Histogram::BucketBoundaries kRatioBuckets = {0.9, 1, 1.1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15};

MetricFamily Gauge(const std::string& name, const std::string& help, double value,
                   std::vector<ClientMetric::Label> labels = {}) {
  MetricFamily f{name, help, MetricType::Gauge, {}};
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

// One gauge family with a series per `state` label value.
MetricFamily GaugeByState(const std::string& name, const std::string& help, const std::map<std::string, double>& values) {
  MetricFamily f{name, help, MetricType::Gauge, {}};
  for (const auto& [state, value] : values) {
    ClientMetric m;
    m.label = {{"state", state}};
    m.gauge.value = value;
    f.metric.push_back(std::move(m));
  }
  return f;
}

// One gauge family with a series per device, and per state when `states` are given: the
// value of each is `value(device, state)`.
MetricFamily GaugeByDevice(const std::string& name, const std::string& help, const std::vector<DeviceUsage>& devices,
                           const std::vector<std::string>& states,
                           const std::function<double(const DeviceUsage&, const std::string&)>& value) {
  MetricFamily f{name, help, MetricType::Gauge, {}};
  for (const DeviceUsage& d : devices) {
    for (const std::string& state : states.empty() ? std::vector<std::string>{""} : states) {
      ClientMetric m;
      m.label = {{"device", d.name}};
      if (!state.empty()) m.label.push_back({"state", state});
      m.gauge.value = value(d, state);
      f.metric.push_back(std::move(m));
    }
  }
  return f;
}

MetricFamily Counter(const std::string& name, const std::string& help, double value) {
  MetricFamily f{name, help, MetricType::Counter, {}};
  ClientMetric m;
  m.counter.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

// The process metrics every Prometheus client library exports (names from its docs), read
// from /proc: prometheus-cpp has no process collector.
void AddProcessMetrics(std::vector<MetricFamily>* out) {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may hold spaces) in parentheses.
    const size_t close = line.rfind(')');
    std::istringstream rest(close == std::string::npos ? "" : line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string v; rest >> v;) f.push_back(v);
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    if (f.size() > 21) {
      const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
      const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
      const double cpu = (std::stod(f[11]) + std::stod(f[12])) / tick;
      double boot = 0;
      std::ifstream procstat("/proc/stat");
      for (std::string l; std::getline(procstat, l);) {
        if (l.rfind("btime ", 0) == 0) boot = std::stod(l.substr(6));
      }
      out->push_back(Counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", cpu));
      out->push_back(Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
                           boot + std::stod(f[19]) / tick));
      out->push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[20])));
      out->push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", std::stod(f[21]) * page));
    }
  }
  int fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(d);
    --fds;  // the directory's own descriptor
  }
  out->push_back(Gauge("process_open_fds", "Number of open file descriptors.", fds));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out->push_back(Gauge("process_max_fds", "Maximum number of open file descriptors.",
                         static_cast<double>(limit.rlim_cur)));
  }
}

}  // namespace

// What /metrics serves: the server's state and the process, read now, then the registry.
class Metrics::Collector final : public prometheus::Collectable {
 public:
  explicit Collector(std::shared_ptr<prometheus::Registry> registry) : registry_(std::move(registry)) {}

  void SetSource(std::function<ServerState()> source) {
    std::lock_guard<std::mutex> l(mu_);
    source_ = std::move(source);
  }

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    out.push_back(Gauge("boad_build_info", "boad's version; always 1.", 1, {{"version", BOA_VERSION}}));
    // Read under the lock, so SetSource(nullptr) waits for a scrape that is reading.
    std::unique_lock<std::mutex> l(mu_);
    if (source_) {
      const ServerState s = source_();
      l.unlock();
      out.push_back(Gauge("boad_queued_chunks", "Chunks waiting for a lane, over all models.",
                          static_cast<double>(s.queued_chunks)));
      out.push_back(GaugeByDevice("boad_lanes", "Lanes of each device by state (busy: coding a chunk).", s.devices,
                                  {"busy", "idle"}, [](const DeviceUsage& d, const std::string& state) {
                                    return state == "busy" ? double(d.lanes_busy) : double(d.lanes) - d.lanes_busy;
                                  }));
      out.push_back(Gauge("boad_open_requests", "Codec requests (streams) being served.", s.open_requests));
      out.push_back(GaugeByDevice("boad_models_loaded", "Models resident on each device.", s.devices, {},
                                  [](const DeviceUsage& d, const std::string&) { return double(d.models); }));
      out.push_back(GaugeByDevice("boad_model_memory_bytes", "Memory held by resident models and their lanes, per device.",
                                  s.devices, {},
                                  [](const DeviceUsage& d, const std::string&) { return double(d.resident_bytes); }));
      out.push_back(GaugeByDevice("boad_model_memory_budget_bytes", "The memory budget resident models may use, per device.",
                                  s.devices, {},
                                  [](const DeviceUsage& d, const std::string&) { return double(d.memory_budget); }));
      out.push_back(Gauge("boad_draining", "1 while boad drains before stopping.", s.draining ? 1 : 0));
      out.push_back(GaugeByState("boad_training_jobs", "Training jobs by state.",
                                 std::map<std::string, double>(s.jobs_by_state.begin(), s.jobs_by_state.end())));
    }
    AddProcessMetrics(&out);
    std::vector<MetricFamily> registered = registry_->Collect();
    out.insert(out.end(), std::make_move_iterator(registered.begin()), std::make_move_iterator(registered.end()));
    return out;
  }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mu_;
  std::function<ServerState()> source_;  // guarded by mu_
};

// One model's scheduler metrics: the handles are found once, here; a step or a chunk only
// adds to them.
class Metrics::ModelObserver final : public SchedulerObserver {
 public:
  ModelObserver(Metrics* m, const std::string& model, const std::string& device)
      : steps_(m->steps_.Add({{"model", model}, {"device", device}})),
        step_lanes_(m->step_lanes_.Add({{"model", model}, {"device", device}})),
        step_capacity_(m->step_capacity_.Add({{"model", model}, {"device", device}})),
        step_seconds_(m->step_seconds_.Add({{"model", model}, {"device", device}}, kStepBuckets)),
        queue_wait_(m->queue_wait_.Add({{"model", model}, {"device", device}}, kSecondsBuckets)),
        chunk_seconds_(m->chunk_seconds_.Add({{"model", model}, {"device", device}}, kSecondsBuckets)),
        encoded_(m->chunks_.Add({{"model", model}, {"device", device}, {"kind", "encode"}})),
        decoded_(m->chunks_.Add({{"model", model}, {"device", device}, {"kind", "decode"}})) {}

  void OnStep(uint32_t lanes, uint32_t capacity, double seconds) override {
    steps_.Increment();
    step_lanes_.Increment(lanes);
    step_capacity_.Increment(capacity);
    step_seconds_.Observe(seconds);
  }
  void OnAdmitted(double queued_seconds) override { queue_wait_.Observe(queued_seconds); }
  void OnChunkDone(bool decode, double seconds) override {
    (decode ? decoded_ : encoded_).Increment();
    chunk_seconds_.Observe(seconds);
  }

 private:
  prometheus::Counter& steps_;
  prometheus::Counter& step_lanes_;
  prometheus::Counter& step_capacity_;
  prometheus::Histogram& step_seconds_;
  prometheus::Histogram& queue_wait_;
  prometheus::Histogram& chunk_seconds_;
  prometheus::Counter& encoded_;
  prometheus::Counter& decoded_;
};

namespace {

template <typename T>
prometheus::Family<T>& Make(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::detail::Builder<T>().Name(name).Help(help).Register(r);
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      collector_(std::make_shared<Collector>(registry_)),
      requests_(Make<prometheus::Counter>(*registry_, "boad_requests_total", "Codec requests finished, by operation, model and gRPC code.")),
      raw_bytes_(Make<prometheus::Counter>(*registry_, "boad_raw_bytes_total", "Original (uncompressed) bytes of finished codec requests.")),
      coded_bytes_(Make<prometheus::Counter>(*registry_, "boad_compressed_bytes_total", "Compressed (.boa) bytes of finished codec requests.")),
      data_loss_(Make<prometheus::Counter>(*registry_, "boad_data_loss_total",
                                           "Decompress or Verify requests whose data failed its checks (corrupt input or a broken promise).")),
      rejected_(Make<prometheus::Counter>(*registry_, "boad_rejected_requests_total", "Requests refused before any work, by reason.")),
      reloads_(Make<prometheus::Counter>(*registry_, "boad_config_reloads_total",
                                         "SIGHUP reloads, by result (error: the running configuration or tokens were kept).")),
      request_seconds_(Make<prometheus::Histogram>(*registry_, "boad_request_duration_seconds", "Codec request duration.")),
      request_ratio_(Make<prometheus::Histogram>(*registry_, "boad_request_compression_ratio",
                                                 "Original over compressed size of each successful codec request.")),
      chunks_(Make<prometheus::Counter>(*registry_, "boad_chunks_total", "Chunks coded, by model and kind (encode, decode).")),
      steps_(Make<prometheus::Counter>(*registry_, "boad_model_steps_total", "Model steps (one batched forward pass).")),
      step_lanes_(Make<prometheus::Counter>(*registry_, "boad_model_step_lanes_total", "Lanes that took part in model steps (batch fill = this / capacity).")),
      step_capacity_(Make<prometheus::Counter>(*registry_, "boad_model_step_lane_capacity_total", "Lanes model steps could have used.")),
      step_seconds_(Make<prometheus::Histogram>(*registry_, "boad_model_step_duration_seconds", "Time of one model step.")),
      queue_wait_(Make<prometheus::Histogram>(*registry_, "boad_queue_wait_seconds", "Time a chunk waited for a lane.")),
      chunk_seconds_(Make<prometheus::Histogram>(*registry_, "boad_chunk_latency_seconds",
                                                 "Time from a chunk's submission by its request to its coded result.")) {
  // Series that alerts watch exist (at 0) before anything happens.
  for (Rejection why : kRejections) rejected_.Add({{"reason", RejectionName(why)}});
  for (const char* result : {"ok", "error"}) reloads_.Add({{"result", result}});
  for (const char* op : {"Decompress", "Verify"}) data_loss_.Add({{"op", op}});
}

Metrics::~Metrics() = default;

void Metrics::RequestFinished(const RequestRecord& r) {
  const std::string model = r.model.empty() ? "-" : r.model;
  requests_.Add({{"op", r.op}, {"model", model}, {"code", r.code}}).Increment();
  raw_bytes_.Add({{"op", r.op}, {"model", model}}).Increment(static_cast<double>(r.raw_bytes));
  coded_bytes_.Add({{"op", r.op}, {"model", model}}).Increment(static_cast<double>(r.coded_bytes));
  if (!r.refused) request_seconds_.Add({{"op", r.op}}, kSecondsBuckets).Observe(r.seconds);
  const std::string code = r.code;
  if (code == "OK" && r.coded_bytes > 0) {
    request_ratio_.Add({{"op", r.op}}, kRatioBuckets).Observe(static_cast<double>(r.raw_bytes) / r.coded_bytes);
  }
  // Corrupt input found while decoding (Decompress, Verify), not a compression's failure.
  const std::string op = r.op;
  if (code == "DATA_LOSS" && (op == "Decompress" || op == "Verify")) {
    data_loss_.Add({{"op", r.op}}).Increment();
  }
}

const char* RejectionName(Rejection why) {
  switch (why) {
    case Rejection::kQueueFull: return "queue_full";
    case Rejection::kDraining: return "draining";
    case Rejection::kTooLarge: return "too_large";
    case Rejection::kUnauthenticated: return "unauthenticated";
    case Rejection::kPermissionDenied: return "permission_denied";
    case Rejection::kCallerLimit: return "caller_limit";
    case Rejection::kIdle: return "idle";
    case Rejection::kTransfersBusy: return "transfers_busy";
  }
  return "other";
}

void Metrics::ConfigReloaded(bool ok) { reloads_.Add({{"result", ok ? "ok" : "error"}}).Increment(); }

void Metrics::Rejected(Rejection why) { rejected_.Add({{"reason", RejectionName(why)}}).Increment(); }

std::shared_ptr<SchedulerObserver> Metrics::ForModel(const std::string& model, const std::string& device) {
  return std::make_shared<ModelObserver>(this, model, device);
}

void Metrics::SetStateSource(std::function<ServerState()> source) { collector_->SetSource(std::move(source)); }

Result<std::string> Metrics::Serve(const std::string& listen) {
  BOA_ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress(listen, "metrics_listen"));
  BOA_ASSIGN_OR_RETURN(listener_, MetricsListener::Start(address, [this] { return Scrape(); }));
  return address.WithPort(listener_->port());
}

std::string Metrics::Scrape() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collector_->Collect());
  return out.str();
}

}  // namespace boa::server
