// boad: the boa daemon. Keeps models resident, batches the chunks of concurrent requests
// into shared model steps, serves boa.v1.Boa over gRPC with health and reflection.
#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "common/codec/codec.h"
#include "server/config.h"
#include "server/model_store.h"
#include "server/service.h"

namespace {

int Fail(int code, const std::string& msg) {
  std::fprintf(stderr, "boad: %s\n", msg.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace boa;
  using namespace boa::server;
  CLI::App app{"boad: the boa compression daemon (gRPC service boa.v1.Boa)"};
  std::string config_path, listen, model_dir, log_level, train_data_dir;
  int threads = -1, lanes = -1;
  bool check_config = false;
  app.add_option("--config", config_path, "boad.yaml");
  app.add_option("--listen", listen, "HOST:PORT to serve on (overrides the config)");
  app.add_option("--model-dir", model_dir, "model store directory (overrides the config)");
  app.add_option("--threads", threads, "step threads per model, 0 = all cores");
  app.add_option("--lanes", lanes, "lanes per model");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off");
  app.add_option("--train-data-dir", train_data_dir, "directory Train may read data from (off when unset)");
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  app.set_version_flag("--version", BOA_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  ServerConfig cfg;
  if (!config_path.empty()) {
    Status s = cfg.LoadFile(config_path);
    if (!s.ok()) return Fail(2, s.message());
  }
  if (!listen.empty()) cfg.listen = listen;
  if (!model_dir.empty()) cfg.model_dir = model_dir;
  if (threads >= 0) cfg.threads = threads;
  if (lanes >= 0) cfg.lanes = lanes;
  if (!log_level.empty()) cfg.log_level = log_level;
  if (!train_data_dir.empty()) cfg.train_data_dir = train_data_dir;
  if (Status s = cfg.Validate(); !s.ok()) return Fail(2, "configuration: " + s.message());
  if (check_config) {
    std::printf("boad: configuration OK (listen %s, model_dir %s)\n", cfg.listen.c_str(), cfg.model_dir.c_str());
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));

  // Signals are taken by one thread with sigwait, so shutdown runs as ordinary code.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  ModelStore::Options so;
  so.dir = cfg.model_dir;
  so.memory_budget = cfg.memory_budget;
  const int step_threads = cfg.threads > 0 ? cfg.threads : DefaultThreadCount();
  so.scheduler.threads = step_threads;
  so.scheduler.lanes_per_thread = std::max(1, cfg.lanes / step_threads);
  so.scheduler.device_lanes = std::make_shared<LaneBudget>(static_cast<uint32_t>(cfg.lanes));
  std::vector<std::string> warnings;
  Result<std::unique_ptr<ModelStore>> store = ModelStore::Open(so, &warnings);
  if (!store.ok()) return Fail(2, store.status().message());
  for (const auto& w : warnings) spdlog::warn("{}", w);
  for (const std::string& ref : cfg.load) {
    Result<std::shared_ptr<ResidentModel>> m = (*store)->Acquire(ref);
    if (!m.ok()) return Fail(2, "load: model '" + ref + "': " + m.status().message());
    spdlog::info("model {} loaded (id {})", (*m)->entry.Ref(), (*m)->entry.id);
  }

  JobManager jobs(store->get(), cfg.jobs_dir);
  BoaService service(cfg, store->get(), &jobs);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(cfg.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(1, "cannot listen on " + cfg.listen + " (address in use or not valid?)");
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus("boa.v1.Boa", true);
  // The port actually bound (":0" picks a free one): tests and scripts read this line.
  std::printf("boad listening on %s port %d\n", cfg.listen.c_str(), port);
  std::fflush(stdout);
  spdlog::info("boad {} serving on {} (port {}), models in {}, {} step threads x {} lanes per model, {} lanes on the device", BOA_VERSION,
               cfg.listen, port, cfg.model_dir, step_threads, so.scheduler.lanes_per_thread, cfg.lanes);

  std::thread waiter([&] { server->Wait(); });
  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("{}: draining (up to {:.0f} s for running requests)", sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg.drain_seconds);
  health->SetServingStatus(false);
  health->SetServingStatus("boa.v1.Boa", false);
  const auto drain = std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(cfg.drain_seconds));
  service.StartDraining(std::chrono::steady_clock::now() + drain);
  jobs.Shutdown();  // a running training job checkpoints and stops
  // Requests still running at the drain deadline fail with UNAVAILABLE (the service checks
  // between steps); gRPC's own deadline comes a little later so those answers get out.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(drain) +
                   std::chrono::seconds(2));
  waiter.join();
  spdlog::info("boad stopped");
  return 0;
}
