// boad: the boa daemon. Keeps models resident, batches the chunks of concurrent requests
// into shared model steps, serves boa.v1.Boa over gRPC with health and reflection.
#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/file.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/codec/codec.h"
#include "rpc/tls.h"
#include "server/access.h"
#include "server/config.h"
#include "server/devices.h"
#include "server/grpc_metrics.h"
#include "server/metrics.h"
#include "server/model_store.h"
#include "server/service.h"

namespace {

using Clock = std::chrono::steady_clock;

// The health service name that liveness probes ask (deploy/k8s): it follows the schedulers'
// heartbeats only.
constexpr const char* kLivenessService = "boad.Liveness";

int Fail(int code, const std::string& msg) {
  std::fprintf(stderr, "boad: %s\n", msg.c_str());
  return code;
}

// Why gRPC could not listen on `a`: it reports only that it failed, so the bind is tried
// again here, as gRPC does it (SO_REUSEADDR, no SO_REUSEPORT), to name the error.
std::string BindError(const boa::server::ListenAddress& a) {
  std::string host = a.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* list = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(a.port).c_str(), &hints, &list); rc != 0) {
    return std::string("cannot resolve host: ") + gai_strerror(rc);
  }
  std::string error = "gRPC refused the address";
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      error = std::strerror(errno);
      close(fd);
      break;
    }
    close(fd);
  }
  freeaddrinfo(list);
  return error;
}

// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP (blocked in every thread); the signal or 0.
int WaitForSignal(const sigset_t& sigs, std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>(timeout.count() % 1000) * 1000000};
  int sig = sigtimedwait(&sigs, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

const char* SignalName(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

// Locks `dir` for this boad's lifetime (flock on <dir>/.boad.lock, released by the kernel
// when the process ends): two boads must never share a model store or a jobs directory.
// Returns the descriptor, kept open.
boa::Result<int> LockDirectory(const std::string& dir, const std::string& key) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/.boad.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return boa::Status::IoError(key + " " + dir + ": cannot create " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    close(fd);
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return boa::Status::FailedPrecondition(key + " " + dir + " is in use by another boad" +
                                           (holder.empty() ? std::string() : " (pid " + holder + ")"));
  }
  const std::string me = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) < 0) {
    // The lock holds without the pid in it; only the message of a second boad is poorer.
  }
  return fd;
}

// boad's command line: the configuration file and the settings that override it.
struct Flags {
  std::string config_path, listen, metrics_listen, health_listen, model_dir, log_level, train_data_dir, jobs_dir, token_file;
  int threads = -1, lanes = -1;
  std::vector<std::string> devices;  // names; each takes its defaults
};

// The configuration: boad.yaml, then the flags over it. At start and on every SIGHUP.
boa::Result<boa::server::ServerConfig> LoadConfig(const Flags& f) {
  boa::server::ServerConfig cfg;
  if (!f.config_path.empty()) BOA_RETURN_IF_ERROR(cfg.LoadFile(f.config_path));
  if (!f.listen.empty()) cfg.listen = f.listen;
  if (!f.metrics_listen.empty()) cfg.metrics_listen = f.metrics_listen;
  if (!f.health_listen.empty()) cfg.health_listen = f.health_listen;
  if (!f.model_dir.empty()) cfg.model_dir = f.model_dir;
  if (f.threads >= 0) cfg.threads = f.threads;
  if (f.lanes >= 0) cfg.lanes = f.lanes;
  if (!f.devices.empty()) {
    cfg.devices.clear();
    for (const std::string& name : f.devices) cfg.devices.push_back(boa::server::DeviceConfig{name});
  }
  if (!f.log_level.empty()) cfg.log_level = f.log_level;
  if (!f.train_data_dir.empty()) cfg.train_data_dir = f.train_data_dir;
  if (!f.jobs_dir.empty()) cfg.jobs_dir = f.jobs_dir;
  if (!f.token_file.empty()) cfg.token_file = f.token_file;
  if (boa::Status s = cfg.Validate(); !s.ok()) return s.WithContext("configuration");
  return cfg;
}

// SIGHUP: reads the configuration again and applies what can change while boad runs
// (ReloadableKey: log level, limits, drain time); a change to anything else is named and
// waits for a restart. Then the model store is read again. A configuration that does not load changes
// nothing.
void Reload(const Flags& flags, boa::server::ServerConfig* running, boa::server::BoaService* service,
            boa::server::ModelStore* store, boa::server::AccessControl* access, boa::server::Metrics* metrics) {
  using namespace boa::server;
  boa::Result<ServerConfig> next = LoadConfig(flags);
  if (!next.ok()) {
    spdlog::error("SIGHUP: {}; the running configuration is kept", next.status().message());
    metrics->ConfigReloaded(false);
    return;
  }
  const auto now = running->Values(), then = next->Values();
  int applied = 0;
  bool budget_changed = false;
  for (size_t i = 0; i < now.size(); ++i) {
    if (now[i].second == then[i].second) continue;
    const std::string& key = now[i].first;
    budget_changed = budget_changed || key == "memory_budget";
    if (!ReloadableKey(key)) {
      spdlog::warn("SIGHUP: {} changed ({} -> {}) but only a restart applies it; still {}", key, now[i].second,
                   then[i].second, now[i].second);
      continue;
    }
    spdlog::info("SIGHUP: {} {} -> {}", key, now[i].second, then[i].second);
    ++applied;
  }
  running->log_level = next->log_level;
  running->queue_limit = next->queue_limit;
  running->drain_seconds = next->drain_seconds;
  running->memory_budget = next->memory_budget;
  running->train_memory_budget = next->train_memory_budget;
  spdlog::set_level(spdlog::level::from_str(running->log_level));
  service->SetQueueLimit(running->queue_limit);
  service->SetTrainMemoryBudget(running->train_memory_budget);
  if (const int cpu = DeviceFollowingMemoryBudget(*running); cpu >= 0) {
    store->SetMemoryBudget(cpu, running->memory_budget);
  } else if (budget_changed) {
    spdlog::warn("SIGHUP: memory_budget is the cpu device's, and no device takes it (devices sets its own, or "
                 "has no cpu): it changes nothing");
  }
  bool reloaded = true;
  if (access->requires_token()) {
    if (boa::Status t = access->Reload(); !t.ok()) {
      spdlog::error("SIGHUP: {}; the running tokens are kept", t.message());
      reloaded = false;
    } else {
      spdlog::info("SIGHUP: token file {} read again", running->token_file);
    }
  }
  boa::Result<ModelStore::RescanReport> r = store->Rescan();
  metrics->ConfigReloaded(reloaded && r.ok());
  if (!r.ok()) {
    spdlog::error("SIGHUP: model store: {}", r.status().message());
  } else {
    spdlog::info("SIGHUP: {} settings applied; model store read again: {} models added, {} gone, {} problems", applied,
                 r->added, r->removed, r->problems);
    for (const auto& p : store->problems()) spdlog::warn("model store: {}", p);
  }
}

// Whether every resident model's scheduler makes progress (boad's liveness).
bool SchedulersLive(const boa::server::ModelStore& store) {
  for (const auto& rm : store.Resident()) {
    if (rm->scheduler->Stalled(std::chrono::seconds(30))) return false;
  }
  return true;
}

// systemd's notification socket (Type=notify): a no-op when boad is not run by systemd.
void Notify(const char* state) { sd_notify(0, state); }

// Takes gRPC's reflection service (registered by linking it) off a server.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const auto& p) { return p->name() == "proto_server_reflection"; }),
                   plugins->end());
  }
};

// The main port's credentials: plaintext, or TLS from files that are read again every
// tls_reload_seconds (a renewed certificate is served without a restart), mutual with
// tls_client_ca.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const boa::server::ServerConfig& cfg) {
  if (cfg.tls_cert.empty()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      cfg.tls_key, cfg.tls_cert, cfg.tls_client_ca, static_cast<unsigned>(cfg.tls_reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!cfg.tls_client_ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// `boad token --name NAME --roles read,write`: a new random token for a caller, and the
// entry that grants it in the token file (which keeps only its SHA-256).
int PrintNewToken(const std::string& name, const std::vector<std::string>& roles) {
  using namespace boa::server;
  std::string list;
  for (const std::string& r : roles) {
    if (boa::Result<Role> role = ParseRole(r); !role.ok()) return Fail(2, "token: --roles: " + role.status().message());
    list += (list.empty() ? "" : ", ") + r;
  }
  boa::Result<NewToken> t = GenerateToken();
  if (!t.ok()) return Fail(1, t.status().message());
  std::printf("%s\n", t->token.c_str());
  std::fprintf(stderr,
               "boad: the line above is the token: give it to the caller (BOA_TOKEN, or a file for --token-file); it is "
               "shown only now.\nAdd to the token file (token_file), then send boad SIGHUP:\n  - name: %s\n"
               "    sha256: %s\n    roles: [%s]\n",
               name.c_str(), t->sha256.c_str(), list.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace boa;
  using namespace boa::server;
  // Signals are taken by this thread with sigwait, so shutdown runs as ordinary code. They
  // are blocked before any thread exists (threads inherit the mask): none may die of one.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  // A reader of stdout that went away (a script that read the first line) must not kill boad.
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"boad: the boa compression daemon (gRPC service boa.v1.Boa)"};
  Flags flags;
  bool check_config = false, insecure = false;
  app.add_option("--config", flags.config_path, "boad.yaml (read again on SIGHUP)");
  app.add_option("--listen", flags.listen, "HOST:PORT to serve on (overrides the config)");
  app.add_option("--metrics-listen", flags.metrics_listen, "HOST:PORT to serve Prometheus /metrics on (overrides the config)");
  app.add_option("--health-listen", flags.health_listen,
                 "HOST:PORT of a plaintext port for health checks only, beside a TLS listen (overrides the config)");
  app.add_option("--model-dir", flags.model_dir, "model store directory (overrides the config)");
  app.add_option("--threads", flags.threads, "the cpu device's step threads per model, 0 = all cores (overrides the config)");
  app.add_option("--lanes", flags.lanes, "the cpu device's lanes, shared by the models resident there (overrides the config)");
  app.add_option("--devices", flags.devices, "devices to run models on, in order of preference: cpu, cuda:N (overrides the config)")
      ->delimiter(',');
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, off");
  app.add_option("--train-data-dir", flags.train_data_dir, "directory Train may read data from (off when unset)");
  app.add_option("--jobs-dir", flags.jobs_dir, "training jobs' files (overrides the config)");
  app.add_option("--token-file", flags.token_file, "callers' hashed tokens and roles (overrides the config; SIGHUP reads it again)");
  app.add_flag("--insecure", insecure,
               "serve a non-loopback address without TLS or tokens: anyone who reaches the port may replace or delete models");
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  std::string token_name;
  std::vector<std::string> token_roles;
  CLI::App* token = app.add_subcommand("token", "Print a new caller token and its token-file entry");
  token->add_option("--name", token_name, "the caller's name (logs, metrics)")->required();
  token->add_option("--roles", token_roles, "its roles: read, write, train, admin")->delimiter(',')->required();
  app.set_version_flag("--version", BOA_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (token->parsed()) return PrintNewToken(token_name, token_roles);
  Result<ServerConfig> loaded = LoadConfig(flags);
  if (!loaded.ok()) return Fail(2, loaded.status().message());
  ServerConfig cfg = std::move(loaded).value();
  Transport transport;
  transport.tls = !cfg.tls_cert.empty();
  transport.client_certs = !cfg.tls_client_ca.empty();
  if (transport.tls) {
    Status files = rpc::CheckCertificateFiles(
        {cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca, "tls_cert", "tls_key", "tls_client_ca"});
    if (!files.ok()) return Fail(2, "configuration: " + files.message());
  }
  Result<std::unique_ptr<AccessControl>> access = AccessControl::Open(cfg.token_file, transport);
  if (!access.ok()) return Fail(2, access.status().message());
  // Safe by default: without tokens or client certificates anyone who reaches the port may
  // do everything.
  const ListenAddress listen_address = ParseListenAddress(cfg.listen).value();  // validated
  if (!(*access)->authenticates() && !IsLoopbackHost(listen_address.host) && !insecure) {
    return Fail(2, "refusing to serve " + cfg.listen + " without tokens: anyone who can reach it could upload, replace "
                   "or delete models and start training. Set token_file (boad token makes entries) or tls_client_ca "
                   "(docs/security.md), listen on 127.0.0.1, or start boad with --insecure on a network you trust");
  }
  if (check_config) {
    std::printf("boad: configuration OK (listen %s, model_dir %s)\n", cfg.listen.c_str(), cfg.model_dir.c_str());
    return 0;
  }
  // Logs go to stderr; stdout carries only the "listening on" line that scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("boad"));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));

  // Before anything in them is read or written. A shared model store is safe without the
  // lock (ModelStore publishes and removes versions with one rename each); jobs never are.
  if (!cfg.shared_model_dir) {
    Result<int> store_lock = LockDirectory(cfg.model_dir, "model_dir");
    if (!store_lock.ok()) return Fail(1, store_lock.status().message());
  }
  // The jobs directory when there are or may be jobs in it (training on, or jobs kept).
  std::error_code same_ec;
  const bool jobs_used = !cfg.train_data_dir.empty() || std::filesystem::exists(cfg.jobs_dir, same_ec);
  const bool jobs_in_store = std::filesystem::equivalent(cfg.model_dir, cfg.jobs_dir, same_ec);
  if (jobs_used && jobs_in_store && cfg.shared_model_dir) {
    return Fail(2, "configuration: jobs_dir " + cfg.jobs_dir + " is model_dir, which shared_model_dir shares with other "
                   "boads: give each boad a jobs_dir of its own");
  }
  if (jobs_used && !jobs_in_store) {
    Result<int> jobs_lock = LockDirectory(cfg.jobs_dir, "jobs_dir");
    if (!jobs_lock.ok()) return Fail(1, jobs_lock.status().message());
  }

  // Kept only when served: without metrics_listen nothing counts, so boad pays nothing for them.
  Metrics metrics;
  const bool metrics_on = !cfg.metrics_listen.empty();
  ModelStore::Options so;
  if (metrics_on) {
    so.observe = [&metrics](const std::string& name, const std::string& device) { return metrics.ForModel(name, device); };
  }
  so.dir = cfg.model_dir;
  so.shared = cfg.shared_model_dir;
  so.rescan_seconds = cfg.model_rescan_seconds;
  Result<std::vector<StoreDevice>> devices = OpenDevices(cfg);
  if (!devices.ok()) return Fail(2, "configuration: " + devices.status().message());
  so.devices = std::move(*devices);
  Result<std::unique_ptr<ModelStore>> store = ModelStore::Open(so);
  if (!store.ok()) return Fail(2, store.status().message());
  // Loudly: in the log now, and in every `status` until boad restarts.
  for (const auto& p : (*store)->problems()) spdlog::warn("model store: {}", p);
  for (const std::string& ref : cfg.load) {
    Result<ModelLease> m = (*store)->Acquire(ref);
    if (!m.ok()) return Fail(2, "load: model '" + ref + "': " + m.status().message());
    spdlog::info("model {} loaded (id {})", m->entry.Ref(), m->entry.id);
  }

  JobManager jobs(store->get(), cfg.jobs_dir);
  for (const auto& p : jobs.problems()) spdlog::warn("jobs: {}", p);
  BoaService service(cfg, store->get(), &jobs, metrics_on ? &metrics : nullptr, access->get());
  metrics.SetStateSource([&service] { return service.State(); });
  struct StateSourceGuard {  // the service goes before the metrics listener: stop reading it first
    Metrics& m;
    ~StateSourceGuard() { m.SetStateSource(nullptr); }
  } state_source_guard{metrics};
  std::string metrics_address;
  if (metrics_on) {
    Result<std::string> bound = metrics.Serve(cfg.metrics_listen);
    if (!bound.ok()) return Fail(1, bound.status().message());
    metrics_address = *bound;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second boad on the same port would start and take
  // half of the connections to another model store. One port, one boad.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Clients reconnect every few minutes (GOAWAY; running streams go on to their end), so
  // those balancing over replicas find new ones and leave removed ones.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 5 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, INT_MAX);
  // Transport limits (docs/security.md): a message, a connection's streams and headers, a
  // connection that never finishes its handshake or sits idle, pings as a flood.
  const auto ms = [](double seconds) { return static_cast<int>(std::min(seconds * 1000, double{INT_MAX})); };
  builder.SetMaxReceiveMessageSize(static_cast<int>(cfg.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, cfg.max_streams_per_connection);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 << 10);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(cfg.handshake_timeout_seconds));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(cfg.connection_idle_seconds));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, ms(cfg.min_ping_seconds));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // One thread per open call in gRPC's synchronous server: a cap, so that many open calls
  // get RESOURCE_EXHAUSTED rather than a thread each.
  grpc::ResourceQuota quota("boad");
  quota.SetMaxThreads(cfg.max_threads);
  builder.SetResourceQuota(quota);
  // Reflection's streams wait for their caller without a token check or a timeout: served
  // only by a boad that trusts every caller (loopback, --insecure).
  if ((*access)->authenticates()) builder.SetOption(std::make_unique<WithoutReflection>());
  int port = 0, health_port = 0;
  builder.AddListeningPort(cfg.listen, ServerCredentials(cfg), &port);
  // With TLS, probes that cannot speak it (kubelet, systemd) ask health here; every boa.v1.Boa
  // call on it is refused (AccessControl).
  if (!cfg.health_listen.empty()) builder.AddListeningPort(cfg.health_listen, grpc::InsecureServerCredentials(), &health_port);
  builder.RegisterService(&service);
  if (metrics_on) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(NewGrpcMetricsInterceptorFactory(metrics.registry(), {"boa.v1.Boa"}));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(1, "cannot listen on " + cfg.listen + ": " + BindError(listen_address));
  const std::string bound = listen_address.WithPort(port);
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus("boa.v1.Boa", true);
  // For liveness probes: NOT_SERVING only while a scheduler is wedged, never while draining.
  health->SetServingStatus(kLivenessService, true);
  // The address actually bound (":0" picks a free port): tests and scripts read this line.
  std::printf("boad listening on %s\n", bound.c_str());
  if (!metrics_address.empty()) std::printf("boad metrics on http://%s/metrics\n", metrics_address.c_str());
  if (health_port != 0) {
    std::printf("boad health on %s\n", ParseListenAddress(cfg.health_listen).value().WithPort(health_port).c_str());
  }
  std::fflush(stdout);
  spdlog::info("boad {} serving on {}, models in {}", BOA_VERSION, bound, cfg.model_dir);
  for (const StoreDevice& d : so.devices) {
    spdlog::info("device {}: {} step threads x {} lanes per model, {} lanes, memory budget {} MiB", d.description,
                 d.scheduler.threads, d.scheduler.lanes_per_thread, d.scheduler.device_lanes->total(), d.memory_budget >> 20);
  }
  if (!cfg.health_listen.empty() && health_port == 0) {
    return Fail(1, "cannot listen on " + cfg.health_listen + " (health_listen): " +
                       BindError(ParseListenAddress(cfg.health_listen).value()));
  }
  if (!(*access)->authenticates() && !IsLoopbackHost(listen_address.host)) {
    spdlog::warn("--insecure: {} is served without tokens; every caller may upload, delete and train", bound);
  }

  // Shutdown (docs/server.md): the listener stays open while running requests finish, so
  // clients see health NOT_SERVING and new requests UNAVAILABLE rather than a closed port.
  Notify("READY=1");
  // Every second: liveness (a stalled scheduler turns health NOT_SERVING and stops the
  // systemd watchdog, so the service manager restarts boad) and signals.
  int sig = 0;
  bool live = true;
  while (sig == 0) {
    sig = WaitForSignal(sigs, std::chrono::milliseconds(1000));
    if (sig == SIGHUP) {
      Reload(flags, &cfg, &service, store->get(), access->get(), &metrics);
      sig = 0;
    }
    if (sig != 0) break;
    const bool now_live = SchedulersLive(**store);
    if (now_live != live) {
      if (now_live) {
        spdlog::info("liveness: every scheduler moves again; health SERVING");
      } else {
        spdlog::error("liveness: a scheduler has made no progress for 30 s; health NOT_SERVING");
      }
      health->SetServingStatus(now_live);
      health->SetServingStatus("boa.v1.Boa", now_live);
      health->SetServingStatus(kLivenessService, now_live);
      live = now_live;
    }
    if (live) Notify("WATCHDOG=1");
  }
  Notify("STOPPING=1");
  spdlog::info("{}: draining (up to {:.0f} s for running requests; a second signal stops at once)", SignalName(sig),
               cfg.drain_seconds);
  // Readiness goes; liveness stays (a draining boad is alive).
  health->SetServingStatus("", false);
  health->SetServingStatus("boa.v1.Boa", false);
  service.StartDraining(Clock::now() +
                        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.drain_seconds)));
  jobs.Shutdown();  // a running training job checkpoints and stops
  // A second signal, whenever it comes, ends it at once: during the drain what still runs
  // fails with UNAVAILABLE; once boad is closing (a training job still checkpointing), boad
  // exits there and then (every file it writes is written whole or not at all).
  std::atomic<bool> closing{false}, done{false};
  std::thread watcher([&] {
    while (!done) {
      const int again = WaitForSignal(sigs, std::chrono::milliseconds(50));
      if (again == 0 || again == SIGHUP) continue;  // nothing to reload while stopping
      if (closing) {
        spdlog::warn("{} while closing: exiting now", SignalName(again));
        spdlog::default_logger()->flush();
        std::_Exit(0);
      }
      spdlog::warn("{} during the drain: stopping now, {} running requests fail", SignalName(again), service.open_requests());
      service.StartDraining(Clock::now());
    }
  });
  while (service.open_requests() > 0 && !service.drain_expired()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  closing = true;
  // Requests past the drain deadline fail with UNAVAILABLE at their next check (every 20 ms);
  // gRPC's own deadline comes a little later so those answers get out.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  jobs.Stop();
  spdlog::info("boad stopped");
  done = true;
  watcher.join();
  return 0;
}
