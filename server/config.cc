// Parsing and validation of boad.yaml.
#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <thread>

#include "common/util/byte_size.h"

namespace boa::server {

Result<ListenAddress> ParseListenAddress(const std::string& text, const char* key) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(key) + ": '" + text + "' " + why + " (expected HOST:PORT, e.g. 127.0.0.1:50051, [::1]:50051)");
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("has no port");
  ListenAddress a;
  a.host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (a.host.empty()) return bad("has no host (0.0.0.0 or [::] listens on every interface)");
  if (a.host.front() == '[') {
    if (a.host.size() < 3 || a.host.back() != ']') return bad("has an unclosed '['");
    for (char c : a.host.substr(1, a.host.size() - 2)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return bad("is not an IPv6 address");
    }
  } else {
    for (char c : a.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
        return bad(a.host.find(':') != std::string::npos ? "needs brackets around an IPv6 address" : "has an invalid host");
      }
    }
  }
  const auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), digit) || std::stoi(port) > 65535) {
    return bad("has a port outside 0..65535");
  }
  a.port = std::stoi(port);
  return a;
}

Result<int> DeviceConfig::CudaOrdinal(const std::string& name, const std::string& key) {
  if (name == "cpu") return -1;
  const std::string digits = name.rfind("cuda:", 0) == 0 ? name.substr(5) : "";
  // One spelling per device (cuda:0, never cuda:00): a GPU listed twice would be two devices.
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    return Status::InvalidArgument(key + ": '" + name + "' is not a device (expected cpu or cuda:N, e.g. cuda:0)");
  }
  return std::stoi(digits);
}

std::string DeviceConfig::ToString() const {
  std::string extra;
  if (lanes > 0) extra += ", lanes: " + std::to_string(lanes);
  if (threads > 0) extra += ", threads: " + std::to_string(threads);
  if (memory_budget > 0) extra += ", memory_budget: " + std::to_string(memory_budget);
  return extra.empty() ? name : "{name: " + name + extra + "}";
}

namespace {

// One entry of `devices` (key: its path, e.g. devices[1]): a name, or a map with the name and
// what differs from the device's defaults.
Result<DeviceConfig> ParseDevice(const YAML::Node& v, const std::string& key) {
  DeviceConfig d;
  if (v.IsScalar()) {
    d.name = v.as<std::string>();
    return d;
  }
  if (!v.IsMap()) return Status::InvalidArgument(key + ": expected a device name or a map with name, lanes, threads, memory_budget");
  for (const auto& kv : v) {
    const std::string k = kv.first.as<std::string>(), path = key + "." + k;
    try {
      if (k == "name") {
        d.name = kv.second.as<std::string>();
      } else if (k == "lanes" || k == "threads") {
        (k == "lanes" ? d.lanes : d.threads) = kv.second.as<int>();
        if ((k == "lanes" ? d.lanes : d.threads) <= 0) return Status::InvalidArgument(path + ": must be at least 1");
      } else if (k == "memory_budget") {
        Result<uint64_t> b = ParseByteSize(kv.second.as<std::string>());
        if (!b.ok()) return Status::InvalidArgument(path + ": " + b.status().message());
        d.memory_budget = *b;
      } else {
        return Status::InvalidArgument(path + ": unknown key (known: name, lanes, threads, memory_budget)");
      }
    } catch (const YAML::Exception&) {
      return Status::InvalidArgument(path + (k == "name" || k == "memory_budget" ? ": must be a string" : ": must be an integer"));
    }
  }
  if (d.name.empty()) return Status::InvalidArgument(key + ": needs a name (cpu or cuda:N)");
  return d;
}

}  // namespace

Status ServerConfig::LoadFile(const std::string& path) {
  // A value of the wrong kind where a key belongs (a map as a key) throws from yaml-cpp.
  try {
    return Parse(path);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("config " + path + ": " + e.what());
  }
}

Status ServerConfig::Parse(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::NotFound("config " + path + ": cannot read it");
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("config " + path + ": not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return Status::InvalidArgument("config " + path + ": expected a mapping of keys at the top level");
  // The keys are the ones Values() writes: one list.
  std::vector<std::string> keys;
  for (const auto& kv : ServerConfig().Values()) keys.push_back(kv.first);
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string known;
      for (const std::string& k : keys) known += (known.empty() ? "" : ", ") + k;
      return Status::InvalidArgument("config " + path + ": unknown key '" + key + "' (known: " + known + ")");
    }
    const YAML::Node& v = kv.second;
    auto bad = [&](const char* expected) {
      return Status::InvalidArgument("config " + path + ": key '" + key + "' must be " + expected);
    };
    try {
      if (key == "listen") listen = v.as<std::string>();
      if (key == "metrics_listen") metrics_listen = v.as<std::string>();
      if (key == "model_dir") model_dir = v.as<std::string>();
      if (key == "shared_model_dir") shared_model_dir = v.as<bool>();
      if (key == "model_rescan_seconds") model_rescan_seconds = v.as<double>();
      if (key == "threads") threads = v.as<int>();
      if (key == "lanes") lanes = v.as<int>();
      if (key == "queue_limit") queue_limit = v.as<int>();
      if (key == "log_level") log_level = v.as<std::string>();
      if (key == "train_data_dir") train_data_dir = v.as<std::string>();
      if (key == "jobs_dir") jobs_dir = v.as<std::string>();
      if (key == "drain_seconds") drain_seconds = v.as<double>();
      if (key == "token_file") token_file = v.as<std::string>();
      if (key == "tls_cert") tls_cert = v.as<std::string>();
      if (key == "tls_key") tls_key = v.as<std::string>();
      if (key == "tls_client_ca") tls_client_ca = v.as<std::string>();
      if (key == "tls_reload_seconds") tls_reload_seconds = v.as<double>();
      if (key == "health_listen") health_listen = v.as<std::string>();
      if (key == "stream_idle_seconds") stream_idle_seconds = v.as<double>();
      if (key == "max_requests_per_caller") max_requests_per_caller = v.as<int>();
      if (key == "max_jobs_per_caller") max_jobs_per_caller = v.as<int>();
      if (key == "max_model_transfers") max_model_transfers = v.as<int>();
      if (key == "max_expansion") max_expansion = v.as<double>();
      if (key == "max_threads") max_threads = v.as<int>();
      if (key == "max_streams_per_connection") max_streams_per_connection = v.as<int>();
      if (key == "handshake_timeout_seconds") handshake_timeout_seconds = v.as<double>();
      if (key == "connection_idle_seconds") connection_idle_seconds = v.as<double>();
      if (key == "min_ping_seconds") min_ping_seconds = v.as<double>();
      uint64_t* size = key == "memory_budget"         ? &memory_budget
                       : key == "train_memory_budget" ? &train_memory_budget
                       : key == "max_model_bytes"     ? &max_model_bytes
                       : key == "max_output_bytes"    ? &max_output_bytes
                       : key == "max_message_bytes"   ? &max_message_bytes
                                                      : nullptr;
      if (size != nullptr) {
        Result<uint64_t> b = ParseByteSize(v.as<std::string>());
        if (!b.ok()) return Status::InvalidArgument("config " + path + ": key '" + key + "': " + b.status().message());
        *size = *b;
      }
      if (key == "devices") {
        if (!v.IsSequence()) return bad("a list of devices (cpu, cuda:N)");
        devices.clear();
        for (size_t i = 0; i < v.size(); ++i) {
          Result<DeviceConfig> d = ParseDevice(v[i], "devices[" + std::to_string(i) + "]");
          if (!d.ok()) return d.status().WithContext("config " + path);
          devices.push_back(*d);
        }
      }
      if (key == "load") {
        if (!v.IsSequence()) return bad("a list of model references");
        load.clear();
        for (const auto& m : v) load.push_back(m.as<std::string>());
      }
    } catch (const YAML::Exception&) {
      if (key == "threads" || key == "lanes" || key == "queue_limit" || key == "max_requests_per_caller" ||
          key == "max_model_transfers" || key == "max_threads" || key == "max_streams_per_connection" ||
          key == "max_jobs_per_caller") {
        return bad("an integer");
      }
      if (key == "drain_seconds" || key == "model_rescan_seconds" || key == "stream_idle_seconds" ||
          key == "tls_reload_seconds" || key == "handshake_timeout_seconds" || key == "connection_idle_seconds" ||
          key == "min_ping_seconds") {
        return bad("a number of seconds");
      }
      if (key == "max_expansion") return bad("a number");
      if (key == "shared_model_dir") return bad("true or false");
      if (key == "load") return bad("a list of model references");
      return bad("a string");
    }
  }
  return Validate().WithContext("config " + path);
}

std::vector<std::pair<std::string, std::string>> ServerConfig::Values() const {
  std::string loads, device_list;
  for (const std::string& m : load) loads += (loads.empty() ? "" : ", ") + m;
  for (const DeviceConfig& d : devices) device_list += (device_list.empty() ? "" : ", ") + d.ToString();
  const auto seconds = [](double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", s);
    return std::string(text);
  };
  return {{"listen", listen},
          {"metrics_listen", metrics_listen},
          {"model_dir", model_dir},
          {"shared_model_dir", shared_model_dir ? "true" : "false"},
          {"model_rescan_seconds", seconds(model_rescan_seconds)},
          {"devices", "[" + device_list + "]"},
          {"threads", std::to_string(threads)},
          {"lanes", std::to_string(lanes)},
          {"memory_budget", std::to_string(memory_budget)},
          {"queue_limit", std::to_string(queue_limit)},
          {"log_level", log_level},
          {"drain_seconds", seconds(drain_seconds)},
          {"load", "[" + loads + "]"},
          {"train_data_dir", train_data_dir},
          {"jobs_dir", jobs_dir},
          {"train_memory_budget", std::to_string(train_memory_budget)},
          {"token_file", token_file},
          {"tls_cert", tls_cert},
          {"tls_key", tls_key},
          {"tls_client_ca", tls_client_ca},
          {"tls_reload_seconds", seconds(tls_reload_seconds)},
          {"health_listen", health_listen},
          {"stream_idle_seconds", seconds(stream_idle_seconds)},
          {"max_requests_per_caller", std::to_string(max_requests_per_caller)},
          {"max_jobs_per_caller", std::to_string(max_jobs_per_caller)},
          {"max_model_transfers", std::to_string(max_model_transfers)},
          {"max_model_bytes", std::to_string(max_model_bytes)},
          {"max_output_bytes", std::to_string(max_output_bytes)},
          {"max_expansion", seconds(max_expansion)},
          {"max_threads", std::to_string(max_threads)},
          {"max_message_bytes", std::to_string(max_message_bytes)},
          {"max_streams_per_connection", std::to_string(max_streams_per_connection)},
          {"handshake_timeout_seconds", seconds(handshake_timeout_seconds)},
          {"connection_idle_seconds", seconds(connection_idle_seconds)},
          {"min_ping_seconds", seconds(min_ping_seconds)}};
}

Status ServerConfig::Validate() const {
  BOA_RETURN_IF_ERROR(ParseListenAddress(listen).status());
  if (!metrics_listen.empty()) BOA_RETURN_IF_ERROR(ParseListenAddress(metrics_listen, "metrics_listen").status());
  if (model_dir.empty()) return Status::InvalidArgument("model_dir: must not be empty");
  if (jobs_dir.empty()) return Status::InvalidArgument("jobs_dir: must not be empty");
  if (threads < 0 || threads > 256) return Status::InvalidArgument("threads: must be 0 (all cores) .. 256");
  if (lanes < 1 || lanes > 65536) return Status::InvalidArgument("lanes: must be 1 .. 65536");
  if (devices.empty()) return Status::InvalidArgument("devices: must name at least one device (cpu, cuda:N)");
  std::set<std::string> seen;
  for (size_t i = 0; i < devices.size(); ++i) {
    const DeviceConfig& d = devices[i];
    const std::string key = "devices[" + std::to_string(i) + "]";
    BOA_RETURN_IF_ERROR(DeviceConfig::CudaOrdinal(d.name, key).status());
    if (!seen.insert(d.name).second) return Status::InvalidArgument(key + ": " + d.name + " is listed twice");
    if (d.lanes < 0 || d.lanes > 65536) return Status::InvalidArgument(key + ".lanes: must be 1 .. 65536");
    if (d.threads < 0 || d.threads > 256) return Status::InvalidArgument(key + ".threads: must be 1 .. 256");
    if (d.memory_budget != 0 && d.memory_budget < (1u << 20)) {
      return Status::InvalidArgument(key + ".memory_budget: must be at least 1M");
    }
  }
  if (queue_limit < 1 || queue_limit > 100000) return Status::InvalidArgument("queue_limit: must be 1 .. 100000");
  if (memory_budget < (1u << 20)) return Status::InvalidArgument("memory_budget: must be at least 1M");
  if (train_memory_budget < (1u << 20)) return Status::InvalidArgument("train_memory_budget: must be at least 1M");
  if (!(drain_seconds >= 0 && drain_seconds <= 3600)) return Status::InvalidArgument("drain_seconds: must be 0 .. 3600");
  if (!(model_rescan_seconds >= 0 && model_rescan_seconds <= 86400)) {
    return Status::InvalidArgument("model_rescan_seconds: must be 0 .. 86400");
  }
  if (tls_cert.empty() != tls_key.empty()) return Status::InvalidArgument("tls_cert and tls_key: give both (or neither)");
  if (!tls_client_ca.empty() && tls_cert.empty()) {
    return Status::InvalidArgument("tls_client_ca: mutual TLS needs tls_cert and tls_key as well");
  }
  if (!(tls_reload_seconds >= 1 && tls_reload_seconds <= 86400)) {
    return Status::InvalidArgument("tls_reload_seconds: must be 1 .. 86400");
  }
  if (!health_listen.empty()) BOA_RETURN_IF_ERROR(ParseListenAddress(health_listen, "health_listen").status());
  if (!(stream_idle_seconds >= 0 && stream_idle_seconds <= 86400)) {
    return Status::InvalidArgument("stream_idle_seconds: must be 0 (never) .. 86400");
  }
  if (max_requests_per_caller < 1) return Status::InvalidArgument("max_requests_per_caller: must be at least 1");
  if (max_jobs_per_caller < 1) return Status::InvalidArgument("max_jobs_per_caller: must be at least 1");
  if (max_model_transfers < 1 || max_model_transfers > 1000) return Status::InvalidArgument("max_model_transfers: must be 1 .. 1000");
  if (max_model_bytes < 1024 || max_model_bytes > (8ull << 30)) {
    return Status::InvalidArgument("max_model_bytes: must be 1K .. 8G (the model file format's limit)");
  }
  if (max_output_bytes < (1u << 20)) return Status::InvalidArgument("max_output_bytes: must be at least 1M");
  if (!(max_expansion >= 1)) return Status::InvalidArgument("max_expansion: must be at least 1");
  if (max_threads < 8 || max_threads > 100000) return Status::InvalidArgument("max_threads: must be 8 .. 100000");
  if (max_message_bytes < (1100u << 10) || max_message_bytes > (256u << 20)) {
    return Status::InvalidArgument("max_message_bytes: must be 1100K .. 256M (clients send messages of 1 MiB)");
  }
  if (max_streams_per_connection < 1) return Status::InvalidArgument("max_streams_per_connection: must be at least 1");
  const auto seconds_in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  if (!seconds_in(handshake_timeout_seconds, 0.1, 600)) {
    return Status::InvalidArgument("handshake_timeout_seconds: must be 0.1 .. 600");
  }
  if (!seconds_in(connection_idle_seconds, 1, 86400 * 7)) {
    return Status::InvalidArgument("connection_idle_seconds: must be 1 .. 604800");
  }
  if (!seconds_in(min_ping_seconds, 1, 86400)) return Status::InvalidArgument("min_ping_seconds: must be 1 .. 86400");
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(log_level)) return Status::InvalidArgument("log_level: one of trace, debug, info, warn, error, off; got '" + log_level + "'");
  return Status::Ok();
}

}  // namespace boa::server
