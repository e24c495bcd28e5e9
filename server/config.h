// boad's configuration: boad.yaml (yaml-cpp) with command-line overrides. Every problem is
// reported with the key's path; boad exits 2 on a bad configuration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/util/status.h"

namespace boa::server {

// One entry of `devices`: a place models run (docs/server.md, "Devices"). A setting the entry
// does not give (0 here) takes the device's default: for cpu the top-level threads, lanes and memory_budget; for cuda:N the
// engine's batching (Engine::BatchingFor) and 90 % of the device's memory.
struct DeviceConfig {
  std::string name;  // "cpu" or "cuda:N"
  int lanes = 0;     // lanes on the device, shared by the models resident there
  int threads = 0;   // step threads per model
  uint64_t memory_budget = 0;  // resident models there
  // As boad.yaml writes it: `cuda:0`, or `{name: cuda:1, lanes: 2048}`.
  std::string ToString() const;
  // "cuda:3" -> 3; "cpu" -> -1; anything else INVALID_ARGUMENT naming `key`.
  static Result<int> CudaOrdinal(const std::string& name, const std::string& key);
};

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";
  // Prometheus /metrics (plain HTTP) on HOST:PORT; empty: off. The conventional port is 9464.
  std::string metrics_listen;
  std::string model_dir = "models";
  // Replicas share model_dir (a ReadWriteMany volume, or several boads on one host): no
  // exclusive lock on it, and a model another replica added is found by a scan every
  // model_rescan_seconds (0: only on SIGHUP) and whenever a reference is not found.
  bool shared_model_dir = false;
  double model_rescan_seconds = 30;
  // Where models run, in order of preference; each cpu or cuda:N at most once.
  std::vector<DeviceConfig> devices = {DeviceConfig{"cpu"}};
  int threads = 0;             // the cpu device's step threads per model; 0 = all cores
  int lanes = 256;             // the cpu device's lanes, shared by the models resident there
  uint64_t memory_budget = 4ull << 30;  // the cpu device's resident models
  int queue_limit = 64;        // codec requests open at once; more get RESOURCE_EXHAUSTED
  std::string log_level = "info";
  double drain_seconds = 30;   // SIGTERM: how long in-flight requests may take to finish
  std::vector<std::string> load;  // models loaded at start (health is SERVING after)
  std::string train_data_dir;  // Train reads files only inside it; empty: Train is off
  std::string jobs_dir = "jobs";  // training jobs' outputs and checkpoints
  uint64_t train_memory_budget = 8ull << 30;  // a job whose estimated peak is larger is refused

  // Security and limits (docs/security.md).
  std::string token_file;       // callers' hashed tokens and roles (SIGHUP reads it again); empty: none
  std::string tls_cert, tls_key;  // PEM: listen speaks TLS (both set) and re-reads them for rotation
  std::string tls_client_ca;    // PEM: mutual TLS, callers need a certificate it signed
  double tls_reload_seconds = 60;  // how often the TLS files are read again
  std::string health_listen;    // HOST:PORT of a plaintext port for health checks only (with TLS)
  double stream_idle_seconds = 60;  // a stream stalled this long in one read or write is cancelled
  int max_requests_per_caller = 32;  // codec requests one caller may have open at once
  int max_jobs_per_caller = 2;  // training jobs one caller may have queued or running
  int max_model_transfers = 2;  // model uploads and downloads at once; more get RESOURCE_EXHAUSTED
  uint64_t max_model_bytes = 2ull << 30;  // the largest model file an upload may send
  uint64_t max_output_bytes = 64ull << 30;  // what one Decompress/Verify may decode
  double max_expansion = 4096;  // decoded bytes per received .boa byte one request may claim
  int max_threads = 256;        // gRPC threads (one per open call); more calls get RESOURCE_EXHAUSTED
  uint64_t max_message_bytes = 4ull << 20;  // the largest gRPC message boad takes (clients send 1 MiB)
  int max_streams_per_connection = 100;     // HTTP/2 streams one connection may have open
  double handshake_timeout_seconds = 10;    // a connection must finish its handshake in this time
  double connection_idle_seconds = 600;     // a connection with no call for this long is closed
  double min_ping_seconds = 60;             // keepalive pings closer than this (without data) are strikes; two close it

  // Fills from a YAML file; unknown keys are errors naming them.
  Status LoadFile(const std::string& path);
  Status Validate() const;
  // Every key and its value as boad.yaml would write it, in the file's order (SIGHUP names
  // what changed).
  std::vector<std::pair<std::string, std::string>> Values() const;

 private:
  Status Parse(const std::string& path);
};

// The settings a SIGHUP applies at once; any other change waits for a restart.
inline bool ReloadableKey(const std::string& key) {
  return key == "log_level" || key == "queue_limit" || key == "drain_seconds" || key == "memory_budget" ||
         key == "train_memory_budget";
}

// `listen`: HOST:PORT, where HOST is a name, an IPv4 address or a bracketed IPv6 address
// ([::1]) and PORT is 0..65535 (0: a free one).
struct ListenAddress {
  std::string host;  // as written, brackets included
  int port = 0;
  std::string WithPort(int p) const { return host + ":" + std::to_string(p); }
};
// `key` names the setting in errors.
Result<ListenAddress> ParseListenAddress(const std::string& text, const char* key = "listen");


}  // namespace boa::server
