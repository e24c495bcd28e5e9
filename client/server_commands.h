// boa-client commands that only exist against boad: `models ...`, `jobs ...` and `status`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace boa::client {

struct ServerCommands {
  CLI::App* models = nullptr;
  CLI::App *list = nullptr, *show = nullptr, *upload = nullptr, *download = nullptr, *rm = nullptr, *load = nullptr,
           *unload = nullptr;
  CLI::App* status = nullptr;
  CLI::App *jobs = nullptr, *jobs_list = nullptr, *jobs_show = nullptr, *jobs_cancel = nullptr;
  std::string ref, file, name, output, job;
  uint32_t version = 0;
  bool force = false;
};

// Adds the subcommands to `app`.
void AddServerCommands(CLI::App* app, ServerCommands* c);
// Runs whichever was parsed; -1 if none was.
int RunServerCommand(const ServerCommands& c, const std::string& server, bool quiet, double timeout);

}  // namespace boa::client
