// `boa-client models list|show|upload|download|rm|load|unload`, `boa-client jobs
// list|show|cancel` and `boa-client status`.
#include "client/server_commands.h"

#include <cinttypes>
#include <cstdio>

#include "rpc/remote_client.h"
#include "common/util/io.h"

namespace boa::client {

namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "boa-client: %s\n", s.message().c_str());
  return 1;
}

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

}  // namespace

void AddServerCommands(CLI::App* app, ServerCommands* c) {
  c->models = app->add_subcommand("models", "Models on the server: list, show, upload, download, rm, load, unload");
  c->models->require_subcommand(1);
  c->models->fallthrough();
  c->list = c->models->add_subcommand("list", "List the models in the server's store");
  c->show = c->models->add_subcommand("show", "Show one model (NAME, NAME:VERSION or id)");
  c->show->add_option("model", c->ref, "Model reference")->required();
  c->upload = c->models->add_subcommand("upload", "Register a model file in the server's store");
  c->upload->add_option("file", c->file, "Model file (.boam)")->required();
  c->upload->add_option("--name", c->name, "Name in the store")->required();
  c->upload->add_option("--version", c->version, "Version (default: the next one)");
  c->download = c->models->add_subcommand("download", "Fetch a model file from the server");
  c->download->add_option("model", c->ref, "Model reference")->required();
  c->download->add_option("-o,--output", c->output, "Output file")->required();
  c->download->add_flag("-f,--force", c->force, "Overwrite an existing file");
  c->rm = c->models->add_subcommand("rm", "Delete a model from the server's store");
  c->rm->add_option("model", c->ref, "Model reference")->required();
  c->load = c->models->add_subcommand("load", "Make a model resident on the server");
  c->load->add_option("model", c->ref, "Model reference")->required();
  c->unload = c->models->add_subcommand("unload", "Release a resident model's memory");
  c->unload->add_option("model", c->ref, "Model reference")->required();
  c->status = app->add_subcommand("status", "Server health, version, lanes, queue and loaded models");
  c->jobs = app->add_subcommand("jobs", "Training jobs on the server: list, show, cancel, resume");
  c->jobs->require_subcommand(1);
  c->jobs->fallthrough();
  c->jobs_list = c->jobs->add_subcommand("list", "List training jobs");
  c->jobs_show = c->jobs->add_subcommand("show", "Show one job");
  c->jobs_show->add_option("id", c->job, "Job id")->required();
  c->jobs_cancel = c->jobs->add_subcommand("cancel", "Stop a job (a running one checkpoints first)");
  c->jobs_cancel->add_option("id", c->job, "Job id")->required();
  c->jobs_resume = c->jobs->add_subcommand("resume", "Continue an interrupted, cancelled or failed job from its checkpoint");
  c->jobs_resume->add_option("id", c->job, "Job id")->required();
}

int FollowJob(rpc::RemoteClient& r, const std::function<Status(const JobEventFn&)>& call, const ProgressLineFn& progress,
              bool quiet) {
  v1::JobInfo last;
  bool announced = false;
  Status s = call([&](const v1::TrainEvent& e) {
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
  });
  if (!s.ok()) return Fail(s);
  if (last.state() != v1::JOB_SUCCEEDED) {
    return Fail(Status::Internal("job " + last.id() + " " + v1::JobState_Name(last.state()) + ": " + last.message()));
  }
  if (!quiet) {
    std::printf("trained %s:%u (id %s): validation %.4f, test %.4f bits/byte, %.0f s\n", last.model().name().c_str(),
                last.model().version(), last.model().id().c_str(), last.val_bpb(), last.test_bpb(), last.seconds());
  }
  return 0;
}

int RunServerCommand(const ServerCommands& c, const std::string& server, bool quiet, double timeout,
                     const ProgressLineFn& progress) {
  if (!c.models->parsed() && !c.status->parsed() && !c.jobs->parsed()) return -1;
  Result<std::unique_ptr<rpc::RemoteClient>> connected = rpc::RemoteClient::Connect(rpc::ServerAddress(server));
  if (!connected.ok()) return Fail(connected.status());
  rpc::RemoteClient& r = **connected;
  r.set_deadline(timeout);
  if (c.status->parsed()) {
    Result<std::string> health = r.Health();
    if (!health.ok()) return Fail(health.status());
    Result<v1::ServerInfoResponse> info = r.Info();
    if (!info.ok()) return Fail(info.status());
    const v1::ServerInfoResponse& i = *info;
    std::printf("server         %s (boad %s)\n", r.address().c_str(), i.version().c_str());
    std::printf("health         %s%s\n", health->c_str(), i.draining() ? " (draining)" : "");
    std::printf("devices        ");
    for (int k = 0; k < i.devices_size(); ++k) std::printf("%s%s", k ? ", " : "", i.devices(k).c_str());
    std::printf("\nthreads        %u per model\n", i.threads());
    std::printf("lanes          %u in use of %u on the device\n", i.lanes_in_use(), i.max_lanes());
    std::printf("queue          %" PRIu64 " chunks waiting, %u requests open\n", i.queue_depth(), i.open_requests());
    std::printf("memory         %" PRIu64 " of %" PRIu64 " bytes resident\n", i.resident_bytes(), i.memory_budget_bytes());
    std::printf("loaded models  %d\n", i.loaded_models_size());
    for (const auto& m : i.loaded_models()) std::printf("  %s:%u  %s\n", m.name().c_str(), m.version(), m.id().c_str());
    if (i.problems_size() > 0) {
      std::printf("problems       %d (entries of the model store or jobs directory not served)\n", i.problems_size());
      for (const auto& p : i.problems()) std::printf("  %s\n", p.c_str());
    }
    return 0;
  }
  if (c.jobs_list->parsed()) {
    Result<std::vector<v1::JobInfo>> jobs = r.ListJobs();
    if (!jobs.ok()) return Fail(jobs.status());
    if (jobs->empty() && !quiet) std::printf("no jobs\n");
    for (const auto& j : *jobs) {
      std::printf("%-20s %-16s %-14s %s\n", j.id().c_str(), j.name().c_str(), v1::JobState_Name(j.state()).c_str(),
                  j.message().c_str());
    }
    return 0;
  }
  if (c.jobs_resume->parsed()) {
    return FollowJob(r, [&](const JobEventFn& on_event) { return r.ResumeJob(c.job, on_event); }, progress, quiet);
  }
  if (c.jobs_show->parsed() || c.jobs_cancel->parsed()) {
    Result<v1::JobInfo> j = c.jobs_show->parsed() ? r.GetJob(c.job) : r.CancelJob(c.job);
    if (!j.ok()) return Fail(j.status());
    PrintJob(*j);
    return 0;
  }
  if (c.list->parsed()) {
    Result<std::vector<v1::ModelInfo>> models = r.ListModels();
    if (!models.ok()) return Fail(models.status());
    if (models->empty()) {
      if (!quiet) std::printf("no models (add one: boa-client models upload FILE --name NAME)\n");
      return 0;
    }
    std::printf("%-24s %7s  %-12s  %-17s  %s  %12s  %s\n", "NAME", "VERSION", "ID", "ARCHITECTURE", "TYPE", "SIZE", "STATE");
    for (const auto& m : *models) PrintModelRow(m);
    return 0;
  }
  if (c.upload->parsed()) {
    Result<v1::ModelInfo> m = r.UploadModel(c.file, c.name, c.version);
    if (!m.ok()) return Fail(m.status().WithContext(c.file));
    if (!quiet) std::printf("%s -> %s:%u (id %s)\n", c.file.c_str(), m->name().c_str(), m->version(), m->id().c_str());
    return 0;
  }
  if (c.download->parsed()) {
    Result<std::unique_ptr<AtomicOutputFile>> out = AtomicOutputFile::Create(c.output, c.force);
    if (!out.ok()) return Fail(out.status());
    Status s = r.DownloadModel(c.ref, out->get());
    if (s.ok()) s = (*out)->Commit("");
    if (!s.ok()) return Fail(s);
    if (!quiet) std::printf("%s -> %s\n", c.ref.c_str(), c.output.c_str());
    return 0;
  }
  Result<v1::ModelInfo> m = Status::Internal("no models command");
  if (c.show->parsed()) m = r.GetModel(c.ref);
  if (c.rm->parsed()) m = r.DeleteModel(c.ref);
  if (c.load->parsed()) m = r.LoadModel(c.ref);
  if (c.unload->parsed()) m = r.UnloadModel(c.ref);
  if (!m.ok()) return Fail(m.status());
  if (c.show->parsed()) {
    PrintModel(*m);
  } else if (!quiet) {
    const char* what = c.rm->parsed() ? "deleted" : c.load->parsed() ? "loaded" : "unloaded";
    std::printf("%s:%u %s\n", m->name().c_str(), m->version(), what);
  }
  return 0;
}

}  // namespace boa::client
