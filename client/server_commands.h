// boa-client commands that only exist against boad: `models ...`, `jobs ...` and `status`.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "rpc/remote_client.h"

namespace boa::client {

struct ServerCommands {
  CLI::App* models = nullptr;
  CLI::App *list = nullptr, *show = nullptr, *upload = nullptr, *download = nullptr, *rm = nullptr, *load = nullptr,
           *unload = nullptr;
  CLI::App* status = nullptr;
  CLI::App *jobs = nullptr, *jobs_list = nullptr, *jobs_show = nullptr, *jobs_cancel = nullptr, *jobs_resume = nullptr;
  std::string ref, file, name, output, job;
  uint32_t version = 0;
  bool force = false;
};

// Adds the subcommands to `app`.
void AddServerCommands(CLI::App* app, ServerCommands* c);
using ProgressLineFn = std::function<void(const std::string& line, bool milestone)>;
// Runs whichever was parsed; -1 if none was. `progress` shows a followed job's lines.
int RunServerCommand(const ServerCommands& c, const std::string& server, bool quiet, double timeout,
                     const ProgressLineFn& progress);

// Follows a training job on boad (`train --name`, `jobs resume`): `call` starts the stream;
// announces the job, shows its progress and its outcome. 0 if it succeeded, else 1.
using JobEventFn = std::function<void(const v1::TrainEvent&)>;
int FollowJob(rpc::RemoteClient& remote, const std::function<Status(const JobEventFn&)>& call, const ProgressLineFn& progress,
              bool quiet);

}  // namespace boa::client
