// The commands that only exist against boad: `models list|show|upload|download|rm|load|
// unload`, `status` and `jobs list|show|cancel|resume`.
#include "client/server_commands.h"

#include <cinttypes>
#include <cstdio>

#include "client/commands.h"
#include "common/util/io.h"

namespace boa::client {

namespace {

void PrintModelRow(const v1::ModelInfo& m) {
  std::printf("%-24s %7u  %-12s  d_model %4u x %2u  %s  %10" PRIu64 " B  %s\n", m.name().c_str(), m.version(),
              m.id().substr(0, 12).c_str(), m.d_model(), m.n_layers(), m.dtype().c_str(), m.file_bytes(),
              m.loaded() ? "loaded" : "-");
}

void PrintModel(const v1::ModelInfo& m) {
  std::printf("model          %s:%u\n", m.name().c_str(), m.version());
  std::printf("id             %s\n", m.id().c_str());
  std::printf("architecture   d_model %u, %u layer%s, d_state %u, d_conv %u, expand %u, dt_rank %u\n", m.d_model(),
              m.n_layers(), m.n_layers() == 1 ? "" : "s", m.d_state(), m.d_conv(), m.expand(), m.dt_rank());
  std::printf("parameters     %" PRIu64 " (%s weights, %" PRIu64 " bytes)\n", m.parameters(), m.dtype().c_str(), m.file_bytes());
  std::printf("loaded         %s\n", m.loaded() ? "yes" : "no");
}

void PrintJob(const v1::JobInfo& j) {
  std::printf("job            %s\n", j.id().c_str());
  std::printf("model name     %s\n", j.name().c_str());
  std::printf("state          %s\n", v1::JobState_Name(j.state()).c_str());
  std::printf("message        %s\n", j.message().c_str());
  std::printf("progress       %" PRIu64 " steps, %" PRIu64 " bytes, %.0f s\n", j.steps(), j.bytes_seen(), j.seconds());
  if (j.val_bpb() > 0) std::printf("validation     %.4f bits/byte\n", j.val_bpb());
  if (j.test_bpb() > 0) std::printf("test           %.4f bits/byte\n", j.test_bpb());
  if (j.has_model()) std::printf("model          %s:%u (id %s)\n", j.model().name().c_str(), j.model().version(), j.model().id().c_str());
}

// A command run against one boad: connects, then RunOn.
class ServerCommand : public Command {
 public:
  using Command::Command;
  Status Run(const GlobalOptions& g) final {
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RemoteClient> r, g.Endpoint().Connect());
    r->set_deadline(g.timeout);
    return RunOn(*r, g);
  }

 protected:
  virtual Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) = 0;
};

// A command that names one model in the store.
class ModelRefCommand : public ServerCommand {
 public:
  using ServerCommand::ServerCommand;
  void Define(CLI::App* cmd) override { cmd->add_option("model", ref_, "Model reference (NAME, NAME:VERSION or id)")->required(); }

 protected:
  std::string ref_;
};

class ModelsListCommand final : public ServerCommand {
 public:
  ModelsListCommand() : ServerCommand("list", "List the models in the server's store") {}
  void Define(CLI::App*) override {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(std::vector<v1::ModelInfo> models, r.ListModels());
    if (models.empty()) {
      if (!g.quiet) std::printf("no models (add one: boa-client models upload FILE --name NAME)\n");
      return Status::Ok();
    }
    std::printf("%-24s %7s  %-12s  %-17s  %s  %12s  %s\n", "NAME", "VERSION", "ID", "ARCHITECTURE", "TYPE", "SIZE", "STATE");
    for (const auto& m : models) PrintModelRow(m);
    return Status::Ok();
  }
};

class ModelsShowCommand final : public ModelRefCommand {
 public:
  ModelsShowCommand() : ModelRefCommand("show", "Show one model (NAME, NAME:VERSION or id)") {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions&) override {
    BOA_ASSIGN_OR_RETURN(v1::ModelInfo m, r.GetModel(ref_));
    PrintModel(m);
    return Status::Ok();
  }
};

class ModelsUploadCommand final : public ServerCommand {
 public:
  ModelsUploadCommand() : ServerCommand("upload", "Register a model file in the server's store") {}
  void Define(CLI::App* cmd) override {
    cmd->add_option("file", file_, "Model file (.boam)")->required();
    cmd->add_option("--name", name_, "Name in the store")->required();
    cmd->add_option("--version", version_, "Version (default: the next one)");
  }
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    Result<v1::ModelInfo> m = r.UploadModel(file_, name_, version_);
    if (!m.ok()) return m.status().WithContext(file_);
    if (!g.quiet) std::printf("%s -> %s:%u (id %s)\n", file_.c_str(), m->name().c_str(), m->version(), m->id().c_str());
    return Status::Ok();
  }

 private:
  std::string file_, name_;
  uint32_t version_ = 0;
};

class ModelsDownloadCommand final : public ModelRefCommand {
 public:
  ModelsDownloadCommand() : ModelRefCommand("download", "Fetch a model file from the server") {}
  void Define(CLI::App* cmd) override {
    ModelRefCommand::Define(cmd);
    cmd->add_option("-o,--output", output_, "Output file")->required();
    cmd->add_flag("-f,--force", force_, "Overwrite an existing file");
  }
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<AtomicOutputFile> out, AtomicOutputFile::Create(output_, force_));
    BOA_RETURN_IF_ERROR(r.DownloadModel(ref_, out.get()));
    BOA_RETURN_IF_ERROR(out->Commit(""));
    if (!g.quiet) std::printf("%s -> %s\n", ref_.c_str(), output_.c_str());
    return Status::Ok();
  }

 private:
  std::string output_;
  bool force_ = false;
};

// rm, load and unload: one call on a model, and a line saying what happened to it.
class ModelsActionCommand final : public ModelRefCommand {
 public:
  using Action = Result<v1::ModelInfo> (rpc::RemoteClient::*)(const std::string&);
  ModelsActionCommand(const char* name, const char* description, Action action, const char* done)
      : ModelRefCommand(name, description), action_(action), done_(done) {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(v1::ModelInfo m, (r.*action_)(ref_));
    if (!g.quiet) std::printf("%s:%u %s\n", m.name().c_str(), m.version(), done_);
    return Status::Ok();
  }

 private:
  const Action action_;
  const char* const done_;
};

class StatusCommand final : public ServerCommand {
 public:
  StatusCommand() : ServerCommand("status", "Server health, version, lanes, queue and loaded models") {}
  void Define(CLI::App*) override {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions&) override {
    BOA_ASSIGN_OR_RETURN(std::string health, r.Health());
    BOA_ASSIGN_OR_RETURN(v1::ServerInfoResponse i, r.Info());
    std::printf("server         %s (boad %s)\n", r.address().c_str(), i.version().c_str());
    std::printf("health         %s%s\n", health.c_str(), i.draining() ? " (draining)" : "");
    std::printf("devices        %d\n", i.device_info_size());
    for (const auto& d : i.device_info()) {
      std::printf("  %-22s %u threads per model, lanes %u in use of %u, %u models, %" PRIu64 " of %" PRIu64
                  " bytes resident\n",
                  d.description().c_str(), d.threads(), d.lanes_in_use(), d.lanes(), d.models_loaded(), d.resident_bytes(),
                  d.memory_budget_bytes());
    }
    std::printf("lanes          %u in use of %u\n", i.lanes_in_use(), i.max_lanes());
    std::printf("queue          %" PRIu64 " chunks waiting, %u requests open\n", i.queue_depth(), i.open_requests());
    std::printf("memory         %" PRIu64 " of %" PRIu64 " bytes resident\n", i.resident_bytes(), i.memory_budget_bytes());
    std::printf("loaded models  %d\n", i.loaded_models_size());
    for (const auto& m : i.loaded_models()) {
      std::string on;
      for (const std::string& d : m.devices()) on += (on.empty() ? "  on " : ", ") + d;
      std::printf("  %s:%u  %s%s\n", m.name().c_str(), m.version(), m.id().c_str(), on.c_str());
    }
    if (i.problems_size() > 0) {
      std::printf("problems       %d (entries of the model store or jobs directory not served)\n", i.problems_size());
      for (const auto& p : i.problems()) std::printf("  %s\n", p.c_str());
    }
    return Status::Ok();
  }
};

class JobsListCommand final : public ServerCommand {
 public:
  JobsListCommand() : ServerCommand("list", "List training jobs") {}
  void Define(CLI::App*) override {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    BOA_ASSIGN_OR_RETURN(std::vector<v1::JobInfo> jobs, r.ListJobs());
    if (jobs.empty() && !g.quiet) std::printf("no jobs\n");
    for (const auto& j : jobs) {
      std::printf("%-20s %-16s %-14s %s\n", j.id().c_str(), j.name().c_str(), v1::JobState_Name(j.state()).c_str(),
                  j.message().c_str());
    }
    return Status::Ok();
  }
};

// A command that names one job.
class JobCommand : public ServerCommand {
 public:
  using ServerCommand::ServerCommand;
  void Define(CLI::App* cmd) override { cmd->add_option("id", job_, "Job id")->required(); }

 protected:
  std::string job_;
};

class JobsShowCommand final : public JobCommand {
 public:
  JobsShowCommand(const char* name, const char* description, bool cancel)
      : JobCommand(name, description), cancel_(cancel) {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions&) override {
    BOA_ASSIGN_OR_RETURN(v1::JobInfo j, cancel_ ? r.CancelJob(job_) : r.GetJob(job_));
    PrintJob(j);
    return Status::Ok();
  }

 private:
  const bool cancel_;
};

class JobsResumeCommand final : public JobCommand {
 public:
  JobsResumeCommand()
      : JobCommand("resume", "Continue an interrupted, cancelled or failed job from its checkpoint") {}
  Status RunOn(rpc::RemoteClient& r, const GlobalOptions& g) override {
    return FollowJob(r, [&](const JobEventFn& on_event) { return r.ResumeJob(job_, on_event); }, g.ProgressLines(),
                     g.quiet);
  }
};

// `health`: for container HEALTHCHECKs and scripts, with grpc_health_probe's exit codes.
class HealthCommand final : public Command {
 public:
  HealthCommand()
      : Command("health", "Exit 0 if boad is serving (else 2: cannot connect, 3: the check failed, 4: not serving)") {}

  void Define(CLI::App* cmd) override {
    cmd->add_option("--service", service_, "Service to ask about (default boa.v1.Boa; '' for the whole server)");
  }

  Status Run(const GlobalOptions& g) override {
    stage_ = Stage::kConnect;
    const double connect_seconds = g.timeout > 0 ? g.timeout : 5;
    BOA_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RemoteClient> r,
                         g.Endpoint().Connect(connect_seconds));
    r->set_deadline(g.timeout);
    stage_ = Stage::kCheck;
    BOA_ASSIGN_OR_RETURN(std::string status, r->Health(service_));
    stage_ = Stage::kAnswer;
    if (status != "SERVING") {
      return Status::Unavailable("boad at " + r->address() + " is " + status +
                                 (service_.empty() ? std::string() : " (service " + service_ + ")"));
    }
    if (!g.quiet) std::printf("status: SERVING\n");
    return Status::Ok();
  }

  int ExitCode(const Status& status) const override {
    if (status.ok()) return 0;
    return stage_ == Stage::kConnect ? 2 : stage_ == Stage::kCheck ? 3 : 4;
  }

 private:
  enum class Stage { kConnect, kCheck, kAnswer };
  std::string service_ = "boa.v1.Boa";
  Stage stage_ = Stage::kConnect;
};

}  // namespace

Status FollowJob(rpc::RemoteClient& r, const std::function<Status(const JobEventFn&)>& call,
                 const ProgressLineFn& progress, bool quiet) {
  v1::JobInfo last;
  bool announced = false;
  BOA_RETURN_IF_ERROR(call([&](const v1::TrainEvent& e) {
    if (e.has_job()) {
      last = e.job();
      if (!announced && !quiet) {
        std::fprintf(stderr, "job %s on %s (it continues if this client stops: boa-client jobs show %s)\n",
                     last.id().c_str(), r.address().c_str(), last.id().c_str());
      }
      announced = true;
    } else if (progress) {
      progress(e.progress().line(), e.progress().milestone());
    }
  }));
  if (last.state() != v1::JOB_SUCCEEDED) {
    return Status::Internal("job " + last.id() + " " + v1::JobState_Name(last.state()) + ": " + last.message());
  }
  if (!quiet) {
    std::printf("trained %s:%u (id %s): validation %.4f, test %.4f bits/byte, %.0f s\n", last.model().name().c_str(),
                last.model().version(), last.model().id().c_str(), last.val_bpb(), last.test_bpb(), last.seconds());
  }
  return Status::Ok();
}

void AddServerCommands(CommandTable* table) {
  CLI::App* models = table->Group("models", "Models on the server: list, show, upload, download, rm, load, unload");
  table->Add(std::make_unique<ModelsListCommand>(), models);
  table->Add(std::make_unique<ModelsShowCommand>(), models);
  table->Add(std::make_unique<ModelsUploadCommand>(), models);
  table->Add(std::make_unique<ModelsDownloadCommand>(), models);
  table->Add(std::make_unique<ModelsActionCommand>("rm", "Delete a model from the server's store",
                                                   &rpc::RemoteClient::DeleteModel, "deleted"),
             models);
  table->Add(std::make_unique<ModelsActionCommand>("load", "Make a model resident on the server",
                                                   &rpc::RemoteClient::LoadModel, "loaded"),
             models);
  table->Add(std::make_unique<ModelsActionCommand>("unload", "Release a resident model's memory",
                                                   &rpc::RemoteClient::UnloadModel, "unloaded"),
             models);
  table->Add(std::make_unique<StatusCommand>());
  table->Add(std::make_unique<HealthCommand>());
  CLI::App* jobs = table->Group("jobs", "Training jobs on the server: list, show, cancel, resume");
  table->Add(std::make_unique<JobsListCommand>(), jobs);
  table->Add(std::make_unique<JobsShowCommand>("show", "Show one job", false), jobs);
  table->Add(std::make_unique<JobsShowCommand>("cancel", "Stop a job (a running one checkpoints first)", true), jobs);
  table->Add(std::make_unique<JobsResumeCommand>(), jobs);
}

}  // namespace boa::client
